import { describe, expect, it } from 'vitest';
import { LpModelError } from './errors.ts';
import { normalizeModel } from './model.ts';
import type { LpModel } from './types.ts';
import { checkSolution, objectiveOf, settleSolution } from './verify.ts';

/** x ∈ [0, 2], y free; 1 ≤ x + y ≤ 3; x − y = 0. */
const model: LpModel = {
  variables: [
    { name: 'x', cost: 1, upper: 2 },
    { name: 'y', cost: 2, lower: -Infinity },
  ],
  constraints: [
    {
      name: 'sum',
      terms: [
        [0, 1],
        [1, 1],
      ],
      lower: 1,
      upper: 3,
    },
    {
      name: 'diff',
      terms: [
        [0, 1],
        [1, -1],
      ],
      lower: 0,
      upper: 0,
    },
  ],
};

describe('checkSolution', () => {
  it('accepts a feasible point, within the relative tolerance', () => {
    expect(checkSolution(model, [1, 1])).toEqual([]);
    expect(checkSolution(model, [1.5 + 1e-6, 1.5])).toEqual([]); // sum 3 + 1e-6 ≤ 3 + 3e-6
  });

  it('lists each broken bound and row with how far it is missed', () => {
    expect(checkSolution(model, [2.5, 0.5])).toEqual([
      { kind: 'variable', index: 0, name: 'x', side: 'upper', value: 2.5, limit: 2, excess: 0.5 },
      { kind: 'constraint', index: 1, name: 'diff', side: 'upper', value: 2, limit: 0, excess: 2 },
    ]);
    expect(checkSolution(model, [-1, -1])).toEqual([
      { kind: 'variable', index: 0, name: 'x', side: 'lower', value: -1, limit: 0, excess: 1 },
      { kind: 'constraint', index: 0, name: 'sum', side: 'lower', value: -2, limit: 1, excess: 3 },
    ]);
  });

  it('flags NaN and missing values as not finite', () => {
    const found = checkSolution(model, [NaN]);
    expect(found.map((v) => `${v.kind}:${v.name}:${v.side}`)).toEqual([
      'variable:x:not-finite',
      'variable:y:not-finite',
      'constraint:sum:not-finite',
      'constraint:diff:not-finite',
    ]);
  });

  it('scales the tolerance with the bound and the size of the terms', () => {
    const big: LpModel = {
      variables: [
        { name: 'a', cost: 0 },
        { name: 'b', cost: 0 },
      ],
      constraints: [
        {
          name: 'cancel',
          terms: [
            [0, 1e6],
            [1, -1e6],
          ],
          upper: 0,
        },
      ],
    };
    expect(checkSolution(big, [1 + 1e-9, 1])).toEqual([]); // activity 1e-3 against terms of 1e6
    expect(checkSolution(big, [1 + 1e-5, 1])).toHaveLength(1);
  });
});

describe('objectiveOf', () => {
  it('recomputes Σ cost·x', () => {
    expect(objectiveOf(model, [1.5, -0.25])).toBe(1);
  });
});

describe('settleSolution', () => {
  const lp = normalizeModel(model);

  it('downgrades an optimal claim whose values break the model, keeping the values and violations', () => {
    const s = settleSolution('fake', model, lp, { status: 'optimal', values: Float64Array.of(3, 0) }, 1);
    expect(s.status).toBe('error');
    expect(s.objective).toBe(3);
    expect(s.violations?.map((v) => v.name)).toEqual(['x', 'diff']);
    expect(s.message).toMatch(
      /^fake claimed optimal, but 2 bound\/row violation\(s\); worst: constraint 'diff'/,
    );
  });

  it('keeps a verified optimum and recomputes its objective instead of trusting the engine', () => {
    const s = settleSolution('fake', model, lp, { status: 'optimal', values: Float64Array.of(0.5, 0.5) }, 1);
    expect(s).toMatchObject({ status: 'optimal', objective: 1.5 });
    expect(s.violations).toBeUndefined();
  });

  it('downgrades an unbounded claim that the variable bounds disprove', () => {
    const boxed: LpModel = { variables: [{ name: 'x', cost: -1, upper: 5 }], constraints: [] };
    const s = settleSolution('fake', boxed, normalizeModel(boxed), { status: 'unbounded' }, 1);
    expect(s.status).toBe('error');
    expect(s.message).toMatch(/claimed unbounded/);
  });

  it('keeps an unbounded claim the bounds cannot disprove, with NaN values', () => {
    const s = settleSolution('fake', model, lp, { status: 'unbounded' }, 1);
    expect(s.status).toBe('unbounded');
    expect(s.objective).toBe(-Infinity);
    expect(Array.from(s.values)).toEqual([NaN, NaN]);
  });

  it('keeps time-limit as is but reports where its point is infeasible', () => {
    const s = settleSolution('fake', model, lp, { status: 'time-limit', values: Float64Array.of(0, 0) }, 1);
    expect(s.status).toBe('time-limit');
    expect(s.violations?.map((v) => v.name)).toEqual(['sum']);
  });
});

describe('normalizeModel', () => {
  it('rejects a NaN coefficient with its location', () => {
    const bad: LpModel = {
      variables: [{ name: 'x', cost: 1 }],
      constraints: [{ name: 'r', terms: [[0, NaN]] }],
    };
    expect(() => normalizeModel(bad)).toThrow(LpModelError);
    try {
      normalizeModel(bad);
    } catch (err) {
      expect((err as LpModelError).location).toEqual({ kind: 'constraint', index: 0, name: 'r', term: 0 });
    }
  });

  it('merges duplicate terms, drops cancelled ones and free rows', () => {
    const lp = normalizeModel({
      variables: [
        { name: 'x', cost: 1 },
        { name: 'y', cost: 1 },
      ],
      constraints: [
        {
          name: 'a',
          terms: [
            [0, 1],
            [1, 2],
            [0, 3],
            [1, -2],
          ],
          lower: 1,
        },
        { name: 'free', terms: [[0, 1]] },
      ],
    });
    expect(lp.rows).toEqual([{ index: 0, vars: [0], coefs: [4], lower: 1, upper: Infinity }]);
  });
});
