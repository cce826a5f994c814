/**
 * The seam between the placement solver and the linear-programming engines behind it.
 *
 * The placement solver only ever builds a minimisation LP (the relaxation of its integer model; it rounds
 * and repairs the answer itself), so the interface is deliberately that and nothing more: no integer
 * variables, no maximisation, no quadratic terms. Every backend takes the same {@link LpModel} and
 * returns an {@link LpSolution} whose values have been checked against the model, because neither
 * engine's own status is trusted on its own (see `verify.ts`).
 */

/** One decision variable. Names are for people: backends never pass them to an engine verbatim. */
export interface LpVariable {
  /** Caller's name; any characters (`:`, `/`, `[`, spaces…). Need not be unique. */
  name: string;
  /** Objective coefficient (the model is always minimised). */
  cost: number;
  /** Lower bound; default 0. Use `-Infinity` for a free variable. */
  lower?: number;
  /** Upper bound; default `+Infinity`. */
  upper?: number;
}

/** One row `lower ≤ Σ coef·x[varIndex] ≤ upper`. Omit a side (or make it infinite) to leave it open. */
export interface LpConstraint {
  /** Caller's name; any characters. Need not be unique. */
  name: string;
  /** Sparse terms. A variable listed twice has its coefficients summed. */
  terms: Array<[varIndex: number, coef: number]>;
  /** Lower side; default `-Infinity`. Equal to `upper` for an equality row. */
  lower?: number;
  /** Upper side; default `+Infinity`. */
  upper?: number;
}

/** A sparse linear program: minimise Σ cost·x subject to lower ≤ Σ coef·x ≤ upper. */
export interface LpModel {
  variables: LpVariable[];
  constraints: LpConstraint[];
}

/**
 * Outcome of a solve.
 * - `optimal`: the values are optimal according to the engine *and* satisfy every bound and row.
 * - `infeasible` / `unbounded`: as reported by the engine (an `unbounded` claim that the variable bounds
 *   disprove is downgraded to `error`).
 * - `time-limit`: the engine stopped early; `values` hold its last point, which may be infeasible
 *   (then `violations` says where).
 * - `error`: the engine failed, threw, or claimed an optimum that breaks the model.
 */
export type LpStatus = 'optimal' | 'infeasible' | 'unbounded' | 'time-limit' | 'error';

/** One bound or row broken by a candidate solution, found by `checkSolution`. */
export interface LpViolation {
  /** Whether a variable's bounds or a constraint row is broken. */
  kind: 'variable' | 'constraint';
  /** Index into `model.variables` or `model.constraints`. */
  index: number;
  /** The caller's name of that variable or row. */
  name: string;
  /** Side broken; `not-finite` when the value (or row activity) is NaN or infinite. */
  side: 'lower' | 'upper' | 'not-finite';
  /** Variable value or row activity Σ coef·x. */
  value: number;
  /** The bound that was broken (NaN for `not-finite`). */
  limit: number;
  /** How far past the bound, in absolute units (Infinity for `not-finite`). */
  excess: number;
}

/** What a backend returns. Never thrown away silently: `status` tells whether `values` can be used. */
export interface LpSolution {
  /** `LpBackend.name` of the backend that produced it. */
  backend: string;
  status: LpStatus;
  /**
   * Σ cost·values, recomputed here rather than copied from the engine. `+Infinity` when infeasible,
   * `-Infinity` when unbounded, NaN on error without usable values.
   */
  objective: number;
  /**
   * Values by variable index. Meaningful for `optimal` and `time-limit` (and for `error` when the engine
   * produced a point that failed verification); NaN everywhere otherwise.
   */
  values: Float64Array;
  /** Wall-clock milliseconds spent in `solve`, model translation included. */
  ms: number;
  /** Engine status text, retries, reasons for a downgrade: for logs, not for control flow. */
  message?: string;
  /** Bounds and rows the returned values break; present only when there are some. */
  violations?: LpViolation[];
}

/** Options for one solve. */
export interface LpSolveOptions {
  /** Wall-clock limit. Honoured by backends that can stop early; see each backend's docs. */
  timeLimitMs?: number;
}

/** A linear-programming engine behind a uniform, synchronous interface. */
/** One column of an {@link LpMaster}: objective cost, upper bound (lower is 0), coefficients by row. */
export interface LpColumn {
  cost: number;
  upper: number;
  rows: readonly (readonly [number, number])[];
}

/** What a master re-solve returns: column values, row duals (positive on a binding `≥` row at a minimum). */
export interface LpMasterSolution {
  status: LpStatus;
  values: Float64Array;
  duals: Float64Array;
  objective: number;
  message?: string;
}

/**
 * A minimisation solved again and again as columns are added (column generation): each solve starts from
 * the last one's basis, so a round that adds a few columns costs a few simplex iterations. Answers are
 * checked against the rows before they are returned, as `solve`'s are.
 */
export interface LpMaster {
  addColumns(columns: readonly LpColumn[]): void;
  solve(options?: LpSolveOptions): LpMasterSolution;
  /** Frees the engine's memory; the master is unusable afterwards. */
  dispose(): void;
}

export interface LpBackend {
  /** Short stable name, e.g. `highs` or `javascript-lp-solver`. */
  readonly name: string;
  /**
   * A master over `rows` (bounds; columns come with `addColumns`), where the engine can warm-start one:
   * HiGHS can, javascript-lp-solver cannot (callers then re-solve with `solve`).
   */
  master?(rows: readonly { lower: number; upper: number }[]): LpMaster;
  /**
   * Solves `model`. Returns (never throws) for engine failures; throws `LpModelError` only when the
   * model itself is malformed (a term naming a missing variable, a NaN coefficient).
   */
  solve(model: LpModel, options?: LpSolveOptions): LpSolution;
}
