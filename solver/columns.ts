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
import { price } from './pricer.ts';

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

/** Search nodes of the quick pricing tried first each round; the full search runs when it finds nothing. */
const QUICK_PRICER_LIMIT = 500;
/** A safety net only: the rounds are bounded by the time budget. */
const MAX_ROUNDS = 400;
/** Wentges smoothing: the duals priced are this much the stability centre, the rest the restricted model's. */
const SMOOTHING = 0.5;
const EPS = 1e-7;
/** Rounds whose times predict the next one's, and the margin over their slowest kept free. */
const RECENT_ROUNDS = 3;
const ROUND_MARGIN = 1.25;
/** A later round's time as a share of the first's, until one is measured (a cold solve and pricer). */
const FIRST_ROUND_SHARE = 0.5;
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
  options.forEach((o, oi) => {
    const list = byPool.get(o.pool);
    if (list) list.push(oi);
    else byPool.set(o.pool, [oi]);
  });
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
  /**
   * The node-model value (node costs, per-task costs and penalties for tasks left out) of a plan at
   * hand, which no optimal plan exceeds: it tightens the bound on nodes that may be added without limit.
   */
  upper?: number;
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
  // Round times, for whether another round fits. The first round builds the model and warms the pricer
  // up, several times a later round's cost, so it stands for the rounds only until there are others.
  const roundMs: number[] = [];
  const nextRound = () =>
    roundMs.length === 1
      ? roundMs[0]! * FIRST_ROUND_SHARE
      : Math.max(...(roundMs.length > 1 ? roundMs.slice(1).slice(-RECENT_ROUNDS) : roundMs), 0);
  const history: number[] = [];
  for (; rounds < MAX_ROUNDS; rounds++) {
    // A round and the primal solve after it must fit in what is left.
    if (input.timeLeft() <= ROUND_MARGIN * nextRound()) {
      note = `the time budget stopped column generation after ${rounds} rounds`;
      break;
    }
    const roundStart = input.timeLeft();
    const s = master.solve(columns, Math.max(1, input.timeLeft()));
    if ('failed' in s) {
      // A solve the time limit stopped is the budget running out; the last round's answer stands.
      note =
        s.failed === 'time-limit'
          ? `the time budget stopped column generation after ${rounds} rounds`
          : `the node model's LP ended ${s.failed}`;
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
    const priceAll = (y: Float64Array, limit?: number) => {
      const pi = y.subarray(0, groups.length);
      const extra = limitCosts(options.length, limits, y.subarray(groups.length));
      let added = 0;
      let exact = true;
      let lagrangian = 0;
      for (let g = 0; g < groups.length; g++) lagrangian += demand[g]! * pi[g]!;
      limits.forEach((l, q) => (lagrangian -= l.cap * y[groups.length + q]!));
      // Types unlimited in count: the best gain over all of them, and the best gain per dollar of node.
      let unlimitedGain = 0;
      let gainPerDollar = 0;
      let cut = false;
      for (let ti = 0; ti < types.length; ti++) {
        if (dominated[ti]) continue;
        // Out of time: the columns found so far still count, the bound at these duals does not.
        if (input.timeLeft() <= 0) {
          cut = true;
          break;
        }
        const t = types[ti]!;
        const best = price(t, pi, limit, extra, demand);
        if (!best.exact) exact = false;
        const gainUpper = Math.max(0, best.upper - t.cost);
        if (limited[ti]) lagrangian -= nodesNeeded[ti]! * gainUpper;
        else {
          unlimitedGain = Math.max(unlimitedGain, gainUpper);
          if (gainUpper > 0)
            gainPerDollar = Math.max(gainPerDollar, t.cost > 0 ? gainUpper / t.cost : Infinity);
        }
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
      }
      // Types unlimited in count share one room: an optimal plan uses no more nodes than it has tasks, and
      // spends no more on nodes than a plan at hand costs in all (`upper`), so it gains at most the best
      // gain per dollar on that much.
      let unlimited = totalTasks * unlimitedGain;
      if (input.upper !== undefined && Number.isFinite(gainPerDollar))
        unlimited = Math.min(unlimited, input.upper * gainPerDollar);
      lagrangian -= unlimited;
      if (!cut) bound = Math.max(bound, lagrangian);
      else exact = false;
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
    roundMs.push(roundStart - input.timeLeft());
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
  const primal = master.primal(columns, Math.max(input.timeLeft(), 2 * nextRound(), 50));
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
