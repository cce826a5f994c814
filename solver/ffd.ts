/**
 * The FFD baseline and floor: first-fit-decreasing as a good hand-written scheduler does it. Groups are
 * taken constrained first (higher priority, then fewer compatible pools, then larger tasks); each goes to
 * the fullest paid-for node it fits on (best fit: running nodes and nodes this plan already adds), and what
 * is left opens nodes in the pool with the lowest price per slot. Same policies, quotas and budgets as the
 * LP plan. The plan returned is never worse than this.
 */
import { type Bin, fitsIn } from './bins.ts';
import type { Group } from './groups.ts';
import { type Packing, type PackContext, Packer } from './pack.ts';

/**
 * Group order of FFD: priority, then model-constrained groups (a GPU any-of list naming models, not `*`),
 * fewest compatible pools first, then larger tasks (GPUs, then cpu, then memory).
 */
export function constrainedFirst(ctx: PackContext, groups: readonly number[]): number[] {
  const key = (gi: number) => {
    const g = ctx.groups[gi]!;
    const list = ctx.optionsByGroup[gi]!;
    const constrained = g.gpu.length > 0 && g.gpu.every((a) => a.model !== '*');
    return {
      constrained: constrained ? 0 : 1,
      pools: constrained ? new Set(list.map((oi) => ctx.options[oi]!.pool)).size : 0,
      size: Math.max(0, ...g.gpu.map((a) => a.count)) * 1e12 + g.cpuMilli * 1e3 + g.memoryMiB / 1024,
    };
  };
  const keys = new Map(groups.map((gi) => [gi, key(gi)]));
  return [...groups].sort((a, b) => {
    const ka = keys.get(a)!;
    const kb = keys.get(b)!;
    return (
      ctx.groups[b]!.priority - ctx.groups[a]!.priority ||
      ka.constrained - kb.constrained ||
      ka.pools - kb.pools ||
      kb.size - ka.size ||
      a - b
    );
  });
}

/** How full a bin is, 0 (empty) to 3 (full in cpu, memory and GPUs): best fit takes the fullest first. */
function fullness(ctx: PackContext, bin: Bin): number {
  const p = ctx.pools[bin.pool]!;
  const gpuFree = bin.gpuMilli.reduce((a, b) => a + b, 0);
  return (
    1 -
    bin.cpuMilli / Math.max(p.cpuMilli, 1) +
    (1 - bin.memoryMiB / Math.max(p.memoryMiB, 1)) +
    (p.gpuCount > 0 ? 1 - gpuFree / (p.gpuCount * 1000) : 0)
  );
}

/**
 * Places `count` tasks of one group FFD-style on the packer: paid-for nodes, cheapest (risk and
 * preferences) then fullest first, then new nodes in the pool with the lowest price per slot. Returns the
 * tasks left.
 */
export function placeBestFit(ctx: PackContext, packer: Packer, gi: number, count: number): number {
  const g: Group = ctx.groups[gi]!;
  const allowed = ctx.optionsByGroup[gi]!.filter((oi) => ctx.ledger.allowance(g, ctx.options[oi]!, 1).n > 0);
  // The paid-for nodes it fits on, as parallel arrays (a batch of 250K tasks has tens of thousands of
  // nodes per group: one object each was most of the plan's garbage collection).
  const bins: Bin[] = [];
  const option: number[] = [];
  const cost: number[] = [];
  const full: number[] = [];
  for (const oi of allowed) {
    const o = ctx.options[oi]!;
    for (const bin of packer.binsByPool[o.pool]!)
      if (bin.cpuMilli >= g.cpuMilli && bin.memoryMiB >= g.memoryMiB && fitsIn(bin, g, o) > 0) {
        bins.push(bin);
        option.push(oi);
        cost.push(o.risk + o.preference);
        full.push(fullness(ctx, bin));
      }
  }
  const order = Array.from(bins, (_b, i) => i).sort((a, b) => cost[a]! - cost[b]! || full[b]! - full[a]!);
  for (const i of order) {
    if (count <= 0) return 0;
    count -= packer.place(option[i]!, bins[i]!, count);
  }
  const blocked = new Set<number>();
  while (count > 0) {
    let best: { option: number; cost: number } | undefined;
    for (const oi of allowed) {
      const o = ctx.options[oi]!;
      if (blocked.has(oi) || o.perNode === 0 || !packer.canOpen(o.pool)) continue;
      const p = ctx.pools[o.pool]!;
      const nodeCost = (p.price * (g.durationSeconds + p.launchDelaySeconds)) / 3600;
      const cost = nodeCost / Math.min(o.perNode, count) + o.risk + o.preference;
      if (!best || cost < best.cost - 1e-12) best = { option: oi, cost };
    }
    if (!best) break;
    const bin = packer.open(ctx.options[best.option]!.pool, g.durationSeconds)!;
    const k = packer.place(best.option, bin, count);
    if (k === 0) blocked.add(best.option);
    count -= k;
  }
  return count;
}

/**
 * The FFD packing of every task in the context; `then`, when given, improves the packing with the packer
 * that built it (the plan's local search).
 */
export function ffdPack(ctx: PackContext, then?: (packer: Packer, packing: Packing) => Packing): Packing {
  const packer = new Packer(ctx);
  const unplaced: Packing['unplaced'] = [];
  const order = constrainedFirst(
    ctx,
    ctx.groups.map((g) => g.index),
  );
  for (const gi of order) {
    const g = ctx.groups[gi]!;
    const left = placeBestFit(ctx, packer, gi, g.taskIds.length);
    if (left > 0) {
      const refusal = ctx.optionsByGroup[gi]!.map(
        (oi) => ctx.ledger.allowance(g, ctx.options[oi]!, 1).refusal,
      ).find((r) => r !== undefined);
      unplaced.push(refusal ? { group: gi, count: left, refusal } : { group: gi, count: left });
    }
  }
  const packing = { assignments: packer.assignments, bins: packer.usedBins(), unplaced };
  return then ? then(packer, packing) : packing;
}
