/**
 * A column-generation master on one persistent HiGHS model: rows are fixed, columns are appended with
 * `addCols`, and each `run` starts from the previous basis with the primal simplex (a round that adds a
 * few columns takes a few iterations instead of a solve from scratch). Each answer is checked against the rows and the
 * column bounds before it is returned.
 */
import type { ModelStatusCode, OptionValue } from 'highs';
import type { LpColumn, LpMaster, LpMasterSolution, LpSolveOptions } from './types.ts';
import { DEFAULT_TOLERANCE } from './verify.ts';

/** The part of a persistent HiGHS model a master uses. */
export interface HighsMasterModel {
  readonly options: { set(values: Readonly<Record<string, OptionValue>>): unknown };
  run(): { readonly modelStatus: ModelStatusCode };
  getSolution(): { readonly colValue: Float64Array; readonly rowDual: Float64Array };
  getObjectiveValue(): number;
  addCols(data: {
    cost: Float64Array;
    lower: Float64Array;
    upper: Float64Array;
    matrix: {
      format: 'csc';
      numRows: number;
      numCols: number;
      starts: Int32Array;
      indices: Int32Array;
      values: Float64Array;
    };
  }): unknown;
  dispose(): void;
}

const OPTIMAL = 7;
/** HiGHS's `simplex_strategy` value for the primal simplex. */
const PRIMAL_SIMPLEX = 4;
const TIME_LIMIT = 13;

/** A master over `rows` on `model` (created with those rows and no columns). */
export function highsMaster(
  model: HighsMasterModel,
  rows: readonly { lower: number; upper: number }[],
  clock: () => number,
): LpMaster {
  const columns: LpColumn[] = [];
  let disposed = false;
  return {
    addColumns(list) {
      if (list.length === 0) return;
      const n = list.length;
      const starts = new Int32Array(n + 1);
      list.forEach((c, j) => (starts[j + 1] = starts[j]! + c.rows.length));
      const indices = new Int32Array(starts[n]!);
      const values = new Float64Array(starts[n]!);
      list.forEach((c, j) =>
        c.rows.forEach(([r, a], t) => {
          indices[starts[j]! + t] = r;
          values[starts[j]! + t] = a;
        }),
      );
      model.addCols({
        cost: Float64Array.from(list, (c) => c.cost),
        lower: new Float64Array(n),
        upper: Float64Array.from(list, (c) => c.upper),
        matrix: { format: 'csc', numRows: rows.length, numCols: n, starts, indices, values },
      });
      columns.push(...list);
    },
    solve(options: LpSolveOptions = {}): LpMasterSolution {
      const empty = { values: new Float64Array(0), duals: new Float64Array(0), objective: NaN };
      if (disposed) return { status: 'error', ...empty, message: 'the master was disposed' };
      const started = clock();
      const limit = options.timeLimitMs;
      model.options.set({
        output_flag: false,
        // Columns added between runs keep the last basis primal feasible: the primal simplex goes on from
        // it in a few iterations (the dual simplex, HiGHS's default, took ten times longer per round on
        // the openb trace), and presolve would only redo work on a model that grew by a few columns.
        presolve: 'off',
        simplex_strategy: PRIMAL_SIMPLEX,
        ...(limit !== undefined && Number.isFinite(limit) ? { time_limit: Math.max(0, limit) / 1000 } : {}),
      });
      let status: ModelStatusCode;
      try {
        status = model.run().modelStatus;
      } catch (err) {
        return { status: 'error', ...empty, message: `HiGHS threw: ${String(err)}` };
      }
      if (status !== OPTIMAL)
        return {
          status: status === TIME_LIMIT ? 'time-limit' : 'error',
          ...empty,
          message: `HiGHS status ${status}`,
        };
      const s = model.getSolution();
      const values = Float64Array.from(s.colValue.subarray(0, columns.length));
      const broken = violation(columns, rows, values);
      if (broken)
        return {
          status: 'error',
          ...empty,
          message: `HiGHS's answer breaks ${broken} (${clock() - started} ms)`,
        };
      return {
        status: 'optimal',
        values,
        duals: Float64Array.from(s.rowDual.subarray(0, rows.length)),
        objective: model.getObjectiveValue(),
      };
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      try {
        model.dispose();
      } catch {
        // A runtime that aborted natively may throw here too; nothing is left to free that matters.
      }
    },
  };
}

/** The first row or column bound `values` breaks, beyond the tolerance, or undefined. */
function violation(
  columns: readonly LpColumn[],
  rows: readonly { lower: number; upper: number }[],
  values: Float64Array,
): string | undefined {
  const activity = new Float64Array(rows.length);
  for (let j = 0; j < columns.length; j++) {
    const v = values[j]!;
    const c = columns[j]!;
    if (!(v >= -DEFAULT_TOLERANCE && v <= c.upper + DEFAULT_TOLERANCE)) return `column ${j}'s bounds`;
    if (v !== 0) for (const [r, a] of c.rows) activity[r] = activity[r]! + a * v;
  }
  for (let r = 0; r < rows.length; r++) {
    const { lower, upper } = rows[r]!;
    const scale = Math.max(
      1,
      Number.isFinite(lower) ? Math.abs(lower) : 0,
      Number.isFinite(upper) ? Math.abs(upper) : 0,
    );
    const tol = DEFAULT_TOLERANCE * scale;
    if (activity[r]! < lower - tol || activity[r]! > upper + tol) return `row ${r}`;
  }
  return undefined;
}
