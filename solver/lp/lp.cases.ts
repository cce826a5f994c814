/**
 * Small LPs with hand-computed answers, for the contract suite every backend must pass. Each case says
 * how its optimum was derived, so a failure can be checked by hand rather than against another engine.
 */
import type { LpConstraint, LpModel, LpStatus, LpVariable } from './types.ts';

/** One scenario: the model and what any correct backend must answer. */
export interface LpCase {
  name: string;
  model: LpModel;
  status: LpStatus;
  /** Expected optimum (for `optimal`). */
  objective?: number;
  /** Expected values by variable index, when the optimum is unique. */
  values?: number[];
}

const v = (name: string, cost: number, lower?: number, upper?: number): LpVariable => ({
  name,
  cost,
  lower,
  upper,
});
/** A row from `{ varIndex: coef }` (terms as a map keep the table readable; duplicates need raw terms). */
const row = (name: string, terms: Record<number, number>, lower?: number, upper?: number): LpConstraint => ({
  name,
  terms: Object.entries(terms).map(([j, coef]): [number, number] => [Number(j), coef]),
  lower,
  upper,
});

/** Supplies 20, 30; demands 10, 25, 15. S1 is cheapest relative to S2 for D2 (6 vs 12), so it all goes there. */
const transport: LpCase = {
  name: 'transport problem',
  model: {
    variables: [v('s1→d1', 8), v('s1→d2', 6), v('s1→d3', 10), v('s2→d1', 9), v('s2→d2', 12), v('s2→d3', 13)],
    constraints: [
      row('supply s1', { 0: 1, 1: 1, 2: 1 }, undefined, 20),
      row('supply s2', { 3: 1, 4: 1, 5: 1 }, undefined, 30),
      row('demand d1', { 0: 1, 3: 1 }, 10),
      row('demand d2', { 1: 1, 4: 1 }, 25),
      row('demand d3', { 2: 1, 5: 1 }, 15),
    ],
  },
  status: 'optimal',
  objective: 20 * 6 + 10 * 9 + 5 * 12 + 15 * 13, // 465
  values: [0, 20, 0, 10, 5, 15],
};

/** Both rows ranged; the corner x+y=5, x−y=3 beats x+y=5, x−y=1 (−9 < −8). */
const rangedUpper: LpCase = {
  name: 'ranged rows, upper sides bind',
  model: {
    variables: [v('x', -2), v('y', -1)],
    constraints: [row('sum', { 0: 1, 1: 1 }, 2, 5), row('diff', { 0: 1, 1: -1 }, 1, 3)],
  },
  status: 'optimal',
  objective: -9,
  values: [4, 1],
};

/** Same rows; on x+y=2 the objective is 2+y, so y=0 (and x−y=2 is inside [1,3]). */
const rangedLower: LpCase = {
  name: 'ranged rows, lower side binds',
  model: { ...rangedUpper.model, variables: [v('x', 1), v('y', 2)] },
  status: 'optimal',
  objective: 2,
  values: [2, 0],
};

/** a=b+2, a+b+c=10 give cost 24−1.5c, so c sits at its upper bound 3. */
const equalities: LpCase = {
  name: 'equality rows and a variable upper bound',
  model: {
    variables: [v('a', 2), v('b', 3), v('c', 1, 0, 3)],
    constraints: [row('total', { 0: 1, 1: 1, 2: 1 }, 10, 10), row('a−b', { 0: 1, 1: -1 }, 2, 2)],
  },
  status: 'optimal',
  objective: 19.5,
  values: [4.5, 2.5, 3],
};

/** Fractional knapsack: fill by value density 3 > 2 > 1 until the row x+y+z ≤ 4 is full. */
const upperBounds: LpCase = {
  name: 'variable upper bounds',
  model: {
    variables: [v('x', -3, 0, 1.5), v('y', -2, 0, 2), v('z', -1, 0, 10)],
    constraints: [row('room', { 0: 1, 1: 1, 2: 1 }, undefined, 4)],
  },
  status: 'optimal',
  objective: -9,
  values: [1.5, 2, 0.5],
};

/**
 * x free with x ≥ y−3 and y ≥ −1 gives x=−4; z ∈ [1.5,4] sits at 1.5; w ≤ −2 with cost −1 sits at −2 (a
 * bound line `w <= -2` alone would keep LP format's default lower bound 0 and make this infeasible);
 * f is fixed at 2.5 and g makes up f+g ≥ 4. Total −4 + 3 + 2 + 2.5 + 4.5 = 8.
 */
const oddBounds: LpCase = {
  name: 'free, negative, shifted and fixed bounds',
  model: {
    variables: [
      v('x', 1, -Infinity),
      v('y', 0, -1, 2),
      v('z', 2, 1.5, 4),
      v('w', -1, -Infinity, -2),
      v('f', 1, 2.5, 2.5),
      v('g', 3),
    ],
    constraints: [row('x−y', { 0: 1, 1: -1 }, -3), row('f+g', { 4: 1, 5: 1 }, 4)],
  },
  status: 'optimal',
  objective: 8,
  values: [-4, -1, 1.5, -2, 2.5, 1.5],
};

/** (1,1) is the only point with x+y=2 inside the box, and all five rows are active there. */
const degenerate: LpCase = {
  name: 'degenerate vertex (five active rows in 2-D)',
  model: {
    variables: [v('x', -1), v('y', -1)],
    constraints: [
      row('x+y', { 0: 1, 1: 1 }, undefined, 2),
      row('x', { 0: 1 }, undefined, 1),
      row('y', { 1: 1 }, undefined, 1),
      row('x+2y', { 0: 1, 1: 2 }, undefined, 3),
      row('2x+y', { 0: 2, 1: 1 }, undefined, 3),
    ],
  },
  status: 'optimal',
  objective: -2,
  values: [1, 1],
};

/** Beale (1955): cycles under Dantzig's rule without anti-cycling; the optimum −5/4 is at (1, 0, 1, 0). */
const beale: LpCase = {
  name: "Beale's cycling example",
  model: {
    variables: [v('x4', -0.75), v('x5', 20), v('x6', -0.5), v('x7', 6)],
    constraints: [
      row('r1', { 0: 0.25, 1: -8, 2: -1, 3: 9 }, undefined, 0),
      row('r2', { 0: 0.5, 1: -12, 2: -0.5, 3: 3 }, undefined, 0),
      row('r3', { 2: 1 }, undefined, 1),
    ],
  },
  status: 'optimal',
  objective: -1.25,
  values: [1, 0, 1, 0],
};

/**
 * Names that are reserved in LP text or collide with engine internals (javascript-lp-solver's result
 * keys, our own `x0`/`c0`/`obj`, object prototype keys), plus duplicates. With a ≤ 0.5, b ≥ 3−c costs
 * 2(3−c)+3c = 6+c, so c=0, b=3, a=0.
 */
const oddNames: LpCase = {
  name: 'names with odd characters',
  model: {
    variables: [v('feasible', 1), v('__proto__', 2), v('x:gpu/a100.8x-[0] ∑', 3)],
    constraints: [
      row('c0', { 0: 1, 1: 1 }, 2),
      row('obj', { 1: 1, 2: 1 }, 3),
      row('x0: <= [ ] / . - \\ "', { 0: 1 }, undefined, 0.5),
      row('obj', { 0: 1, 2: 1 }, undefined, 100),
    ],
  },
  status: 'optimal',
  objective: 6,
  values: [0, 3, 0],
};

/** Duplicate terms are summed (2x ≥ 4), zero coefficients and a row with no finite side are ignored. */
const messyTerms: LpCase = {
  name: 'duplicate terms, zero coefficients, a free row',
  model: {
    variables: [v('x', 1), v('y', 1)],
    constraints: [
      {
        name: 'twice x',
        terms: [
          [0, 1],
          [1, 0],
          [0, 1],
        ],
        lower: 4,
      },
      {
        name: 'cancels',
        terms: [
          [1, 1],
          [1, -1],
        ],
        lower: -1,
      },
      row('free', { 0: 1, 1: 1 }),
    ],
  },
  status: 'optimal',
  objective: 2,
  values: [2, 0],
};

/** A model with no variables at all is trivially optimal. */
const empty: LpCase = {
  name: 'empty model',
  model: { variables: [], constraints: [] },
  status: 'optimal',
  objective: 0,
  values: [],
};

const infeasibleRows: LpCase = {
  name: 'infeasible rows',
  model: {
    variables: [v('x', 1), v('y', 1)],
    constraints: [row('≥4', { 0: 1, 1: 1 }, 4), row('≤3', { 0: 1, 1: 1 }, undefined, 3)],
  },
  status: 'infeasible',
};

const infeasibleBound: LpCase = {
  name: 'infeasible: a row against a variable bound',
  model: { variables: [v('x', 1, 0, 1)], constraints: [row('x≥2', { 0: 1 }, 2)] },
  status: 'infeasible',
};

const infeasibleEmptyRow: LpCase = {
  name: 'infeasible: an empty row excluding 0, crossed bounds',
  model: { variables: [v('x', 1, 3, 2)], constraints: [row('0≥1', [], 1)] },
  status: 'infeasible',
};

const unbounded: LpCase = {
  name: 'unbounded',
  model: {
    variables: [v('x', -1), v('y', 0)],
    constraints: [row('x−y≥4', { 0: 1, 1: -1 }, 4)],
  },
  status: 'unbounded',
};

const unboundedFree: LpCase = {
  name: 'unbounded through a free variable',
  model: {
    variables: [v('x', 1, -Infinity), v('y', 0)],
    constraints: [row('x−y≤5', { 0: 1, 1: -1 }, undefined, 5)],
  },
  status: 'unbounded',
};

/**
 * The placement solver's shape: tasks of group g on pool p, nodes per pool, an unplaced slack per group.
 * Pools P (8 cpu/node, $3, 2 cpu free, ≤ 2 nodes) and Q (16 cpu/node, $5, ≤ 1 node). Groups A (4 × 2 cpu,
 * P or Q), B (2 × 4 cpu, Q only), C (3 × 8 cpu, P only); leaving a task unplaced costs 100.
 * C is worth 12.5/cpu and can only use P, so P (18 cpu) goes to C: 2.25 tasks, 0.75 unplaced, 2 nodes.
 * A and B fill Q exactly (8 + 8 cpu, 1 node). Moving any of A to P would displace C; leaving any unplaced
 * costs 50/cpu against Q's 5/16. Objective 2·3 + 1·5 + 0.75·100 = 86.
 */
const placement: LpCase = {
  name: 'placement-shaped model',
  model: {
    variables: [
      v('x:A/pool:P', 0),
      v('x:A/pool:Q', 0),
      v('x:B/pool:Q', 0),
      v('x:C/pool:P', 0),
      v('nodes[pool:P]', 3, 0, 2),
      v('nodes[pool:Q]', 5, 0, 1),
      v('unplaced:A', 100),
      v('unplaced:B', 100),
      v('unplaced:C', 100),
    ],
    constraints: [
      row('demand:A', { 0: 1, 1: 1, 6: 1 }, 4, 4),
      row('demand:B', { 2: 1, 7: 1 }, 2, 2),
      row('demand:C', { 3: 1, 8: 1 }, 3, 3),
      row('cpu:P', { 0: 2, 3: 8, 4: -8 }, undefined, 2),
      row('cpu:Q', { 1: 2, 2: 4, 5: -16 }, undefined, 0),
    ],
  },
  status: 'optimal',
  objective: 86,
  values: [0, 4, 2, 2.25, 2, 1, 0, 0, 0.75],
};

export const CASES: LpCase[] = [
  placement,
  transport,
  rangedUpper,
  rangedLower,
  equalities,
  upperBounds,
  oddBounds,
  degenerate,
  beale,
  oddNames,
  messyTerms,
  empty,
  infeasibleRows,
  infeasibleBound,
  infeasibleEmptyRow,
  unbounded,
  unboundedFree,
];
