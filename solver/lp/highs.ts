/**
 * Backend over HiGHS compiled to WebAssembly (the `highs` package): a sparse, presolving simplex/IPM
 * that stays fast where javascript-lp-solver's dense tableau does not, at the price of an asynchronous
 * load (40–70 ms measured on Node 20, wasm compile included) before the first solve.
 *
 * Each solve hands the model to HiGHS as sparse arrays through its model API (`createModel`, see
 * `highsModel.ts`), runs it and disposes it: a model's native memory is not garbage-collected, so an
 * undisposed one would grow the wasm heap on every solve.
 *
 * The wasm is read and compiled once per process and the resulting pool of runtimes is shared by every
 * backend `loadHighsBackend()` returns. The pool keeps a *spare* runtime: HiGHS can abort natively
 * ("RuntimeError: … unreachable", memory errors are reported upstream), and every model lives in the
 * one wasm instance of its runtime, so an abort leaves that instance's heap and stack in an unknown
 * state that disposing the model does not repair. `solve` is synchronous and cannot wait for a reload,
 * so on a throw it swaps the spare in, retries once, says so in `message`, and loads a new spare in the
 * background.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import highsImport from 'highs';
import type { Highs, HighsConstants, InitOptions, ModelData, ModelStatusCode, OptionValue } from 'highs';
import { LpBackendError } from './errors.ts';
import { highsMaster, type HighsMasterModel } from './highsMaster.ts';
import { toHighsModel } from './highsModel.ts';
import { normalizeModel, objectiveBoundedByBounds } from './model.ts';
import type { NormalLp } from './model.ts';
import type { LpBackend, LpModel, LpSolution, LpSolveOptions } from './types.ts';
import type { RawOutcome } from './verify.ts';
import { settleSolution } from './verify.ts';

/** `LpBackend.name` of this backend. */
export const HIGHS_BACKEND_NAME = 'highs';

/** The part of a loaded `highs` runtime the backend uses (the package's `Highs` has it). */
export interface HighsRuntime {
  createModel(source: ModelData): HighsModel;
}

/** The part of a `highs` persistent model the backend uses (the package's `Model` has it). */
export interface HighsModel {
  readonly options: { set(values: Readonly<Record<string, OptionValue>>): unknown };
  readonly info: { get(name: string): number | bigint };
  run(): { readonly modelStatus: ModelStatusCode };
  clearSolver(): unknown;
  getSolution(): { readonly colValue: Float64Array };
  dispose(): void;
}

/** Options of {@link loadHighsBackend}. */
export interface HighsBackendOptions {
  /**
   * Loads one fresh HiGHS runtime. Default: the `highs` package, from a wasm module compiled once per
   * process. When given, the runtimes are not shared with other backends (tests inject fakes here).
   */
  loadInstance?: () => Promise<HighsRuntime>;
  /** Millisecond clock used to fill `LpSolution.ms`; default `performance.now`. */
  clock?: () => number;
}

type HighsOptions = Readonly<Record<string, OptionValue>>;
type HighsLoader = (options?: InitOptions) => Promise<Highs>;

/**
 * The model statuses the backend tells apart. `satisfies` checks the numbers against the package's
 * `highs.constants.modelStatus`, so an upgrade that renumbers them fails type checking.
 */
const STATUS = {
  optimal: 7,
  infeasible: 8,
  unboundedOrInfeasible: 9,
  unbounded: 10,
  timeLimit: 13,
} as const satisfies Partial<HighsConstants['modelStatus']>;

/** HiGHS's own wording of each model status (as its one-shot `solve()` reports it), for messages. */
const STATUS_TEXT: Record<ModelStatusCode, string> = {
  0: 'Not Set',
  1: 'Load error',
  2: 'Model error',
  3: 'Presolve error',
  4: 'Solve error',
  5: 'Postsolve error',
  6: 'Empty',
  7: 'Optimal',
  8: 'Infeasible',
  9: 'Primal infeasible or unbounded',
  10: 'Unbounded',
  11: 'Bound on objective reached',
  12: 'Target for objective reached',
  13: 'Time limit reached',
  14: 'Iteration limit reached',
  15: 'Unknown',
  16: 'Solution limit reached',
  17: 'Interrupted',
};

// The package's typings describe its CommonJS build (loader under `.default`), but Node and Vite load
// its ES build, whose default export is the loader itself. Accept either shape.
const highsLoader: HighsLoader =
  typeof highsImport === 'function' ? (highsImport as HighsLoader) : highsImport.default;

// Node has the WebAssembly global; the project's `lib` (no DOM) only declares its types.
const wasmApi = (
  globalThis as unknown as { WebAssembly: { compile(bytes: Uint8Array): Promise<WebAssembly.Module> } }
).WebAssembly;

let sharedPool: Promise<InstancePool> | undefined;
let compiledWasm: Promise<WebAssembly.Module | undefined> | undefined;

/**
 * Loads HiGHS (once per process unless `options.loadInstance` is given) and returns a backend over it.
 * `timeLimitMs`, less the time spent before HiGHS starts its clock (translating and loading the model,
 * about 40 ms at 27K variables), is passed to HiGHS as `time_limit`; a solve stopped by it returns
 * `time-limit`. It is a soft limit: HiGHS checks its clock only between steps of its algorithms.
 * @throws LpBackendError when the WebAssembly cannot be loaded; a later call tries again.
 * @example
 * const highs = await loadHighsBackend();
 * const solution = highs.solve(model, { timeLimitMs: 2_000 });
 */
export async function loadHighsBackend(options: HighsBackendOptions = {}): Promise<LpBackend> {
  const clock = options.clock ?? (() => performance.now());
  let pool: Promise<InstancePool>;
  if (options.loadInstance !== undefined) pool = InstancePool.create(options.loadInstance);
  else {
    sharedPool ??= InstancePool.create(loadDefaultInstance).catch((err: unknown) => {
      sharedPool = undefined;
      throw err;
    });
    pool = sharedPool;
  }
  try {
    return createHighsBackend(await pool, clock);
  } catch (err) {
    throw new LpBackendError(HIGHS_BACKEND_NAME, `could not load the WebAssembly: ${String(err)}`, {
      cause: err,
    });
  }
}

async function loadDefaultInstance(): Promise<HighsRuntime> {
  compiledWasm ??= compileWasm();
  const wasmModule = await compiledWasm;
  return wasmModule === undefined ? highsLoader() : highsLoader({ wasmModule });
}

/** Compiles the package's wasm once; undefined lets the package locate and compile it itself. */
async function compileWasm(): Promise<WebAssembly.Module | undefined> {
  try {
    const path = createRequire(import.meta.url).resolve('highs/runtime');
    return await wasmApi.compile(await readFile(path));
  } catch {
    return undefined;
  }
}

/** The runtime in use plus one ready spare, so a broken runtime can be replaced synchronously. */
class InstancePool {
  /** The runtime solves run on. */
  current: HighsRuntime;
  private spare: HighsRuntime | undefined;
  private readonly load: () => Promise<HighsRuntime>;
  private refilling = false;
  /** Why the last background reload failed, for messages. */
  private refillError: string | undefined;

  private constructor(current: HighsRuntime, spare: HighsRuntime, load: () => Promise<HighsRuntime>) {
    this.current = current;
    this.spare = spare;
    this.load = load;
  }

  static async create(load: () => Promise<HighsRuntime>): Promise<InstancePool> {
    const [current, spare] = await Promise.all([load(), load()]);
    return new InstancePool(current, spare, load);
  }

  /** Puts the spare in use; returns false (with the reason) when none is ready. Starts a reload either way. */
  replace(): { ok: true } | { ok: false; reason: string } {
    const spare = this.spare;
    this.spare = undefined;
    this.refill();
    if (spare === undefined)
      return { ok: false, reason: this.refillError ?? 'the reload is still under way' };
    this.current = spare;
    return { ok: true };
  }

  private refill(): void {
    if (this.refilling) return;
    this.refilling = true;
    this.load().then(
      (instance) => {
        this.spare = instance;
        this.refillError = undefined;
        this.refilling = false;
      },
      (err: unknown) => {
        this.refillError = `reloading HiGHS failed: ${String(err)}`;
        this.refilling = false;
      },
    );
  }
}

function createHighsBackend(pool: InstancePool, clock: () => number): LpBackend {
  return {
    name: HIGHS_BACKEND_NAME,
    master(rows) {
      const model = pool.current.createModel({
        numCols: 0,
        numRows: rows.length,
        colCost: new Float64Array(0),
        colLower: new Float64Array(0),
        colUpper: new Float64Array(0),
        rowLower: Float64Array.from(rows, (r) => r.lower),
        rowUpper: Float64Array.from(rows, (r) => r.upper),
        matrix: {
          format: 'csc',
          numRows: rows.length,
          numCols: 0,
          starts: new Int32Array(1),
          indices: new Int32Array(0),
          values: new Float64Array(0),
        },
      });
      return highsMaster(model as HighsModel & HighsMasterModel, rows, clock);
    },
    solve(model: LpModel, options: LpSolveOptions = {}): LpSolution {
      const started = clock();
      const lp = normalizeModel(model);
      let raw: RawOutcome;
      if (lp.trivialInfeasibility !== undefined)
        raw = { status: 'infeasible', message: lp.trivialInfeasibility };
      else if (lp.cost.length === 0) raw = { status: 'optimal', values: new Float64Array(0) };
      else {
        const limit = options.timeLimitMs;
        // HiGHS's clock starts when it runs, so it is given only what is left of the budget by then.
        const optionsNow = () => highsOptions(limit === undefined ? undefined : limit - (clock() - started));
        raw = solveWithRetry(pool, lp, toHighsModel(lp), optionsNow);
      }
      return settleSolution(HIGHS_BACKEND_NAME, model, lp, raw, clock() - started);
    },
  };
}

function highsOptions(timeLimitMs: number | undefined): HighsOptions {
  const base = { output_flag: false };
  if (timeLimitMs === undefined || !Number.isFinite(timeLimitMs)) return base;
  return { ...base, time_limit: Math.max(0, timeLimitMs) / 1000 };
}

/** Runs one solve, retrying once on a fresh runtime if HiGHS throws. */
function solveWithRetry(
  pool: InstancePool,
  lp: NormalLp,
  data: ModelData,
  options: () => HighsOptions,
): RawOutcome {
  try {
    return solveOnce(pool.current, lp, data, options);
  } catch (first) {
    const swapped = pool.replace();
    if (!swapped.ok) {
      return {
        status: 'error',
        message: `HiGHS threw: ${String(first)}; no fresh instance to retry on (${swapped.reason})`,
      };
    }
    try {
      const retried = solveOnce(pool.current, lp, data, options);
      const note = `HiGHS threw (${String(first)}); reloaded the module and retried once`;
      return { ...retried, message: retried.message === undefined ? note : `${note}; ${retried.message}` };
    } catch (second) {
      // The runtime that threw may be broken too; do not leave it in use.
      pool.replace();
      return {
        status: 'error',
        message: `HiGHS threw twice: ${String(first)}; after reload: ${String(second)}`,
      };
    }
  }
}

/**
 * Loads `data` into a new HiGHS model, solves it with `options()` (read once the model is loaded, for
 * the time left), reads the outcome, and disposes the model.
 */
function solveOnce(
  highs: HighsRuntime,
  lp: NormalLp,
  data: ModelData,
  options: () => HighsOptions,
): RawOutcome {
  const model = highs.createModel(data);
  try {
    model.options.set(options());
    let status = model.run().modelStatus;
    if (status === STATUS.unboundedOrInfeasible) {
      // Presolve could not tell which; the simplex on the original model can. HiGHS's run clock keeps
      // running across runs of one model, so the re-solve gets what is left of the time limit.
      model.clearSolver();
      model.options.set({ presolve: 'off' });
      status = model.run().modelStatus;
    }
    return readOutcome(model, status, lp);
  } finally {
    disposeQuietly(model);
  }
}

function readOutcome(model: HighsModel, status: ModelStatusCode, lp: NormalLp): RawOutcome {
  const text = STATUS_TEXT[status] ?? `status ${status}`;
  switch (status) {
    case STATUS.optimal:
      return { status: 'optimal', values: readValues(model, lp.cost.length) };
    case STATUS.timeLimit:
      return { status: 'time-limit', values: readValues(model, lp.cost.length), message: text };
    case STATUS.infeasible:
      return { status: 'infeasible' };
    case STATUS.unbounded:
      return { status: 'unbounded' };
    case STATUS.unboundedOrInfeasible:
      // Still ambiguous: if the bounds rule out unboundedness, it can only be infeasible.
      return objectiveBoundedByBounds(lp)
        ? { status: 'infeasible', message: `HiGHS: ${text}; bounded by variable bounds` }
        : { status: 'error', message: `HiGHS: ${text}` };
    default:
      return { status: 'error', message: `HiGHS status '${text}'` };
  }
}

/**
 * Primal values by variable index. HiGHS always fills its value buffer, so its `primal_solution_status`
 * says whether the buffer holds a point at all (0 = none); NaN where it does not (verification then
 * flags it).
 */
function readValues(model: HighsModel, n: number): Float64Array {
  const values = new Float64Array(n).fill(NaN);
  if (Number(model.info.get('primal_solution_status')) === 0) return values;
  values.set(model.getSolution().colValue.subarray(0, n));
  return values;
}

/**
 * Frees the model's native memory. After a native abort this can throw too; the runtime is then broken
 * and the throw that matters (from `run`) is already on its way to the retry, so this one is dropped.
 */
function disposeQuietly(model: HighsModel): void {
  try {
    model.dispose();
  } catch {
    // See above.
  }
}
