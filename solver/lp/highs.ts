/**
 * Backend over HiGHS compiled to WebAssembly (the `highs` package): a sparse, presolving simplex/IPM
 * that stays fast where javascript-lp-solver's dense tableau does not, at the price of an asynchronous
 * load (40–70 ms measured on Node 20, wasm compile included) before the first solve.
 *
 * The wasm is read and compiled once per process and the resulting pool of instances is shared by every
 * backend `loadHighsBackend()` returns. The pool keeps a *spare* instance: HiGHS can leave its wasm
 * instance unusable after a native abort ("RuntimeError: … unreachable", memory errors are reported
 * upstream), and `solve` is synchronous, so it cannot wait for a reload. On a throw it swaps the spare
 * in, retries once, says so in `message`, and loads a new spare in the background.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import highsImport from 'highs';
import type { InitOptions, LegacyHighs, LegacyHighsSolution } from 'highs';
import { LpBackendError } from './errors.ts';
import { normalizeModel, objectiveBoundedByBounds } from './model.ts';
import type { NormalLp } from './model.ts';
import { toCplexLp } from './lpFormat.ts';
import type { LpBackend, LpModel, LpSolution, LpSolveOptions } from './types.ts';
import type { RawOutcome } from './verify.ts';
import { settleSolution } from './verify.ts';

/** `LpBackend.name` of this backend. */
export const HIGHS_BACKEND_NAME = 'highs';

/** Options of {@link loadHighsBackend}. */
export interface HighsBackendOptions {
  /**
   * Loads one fresh HiGHS instance. Default: the `highs` package, from a wasm module compiled once per
   * process. When given, the instances are not shared with other backends (tests inject fakes here).
   */
  loadInstance?: () => Promise<LegacyHighs>;
  /** Millisecond clock used to fill `LpSolution.ms`; default `performance.now`. */
  clock?: () => number;
}

type HighsOptions = NonNullable<Parameters<LegacyHighs['solve']>[1]>;
type HighsLoader = (options?: InitOptions) => Promise<LegacyHighs>;

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
 * `timeLimitMs`, less the time spent writing the LP text, is passed to HiGHS as `time_limit`; a solve
 * stopped by it returns `time-limit`. It is a soft limit: HiGHS checks its clock between phases, and
 * parsing the LP text (about a third of a 27K-variable solve) happens before the first check.
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

async function loadDefaultInstance(): Promise<LegacyHighs> {
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

/** The instance in use plus one ready spare, so a broken instance can be replaced synchronously. */
class InstancePool {
  /** The instance solves run on. */
  current: LegacyHighs;
  private spare: LegacyHighs | undefined;
  private readonly load: () => Promise<LegacyHighs>;
  private refilling = false;
  /** Why the last background reload failed, for messages. */
  private refillError: string | undefined;

  private constructor(current: LegacyHighs, spare: LegacyHighs, load: () => Promise<LegacyHighs>) {
    this.current = current;
    this.spare = spare;
    this.load = load;
  }

  static async create(load: () => Promise<LegacyHighs>): Promise<InstancePool> {
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
    solve(model: LpModel, options: LpSolveOptions = {}): LpSolution {
      const started = clock();
      const lp = normalizeModel(model);
      let raw: RawOutcome;
      if (lp.trivialInfeasibility !== undefined)
        raw = { status: 'infeasible', message: lp.trivialInfeasibility };
      else if (lp.cost.length === 0) raw = { status: 'optimal', values: new Float64Array(0) };
      else {
        const text = toCplexLp(lp);
        // HiGHS's clock starts after our translation, so give it only what is left of the budget.
        const budget =
          options.timeLimitMs === undefined ? undefined : options.timeLimitMs - (clock() - started);
        raw = solveText(pool, lp, text, highsOptions(budget));
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

/** Runs one solve, retrying once on a fresh instance if HiGHS throws. */
function solveText(pool: InstancePool, lp: NormalLp, text: string, options: HighsOptions): RawOutcome {
  try {
    return solveOnce(pool.current, lp, text, options);
  } catch (first) {
    const swapped = pool.replace();
    if (!swapped.ok) {
      return {
        status: 'error',
        message: `HiGHS threw: ${String(first)}; no fresh instance to retry on (${swapped.reason})`,
      };
    }
    try {
      const retried = solveOnce(pool.current, lp, text, options);
      const note = `HiGHS threw (${String(first)}); reloaded the module and retried once`;
      return { ...retried, message: retried.message === undefined ? note : `${note}; ${retried.message}` };
    } catch (second) {
      // The instance that threw may be broken too; do not leave it in use.
      pool.replace();
      return {
        status: 'error',
        message: `HiGHS threw twice: ${String(first)}; after reload: ${String(second)}`,
      };
    }
  }
}

function solveOnce(highs: LegacyHighs, lp: NormalLp, text: string, options: HighsOptions): RawOutcome {
  let result = highs.solve(text, options);
  if (result.Status === 'Primal infeasible or unbounded') {
    // Presolve could not tell which; the simplex on the original model can.
    result = highs.solve(text, { ...options, presolve: 'off' });
  }
  switch (result.Status) {
    case 'Optimal':
      return { status: 'optimal', values: readValues(result, lp.cost.length) };
    case 'Time limit reached':
      return { status: 'time-limit', values: readValues(result, lp.cost.length), message: result.Status };
    case 'Infeasible':
      return { status: 'infeasible' };
    case 'Unbounded':
      return { status: 'unbounded' };
    case 'Primal infeasible or unbounded':
      // Still ambiguous: if the bounds rule out unboundedness, it can only be infeasible.
      return objectiveBoundedByBounds(lp)
        ? { status: 'infeasible', message: `HiGHS: ${result.Status}; bounded by variable bounds` }
        : { status: 'error', message: `HiGHS: ${result.Status}` };
    default:
      return { status: 'error', message: `HiGHS status '${result.Status}'` };
  }
}

/** Primal values by variable index; NaN where HiGHS gave none (verification then flags it). */
function readValues(result: LegacyHighsSolution, n: number): Float64Array {
  const values = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    const column = result.Columns[`x${j}`];
    values[j] = column !== undefined && 'Primal' in column ? column.Primal : NaN;
  }
  return values;
}
