/**
 * The baseline: a cheapest-first, per-task greedy in request order — what a scheduler that places one task
 * at a time does. Each task takes the cheapest room already paid for (a running node, or a node this plan
 * already adds), else opens a node in the pool where the task's own share costs least. Same policies,
 * quotas and budgets as the LP plan, so the two are comparable.
 */
import { fitsIn } from './bins.ts';
import type { Ledger } from './ledger.ts';
import { type Packing, type PackContext, Packer } from './pack.ts';

/**
 * Places tasks one by one in the order given by `taskGroups` (the group index of each task, in request
 * order).
 */
export function greedyPack(ctx: PackContext, taskGroups: readonly number[]): Packing {
  const packer = new Packer(ctx);
  const cursor = ctx.options.map(() => 0);
  const unplaced = new Map<number, Packing['unplaced'][number]>();
  const ledger: Ledger = ctx.ledger;

  for (const gi of taskGroups) {
    const g = ctx.groups[gi]!;
    let best: { option: number; binIndex: number; cost: number } | undefined;
    let refused: Packing['unplaced'][number]['refusal'];
    const allowed: number[] = [];
    for (const oi of ctx.optionsByGroup[gi]!) {
      const o = ctx.options[oi]!;
      const a = ledger.allowance(g, o, 1);
      if (a.n === 0) {
        refused = a.refusal;
        continue;
      }
      allowed.push(oi);
      const bins = packer.binsByPool[o.pool]!;
      // Bins only fill up, so one that cannot take this group now never will: the cursor only advances.
      let i = cursor[oi]!;
      while (i < bins.length && fitsIn(bins[i]!, g, o) === 0) i++;
      cursor[oi] = i;
      const cost = o.risk + o.preference;
      if (i < bins.length && (!best || cost < best.cost)) best = { option: oi, binIndex: i, cost };
    }
    if (best) {
      const o = ctx.options[best.option]!;
      packer.place(best.option, packer.binsByPool[o.pool]![best.binIndex]!, 1);
      continue;
    }
    let fresh: { option: number; cost: number } | undefined;
    for (const oi of allowed) {
      const o = ctx.options[oi]!;
      if (o.perNode === 0 || !packer.canOpen(o.pool)) continue;
      const cost = o.costPerTask + o.preference;
      if (!fresh || cost < fresh.cost) fresh = { option: oi, cost };
    }
    if (fresh) {
      const o = ctx.options[fresh.option]!;
      const bin = packer.open(o.pool, g.durationSeconds)!;
      if (packer.place(fresh.option, bin, 1) === 1) continue;
    }
    const entry = unplaced.get(gi) ?? { group: gi, count: 0 };
    entry.count++;
    if (allowed.length === 0 && refused) entry.refusal = refused;
    unplaced.set(gi, entry);
  }
  return { assignments: packer.assignments, bins: packer.usedBins(), unplaced: [...unplaced.values()] };
}
