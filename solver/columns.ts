/**
 * The node-level model: a column is one node's contents (how many tasks of each group one node of a type
 * holds), a type is a class of identical running nodes or a pool's new nodes for one duration bucket.
 *
 *   min Σ_j cost_j λ_j + Σ_g M_g u_g   s.t.   Σ_j a_gj λ_j + u_g ≥ n_g,   Σ_{j of type t} λ_j ≤ N_t
 *
 * Columns are generated: each round solves the dual of the restricted model (so both LP backends serve,
 * neither needs to report duals), and a bounded-knapsack pricer looks, per type, for a node whose tasks are
 * worth more at those duals than the node costs. When the exact pricer finds none, the dual is feasible for
 * every column and its value is a lower bound on any plan that places all it can (weak duality): the
 * node-level bound. Quota and budget rows are left out, which only lowers the bound.
 */
import type { Group, NodeClass, Option } from './groups.ts';
import { chooseBackend, type LpBackend, type LpBackends, type LpModel } from './lp/index.ts';

/** The JavaScript solver only for models small in both directions; HiGHS for the rest. */
function backendFor(lp: LpModel, backends: LpBackends): LpBackend {
  if (backends.highs && lp.constraints.length > 150) return backends.highs;
  return chooseBackend(lp, backends);
}
import type { PoolState } from './types.ts';

/** A kind of node: a class of running nodes, or new nodes of a pool bought for one bucket. */
export interface NodeType {
  pool: number;
  /** Index into the node classes for running nodes; undefined for new nodes. */
  cls?: number;
  bucket: number;
  /** How many nodes of this type there are (or may be added). */
  count: number;
  /** Dollars for one node of this type (0 for running nodes). */
  cost: number;
  cpuMilli: number;
  memoryMiB: number;
  gpuMilli: number;
  wholeGpus: number;
  /** Options that may go on this type, with their per-task cost (risk and preferences). */
  items: {
    option: number;
    group: number;
    cost: number;
    cpu: number;
    mem: number;
    gpu: number;
    whole: number;
  }[];
}

/** One node's contents. */
export interface Column {
  type: number;
  counts: Map<number, number>;
  cost: number;
}

export interface NodeModelResult {
  columns: Column[];
  /** The restricted model's optimal λ per column. */
  lambda: Float64Array;
  /** Its unplaced tasks per group. */
  unplaced: Float64Array;
  /** Proven node-level lower bound (dollars and preferences), or undefined when not proven in time. */
  bound?: number;
  rounds: number;
  /** Why the bound is not proven, when it is not. */
  note?: string;
}

const PRICER_NODE_LIMIT = 20_000;
/** Search nodes of the quick pricing tried first each round; the full search runs when it finds nothing. */
const QUICK_PRICER_LIMIT = 500;
/** A safety net only: the rounds are bounded by the time budget. */
const MAX_ROUNDS = 400;
/** Columns a type may add per round: the pricer's best and the incumbents it passed on the way. */
const COLUMNS_PER_TYPE = 3;
/** Wentges smoothing: the duals priced are this much the stability centre, the rest the restricted model's. */
const SMOOTHING = 0.5;
const EPS = 1e-7;

/** Node types of the batch: every running-node class, and every pool that may add nodes, per bucket. */
export function nodeTypes(
  groups: readonly Group[],
  pools: readonly PoolState[],
  options: readonly Option[],
  classes: readonly NodeClass[],
): NodeType[] {
  const types: NodeType[] = [];
  const item = (oi: number) => {
    const o = options[oi]!;
    const g = groups[o.group]!;
    return {
      option: oi,
      group: o.group,
      cost: o.risk + o.preference,
      cpu: g.cpuMilli,
      mem: g.memoryMiB,
      gpu: o.gpuMilli,
      whole: o.gpuMilli >= 1000 ? o.gpuMilli / 1000 : 0,
    };
  };
  const byPool = new Map<number, number[]>();
  options.forEach((o, oi) => byPool.set(o.pool, [...(byPool.get(o.pool) ?? []), oi]));
  classes.forEach((c, ci) => {
    const opts = (byPool.get(c.pool) ?? []).filter(
      (oi) => groups[options[oi]!.group]!.durationSeconds <= c.maxDuration,
    );
    if (opts.length === 0) return;
    types.push({
      pool: c.pool,
      cls: ci,
      bucket: c.maxDuration,
      count: c.nodes.length,
      cost: 0,
      cpuMilli: c.free.cpuMilli,
      memoryMiB: c.free.memoryMiB,
      gpuMilli: c.free.gpuMilli.reduce((a, b) => a + b, 0),
      wholeGpus: c.free.gpuMilli.filter((f) => f >= 1000).length,
      items: opts.map(item),
    });
  });
  for (const [p, opts] of byPool) {
    const pool = pools[p]!;
    if (pool.maxNewNodes <= 0) continue;
    const buckets = [...new Set(opts.map((oi) => groups[options[oi]!.group]!.durationSeconds))];
    for (const k of buckets) {
      const fit = opts.filter((oi) => groups[options[oi]!.group]!.durationSeconds <= k);
      types.push({
        pool: p,
        bucket: k,
        count: pool.maxNewNodes,
        cost: (pool.price * (k + pool.launchDelaySeconds)) / 3600,
        cpuMilli: pool.cpuMilli,
        memoryMiB: pool.memoryMiB,
        gpuMilli: pool.gpuCount * 1000,
        wholeGpus: pool.gpuCount,
        items: fit.map(item),
      });
    }
  }
  return types;
}

/**
 * The most valuable contents of one node of the type at the duals `pi` (bounded knapsack over cpu, memory,
 * GPU thousandths and whole devices), by depth-first branch and bound. `exact` is false when the node
 * limit stopped the search before it proved the best.
 */
export function price(
  type: NodeType,
  pi: Float64Array,
  limit = PRICER_NODE_LIMIT,
): { value: number; counts: Map<number, number>; exact: boolean; alternatives: Map<number, number>[] } {
  const items = type.items
    .map((it) => ({ ...it, profit: pi[it.group]! - it.cost }))
    .filter(
      (it) =>
        it.profit > EPS &&
        it.cpu <= type.cpuMilli &&
        it.mem <= type.memoryMiB &&
        it.gpu <= type.gpuMilli &&
        it.whole <= type.wholeGpus,
    );
  const cap = [type.cpuMilli, type.memoryMiB, type.gpuMilli, type.wholeGpus];
  const w = (it: (typeof items)[number]) => [it.cpu, it.mem, it.gpu, it.whole];
  // Density on the node's scarcest shares first: good incumbents early, so the bound prunes.
  const density = (it: (typeof items)[number]) =>
    it.profit / Math.max(...w(it).map((x, r) => (cap[r]! > 0 ? x / cap[r]! : 0)), 1e-12);
  items.sort((a, b) => density(b) - density(a));
  const n = items.length;
  // Suffix maxima of profit per unit of each resource: a cheap upper bound for what the rest can add.
  const ratio: number[][] = Array.from({ length: n + 1 }, () => [0, 0, 0, 0]);
  for (let i = n - 1; i >= 0; i--) {
    const wi = w(items[i]!);
    for (let r = 0; r < 4; r++)
      ratio[i]![r] = Math.max(ratio[i + 1]![r]!, wi[r]! > 0 ? items[i]!.profit / wi[r]! : Infinity);
  }
  let best = 0;
  let bestCounts = new Map<number, number>();
  // The incumbents the search went through, best last: several columns per type and round.
  const alternatives: Map<number, number>[] = [];
  const take = new Array<number>(n).fill(0);
  let nodes = 0;
  let exact = true;
  const left = [...cap];
  const visit = (i: number, value: number): void => {
    if (++nodes > limit) {
      exact = false;
      return;
    }
    if (value > best + EPS) {
      best = value;
      bestCounts = new Map();
      for (let j = 0; j < i; j++) if (take[j]! > 0) bestCounts.set(items[j]!.option, take[j]!);
      alternatives.push(bestCounts);
      if (alternatives.length > COLUMNS_PER_TYPE) alternatives.shift();
    }
    if (i >= n) return;
    let ub = Infinity;
    for (let r = 0; r < 4; r++) ub = Math.min(ub, left[r]! * ratio[i]![r]!);
    if (value + ub <= best + EPS) return;
    const it = items[i]!;
    const wi = w(it);
    let most = Infinity;
    for (let r = 0; r < 4; r++) if (wi[r]! > 0) most = Math.min(most, Math.floor(left[r]! / wi[r]! + 1e-9));
    if (!Number.isFinite(most)) most = 0;
    for (let k = most; k >= 0 && exact; k--) {
      for (let r = 0; r < 4; r++) left[r] = left[r]! - k * wi[r]!;
      take[i] = k;
      visit(i + 1, value + k * it.profit);
      for (let r = 0; r < 4; r++) left[r] = left[r]! + k * wi[r]!;
    }
    take[i] = 0;
  };
  visit(0, 0);
  return { value: best, counts: bestCounts, exact, alternatives };
}

/** Column generation from the seed columns until no column prices out, the rounds or the time run out. */
export function solveNodeModel(input: {
  groups: readonly Group[];
  options: readonly Option[];
  types: readonly NodeType[];
  seeds: readonly Column[];
  penalty: readonly number[];
  backends: LpBackends;
  timeLeft: () => number;
}): NodeModelResult | undefined {
  const { groups, options, types, penalty, backends } = input;
  const columns: Column[] = [];
  const seen = new Set<string>();
  const add = (c: Column) => {
    const key = `${c.type}|${[...c.counts].sort((a, b) => a[0] - b[0]).join(';')}`;
    if (seen.has(key)) return false;
    seen.add(key);
    columns.push(c);
    return true;
  };
  for (const c of input.seeds) add(c);
  const demand = groups.map((g) => g.taskIds.length);
  const limited = types.map((t) => t.count < 1e5);
  const itemCost = types.map((t) => new Map(t.items.map((i) => [i.option, i.cost])));
  let rounds = 0;
  let bound: number | undefined;
  let note: string | undefined;
  // The stability centre of the smoothing: the duals priced last round.
  let centre: Float64Array | undefined;
  let slowest = 0;
  for (; rounds < MAX_ROUNDS; rounds++) {
    // A round and the primal solve after it must fit in what is left.
    if (input.timeLeft() <= 2 * slowest) {
      note = `the time budget stopped column generation after ${rounds} rounds`;
      break;
    }
    const roundStart = input.timeLeft();
    // The dual: max Σ n_g π_g − Σ N_t μ_t  s.t.  Σ_g a_gj π_g − μ_t(j) ≤ cost_j,  0 ≤ π_g ≤ M_g.
    const lp: LpModel = { variables: [], constraints: [] };
    groups.forEach((g, gi) =>
      lp.variables.push({ name: `pi:${gi}`, cost: -demand[gi]!, upper: penalty[gi]! }),
    );
    const mu = types.map((t, ti) => {
      if (!limited[ti]) return -1;
      lp.variables.push({ name: `mu:${ti}`, cost: t.count });
      return lp.variables.length - 1;
    });
    for (const c of columns) {
      const terms: [number, number][] = [];
      for (const [oi, k] of c.counts) terms.push([options[oi]!.group, k]);
      if (mu[c.type]! >= 0) terms.push([mu[c.type]!, -1]);
      lp.constraints.push({ name: `col`, terms, upper: c.cost });
    }
    const s = backendFor(lp, backends).solve(lp, { timeLimitMs: Math.max(1, input.timeLeft()) });
    if (s.status !== 'optimal') {
      note = `the node model's LP ended ${s.status}`;
      break;
    }
    const pi = Float64Array.from(s.values.subarray(0, groups.length));
    const muOf = (ti: number) => (mu[ti]! >= 0 ? s.values[mu[ti]!]! : 0);
    // Reduced value of a column at the restricted model's duals: what it is worth beyond what it costs.
    const gain = (ti: number, counts: Map<number, number>) => {
      let v = -types[ti]!.cost - muOf(ti);
      for (const [oi, k] of counts) v += k * (pi[options[oi]!.group]! - itemCost[ti]!.get(oi)!);
      return v;
    };
    const priceAll = (duals: Float64Array, limit = PRICER_NODE_LIMIT) => {
      let added = 0;
      let exact = true;
      types.forEach((t, ti) => {
        const best = price(t, duals, limit);
        if (!best.exact) exact = false;
        for (const counts of best.alternatives) {
          if (counts.size === 0 || gain(ti, counts) <= 1e-6 * Math.max(1, t.cost)) continue;
          let cost = t.cost;
          for (const [oi, k] of counts) cost += k * itemCost[ti]!.get(oi)!;
          if (add({ type: ti, counts, cost })) added++;
        }
      });
      return { added, exact };
    };
    // Price at the smoothed duals; when that finds nothing the restricted model's duals would not, price
    // at those (a mis-price): the bound is only claimed from the restricted model's own duals.
    let sep = pi;
    if (centre) {
      sep = new Float64Array(pi.length);
      for (let g = 0; g < pi.length; g++) sep[g] = SMOOTHING * centre[g]! + (1 - SMOOTHING) * pi[g]!;
    }
    // A quick, inexact search first; the full one only when the quick one finds nothing.
    let found = priceAll(sep, QUICK_PRICER_LIMIT);
    if (found.added === 0) found = priceAll(pi);
    centre = sep;
    slowest = Math.max(slowest, roundStart - input.timeLeft());
    if (found.added === 0) {
      // Dual feasible for every column: −objective is a lower bound on the node-level model, penalties included.
      if (found.exact) bound = -s.objective;
      else note = "the pricer's search limit stopped it before it proved no better node exists";
      break;
    }
  }
  if (rounds >= MAX_ROUNDS) note = `column generation stopped after ${MAX_ROUNDS} rounds`;
  const primal = solvePrimal(columns, options, types, demand, penalty, backends, input.timeLeft);
  if (!primal) return undefined;
  const lambda = primal.subarray(0, columns.length);
  const unplaced = primal.subarray(columns.length, columns.length + groups.length);
  if (bound !== undefined) bound -= groups.reduce((sum, _g, gi) => sum + penalty[gi]! * unplaced[gi]!, 0);
  return {
    columns,
    lambda,
    unplaced,
    ...(bound !== undefined ? { bound } : {}),
    rounds,
    ...(note ? { note } : {}),
  };
}

/** The restricted model itself, for λ. */
function solvePrimal(
  columns: readonly Column[],
  options: readonly Option[],
  types: readonly NodeType[],
  demand: readonly number[],
  penalty: readonly number[],
  backends: LpBackends,
  timeLeft: () => number,
): Float64Array | undefined {
  const lp: LpModel = { variables: [], constraints: [] };
  const rows = demand.map((): [number, number][] => []);
  const byType = types.map((): [number, number][] => []);
  columns.forEach((c, j) => {
    // A node-count epsilon, as in the aggregate model: free nodes are not used without need.
    lp.variables.push({ name: `l:${j}`, cost: c.cost + 1e-4 });
    for (const [oi, k] of c.counts) rows[options[oi]!.group]!.push([j, k]);
    byType[c.type]!.push([j, 1]);
  });
  demand.forEach((n, gi) => {
    lp.variables.push({ name: `u:${gi}`, cost: penalty[gi]!, upper: n });
    rows[gi]!.push([lp.variables.length - 1, 1]);
    lp.constraints.push({ name: `demand:${gi}`, terms: rows[gi]!, lower: n });
  });
  types.forEach((t, ti) => {
    if (t.count < 1e5 && byType[ti]!.length > 0)
      lp.constraints.push({ name: `count:${ti}`, terms: byType[ti]!, upper: t.count });
  });
  const s = backendFor(lp, backends).solve(lp, { timeLimitMs: Math.max(1, timeLeft()) });
  return s.status === 'optimal' ? s.values : undefined;
}
