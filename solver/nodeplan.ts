/**
 * From the node-level model to concrete nodes: seed columns from a packing, realise the whole columns of
 * the model's answer on named running nodes and new nodes, and place what is left best-fit.
 */
import type { Bin } from './bins.ts';
import { type Column, type NodeLimit, nodeTypes, type NodeType, solveNodeModel } from './columns.ts';
import { placeByEviction } from './evict.ts';
import { constrainedFirst, placeBestFit } from './ffd.ts';
import type { Group, NodeClass, Option } from './groups.ts';
import type { LpBackends } from './lp/index.ts';
import type { PlacementModel } from './model.ts';
import { finishPacking, Packer, type Packing, type PackContext } from './pack.ts';
import { better, costOf } from './outcome.ts';
import type { PoolState } from './types.ts';

/** Single-option full-node columns seeded per group: on its cheapest types per task. */
const FULL_NODE_SEEDS = 4;
/** A column the model takes this much of a node beyond its whole copies is also tried once more. */
const ROUND_UP = 0.5;

/** What the node-level step gives the plan: a packing, and the node-level bound. */
export interface NodePlan {
  packing: Packing;
  /**
   * Lower bound on `cost + Σ_g penalty_g · unplaced_g` of any plan of the batch: a plan leaving `u_g`
   * tasks of group g unplaced costs at least `bound − Σ_g penalty_g · u_g`.
   */
  bound: number;
  /** Whether column generation converged (the bound is then the node-level model's value). */
  proven: boolean;
  rounds: number;
  columns: number;
  note?: string;
}

/** Solves the node-level model and turns its answer into a packing. */
export function nodeLevelPlan(input: {
  ctx: () => PackContext;
  groups: readonly Group[];
  pools: readonly PoolState[];
  options: readonly Option[];
  classes: readonly NodeClass[];
  seed: Packing;
  penalty: readonly number[];
  /** The aggregate model: its quota and budget rows hold for the node-level model too. */
  model: PlacementModel;
  backends: LpBackends;
  timeLeft: () => number;
  /** Prove the node-level bound (the full pricer), not only improve the plan. */
  prove?: boolean;
  /** Whether the plan's whole budget is spent (the repair after packing stops then). */
  outOfTime?: () => boolean;
  /** Milliseconds left of the plan's whole budget. */
  budgetLeft?: () => number;
  /**
   * The seed plan's cost (its objective: node costs and per-task costs): column generation's tail-off is
   * measured against it, and with the seed's penalties it is a plan's value the bound may use.
   */
  scale?: number;
}): NodePlan | undefined {
  const { groups, pools, options, classes } = input;
  const types = nodeTypes(groups, pools, options, classes);
  const seeds = seedColumns(types, classes, input.seed, options, pools);
  const result = solveNodeModel({
    groups,
    options,
    types,
    seeds,
    penalty: input.penalty,
    limits: nodeLimits(input.model),
    backends: input.backends,
    timeLeft: input.timeLeft,
    prove: input.prove ?? false,
    ...(input.scale !== undefined ? { scale: input.scale } : {}),
    ...(input.scale !== undefined
      ? {
          upper: input.scale + input.seed.unplaced.reduce((s, u) => s + input.penalty[u.group]! * u.count, 0),
        }
      : {}),
  });
  if (!result) return undefined;
  // Whole columns as many times as the model takes them; then also those it takes more than ROUND_UP
  // of a node beyond that once more (a node it nearly fills is often cheaper than best fit's leftovers).
  const before = input.budgetLeft?.() ?? Infinity;
  let packing = realise(input, types, result.columns, result.lambda, 1);
  const after = input.budgetLeft?.() ?? Infinity;
  // The second packing only where the budget holds another as long as the first.
  if (after > 1.5 * (before - after) && !input.outOfTime?.()) {
    const up = realise(input, types, result.columns, result.lambda, ROUND_UP);
    const a = { packing: up, cost: costOf(up, options, pools) };
    if (better(a, { packing, cost: costOf(packing, options, pools) }, input.model)) packing = up;
  }
  return {
    packing,
    bound: result.bound,
    proven: result.proven,
    rounds: result.rounds,
    columns: result.columns.length,
    ...(result.note ? { note: result.note } : {}),
  };
}

/**
 * A packing from the model's answer: each column `⌊λ⌋` times (once more where λ's fraction is at least
 * `roundUp`), running nodes before new ones, larger tasks first within a node; then what is left
 * best-fit, constrained groups first, and the local search.
 */
function realise(
  input: Parameters<typeof nodeLevelPlan>[0],
  types: readonly NodeType[],
  columns: readonly Column[],
  lambda: Float64Array,
  roundUp: number,
): Packing {
  const { groups, options, classes } = input;
  const ctx = input.ctx();
  const packer = new Packer(ctx);
  const left = groups.map((g) => g.taskIds.length);
  const copies = (l: number) => {
    const whole = Math.floor(l + 1e-6);
    return whole + (roundUp < 1 && l - whole >= roundUp ? 1 : 0);
  };
  const order = columns
    .map((c, j) => ({ c, j, n: copies(lambda[j]!) }))
    .filter((x) => x.n > 0)
    .sort((a, b) => Number(types[a.c.type]!.cls === undefined) - Number(types[b.c.type]!.cls === undefined));
  const free = new Map<number, Bin[]>();
  for (const { c, n } of order) {
    const t = types[c.type]!;
    const items = [...c.counts].sort((a, b) => options[b[0]]!.gpuMilli - options[a[0]]!.gpuMilli);
    for (let copy = 0; copy < n; copy++) {
      // Once the column's groups are all placed, its further copies would be empty nodes.
      if (items.every(([oi]) => left[options[oi]!.group]! <= 0)) break;
      const bin = t.cls !== undefined ? nextRunning(free, t, classes, packer) : packer.open(t.pool, t.bucket);
      if (!bin) break;
      for (const [oi, k] of items) {
        const g = options[oi]!.group;
        const want = Math.min(k, left[g]!);
        if (want > 0) left[g]! -= packer.place(oi, bin, want);
      }
    }
  }
  const overflow = groups.map(() => 0);
  for (const gi of constrainedFirst(
    ctx,
    groups.map((g) => g.index).filter((gi) => left[gi]! > 0),
  ))
    overflow[gi] = placeBestFit(ctx, packer, gi, left[gi]!);
  return placeByEviction(ctx, packer, finishPacking(ctx, packer, overflow), input.outOfTime);
}

/**
 * The aggregate model's quota and budget rows as node-model limits: per option the amount one task counts,
 * and the row's room with what may be borrowed.
 */
export function nodeLimits(model: PlacementModel): NodeLimit[] {
  const out: NodeLimit[] = [];
  for (const l of model.limits) {
    if (l.kind === 'max-nodes') continue;
    const row = model.lp.constraints[l.row]!;
    const coef = new Map<number, number>();
    let cap = row.upper ?? Infinity;
    for (const [v, a] of row.terms) {
      const meta = model.vars[v]!;
      if (meta.kind === 'xe' || meta.kind === 'xn') coef.set(meta.option, a);
      else if (meta.kind === 'b') cap += model.lp.variables[v]!.upper ?? Infinity;
    }
    if (Number.isFinite(cap) && coef.size > 0) out.push({ cap: Math.max(0, cap), coef });
  }
  return out;
}

/** The next unused running node of the type's class. */
function nextRunning(
  free: Map<number, Bin[]>,
  t: NodeType,
  classes: readonly NodeClass[],
  packer: Packer,
): Bin | undefined {
  let list = free.get(t.cls!);
  if (!list) {
    const names = new Set(classes[t.cls!]!.nodes.map((n) => n.name));
    list = packer.binsByPool[t.pool]!.filter((b) => names.has(b.id) && b.tasks === 0);
    free.set(t.cls!, list);
  }
  return list.shift();
}

/** A packing's nodes as columns (each used node's contents), plus one full node of each option per type. */
function seedColumns(
  types: readonly NodeType[],
  classes: readonly NodeClass[],
  seed: Packing,
  options: readonly Option[],
  pools: readonly PoolState[],
): Column[] {
  const typeOfNode = new Map<string, number>();
  const typeOfNew = new Map<string, number>();
  types.forEach((t, ti) => {
    if (t.cls !== undefined) for (const n of classes[t.cls]!.nodes) typeOfNode.set(`${t.pool}|${n.name}`, ti);
    else typeOfNew.set(`${t.pool}|${t.bucket}`, ti);
  });
  const byBin = new Map<Bin, Map<number, number>>();
  for (const a of seed.assignments) {
    const m = byBin.get(a.bin) ?? new Map<number, number>();
    m.set(a.option, (m.get(a.option) ?? 0) + a.count);
    byBin.set(a.bin, m);
  }
  const out: Column[] = [];
  for (const [bin, counts] of byBin) {
    const ti = bin.existing
      ? typeOfNode.get(`${bin.pool}|${bin.id}`)
      : typeOfNew.get(`${bin.pool}|${bin.bucket}`);
    if (ti === undefined) continue;
    const t = types[ti]!;
    const cost =
      t.cost + [...counts].reduce((s, [oi, k]) => s + k * (options[oi]!.risk + options[oi]!.preference), 0);
    out.push({ type: ti, counts, cost });
  }
  // A full node of each option, on the few types where it costs least per task (running nodes first):
  // the restricted model starts close to the aggregate LP's mix, and the pricer does the rest. Every
  // option on every type would be thousands of columns, each slowing every round.
  const full = new Map<number, { type: number; counts: Map<number, number>; cost: number; per: number }[]>();
  types.forEach((t, ti) => {
    for (const it of t.items) {
      const k = Math.min(
        Math.floor(t.cpuMilli / Math.max(it.cpu, 1e-9)),
        Math.floor(t.memoryMiB / Math.max(it.mem, 1e-9)),
        it.gpu > 0 ? Math.floor(t.gpuMilli / it.gpu) : Infinity,
        it.whole > 0 ? Math.floor(t.wholeGpus / it.whole) : Infinity,
      );
      if (!(k > 0) || !Number.isFinite(k)) continue;
      const cost = t.cost + k * it.cost;
      const list = full.get(it.group) ?? [];
      list.push({ type: ti, counts: new Map([[it.option, k]]), cost, per: cost / k });
      full.set(it.group, list);
    }
  });
  for (const list of full.values()) {
    list.sort((a, b) => a.per - b.per);
    for (const c of list.slice(0, FULL_NODE_SEEDS))
      out.push({ type: c.type, counts: c.counts, cost: c.cost });
  }
  void pools;
  return out;
}
