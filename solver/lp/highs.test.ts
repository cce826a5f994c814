/**
 * HiGHS-specific behaviour: the sparse arrays we hand HiGHS, status mapping (including the re-solve
 * without presolve), the time limit, disposal of every model, the retry on a fresh runtime after a
 * throw, and a solve at placement size through the array path.
 */
import highsImport from 'highs';
import type { Highs, Model, ModelStatusCode, OptionValue } from 'highs';
import { describe, expect, it } from 'vitest';
import { loadHighsBackend } from './highs.ts';
import type { HighsModel, HighsRuntime } from './highs.ts';
import { toHighsModel } from './highsModel.ts';
import { normalizeModel } from './model.ts';
import type { LpModel } from './types.ts';
import { checkSolution, objectiveOf } from './verify.ts';
import { mulberry32 } from '../../test/random.ts';

type Loader = () => Promise<Highs>;
const realLoad: Loader = typeof highsImport === 'function' ? (highsImport as Loader) : highsImport.default;

const small: LpModel = {
  variables: [
    { name: 'a', cost: 1 },
    { name: 'b', cost: -1e-7, lower: -Infinity, upper: -2 },
    { name: 'c', cost: 0, lower: -Infinity },
    { name: 'd', cost: 2.5e21, lower: 1.5 },
    { name: 'e', cost: 3, lower: 4, upper: 4 },
  ],
  constraints: [
    {
      name: 'range',
      terms: [
        [0, 1],
        [1, -2],
      ],
      lower: 2,
      upper: 5,
    },
    {
      name: 'eq',
      terms: [
        [2, 1],
        [3, 1],
      ],
      lower: 7,
      upper: 7,
    },
  ],
};

describe('toHighsModel', () => {
  it('lays the matrix out by column, with bounds as given and ranged rows as one row', () => {
    const data = toHighsModel(normalizeModel(small));
    expect({ ...data, matrix: undefined }).toEqual({
      numCols: 5,
      numRows: 2,
      colCost: new Float64Array([1, -1e-7, 0, 2.5e21, 3]),
      colLower: new Float64Array([0, -Infinity, -Infinity, 1.5, 4]),
      colUpper: new Float64Array([Infinity, -2, Infinity, Infinity, 4]),
      rowLower: new Float64Array([2, 7]),
      rowUpper: new Float64Array([5, 7]),
      matrix: undefined,
    });
    expect(data.matrix).toEqual({
      format: 'csc',
      numRows: 2,
      numCols: 5,
      starts: new Int32Array([0, 1, 2, 3, 4, 4]), // e is in no row
      indices: new Int32Array([0, 0, 1, 1]),
      values: new Float64Array([1, -2, 1, 1]),
    });
  });

  it('sums duplicate terms, drops zeros, and numbers rows after dropping free ones', () => {
    const model: LpModel = {
      variables: [
        { name: 'x', cost: 1 },
        { name: 'y', cost: 1 },
      ],
      constraints: [
        { name: 'free', terms: [[0, 1]] },
        {
          name: 'dup',
          terms: [
            [1, 2],
            [0, 1],
            [1, 3],
            [0, -1],
          ],
          lower: 1,
        },
        { name: 'le', terms: [[0, 4]], upper: 8 },
      ],
    };
    const data = toHighsModel(normalizeModel(model));
    expect([data.rowLower, data.rowUpper]).toEqual([
      new Float64Array([1, -Infinity]),
      new Float64Array([Infinity, 8]),
    ]);
    expect(data.matrix).toMatchObject({
      starts: new Int32Array([0, 1, 2]),
      indices: new Int32Array([1, 0]),
      values: new Float64Array([4, 5]),
    });
  });
});

/** A k×k transport problem: at 30×30 too big for presolve alone, so a zero time limit stops it. */
function transport(k: number): LpModel {
  const model: LpModel = { variables: [], constraints: [] };
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < k; j++)
      model.variables.push({ name: `${i}→${j}`, cost: 1 + ((i * 7 + j * 13) % 17) });
  }
  for (let i = 0; i < k; i++) {
    model.constraints.push({
      name: `s${i}`,
      terms: Array.from({ length: k }, (_, j) => [i * k + j, 1]),
      upper: 10,
    });
    model.constraints.push({
      name: `d${i}`,
      terms: Array.from({ length: k }, (_, j) => [j * k + i, 1]),
      lower: 10,
    });
  }
  return model;
}

/** x ≥ 1, x ≤ 0 through rows, so only a solve (not normalisation) finds it infeasible. */
const infeasible: LpModel = {
  variables: [{ name: 'x', cost: 1 }],
  constraints: [
    { name: 'lo', terms: [[0, 1]], lower: 1 },
    { name: 'hi', terms: [[0, 1]], upper: 0 },
  ],
};

/** One variable, one row x ≥ 1, cost 1: bounded by its variable bounds. */
const boxed: LpModel = {
  variables: [{ name: 'x', cost: 1 }],
  constraints: [{ name: 'r', terms: [[0, 1]], lower: 1 }],
};

/** What a fake HiGHS model does, run by run, and what the backend did to it. */
interface FakeScript {
  statuses: ModelStatusCode[];
  colValue?: number[];
  primalSolutionStatus?: number;
}
interface FakeLog {
  options: Array<Readonly<Record<string, OptionValue>>>;
  cleared: number;
  disposed: number;
}

function fakeRuntime(script: FakeScript): { runtime: HighsRuntime; log: FakeLog } {
  const log: FakeLog = { options: [], cleared: 0, disposed: 0 };
  const runtime: HighsRuntime = {
    createModel(): HighsModel {
      let runs = 0;
      return {
        options: { set: (values) => log.options.push(values) },
        info: { get: () => script.primalSolutionStatus ?? 2 },
        run: () => ({ modelStatus: script.statuses[runs++] ?? fail('ran too often') }),
        clearSolver: () => (log.cleared += 1),
        getSolution: () => ({ colValue: new Float64Array(script.colValue ?? []) }),
        dispose: () => (log.disposed += 1),
      };
    },
  };
  return { runtime, log };
}

/** Real runtimes whose models are all recorded; `failRuns` makes that many next runs throw. */
function recordingLoader(): { load: () => Promise<HighsRuntime>; models: Model[]; failRuns: { n: number } } {
  const models: Model[] = [];
  const failRuns = { n: 0 };
  const load = async (): Promise<HighsRuntime> => {
    const real = await realLoad();
    return {
      createModel(data) {
        const model = real.createModel(data);
        models.push(model);
        return {
          options: model.options,
          info: model.info,
          run: () => (failRuns.n-- > 0 ? fail('RuntimeError: unreachable') : model.run()),
          clearSolver: () => model.clearSolver(),
          getSolution: () => model.getSolution(),
          dispose: () => model.dispose(),
        };
      },
    };
  };
  return { load, models, failRuns };
}

describe('HiGHS backend', () => {
  it('returns time-limit, with the violations of its last point, when the limit stops it', async () => {
    const highs = await loadHighsBackend();
    const model = transport(30);
    expect(highs.solve(model).status).toBe('optimal');
    const s = highs.solve(model, { timeLimitMs: 0 });
    expect(s.status).toBe('time-limit');
    expect(s.message).toBe('Time limit reached');
    expect(s.violations?.length).toBeGreaterThan(0);
  });

  it('passes what is left of timeLimitMs as time_limit in seconds, and always silences HiGHS', async () => {
    let now = 0;
    const clock = () => (now += 250); // every reading is 250 ms after the previous one
    const { runtime, log } = fakeRuntime({ statuses: [7, 7], colValue: [1] });
    const highs = await loadHighsBackend({ loadInstance: async () => runtime, clock });
    highs.solve(boxed, { timeLimitMs: 2_000 });
    highs.solve(boxed);
    expect(log.options).toEqual([{ output_flag: false, time_limit: 1.75 }, { output_flag: false }]);
  });

  it('disposes every model it creates: solved, infeasible, stopped, or thrown', async () => {
    const { load, models, failRuns } = recordingLoader();
    const highs = await loadHighsBackend({ loadInstance: load });
    const outcomes = [highs.solve(transport(5)).status, highs.solve(infeasible).status];
    outcomes.push(highs.solve(transport(30), { timeLimitMs: 0 }).status);
    failRuns.n = 1;
    outcomes.push(highs.solve(transport(5)).status);
    expect(outcomes).toEqual(['optimal', 'infeasible', 'time-limit', 'optimal']);
    expect(models).toHaveLength(5); // the throw made the retry load a second model
    expect(models.map((m) => m.disposed)).toEqual([true, true, true, true, true]);
  });

  it.each([
    [[9, 8], 'infeasible', undefined],
    [[9, 10], 'error', /claimed unbounded, but the variable bounds bound the objective/],
    [[9, 9], 'infeasible', /^HiGHS: Primal infeasible or unbounded; bounded by variable bounds$/],
  ] as const)(
    'after %j (presolve, then simplex without it) returns %s',
    async (statuses, status, message) => {
      const { runtime, log } = fakeRuntime({ statuses: [...statuses] });
      const highs = await loadHighsBackend({ loadInstance: async () => runtime });
      const s = highs.solve(boxed);
      expect(s.status).toBe(status);
      if (message === undefined) expect(s.message).toBeUndefined();
      else expect(s.message).toMatch(message);
      expect(log).toEqual({
        options: [{ output_flag: false }, { presolve: 'off' }],
        cleared: 1,
        disposed: 1,
      });
    },
  );

  it('reloads and retries once when HiGHS throws, and says so', async () => {
    let loads = 0;
    const loadInstance = async (): Promise<HighsRuntime> => {
      const broken = loads++ === 0; // the first runtime loaded is the one put in use
      const real = await realLoad();
      return broken ? { createModel: () => fail('RuntimeError: unreachable') } : real;
    };
    const highs = await loadHighsBackend({ loadInstance });
    const s = highs.solve(small);
    expect(s.status).toBe('optimal');
    expect(s.message).toMatch(
      /HiGHS threw \(Error: RuntimeError: unreachable\); reloaded the module and retried once/,
    );
    expect(highs.solve(small).message).toBeUndefined(); // the fresh runtime stays in use
  });

  it('returns error when the retry throws too', async () => {
    const highs = await loadHighsBackend({
      loadInstance: async () => ({ createModel: () => fail('memory access out of bounds') }),
    });
    const s = highs.solve(small);
    expect(s.status).toBe('error');
    expect(s.message).toMatch(/^HiGHS threw twice: .*out of bounds; after reload: .*out of bounds/);
    expect(Array.from(s.values).every(Number.isNaN)).toBe(true);
  });

  it.each([
    [14, 'error', "HiGHS status 'Iteration limit reached'"],
    [1, 'error', "HiGHS status 'Load error'"],
    [8, 'infeasible', undefined],
  ] as const)('maps HiGHS model status %i to %s', async (code, status, message) => {
    const { runtime } = fakeRuntime({ statuses: [code] });
    const highs = await loadHighsBackend({ loadInstance: async () => runtime });
    const s = highs.solve(boxed);
    expect({ status: s.status, message: s.message }).toEqual({ status, message });
  });

  it('returns NaN values for a time-limit without a primal point', async () => {
    const { runtime } = fakeRuntime({ statuses: [13], colValue: [5], primalSolutionStatus: 0 });
    const highs = await loadHighsBackend({ loadInstance: async () => runtime });
    const s = highs.solve(boxed);
    expect(s.status).toBe('time-limit');
    expect(Number.isNaN(s.values[0])).toBe(true);
  });

  it('downgrades an Optimal whose primal values break the model', async () => {
    const { runtime } = fakeRuntime({ statuses: [7], colValue: [0] });
    const highs = await loadHighsBackend({ loadInstance: async () => runtime });
    const s = highs.solve(boxed);
    expect(s.status).toBe('error');
    expect(s.violations).toEqual([
      { kind: 'constraint', index: 0, name: 'r', side: 'lower', value: 0, limit: 1, excess: 1 },
    ]);
  });

  it('solves a 20,000-variable placement-shaped model to a verified optimum', async () => {
    const { model, point } = placementModel(7);
    expect(model.variables).toHaveLength(20_000);
    const highs = await loadHighsBackend();
    const s = highs.solve(model);
    expect(s.status, s.message).toBe('optimal');
    expect(s.violations).toBeUndefined();
    expect(checkSolution(model, s.values)).toEqual([]);
    expect(s.objective).toBeLessThanOrEqual(objectiveOf(model, point) + 1e-6 * Math.abs(s.objective));
  }, 30_000);
});

/**
 * 396 task groups × 50 of 200 pools (19,800 placement variables) plus 200 node counts: 20,000 variables,
 * 816 rows. Built around a random point, so it is feasible: demand rows are equalities at the point's
 * activity, cpu/memory rows (Σ need·x − perNode·nodes ≤ free) have slack above it, and one ranged quota
 * row per 10 pools brackets it. Every cost is positive and every lower bound 0, so it is bounded.
 */
function placementModel(seed: number): { model: LpModel; point: number[] } {
  const rand = mulberry32(seed);
  const groups = 396;
  const pools = 200;
  const perGroup = 50;
  const model: LpModel = { variables: [], constraints: [] };
  const point: number[] = [];
  const add = (name: string, cost: number, upper: number, value: number): number => {
    point.push(value);
    return model.variables.push({ name, cost, upper }) - 1;
  };
  const pool = Array.from({ length: pools }, (_, p): Pool => {
    const cpu = [8, 16, 32, 64, 96][Math.floor(rand() * 5)]!;
    const max = 1 + Math.floor(rand() * 20);
    const node = add(`nodes:pool-${p}`, cpu * (0.03 + 0.03 * rand()), max, Math.floor(rand() * (max + 1)));
    return { cpu, node, cpuTerms: [[node, -cpu]], memTerms: [[node, -cpu * 4]] };
  });
  for (let g = 0; g < groups; g++) {
    const count = 1 + Math.floor(rand() * 50);
    const cpu = [0.5, 1, 2, 4][Math.floor(rand() * 4)]!;
    const demand: Array<[number, number]> = [];
    const first = Math.floor(rand() * pools);
    for (let k = 0; k < perGroup; k++) {
      const p = (first + k * 3) % pools; // 50 distinct pools, as 3 and 200 are coprime
      const x = add(`x:g${g}/p${p}`, 0.01 + 0.01 * rand(), count, Math.round(rand() * count * 10) / 100);
      demand.push([x, 1]);
      pool[p]!.cpuTerms.push([x, cpu]);
      pool[p]!.memTerms.push([x, cpu * 2]);
    }
    const at = activity(demand, point);
    model.constraints.push({ name: `demand:g${g}`, terms: demand, lower: at, upper: at });
  }
  for (const [i, p] of pool.entries()) {
    model.constraints.push({
      name: `cpu:${i}`,
      terms: p.cpuTerms,
      upper: activity(p.cpuTerms, point) + rand(),
    });
    model.constraints.push({
      name: `mem:${i}`,
      terms: p.memTerms,
      upper: activity(p.memTerms, point) + rand(),
    });
  }
  for (let c = 0; c < pools / 10; c++) {
    const terms = pool.slice(c * 10, c * 10 + 10).map((p): [number, number] => [p.node, p.cpu]);
    const at = activity(terms, point);
    model.constraints.push({ name: `quota:${c}`, terms, lower: at - 10 * rand(), upper: at + 10 * rand() });
  }
  return { model, point };
}

interface Pool {
  cpu: number;
  node: number;
  cpuTerms: Array<[number, number]>;
  memTerms: Array<[number, number]>;
}

function activity(terms: ReadonlyArray<[number, number]>, point: readonly number[]): number {
  return terms.reduce((s, [j, coef]) => s + coef * (point[j] ?? 0), 0);
}

function fail(message: string): never {
  throw new Error(message);
}
