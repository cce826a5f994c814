/**
 * HiGHS-specific behaviour: the LP text we write (and the reader quirks it works around, pinned against
 * the real engine so an upgrade that changes them is noticed), status mapping, the time limit, and the
 * retry on a fresh instance after a throw.
 */
import highsImport from 'highs';
import type { LegacyHighs, LegacyHighsSolution } from 'highs';
import { describe, expect, it } from 'vitest';
import { loadHighsBackend } from './highs.ts';
import { num, toCplexLp } from './lpFormat.ts';
import { normalizeModel } from './model.ts';
import type { LpModel } from './types.ts';

type Loader = () => Promise<LegacyHighs>;
const realLoad: Loader = typeof highsImport === 'function' ? (highsImport as Loader) : highsImport.default;

const small: LpModel = {
  variables: [
    { name: 'a', cost: 1 },
    { name: 'b', cost: -1e-7, lower: -Infinity, upper: -2 },
    { name: 'c', cost: 0, lower: -Infinity },
    { name: 'd', cost: 2.5e21, lower: 1.5 },
    { name: 'e', cost: 3, lower: 4, upper: 4 },
  ],
  constraints: [
    {
      name: 'range',
      terms: [
        [0, 1],
        [1, -2],
      ],
      lower: 2,
      upper: 5,
    },
    {
      name: 'eq',
      terms: [
        [2, 1],
        [3, 1],
      ],
      lower: 7,
      upper: 7,
    },
  ],
};

describe('toCplexLp', () => {
  it('writes internal names, both sides of every bound, and ranged rows as two rows', () => {
    expect(toCplexLp(normalizeModel(small))).toBe(
      [
        'Minimize',
        ' obj: 1 x0 - 1e-7 x1 + 0 x2 + 2.5e+21 x3 + 3 x4',
        'Subject To',
        ' c0l: 1 x0 - 2 x1 >= 2',
        ' c0u: 1 x0 - 2 x1 <= 5',
        ' c1: 1 x2 + 1 x3 = 7',
        'Bounds',
        ' -inf <= x1 <= -2',
        ' x2 free',
        ' x3 >= 1.5',
        ' x4 = 4',
        'End',
        '',
      ].join('\n'),
    );
  });

  it('formats numbers in shortest round-trip form', () => {
    expect([num(0.1), num(1e-7), num(-0), num(1 / 3), num(-Infinity)]).toEqual([
      '0.1',
      '1e-7',
      '0',
      '0.3333333333333333',
      '-inf',
    ]);
  });
});

describe('HiGHS LP reader (facts lpFormat.ts relies on)', () => {
  const solve = async (text: string) => (await realLoad()).solve(text, { output_flag: false });

  it('rejects the ranged-row syntax `lo <= expr <= up`', async () => {
    await expect(solve('Minimize\n obj: x\nSubject To\n r: 2 <= x + y <= 5\nEnd')).rejects.toThrow(
      /Unable to read LP/,
    );
  });

  it('keeps the default lower bound 0 under a bound line `x <= -2`', async () => {
    expect((await solve('Minimize\n obj: x\nSubject To\n r: x >= -10\nBounds\n x <= -2\nEnd')).Status).toBe(
      'Infeasible',
    );
  });

  it('parses exponents exactly', async () => {
    const r = await solve('Minimize\n obj: 1e-7 x\nSubject To\n r: 3e-7 x >= 6e-7\nEnd');
    expect([r.Status, r.Columns['x'] && 'Primal' in r.Columns['x'] ? r.Columns['x'].Primal : NaN]).toEqual([
      'Optimal',
      2,
    ]);
  });
});

/** A 30×30 transport problem: too big for presolve alone, so a zero time limit stops it. */
function transport(k: number): LpModel {
  const model: LpModel = { variables: [], constraints: [] };
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < k; j++)
      model.variables.push({ name: `${i}→${j}`, cost: 1 + ((i * 7 + j * 13) % 17) });
  }
  for (let i = 0; i < k; i++) {
    model.constraints.push({
      name: `s${i}`,
      terms: Array.from({ length: k }, (_, j) => [i * k + j, 1]),
      upper: 10,
    });
    model.constraints.push({
      name: `d${i}`,
      terms: Array.from({ length: k }, (_, j) => [j * k + i, 1]),
      lower: 10,
    });
  }
  return model;
}

describe('HiGHS backend', () => {
  it('returns time-limit, with the violations of its last point, when the limit stops it', async () => {
    const highs = await loadHighsBackend();
    const model = transport(30);
    expect(highs.solve(model).status).toBe('optimal');
    const s = highs.solve(model, { timeLimitMs: 0 });
    expect(s.status).toBe('time-limit');
    expect(s.message).toBe('Time limit reached');
  });

  it('reloads and retries once when HiGHS throws, and says so', async () => {
    let loads = 0;
    const loadInstance: Loader = async () => {
      const broken = loads++ === 0; // the first instance loaded is the one put in use
      const real = await realLoad();
      return broken ? { solve: () => fail('RuntimeError: unreachable') } : real;
    };
    const highs = await loadHighsBackend({ loadInstance });
    const s = highs.solve(small);
    expect(s.status).toBe('optimal');
    expect(s.message).toMatch(
      /HiGHS threw \(Error: RuntimeError: unreachable\); reloaded the module and retried once/,
    );
    expect(highs.solve(small).message).toBeUndefined(); // the fresh instance stays in use
  });

  it('returns error when the retry throws too', async () => {
    const highs = await loadHighsBackend({
      loadInstance: async () => ({ solve: () => fail('memory access out of bounds') }),
    });
    const s = highs.solve(small);
    expect(s.status).toBe('error');
    expect(s.message).toMatch(/^HiGHS threw twice: .*out of bounds; after reload: .*out of bounds/);
    expect(Array.from(s.values).every(Number.isNaN)).toBe(true);
  });

  it.each([
    ['Primal infeasible or unbounded', 'infeasible'],
    ['Iteration limit reached', 'error'],
    ['Load error', 'error'],
  ] as const)('maps HiGHS status %s to %s (bounded model)', async (highsStatus, status) => {
    const fake = {
      Status: highsStatus,
      ObjectiveValue: 0,
      Columns: {},
      Rows: [],
    } as unknown as LegacyHighsSolution;
    const highs = await loadHighsBackend({ loadInstance: async () => ({ solve: () => fake }) });
    const boxed: LpModel = {
      variables: [{ name: 'x', cost: 1 }],
      constraints: [{ name: 'r', terms: [[0, 1]], lower: 1 }],
    };
    expect(highs.solve(boxed).status).toBe(status);
  });

  it('downgrades an Optimal whose primal values break the model', async () => {
    const column = { Primal: 0, Index: 0, Lower: 0, Upper: Infinity, Dual: 0, Name: 'x0', Status: 'BS' };
    const fake = {
      Status: 'Optimal',
      ObjectiveValue: 0,
      Columns: { x0: column },
      Rows: [],
    } as unknown as LegacyHighsSolution;
    const highs = await loadHighsBackend({ loadInstance: async () => ({ solve: () => fake }) });
    const s = highs.solve({
      variables: [{ name: 'x', cost: 1 }],
      constraints: [{ name: 'r', terms: [[0, 1]], lower: 1 }],
    });
    expect(s.status).toBe('error');
    expect(s.violations).toEqual([
      { kind: 'constraint', index: 0, name: 'r', side: 'lower', value: 0, limit: 1, excess: 1 },
    ]);
  });
});

function fail(message: string): never {
  throw new Error(message);
}
