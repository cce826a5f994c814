/**
 * Backend over javascript-lp-solver: pure JavaScript, nothing to load, quick on small models, and a
 * dense-tableau simplex underneath, so time and memory grow with variables × rows. `index.ts` only sends
 * it models below `JS_LP_MAX_VARIABLES`.
 *
 * Its JSON format has no variable bounds other than "≥ 0" or "unrestricted", so finite lower bounds are
 * shifted out (x = lower + x′, x′ ≥ 0; cheaper than a row per variable) and finite upper bounds become
 * one extra row each.
 */
import jsLpImport from 'javascript-lp-solver';
import type { Model as JsModel, SolveResult } from 'javascript-lp-solver';
import { normalizeModel } from './model.ts';
import type { NormalLp } from './model.ts';
import type { LpBackend, LpModel, LpSolution, LpSolveOptions } from './types.ts';
import type { RawOutcome } from './verify.ts';
import { settleSolution } from './verify.ts';

// The package's typings describe its CommonJS build (default export under `.default`), but Node and
// Vite load its ES build, whose default export is the solver itself. Accept either shape.
const jsLpSolver: typeof jsLpImport.default =
  'Solve' in jsLpImport ? (jsLpImport as unknown as typeof jsLpImport.default) : jsLpImport.default;

/** `LpBackend.name` of this backend. */
export const JS_LP_BACKEND_NAME = 'javascript-lp-solver';

/** Options of {@link createJsLpBackend}. */
export interface JsLpBackendOptions {
  /** Millisecond clock used to fill `LpSolution.ms`; default `performance.now`. */
  clock?: () => number;
}

/**
 * Creates the javascript-lp-solver backend.
 *
 * `options.timeLimitMs` is ignored: the library's simplex is one synchronous loop with no deadline
 * check (its `timeout` option only bounds branch-and-cut, which an LP never reaches), so a model that
 * is too big simply takes long. Keep large models away from it (see `chooseBackend`).
 *
 * @example
 * const solution = createJsLpBackend().solve({
 *   variables: [{ name: 'x', cost: 1 }],
 *   constraints: [{ name: 'atLeastTwo', terms: [[0, 1]], lower: 2 }],
 * });
 * // solution.status === 'optimal', solution.values[0] === 2
 */
export function createJsLpBackend(options: JsLpBackendOptions = {}): LpBackend {
  const clock = options.clock ?? (() => performance.now());
  return {
    name: JS_LP_BACKEND_NAME,
    solve(model: LpModel, _options?: LpSolveOptions): LpSolution {
      const started = clock();
      const lp = normalizeModel(model);
      const raw = solveNormal(lp);
      return settleSolution(JS_LP_BACKEND_NAME, model, lp, raw, clock() - started);
    },
  };
}

function solveNormal(lp: NormalLp): RawOutcome {
  const n = lp.cost.length;
  if (lp.trivialInfeasibility !== undefined)
    return { status: 'infeasible', message: lp.trivialInfeasibility };
  if (n === 0) return { status: 'optimal', values: new Float64Array(0) };
  const { model, shift } = toJsModel(lp);
  let result: unknown;
  try {
    result = jsLpSolver.Solve(model);
  } catch (err) {
    return { status: 'error', message: `javascript-lp-solver threw: ${String(err)}` };
  } finally {
    // The solver object is a module singleton that keeps the last model, dense tableau included
    // (hundreds of MB for large models), alive until the next solve.
    jsLpSolver.lastSolvedModel = null;
  }
  if (!isSolveResult(result)) return { status: 'error', message: 'javascript-lp-solver returned no result' };
  if (!result.feasible) return { status: 'infeasible' };
  if (result.bounded === false) return { status: 'unbounded' };
  const values = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    const v = result[`x${j}`];
    // The library omits variables at zero from its result.
    values[j] = (shift[j] ?? 0) + (typeof v === 'number' ? v : 0);
  }
  return { status: 'optimal', values };
}

function isSolveResult(x: unknown): x is SolveResult {
  return typeof x === 'object' && x !== null && 'feasible' in x;
}

/**
 * Translates to the library's JSON model with internal names only (`x7`, `c3`, `u7`): caller names may
 * contain anything, including keys such as `feasible` or `result` that the library's result object uses.
 */
function toJsModel(lp: NormalLp): { model: JsModel; shift: Float64Array } {
  const n = lp.cost.length;
  const shift = new Float64Array(n);
  const constraints: JsModel['constraints'] = {};
  const variables: JsModel['variables'] = {};
  const unrestricted: Record<string, 1> = {};
  for (let j = 0; j < n; j++) {
    const lower = lp.lower[j] ?? 0;
    const upper = lp.upper[j] ?? Infinity;
    const column: Record<string, number> = { obj: lp.cost[j] ?? 0 };
    if (lower === -Infinity) unrestricted[`x${j}`] = 1;
    else shift[j] = lower;
    if (upper !== Infinity) {
      const name = `u${j}`;
      // A fixed variable (lower = upper) becomes x′ ≤ 0 with x′ ≥ 0: pinned at its shift.
      constraints[name] = { max: upper - (shift[j] ?? 0) };
      column[name] = 1;
    }
    variables[`x${j}`] = column;
  }
  for (const row of lp.rows) {
    const name = `c${row.index}`;
    let offset = 0;
    row.vars.forEach((j, k) => {
      const coef = row.coefs[k] ?? 0;
      offset += coef * (shift[j] ?? 0);
      const column = variables[`x${j}`];
      if (column !== undefined) column[name] = coef;
    });
    const lower = row.lower - offset;
    const upper = row.upper - offset;
    if (row.lower === row.upper) constraints[name] = { equal: lower };
    else {
      const bound: { min?: number; max?: number } = {};
      if (lower !== -Infinity) bound.min = lower;
      if (upper !== Infinity) bound.max = upper;
      constraints[name] = bound;
    }
  }
  const model: JsModel = { optimize: 'obj', opType: 'min', constraints, variables };
  if (Object.keys(unrestricted).length > 0) model.unrestricted = unrestricted;
  return { model, shift };
}
