/**
 * Packing: turns the LP's fractional answer into tasks on concrete nodes — named existing nodes and
 * numbered new nodes per pool — first-fit-decreasing, then repairs what rounding or packing left over by
 * the cheapest feasible move. The result is feasible node by node, quota by quota.
 */
import { type Bin, existingBins, fitsIn, newBin, put, taskSize } from './bins.ts';
import type { Group, NodeClass, Option } from './groups.ts';
import type { Ledger, Refusal } from './ledger.ts';
import type { PoolState } from './types.ts';

/** Tasks of one option put on one bin. */
export interface Assignment {
  option: number;
  bin: Bin;
  count: number;
}

/** Packed tasks per group, the bins used, and what could not be placed. */
export interface Packing {
  assignments: Assignment[];
  bins: Bin[];
  unplaced: { group: number; count: number; refusal?: Refusal }[];
}

/** An integer amount of an option the rounded LP asks for: on existing class `cls`, or on new nodes. */
export interface Intent {
  option: number;
  count: number;
  cls?: number;
}

export interface PackContext {
  groups: readonly Group[];
  pools: readonly PoolState[];
  options: readonly Option[];
  optionsByGroup: readonly number[][];
  ledger: Ledger;
}

/** Mutable packing state: bins per pool and new nodes opened so far. */
export class Packer {
  readonly binsByPool: Bin[][];
  private readonly opened: number[];
  readonly assignments: Assignment[] = [];

  constructor(private readonly ctx: PackContext) {
    this.binsByPool = ctx.pools.map((p, i) => existingBins(p, i));
    this.opened = ctx.pools.map(() => 0);
  }

  /** Puts up to `want` tasks of the option on the bin, within fit and quota. Returns how many. */
  place(option: number, bin: Bin, want: number): number {
    const o = this.ctx.options[option]!;
    const g = this.ctx.groups[o.group]!;
    const k = Math.min(want, fitsIn(bin, g, o), this.ctx.ledger.allowance(g, o, want).n);
    if (k <= 0) return 0;
    put(bin, g, o, k);
    this.ctx.ledger.take(g, o, k);
    this.assignments.push({ option, bin, count: k });
    return k;
  }

  /** Opens a new node in the pool for the bucket, if the pool may still grow. */
  open(pool: number, bucket: number): Bin | undefined {
    const p = this.ctx.pools[pool]!;
    if (this.opened[pool]! >= p.maxNewNodes) return undefined;
    const bin = newBin(p, pool, ++this.opened[pool]!, bucket);
    this.binsByPool[pool]!.push(bin);
    return bin;
  }

  canOpen(pool: number): boolean {
    return this.opened[pool]! < this.ctx.pools[pool]!.maxNewNodes;
  }

  /** All bins that received tasks. */
  usedBins(): Bin[] {
    return this.binsByPool.flat().filter((b) => b.tasks > 0);
  }
}

/**
 * Packs the rounded LP answer, then repairs leftovers.
 *
 * @param classes existing-node classes, as the LP saw them (intents on a class go to its nodes).
 */
export function packIntents(ctx: PackContext, classes: readonly NodeClass[], intents: readonly Intent[]): Packing {
  const packer = new Packer(ctx);
  // Tasks the LP left unplaced go straight to repair, which says why they cannot go anywhere.
  const overflow = ctx.groups.map((g) => g.taskIds.length);
  for (const it of intents) overflow[ctx.options[it.option]!.group]! -= it.count;
  const bySize = (a: Intent, b: Intent) => size(ctx, b.option) - size(ctx, a.option);

  // Existing nodes, class by class, node by node, largest tasks first.
  const perClass = new Map<number, Intent[]>();
  for (const it of intents) if (it.cls !== undefined) perClass.set(it.cls, [...(perClass.get(it.cls) ?? []), { ...it }]);
  for (const [ci, list] of perClass) {
    list.sort(bySize);
    const names = new Set(classes[ci]!.nodes.map((n) => n.name));
    const bins = packer.binsByPool[classes[ci]!.pool]!.filter((b) => names.has(b.id));
    for (const bin of bins) for (const it of list) if (it.count > 0) it.count -= packer.place(it.option, bin, it.count);
    for (const it of list) overflow[ctx.options[it.option]!.group]! += it.count;
  }

  // New nodes, per pool and duration bucket: open a node, fill it largest first, repeat.
  const perBucket = new Map<string, Intent[]>();
  for (const it of intents) {
    if (it.cls !== undefined) continue;
    const o = ctx.options[it.option]!;
    const key = `${o.pool}:${ctx.groups[o.group]!.durationSeconds}`;
    perBucket.set(key, [...(perBucket.get(key) ?? []), { ...it }]);
  }
  for (const [key, list] of perBucket) {
    list.sort(bySize);
    const [pool, bucket] = key.split(':').map(Number) as [number, number];
    while (list.some((it) => it.count > 0)) {
      const bin = packer.open(pool, bucket);
      if (!bin) break;
      let placed = 0;
      for (const it of list) {
        if (it.count <= 0) continue;
        const k = packer.place(it.option, bin, it.count);
        it.count -= k;
        placed += k;
      }
      if (placed === 0) break; // quota or budget refused everything left: repair decides
    }
    for (const it of list) overflow[ctx.options[it.option]!.group]! += it.count;
  }

  const unplaced: Packing['unplaced'] = [];
  const order = ctx.groups.map((g) => g.index).filter((gi) => overflow[gi]! > 0);
  order.sort((a, b) => ctx.groups[b]!.priority - ctx.groups[a]!.priority);
  for (const gi of order) {
    const left = repair(ctx, packer, gi, overflow[gi]!);
    if (left.count > 0) unplaced.push({ group: gi, ...left });
  }
  return { assignments: packer.assignments, bins: packer.usedBins(), unplaced };
}

function size(ctx: PackContext, option: number): number {
  const o = ctx.options[option]!;
  return taskSize(ctx.groups[o.group]!, o);
}

/**
 * Places `count` tasks of a group by the cheapest feasible move, one move at a time: a node that is
 * running or already being added (its price is paid), else a new node in the pool with the lowest cost
 * per task. Returns what is left and why.
 */
export function repair(ctx: PackContext, packer: Packer, group: number, count: number): { count: number; refusal?: Refusal } {
  const g = ctx.groups[group]!;
  let refusal: Refusal | undefined;
  const blocked = new Set<number>();
  while (count > 0) {
    const opts = ctx.optionsByGroup[group]!.filter((oi) => !blocked.has(oi));
    const allowed = opts.filter((oi) => {
      const a = ctx.ledger.allowance(g, ctx.options[oi]!, 1);
      if (a.n === 0) {
        refusal = a.refusal;
        blocked.add(oi);
      }
      return a.n > 0;
    });
    if (allowed.length === 0) break;
    const onPaid = cheapestPaidBin(ctx, packer, allowed);
    if (onPaid) {
      count -= packer.place(onPaid.option, onPaid.bin, count);
      continue;
    }
    const fresh = cheapestNewNode(ctx, packer, allowed, count);
    if (fresh === undefined) {
      refusal = undefined;
      break;
    }
    const bin = packer.open(ctx.options[fresh]!.pool, g.durationSeconds)!;
    const k = packer.place(fresh, bin, count);
    if (k === 0) blocked.add(fresh);
    count -= k;
  }
  return refusal && count > 0 ? { count, refusal } : { count };
}

function cheapestPaidBin(ctx: PackContext, packer: Packer, opts: number[]): { option: number; bin: Bin } | undefined {
  let best: { option: number; bin: Bin; cost: number } | undefined;
  for (const oi of opts) {
    const o = ctx.options[oi]!;
    const cost = o.risk + o.preference;
    if (best && best.cost <= cost) continue;
    const g = ctx.groups[o.group]!;
    const bin = packer.binsByPool[o.pool]!.find((b) => fitsIn(b, g, o) > 0);
    if (bin) best = { option: oi, bin, cost };
  }
  return best;
}

function cheapestNewNode(ctx: PackContext, packer: Packer, opts: number[], count: number): number | undefined {
  let best: { option: number; cost: number } | undefined;
  for (const oi of opts) {
    const o = ctx.options[oi]!;
    if (o.perNode === 0 || !packer.canOpen(o.pool)) continue;
    const p = ctx.pools[o.pool]!;
    const g = ctx.groups[o.group]!;
    const nodeCost = (p.price * (g.durationSeconds + p.launchDelaySeconds)) / 3600;
    const cost = nodeCost / Math.min(o.perNode, count) + o.risk + o.preference;
    if (!best || cost < best.cost) best = { option: oi, cost };
  }
  return best?.option;
}
