/**
 * The LP backend layer: one interface (`LpBackend`), two engines behind it, answers checked against the
 * model before they are returned, and a size rule for picking an engine.
 *
 * @example
 * import { chooseBackend, createJsLpBackend, loadHighsBackend, needsHighs } from './lp/index.ts';
 * const backends = [createJsLpBackend(), ...(needsHighs(model) ? [await loadHighsBackend()] : [])];
 * const solution = chooseBackend(model, backends).solve(model, { timeLimitMs: 5_000 });
 * if (solution.status !== 'optimal') throw new Error(solution.message);
 */
import { LpNoBackendError } from './errors.ts';
import { HIGHS_BACKEND_NAME } from './highs.ts';
import { JS_LP_BACKEND_NAME } from './jsLpSolver.ts';
import type { LpBackend, LpModel } from './types.ts';

export { LpBackendError, LpError, LpModelError, LpNoBackendError } from './errors.ts';
export type { LpModelLocation } from './errors.ts';
export { createJsLpBackend, JS_LP_BACKEND_NAME } from './jsLpSolver.ts';
export type { JsLpBackendOptions } from './jsLpSolver.ts';
export { HIGHS_BACKEND_NAME, loadHighsBackend } from './highs.ts';
export type { HighsBackendOptions, HighsModel, HighsRuntime } from './highs.ts';
export { checkSolution, DEFAULT_TOLERANCE, describeViolations, objectiveOf } from './verify.ts';
export type {
  LpBackend,
  LpColumn,
  LpConstraint,
  LpMaster,
  LpMasterSolution,
  LpModel,
  LpSolution,
  LpSolveOptions,
  LpStatus,
  LpVariable,
  LpViolation,
} from './types.ts';

/**
 * Largest model, in variables, sent to javascript-lp-solver rather than HiGHS.
 *
 * Measured with `npm run bench:lp` and a finer sweep of the same synthetic placement LPs (Node 20, one
 * core, median of 5 runs × 5 seeds; HiGHS times exclude its one-off 40–70 ms load). The JS solver wins
 * every model up to ~150 variables (e.g. 102 vars: 0.8 vs 1.8 ms; 145 vars: 1.2 vs 2.5 ms); from ~150 to
 * ~300 the two trade wins within a millisecond or two (232 vars: 5.6 vs 4.4 ms); past that its dense
 * tableau blows up (369 vars: 25 vs 6 ms; 1,216 vars: 411 vs 18 ms; 3,279 vars: 7.1 s vs 49 ms) while
 * HiGHS stays under a second at 27,563 variables (746 ms). The bound sits at the low end of the band:
 * above it the JS solver can only win a millisecond and can lose seconds.
 */
export const JS_LP_MAX_VARIABLES = 150;

/** True when `chooseBackend` would pick HiGHS for `model`, i.e. when it is worth loading the wasm. */
export function needsHighs(model: LpModel): boolean {
  return model.variables.length > JS_LP_MAX_VARIABLES;
}

/** The engines `chooseBackend` may pick from. Either may be missing (e.g. HiGHS not loaded). */
export interface LpBackends {
  js?: LpBackend;
  highs?: LpBackend;
}

/**
 * Picks the engine for `model`: javascript-lp-solver up to `JS_LP_MAX_VARIABLES` variables (no wasm to
 * load, and faster there), HiGHS above. `backends` is either `{ js, highs }` or a list, matched by
 * `LpBackend.name`. When the preferred engine is missing the other one is used (and, for a list holding
 * neither name, the first entry), so a caller that could not load HiGHS still gets an answer, only slower.
 * @throws LpNoBackendError when there is no backend at all.
 */
export function chooseBackend(model: LpModel, backends: LpBackends | readonly LpBackend[]): LpBackend {
  const list: readonly LpBackend[] = isList(backends)
    ? backends
    : [backends.js, backends.highs].filter((b): b is LpBackend => b !== undefined);
  const [preferred, other] = needsHighs(model)
    ? [HIGHS_BACKEND_NAME, JS_LP_BACKEND_NAME]
    : [JS_LP_BACKEND_NAME, HIGHS_BACKEND_NAME];
  const chosen = list.find((b) => b.name === preferred) ?? list.find((b) => b.name === other) ?? list[0];
  if (chosen === undefined) throw new LpNoBackendError(model.variables.length);
  return chosen;
}

function isList(backends: LpBackends | readonly LpBackend[]): backends is readonly LpBackend[] {
  return Array.isArray(backends);
}
