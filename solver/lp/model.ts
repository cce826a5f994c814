/**
 * Validation and normalisation shared by every backend, so that each engine adapter only has to translate
 * a clean model: dense bound arrays, rows with merged duplicate terms and no zero coefficients, free rows
 * dropped, and models that are infeasible on their face caught before any engine sees them (engines
 * differ on what they do with an empty row `0 ≥ 1`: javascript-lp-solver ignores rows no variable
 * mentions, so the caller would get a wrong "optimal").
 */
import { LpModelError } from './errors.ts';
import type { LpModel } from './types.ts';

/** A row after normalisation: parallel arrays of distinct variable indices and non-zero coefficients. */
export interface NormalRow {
  /** Index of the row in `model.constraints`. */
  index: number;
  vars: number[];
  coefs: number[];
  lower: number;
  upper: number;
}

/** The model as engines want it. Variables keep their indices; rows keep theirs in `NormalRow.index`. */
export interface NormalLp {
  cost: Float64Array;
  lower: Float64Array;
  upper: Float64Array;
  /** Rows with at least one term and at least one finite side. */
  rows: NormalRow[];
  /** Set when the model is infeasible without solving (crossed bounds, an empty row excluding 0). */
  trivialInfeasibility?: string;
}

/**
 * Checks `model` and returns its normal form.
 * @throws LpModelError when a term names a missing variable or a number is NaN / of the wrong infinity.
 */
export function normalizeModel(model: LpModel): NormalLp {
  const n = model.variables.length;
  const cost = new Float64Array(n);
  const lower = new Float64Array(n);
  const upper = new Float64Array(n);
  let trivialInfeasibility: string | undefined;
  model.variables.forEach((v, index) => {
    const where = { kind: 'variable', index, name: v.name } as const;
    if (!Number.isFinite(v.cost)) throw new LpModelError(`cost ${v.cost} is not finite`, where);
    const lo = v.lower ?? 0;
    const up = v.upper ?? Infinity;
    checkSides(lo, up, where);
    cost[index] = v.cost;
    lower[index] = lo;
    upper[index] = up;
    if (lo > up) trivialInfeasibility ??= `variable '${v.name}' has lower ${lo} > upper ${up}`;
  });

  // One dense scratch vector, reused for every row, merges duplicate terms in O(terms).
  const scratch = new Float64Array(n);
  const rows: NormalRow[] = [];
  model.constraints.forEach((c, index) => {
    const where = { kind: 'constraint', index, name: c.name } as const;
    const lo = c.lower ?? -Infinity;
    const up = c.upper ?? Infinity;
    checkSides(lo, up, where);
    const touched: number[] = [];
    c.terms.forEach(([j, coef], term) => {
      if (!Number.isInteger(j) || j < 0 || j >= n) {
        throw new LpModelError(`names variable ${j}, model has ${n}`, { ...where, term });
      }
      if (!Number.isFinite(coef)) {
        throw new LpModelError(`coefficient ${coef} is not finite`, { ...where, term });
      }
      if (scratch[j] === 0) touched.push(j);
      scratch[j] = (scratch[j] ?? 0) + coef;
      // A term that cancels to exactly 0 and comes back must be listed again.
      if (scratch[j] === 0) touched.splice(touched.indexOf(j), 1);
    });
    const vars: number[] = [];
    const coefs: number[] = [];
    for (const j of touched) {
      const coef = scratch[j] ?? 0;
      scratch[j] = 0;
      if (coef !== 0) {
        vars.push(j);
        coefs.push(coef);
      }
    }
    if (lo > up) trivialInfeasibility ??= `constraint '${c.name}' has lower ${lo} > upper ${up}`;
    if (vars.length === 0) {
      if (lo > 0 || up < 0) trivialInfeasibility ??= `constraint '${c.name}' has no terms and excludes 0`;
      return;
    }
    if (lo === -Infinity && up === Infinity) return;
    rows.push({ index, vars, coefs, lower: lo, upper: up });
  });
  return trivialInfeasibility === undefined
    ? { cost, lower, upper, rows }
    : { cost, lower, upper, rows, trivialInfeasibility };
}

function checkSides(
  lo: number,
  up: number,
  where: { kind: 'variable' | 'constraint'; index: number; name: string },
) {
  if (Number.isNaN(lo) || lo === Infinity) throw new LpModelError(`lower bound ${lo} is invalid`, where);
  if (Number.isNaN(up) || up === -Infinity) throw new LpModelError(`upper bound ${up} is invalid`, where);
}

/**
 * True when the variable bounds alone bound the objective from below (every variable with a positive
 * cost has a finite lower bound, every one with a negative cost a finite upper bound). Then no LP over
 * these variables can be unbounded, whatever an engine claims: placement models always have this shape.
 */
export function objectiveBoundedByBounds(lp: NormalLp): boolean {
  for (let j = 0; j < lp.cost.length; j++) {
    const c = lp.cost[j] ?? 0;
    if (c > 0 && lp.lower[j] === -Infinity) return false;
    if (c < 0 && lp.upper[j] === Infinity) return false;
  }
  return true;
}
