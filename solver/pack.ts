/**
 * Packing: turns the LP's fractional answer into tasks on concrete nodes — named existing nodes and
 * numbered new nodes per pool — first-fit-decreasing, then repairs what rounding or packing left over by
 * the cheapest feasible move. The result is feasible node by node, quota by quota.
 */
import { type Bin, existingBins, fitsIn, newBin, put, taskSize } from './bins.ts';
import type { Group, NodeClass, Option } from './groups.ts';
import type { Ledger, Refusal } from './ledger.ts';
import { constrainedFirst } from './ffd.ts';
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

  /** New nodes the pool may still add. */
  roomToGrow(pool: number): number {
    return this.ctx.pools[pool]!.maxNewNodes - this.opened[pool]!;
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
 * Packs integer intents onto the packer's nodes: intents on a running-node class go to that class's
 * nodes (node by node, largest tasks first); the rest open new nodes per pool and duration bucket.
 * Returns, per group, how many tasks did not fit (the caller gives the intents' shortfall to `overflow`).
 *
 * @param classes node classes, as the LP saw them (a class's nodes are found among the packer's bins by name).
 */
export function packIntents(
  ctx: PackContext,
  packer: Packer,
  classes: readonly NodeClass[],
  intents: readonly Intent[],
  overflow: number[],
): void {
  const bySize = (a: Intent, b: Intent) => size(ctx, b.option) - size(ctx, a.option);
  const perClass = new Map<number, Intent[]>();
  for (const it of intents)
    if (it.cls !== undefined) perClass.set(it.cls, [...(perClass.get(it.cls) ?? []), { ...it }]);
  for (const [ci, list] of perClass) {
    list.sort(bySize);
    const names = new Set(classes[ci]!.nodes.map((n) => n.name));
    const bins = packer.binsByPool[classes[ci]!.pool]!.filter((b) => names.has(b.id));
    spread(packer, bins, list, (it) => isLarge(ctx, it.option));
    for (const it of list) overflow[ctx.options[it.option]!.group]! += it.count;
  }

  // New nodes, pool by pool, longest tasks first: each task fills a node already being added for at least
  // its duration before a new one is opened for its own bucket (the LP's nesting, node by node).
  const perPool = new Map<number, Intent[]>();
  for (const it of intents) {
    if (it.cls !== undefined) continue;
    const pool = ctx.options[it.option]!.pool;
    perPool.set(pool, [...(perPool.get(pool) ?? []), { ...it }]);
  }
  const duration = (it: Intent) => ctx.groups[ctx.options[it.option]!.group]!.durationSeconds;
  for (const [pool, list] of perPool) {
    list.sort((a, b) => duration(b) - duration(a) || bySize(a, b));
    const bins = packer.binsByPool[pool]!;
    for (let i = 0; i < list.length; i++) {
      const it = list[i]!;
      for (const bin of bins) {
        if (it.count <= 0) break;
        if (!bin.existing) it.count -= packer.place(it.option, bin, it.count);
      }
      while (it.count > 0) {
        const bin = packer.open(pool, duration(it));
        if (!bin) break;
        const k = packer.place(it.option, bin, it.count);
        it.count -= k;
        // Fill the rest of the new node with the following (shorter or smaller) intents.
        for (let j = i + 1; j < list.length && k > 0; j++) {
          const later = list[j]!;
          if (later.count > 0) later.count -= packer.place(later.option, bin, later.count);
        }
        if (k === 0) break; // quota or budget refused it: repair decides
      }
    }
    for (const it of list) overflow[ctx.options[it.option]!.group]! += it.count;
  }
}

/**
 * Puts intents on a class of identical nodes the way the LP sees them. Large tasks (a quarter of a node or
 * more in some resource) and intents with fewer tasks than there are nodes go first, largest first, each
 * onto the fullest node that still takes it: an 8-GPU task needs a node whose eight devices are all free,
 * and it finds none once small tasks were spread everywhere. The LP only knows the class's totals per
 * resource, so the rest is spread evenly (a GPU-heavy and a CPU-heavy group then share each node as they
 * share the class, instead of filling separate nodes and stranding GPUs on one and cpu on the other); the
 * remainders go round the nodes one task at a time.
 */
function spread(packer: Packer, bins: readonly Bin[], list: Intent[], large: (it: Intent) => boolean): void {
  const m = bins.length;
  if (m === 0) return;
  const first = list.filter((it) => large(it) || it.count < m);
  for (const it of first) {
    const order = [...bins].sort((a, b) => b.tasks - a.tasks);
    for (const bin of order) {
      if (it.count <= 0) break;
      it.count -= packer.place(it.option, bin, it.count);
    }
  }
  for (const it of list) {
    const share = Math.floor(it.count / m);
    if (share === 0) continue;
    for (const bin of bins) it.count -= packer.place(it.option, bin, share);
  }
  let cursor = 0;
  for (const it of list) {
    let misses = 0;
    while (it.count > 0 && misses < m) {
      const bin = bins[cursor % m]!;
      cursor++;
      if (packer.place(it.option, bin, 1) === 1) {
        it.count--;
        misses = 0;
      } else misses++;
    }
  }
}

/** Whether one task of the option takes a quarter or more of a node of its pool in some resource. */
function isLarge(ctx: PackContext, option: number): boolean {
  const o = ctx.options[option]!;
  const g = ctx.groups[o.group]!;
  const p = ctx.pools[o.pool]!;
  return (
    g.cpuMilli >= p.cpuMilli / 4 ||
    g.memoryMiB >= p.memoryMiB / 4 ||
    (p.gpuCount > 0 && o.gpuMilli >= (p.gpuCount * 1000) / 4)
  );
}

/** Repairs every group's overflow, higher priorities first, and returns the packing. */
export function finishPacking(ctx: PackContext, packer: Packer, overflow: readonly number[]): Packing {
  const unplaced: Packing['unplaced'] = [];
  // Constrained and large tasks first, as FFD takes them: a P100-only task repaired after an any-GPU one
  // finds the P100 nodes taken by work that could have gone elsewhere.
  const order = constrainedFirst(
    ctx,
    ctx.groups.map((g) => g.index).filter((gi) => overflow[gi]! > 0),
  );
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
export function repair(
  ctx: PackContext,
  packer: Packer,
  group: number,
  count: number,
): { count: number; refusal?: Refusal } {
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

function cheapestPaidBin(
  ctx: PackContext,
  packer: Packer,
  opts: number[],
): { option: number; bin: Bin } | undefined {
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

function cheapestNewNode(
  ctx: PackContext,
  packer: Packer,
  opts: number[],
  count: number,
): number | undefined {
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
