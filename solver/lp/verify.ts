/**
 * Independent checking of engine answers. Engine statuses are not trusted: javascript-lp-solver was
 * measured returning `feasible: true` with fractional values that break rows, and `bounded: false` for
 * bounded placement models of 18K variables. So every backend passes its raw answer through
 * {@link settleSolution}, which recomputes the objective and downgrades any claim the numbers contradict.
 */
import type { NormalLp } from './model.ts';
import { objectiveBoundedByBounds } from './model.ts';
import type { LpModel, LpSolution, LpStatus, LpViolation } from './types.ts';

/** Default feasibility tolerance of {@link checkSolution}. */
export const DEFAULT_TOLERANCE = 1e-6;

/**
 * Lists every variable bound and constraint row that `values` break.
 *
 * The tolerance is relative-ish: a bound `b` may be missed by `tolerance · max(1, |b|)`, and a row by
 * `tolerance · max(1, |b|, Σ|coef·x|)`, so a row whose terms are large and cancel is not held to a
 * tighter absolute standard than floating point can meet (javascript-lp-solver also rounds its values
 * to 1e-8, which a coefficient of 1000 turns into 1e-5 of row activity).
 *
 * @example
 * checkSolution(model, solution.values).forEach((v) => console.log(v.kind, v.name, v.side, v.excess));
 */
export function checkSolution(
  model: LpModel,
  values: ArrayLike<number>,
  tolerance = DEFAULT_TOLERANCE,
): LpViolation[] {
  const out: LpViolation[] = [];
  model.variables.forEach((v, index) => {
    const x = values[index] ?? NaN;
    const base = { kind: 'variable', index, name: v.name, value: x } as const;
    if (!Number.isFinite(x)) out.push({ ...base, side: 'not-finite', limit: NaN, excess: Infinity });
    else out.push(...sideViolations(base, x, v.lower ?? 0, v.upper ?? Infinity, tolerance, 1));
  });
  model.constraints.forEach((c, index) => {
    let activity = 0;
    let magnitude = 0;
    for (const [j, coef] of c.terms) {
      const t = coef * (values[j] ?? NaN);
      activity += t;
      magnitude += Math.abs(t);
    }
    const base = { kind: 'constraint', index, name: c.name, value: activity } as const;
    if (!Number.isFinite(activity)) out.push({ ...base, side: 'not-finite', limit: NaN, excess: Infinity });
    else
      out.push(
        ...sideViolations(base, activity, c.lower ?? -Infinity, c.upper ?? Infinity, tolerance, magnitude),
      );
  });
  return out;
}

function sideViolations(
  base: Pick<LpViolation, 'kind' | 'index' | 'name' | 'value'>,
  x: number,
  lower: number,
  upper: number,
  tolerance: number,
  magnitude: number,
): LpViolation[] {
  const out: LpViolation[] = [];
  if (x < lower - tolerance * Math.max(1, Math.abs(lower), magnitude)) {
    out.push({ ...base, side: 'lower', limit: lower, excess: lower - x });
  }
  if (x > upper + tolerance * Math.max(1, Math.abs(upper), magnitude)) {
    out.push({ ...base, side: 'upper', limit: upper, excess: x - upper });
  }
  return out;
}

/** Σ cost·values; NaN when any value is not finite. */
export function objectiveOf(model: LpModel, values: ArrayLike<number>): number {
  let sum = 0;
  model.variables.forEach((v, j) => {
    sum += v.cost * (values[j] ?? NaN);
  });
  return sum;
}

/** What an engine adapter reports before verification. */
export interface RawOutcome {
  status: LpStatus;
  /** The engine's point, by variable index, when it produced one. */
  values?: Float64Array;
  message?: string;
}

/**
 * Turns an engine's raw answer into the `LpSolution` callers see: recomputes the objective from the
 * values, attaches violations, and downgrades to `error` an `optimal` that breaks the model or an
 * `unbounded` that the variable bounds disprove.
 */
export function settleSolution(
  backend: string,
  model: LpModel,
  lp: NormalLp,
  raw: RawOutcome,
  ms: number,
): LpSolution {
  const n = model.variables.length;
  const notes = raw.message === undefined ? [] : [raw.message];
  let status = raw.status;
  let values = raw.values;
  if (status === 'infeasible' || status === 'unbounded') values = undefined;
  if (status === 'unbounded' && objectiveBoundedByBounds(lp)) {
    status = 'error';
    notes.unshift(`${backend} claimed unbounded, but the variable bounds bound the objective below`);
  }
  if (values === undefined) {
    const objective = status === 'infeasible' ? Infinity : status === 'unbounded' ? -Infinity : NaN;
    return finish({ backend, status, objective, values: new Float64Array(n).fill(NaN), ms }, notes);
  }
  const violations = checkSolution(model, values);
  if (status === 'optimal' && violations.length > 0) {
    status = 'error';
    notes.unshift(`${backend} claimed optimal, but ${describeViolations(violations)}`);
  }
  const solution: LpSolution = { backend, status, objective: objectiveOf(model, values), values, ms };
  if (violations.length > 0) solution.violations = violations;
  return finish(solution, notes);
}

function finish(solution: LpSolution, notes: string[]): LpSolution {
  if (notes.length > 0) solution.message = notes.join('; ');
  return solution;
}

/** One-line summary for messages: the count and the worst offender. */
export function describeViolations(violations: readonly LpViolation[]): string {
  const worst = violations.reduce((a, b) => (b.excess > a.excess ? b : a));
  const what =
    worst.side === 'not-finite'
      ? `is ${worst.value}`
      : `misses ${worst.side} ${worst.limit} by ${worst.excess}`;
  return `${violations.length} bound/row violation(s); worst: ${worst.kind} '${worst.name}' ${what}`;
}
