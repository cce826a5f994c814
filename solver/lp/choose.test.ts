import { describe, expect, it } from 'vitest';
import { chooseBackend, JS_LP_MAX_VARIABLES, LpNoBackendError, needsHighs } from './index.ts';
import type { LpBackend, LpModel } from './index.ts';

const fake = (name: string): LpBackend => ({
  name,
  solve: () => {
    throw new Error('not called');
  },
});
const js = fake('javascript-lp-solver');
const highs = fake('highs');
const sized = (n: number): LpModel => ({
  variables: Array.from({ length: n }, (_, j) => ({ name: `v${j}`, cost: 1 })),
  constraints: [],
});

describe('chooseBackend', () => {
  it('sends models up to JS_LP_MAX_VARIABLES to the JS solver and larger ones to HiGHS', () => {
    expect(chooseBackend(sized(JS_LP_MAX_VARIABLES), { js, highs })).toBe(js);
    expect(chooseBackend(sized(JS_LP_MAX_VARIABLES + 1), { js, highs })).toBe(highs);
    expect([needsHighs(sized(JS_LP_MAX_VARIABLES)), needsHighs(sized(JS_LP_MAX_VARIABLES + 1))]).toEqual([
      false,
      true,
    ]);
  });

  it('accepts a list and matches by name, whatever the order', () => {
    expect(chooseBackend(sized(1), [highs, js])).toBe(js);
    expect(chooseBackend(sized(10_000), [js, highs])).toBe(highs);
  });

  it('falls back to the engine that is there', () => {
    expect(chooseBackend(sized(10_000), { js })).toBe(js);
    expect(chooseBackend(sized(1), [highs])).toBe(highs);
    const other = fake('other');
    expect(chooseBackend(sized(1), [other])).toBe(other);
  });

  it('throws LpNoBackendError, carrying the model size, when there is none', () => {
    expect(() => chooseBackend(sized(3), {})).toThrow(LpNoBackendError);
    expect(() => chooseBackend(sized(3), [])).toThrow(/model of 3 variables/);
  });
});
