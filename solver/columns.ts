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
import type { LpBackends } from './lp/index.ts';
import { restrictedModel } from './master.ts';

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

/**
 * A quota or budget row of the batch in node-model terms: what one task of each option counts against it,
 * and how much room it has (borrowing included: its small cost is left out, which only lowers the bound).
 */
export interface NodeLimit {
  cap: number;
  /** Per option index: the amount one task counts. */
  coef: ReadonlyMap<number, number>;
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
  /**
   * A lower bound on `cost + Σ_g penalty_g · unplaced_g` of every plan of the batch (Lagrangian, valid
   * at any round: the best over the duals priced). A plan that leaves `u_g` of group g unplaced costs at
   * least `bound − Σ_g penalty_g · u_g`.
   */
  bound: number;
  /** Whether column generation converged: no column prices out, by the exact search. */
  proven: boolean;
  rounds: number;
  /** Why column generation stopped before it converged, when it did. */
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
/** Tail-off: the rounds looked back over, and the share of the seed plan's cost they must gain. */
const TAIL_ROUNDS = 8;
const TAIL_GAIN = 5e-4;

export function keyOf(c: Column): string {
  return `${c.type}|${[...c.counts].sort((a, b) => a[0] - b[0]).join(';')}`;
}

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
 * GPU thousandths and whole devices), by depth-first branch and bound. Options of the same shape collapse
 * to the most valuable one, and a shape no better than a smaller one is dropped: the search runs over
 * the few shapes that matter at these duals. `exact` is false when the node limit stopped the search
 * before it proved the best.
 */
export function price(
  type: NodeType,
  pi: Float64Array,
  limit = PRICER_NODE_LIMIT,
  extra?: Float64Array,
): {
  value: number;
  counts: Map<number, number>;
  exact: boolean;
  /** At least the best value of any contents: `value` when exact, else the root's relaxation. */
  upper: number;
  alternatives: Map<number, number>[];
} {
  const items = usefulItems(type, pi, extra);
  const cap = [type.cpuMilli, type.memoryMiB, type.gpuMilli, type.wholeGpus];
  const n = items.length;
  const w = new Float64Array(n * 4);
  items.forEach((it, i) => w.set([it.cpu, it.mem, it.gpu, it.whole], i * 4));
  // Suffix maxima of profit per unit of each resource: a cheap upper bound for what the rest can add.
  const ratio = new Float64Array((n + 1) * 4);
  for (let i = n - 1; i >= 0; i--) {
    for (let r = 0; r < 4; r++) {
      const x = w[i * 4 + r]!;
      ratio[i * 4 + r] = Math.max(ratio[(i + 1) * 4 + r]!, x > 0 ? items[i]!.profit / x : Infinity);
    }
  }
  let best = 0;
  let bestCounts = new Map<number, number>();
  // The incumbents the search went through, best last: several columns per type and round.
  const alternatives: Map<number, number>[] = [];
  const take = new Int32Array(n);
  let nodes = 0;
  let exact = true;
  const left = Float64Array.from(cap);
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
    for (let r = 0; r < 4; r++) ub = Math.min(ub, left[r]! * ratio[i * 4 + r]!);
    if (value + ub <= best + EPS) return;
    const profit = items[i]!.profit;
    let most = Infinity;
    for (let r = 0; r < 4; r++) {
      const x = w[i * 4 + r]!;
      if (x > 0) most = Math.min(most, Math.floor(left[r]! / x + 1e-9));
    }
    if (!Number.isFinite(most)) most = 0;
    for (let k = most; k >= 0 && exact; k--) {
      for (let r = 0; r < 4; r++) left[r] = left[r]! - k * w[i * 4 + r]!;
      take[i] = k;
      visit(i + 1, value + k * profit);
      for (let r = 0; r < 4; r++) left[r] = left[r]! + k * w[i * 4 + r]!;
    }
    take[i] = 0;
  };
  let root = Infinity;
  // Each resource alone bounds the profit by its room times the best profit per unit (no item uses none).
  for (let r = 0; r < 4 && n > 0; r++) if (ratio[r]! < Infinity) root = Math.min(root, cap[r]! * ratio[r]!);
  visit(0, 0);
  // Items worth at most EPS each were left out of the search: as many as fit could add that much.
  let most = 0;
  for (const it of type.items) most = Math.max(most, Math.floor(type.cpuMilli / Math.max(it.cpu, 1)));
  return {
    value: best,
    counts: bestCounts,
    exact,
    upper: (exact || n === 0 ? best : Math.max(best, root)) + EPS * most,
    alternatives,
  };
}

type PricedItem = NodeType['items'][number] & { profit: number };

/** A type's items by shape, and which shapes are no larger than which: computed once per type. */
interface Shapes {
  /** Item indices of each shape. */
  members: number[][];
  /** The shape's weights and its density scale (its largest share of the node). */
  weight: { cpu: number; mem: number; gpu: number; whole: number; share: number }[];
  /** `le[a * n + b]`: shape a is at most shape b in every resource. */
  le: Uint8Array;
}

const shapesOf = new WeakMap<NodeType, Shapes>();

function shapes(type: NodeType): Shapes {
  const had = shapesOf.get(type);
  if (had) return had;
  const index = new Map<string, number>();
  const members: number[][] = [];
  const weight: Shapes['weight'] = [];
  type.items.forEach((it, i) => {
    if (it.cpu > type.cpuMilli || it.mem > type.memoryMiB || it.gpu > type.gpuMilli) return;
    if (it.whole > type.wholeGpus) return;
    const key = `${it.cpu}|${it.mem}|${it.gpu}|${it.whole}`;
    let k = index.get(key);
    if (k === undefined) {
      k = members.length;
      index.set(key, k);
      members.push([]);
      const share = Math.max(
        it.cpu / Math.max(type.cpuMilli, 1e-12),
        it.mem / Math.max(type.memoryMiB, 1e-12),
        type.gpuMilli > 0 ? it.gpu / type.gpuMilli : 0,
        type.wholeGpus > 0 ? it.whole / type.wholeGpus : 0,
        1e-12,
      );
      weight.push({ cpu: it.cpu, mem: it.mem, gpu: it.gpu, whole: it.whole, share });
    }
    members[k]!.push(i);
  });
  const n = members.length;
  const le = new Uint8Array(n * n);
  for (let a = 0; a < n; a++)
    for (let b = 0; b < n; b++) {
      const x = weight[a]!;
      const y = weight[b]!;
      le[a * n + b] = Number(x.cpu <= y.cpu && x.mem <= y.mem && x.gpu <= y.gpu && x.whole <= y.whole);
    }
  const out = { members, weight, le };
  shapesOf.set(type, out);
  return out;
}

/**
 * The type's items worth pricing at `pi`, densest first: profitable, fitting one node, the most valuable
 * option of each shape, and no shape that another at most as large in every resource beats.
 */
function usefulItems(type: NodeType, pi: Float64Array, extra?: Float64Array): PricedItem[] {
  const sh = shapes(type);
  const n = sh.members.length;
  const bestItem = new Int32Array(n).fill(-1);
  const profit = new Float64Array(n);
  const live: number[] = [];
  for (let k = 0; k < n; k++) {
    let best = EPS;
    for (const i of sh.members[k]!) {
      const it = type.items[i]!;
      const p = pi[it.group]! - it.cost - (extra ? extra[it.option]! : 0);
      if (p > best) {
        best = p;
        bestItem[k] = i;
      }
    }
    if (bestItem[k]! >= 0) {
      profit[k] = best;
      live.push(k);
    }
  }
  live.sort((a, b) => profit[b]! - profit[a]!);
  const kept: number[] = [];
  for (const k of live) {
    let dominated = false;
    for (const j of kept)
      if (sh.le[j * n + k]) {
        dominated = true;
        break;
      }
    if (!dominated) kept.push(k);
  }
  // Density on the node's scarcest shares first: good incumbents early, so the bound prunes.
  kept.sort((a, b) => profit[b]! / sh.weight[b]!.share - profit[a]! / sh.weight[a]!.share);
  return kept.map((k) => ({ ...type.items[bestItem[k]!]!, profit: profit[k]! }));
}

/** Column generation from the seed columns until no column prices out, the rounds or the time run out. */
export function solveNodeModel(input: {
  groups: readonly Group[];
  options: readonly Option[];
  types: readonly NodeType[];
  seeds: readonly Column[];
  penalty: readonly number[];
  /** The batch's quota and budget rows. */
  limits?: readonly NodeLimit[];
  backends: LpBackends;
  timeLeft: () => number;
  /** Run the full pricer when the quick one finds nothing, to prove the node-level bound. */
  prove?: boolean;
  /**
   * Dollars the tail-off test measures gains against (the seed plan's cost): without `prove`, column
   * generation stops when the last rounds gained less than a small share of it.
   */
  scale?: number;
}): NodeModelResult | undefined {
  const { groups, options, types, penalty, backends } = input;
  const limits = input.limits ?? [];
  const columns: Column[] = [];
  const seen = new Set<string>();
  const add = (c: Column) => {
    const key = keyOf(c);
    if (seen.has(key)) return false;
    seen.add(key);
    columns.push(c);
    return true;
  };
  for (const c of input.seeds) add(c);
  const demand = groups.map((g) => g.taskIds.length);
  const limited = types.map((t) => t.count < 1e5);
  const itemCost = types.map((t) => new Map(t.items.map((i) => [i.option, i.cost])));
  const dominated = dominatedTypes(types, limited, limits);
  const nodesNeeded = typeRoom(types, limited, demand);
  const totalTasks = demand.reduce((a, b) => a + b, 0);
  const master = restrictedModel({ groups, options, types, penalty, limits, limited, backends, demand });
  let rounds = 0;
  let bound = -Infinity;
  let proven = false;
  let note: string | undefined;
  // The stability centre of the smoothing: the duals priced last round (groups, then limits).
  let centre: Float64Array | undefined;
  let slowest = 0;
  const history: number[] = [];
  for (; rounds < MAX_ROUNDS; rounds++) {
    // A round and the primal solve after it must fit in what is left.
    if (input.timeLeft() <= 2 * slowest) {
      note = `the time budget stopped column generation after ${rounds} rounds`;
      break;
    }
    const roundStart = input.timeLeft();
    const s = master.solve(columns, Math.max(1, input.timeLeft()));
    if ('failed' in s) {
      note = `the node model's LP ended ${s.failed}`;
      break;
    }
    if (s.drop.length > 0) {
      for (const j of s.drop) seen.delete(keyOf(columns[j]!));
      const drop = new Set(s.drop);
      const kept = columns.filter((_c, j) => !drop.has(j));
      columns.length = 0;
      columns.push(...kept);
    }
    const duals = s.duals;
    const muOf = (ti: number) => s.mu[ti]!;
    /**
     * Prices every type at `y` (π then ρ): adds the columns worth more than they cost at the restricted
     * model's duals, and returns the Lagrangian bound at `y` — valid whatever `y` is, since each type's
     * best column is bounded from above even when the search stopped early.
     */
    const priceAll = (y: Float64Array, limit = PRICER_NODE_LIMIT) => {
      const pi = y.subarray(0, groups.length);
      const extra = limitCosts(options.length, limits, y.subarray(groups.length));
      let added = 0;
      let exact = true;
      let lagrangian = 0;
      for (let g = 0; g < groups.length; g++) lagrangian += demand[g]! * pi[g]!;
      limits.forEach((l, q) => (lagrangian -= l.cap * y[groups.length + q]!));
      let unlimitedGain = 0;
      types.forEach((t, ti) => {
        if (dominated[ti]) return;
        const best = price(t, pi, limit, extra);
        if (!best.exact) exact = false;
        const gainUpper = Math.max(0, best.upper - t.cost);
        if (limited[ti]) lagrangian -= nodesNeeded[ti]! * gainUpper;
        else unlimitedGain = Math.max(unlimitedGain, gainUpper);
        // Reduced value at the restricted model's own duals: what a column is worth beyond its cost.
        const mi = muOf(ti);
        for (const counts of best.alternatives) {
          if (counts.size === 0) continue;
          let cost = t.cost;
          let value = -mi;
          for (const [oi, k] of counts) {
            const c = itemCost[ti]!.get(oi)!;
            cost += k * c;
            value += k * (duals[options[oi]!.group]! - c - limitCostAt(limits, duals, groups.length, oi));
          }
          if (value - t.cost <= 1e-6 * Math.max(1, t.cost)) continue;
          if (add({ type: ti, counts, cost })) added++;
        }
      });
      // Types unlimited in count share one room: an optimal plan uses no more nodes than it has tasks.
      lagrangian -= totalTasks * unlimitedGain;
      bound = Math.max(bound, lagrangian);
      return { added, exact };
    };
    // Price at the smoothed duals; when that finds nothing the restricted model's duals would not, price
    // at those (a mis-price).
    let sep = duals;
    if (centre) {
      sep = new Float64Array(duals.length);
      for (let i = 0; i < duals.length; i++) sep[i] = SMOOTHING * centre[i]! + (1 - SMOOTHING) * duals[i]!;
    }
    // A quick search first, at the smoothed duals and then at the model's own; the full search, which
    // proves convergence, only when asked for and the quick one finds nothing.
    let found = priceAll(sep, QUICK_PRICER_LIMIT);
    if (found.added === 0 && sep !== duals) found = priceAll(duals, QUICK_PRICER_LIMIT);
    if (found.added === 0 && !found.exact && input.prove) found = priceAll(duals);
    centre = sep;
    slowest = Math.max(slowest, roundStart - input.timeLeft());
    history.push(s.objective);
    if (!input.prove && history.length > TAIL_ROUNDS) {
      const gained = history[history.length - 1 - TAIL_ROUNDS]! - history[history.length - 1]!;
      if (found.added > 0 && gained < TAIL_GAIN * Math.max(1, input.scale ?? 1)) {
        note = `column generation tailed off after ${rounds + 1} rounds`;
        break;
      }
    }
    if (found.added === 0) {
      // Dual feasible for every column: −objective is a lower bound on the node-level model, penalties included.
      if (found.exact) {
        proven = true;
        if (s.dualValue !== undefined) bound = Math.max(bound, s.dualValue);
      } else if (input.prove)
        note = "the pricer's search limit stopped it before it proved no better node exists";
      else note = 'column generation stopped when the quick pricer found no better node';
      break;
    }
  }
  if (rounds >= MAX_ROUNDS) note = `column generation stopped after ${MAX_ROUNDS} rounds`;
  // The last solve may use the time kept back for it: about one round's LP.
  const primal = master.primal(columns, Math.max(input.timeLeft(), 4 * slowest, 50));
  master.dispose();
  if (!primal) return undefined;
  const lambda = primal.subarray(0, columns.length);
  const unplaced = primal.subarray(columns.length, columns.length + groups.length);
  return { columns, lambda, unplaced, bound, proven, rounds, ...(note ? { note } : {}) };
}

/** Per option: what the limits' duals `rho` charge one task of it. */
function limitCosts(optionCount: number, limits: readonly NodeLimit[], rho: Float64Array): Float64Array {
  const out = new Float64Array(optionCount);
  limits.forEach((l, q) => {
    if (rho[q]! <= 0) return;
    for (const [oi, a] of l.coef) out[oi] = out[oi]! + a * rho[q]!;
  });
  return out;
}

export function limitCostAt(
  limits: readonly NodeLimit[],
  y: Float64Array,
  offset: number,
  oi: number,
): number {
  let c = 0;
  limits.forEach((l, q) => {
    const r = y[offset + q]!;
    if (r > 0) c += r * (l.coef.get(oi) ?? 0);
  });
  return c;
}

/**
 * Per type limited in count: how many of its nodes an optimal plan may use — its count, and no more than
 * the tasks that may go on it (an optimal plan needs no node that holds no task, nor tasks beyond demand).
 */
function typeRoom(
  types: readonly NodeType[],
  limited: readonly boolean[],
  demand: readonly number[],
): number[] {
  return types.map((t, ti) => {
    if (!limited[ti]) return Infinity;
    const groups = new Set(t.items.map((i) => i.group));
    let tasks = 0;
    for (const g of groups) tasks += demand[g]!;
    return Math.min(t.count, tasks);
  });
}

/**
 * New-node types another one makes pointless to price: no dearer, at least as large in every resource,
 * taking each of its groups at no more per task and no more GPU, neither limited in count. A column of
 * the dominated type is worth no more than the same contents on the other, so skipping it keeps the
 * pricing (and the bound) exact. Ties go to the lower index.
 */
export function dominatedTypes(
  types: readonly NodeType[],
  limited: readonly boolean[],
  limits: readonly NodeLimit[] = [],
): boolean[] {
  // An option that counts more against a quota or budget than the one it would be compared with is not
  // worth less at every dual.
  const countsMore = (a: number, b: number) =>
    limits.some((l) => (l.coef.get(a) ?? 0) > (l.coef.get(b) ?? 0));
  const perGroup = types.map((t) => new Map(t.items.map((i) => [i.group, i])));
  const covers = (a: number, b: number) => {
    const x = types[a]!;
    const y = types[b]!;
    if (limited[a] || limited[b] || x.cls !== undefined || y.cls !== undefined) return false;
    if (x.bucket !== y.bucket || x.cost > y.cost || x.cpuMilli < y.cpuMilli) return false;
    if (x.memoryMiB < y.memoryMiB || x.gpuMilli < y.gpuMilli || x.wholeGpus < y.wholeGpus) return false;
    for (const it of y.items) {
      const o = perGroup[a]!.get(it.group);
      if (!o || o.cost > it.cost || o.gpu > it.gpu || o.whole > it.whole) return false;
      if (countsMore(o.option, it.option)) return false;
    }
    return true;
  };
  return types.map((_t, b) => types.some((_u, a) => a !== b && covers(a, b) && (!covers(b, a) || a < b)));
}
