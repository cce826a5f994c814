/**
 * Local search after packing: a task left unplaced takes the room of tasks that have somewhere else to
 * go. For each unplaced task (model-constrained groups first), the node of a compatible pool that needs the
 * fewest tasks moved off is cleared just enough, the task goes there, and the moved tasks are placed again
 * by the cheapest feasible move (paid-for room first, else a new node). Only tasks that can always be
 * placed again move: their group may open a node in some pool, and no quota or budget limits it. A plan
 * with fewer tasks unplaced is better whatever it costs, so this runs whenever tasks are left over.
 */
import { type Bin, fitsIn, movable, unput } from './bins.ts';
import { constrainedFirst } from './ffd.ts';
import { type Group, gpuSlots, type Option } from './groups.ts';
import { type Assignment, type Packer, type Packing, type PackContext, repair } from './pack.ts';

/** One task's worth of an assignment that could move off its node. */
interface Victim {
  assignment: Assignment;
  group: Group;
  option: Option;
}

/**
 * Places what it can of the packing's unplaced tasks by moving movable tasks off nodes, and returns the
 * packing with what is still unplaced. The packer must be the one that built the packing. Stops moving
 * when `outOfTime` says so.
 */
export function placeByEviction(
  ctx: PackContext,
  packer: Packer,
  packing: Packing,
  outOfTime: () => boolean = () => false,
): Packing {
  if (packing.unplaced.length === 0) return packing;
  const left = new Map(packing.unplaced.map((u) => [u.group, u]));
  const relocatable = ctx.groups.map((g) => canAlwaysPlace(ctx, packer, g));
  // Assignments per bin, kept up to date as moves add assignments (counts change in place).
  const byBin = new Map<Bin, Assignment[]>();
  let indexed = 0;
  const index = () => {
    for (; indexed < packer.assignments.length; indexed++) {
      const a = packer.assignments[indexed]!;
      const list = byBin.get(a.bin);
      if (list) list.push(a);
      else byBin.set(a.bin, [a]);
    }
    return byBin;
  };
  for (const gi of constrainedFirst(ctx, [...left.keys()])) {
    const u = left.get(gi)!;
    while (u.count > 0 && !outOfTime()) {
      const move = cheapestClearing(ctx, packer, gi, relocatable, index());
      if (!move) break;
      const moved = new Map<number, number>();
      for (const v of move.victims) {
        unput(move.bin, v.group, v.option, 1);
        ctx.ledger.give(v.group, v.option, 1);
        v.assignment.count--;
        moved.set(v.group.index, (moved.get(v.group.index) ?? 0) + 1);
      }
      const placed = packer.place(move.option, move.bin, u.count);
      u.count -= placed;
      let stranded = false;
      for (const [vg, n] of moved) {
        const rest = repair(ctx, packer, vg, n);
        if (rest.count > 0) {
          stranded = true;
          const had = left.get(vg);
          if (had) had.count += rest.count;
          else left.set(vg, { group: vg, count: rest.count });
        }
      }
      // A move that stranded what it moved gained nothing: stop before it repeats.
      if (placed === 0 || stranded) break;
    }
  }
  // Emptied assignments leave the list in place (a spread push overflows the stack at a million).
  let kept = 0;
  for (const a of packer.assignments) if (a.count > 0) packer.assignments[kept++] = a;
  packer.assignments.length = kept;
  return {
    assignments: packer.assignments,
    bins: packer.usedBins(),
    unplaced: [...left.values()].filter((u) => u.count > 0),
  };
}

/** No quota or budget limits the group: moving its tasks cannot be refused by one. */
function unlimited(g: Group): boolean {
  const p = g.policy;
  return !p || (p.quotas.length === 0 && p.budget?.perHour === undefined);
}

/** Whether every task of the group can be placed again wherever it is moved from. */
function canAlwaysPlace(ctx: PackContext, packer: Packer, g: Group): boolean {
  if (!unlimited(g)) return false;
  return ctx.optionsByGroup[g.index]!.some((oi) => {
    const o = ctx.options[oi]!;
    return o.perNode > 0 && movable(o) && packer.roomToGrow(o.pool) > 0;
  });
}

/**
 * The node (and option) where one task of the group fits after moving the fewest tasks off it, largest
 * first in what the task lacks.
 */
function cheapestClearing(
  ctx: PackContext,
  packer: Packer,
  gi: number,
  relocatable: readonly boolean[],
  byBin: ReadonlyMap<Bin, readonly Assignment[]>,
): { bin: Bin; option: number; victims: Victim[] } | undefined {
  const g = ctx.groups[gi]!;
  let best: { bin: Bin; option: number; victims: Victim[] } | undefined;
  // Where a task of a group could go now (at most two nodes: one besides the node being cleared).
  const roomFor = new Map<number, Bin[]>();
  const elsewhere = (vg: Group, target: Bin) => {
    let found = roomFor.get(vg.index);
    if (!found) {
      found = [];
      for (const oi of ctx.optionsByGroup[vg.index]!) {
        const vo = ctx.options[oi]!;
        if (ctx.ledger.allowance(vg, vo, 1).n === 0) continue;
        for (const b of packer.binsByPool[vo.pool]!) {
          if (found.length >= 2) break;
          if (b.cpuMilli >= vg.cpuMilli && b.memoryMiB >= vg.memoryMiB && fitsIn(b, vg, vo) > 0)
            found.push(b);
        }
        if (found.length >= 2) break;
      }
      roomFor.set(vg.index, found);
    }
    return found.some((b) => b !== target);
  };
  for (const oi of ctx.optionsByGroup[gi]!) {
    const o = ctx.options[oi]!;
    if (ctx.ledger.allowance(g, o, 1).n === 0) continue;
    for (const bin of packer.binsByPool[o.pool]!) {
      if (!bin.existing && bin.bucket < g.durationSeconds) continue;
      const victims = clearing(ctx, bin, g, o, byBin.get(bin) ?? [], relocatable, elsewhere);
      if (victims && (!best || victims.length < best.victims.length)) best = { bin, option: oi, victims };
      if (best?.victims.length === 1) return best;
    }
  }
  return best;
}

/** The tasks to move off the bin so one task of the option fits, or undefined when none would do. */
function clearing(
  ctx: PackContext,
  bin: Bin,
  g: Group,
  o: Option,
  on: readonly Assignment[],
  relocatable: readonly boolean[],
  elsewhere: (vg: Group, target: Bin) => boolean,
): Victim[] | undefined {
  // Tasks that could move, per assignment: how many of it are still on the node in the trial. Besides
  // tasks that can always be placed again, one task that fits on another node right now may move (a
  // constrained task onto another running node of its models).
  const candidates: (Victim & { left: number; once: boolean })[] = [];
  for (const a of on) {
    if (a.count <= 0) continue;
    const vo = ctx.options[a.option]!;
    const vg = ctx.groups[vo.group]!;
    if (vg.index === g.index || !movable(vo)) continue;
    if (relocatable[vg.index])
      candidates.push({ assignment: a, group: vg, option: vo, left: a.count, once: false });
    else if (unlimited(vg) && elsewhere(vg, bin))
      candidates.push({ assignment: a, group: vg, option: vo, left: 1, once: true });
  }
  if (candidates.length === 0) return undefined;
  // A copy of the node to try the moves on.
  const trial: Bin = {
    ...bin,
    gpuMilli: [...bin.gpuMilli],
    ...(bin.wholeTaken ? { wholeTaken: [...bin.wholeTaken] } : {}),
  };
  const lack = (v: Victim) =>
    (g.cpuMilli > trial.cpuMilli ? v.group.cpuMilli / Math.max(g.cpuMilli, 1) : 0) +
    (g.memoryMiB > trial.memoryMiB ? v.group.memoryMiB / Math.max(g.memoryMiB, 1) : 0) +
    (o.gpuMilli > 0 && gpuSlots(trial.gpuMilli, o.gpuMilli / 1000) === 0
      ? v.option.gpuMilli / o.gpuMilli
      : 0);
  const victims: Victim[] = [];
  while (fitsIn(trial, g, o) === 0) {
    let pick = -1;
    let most = 0;
    candidates.forEach((v, i) => {
      // Tasks that can always be placed again go first on a tie.
      const l = v.left > 0 ? lack(v) * (v.once ? 0.99 : 1) : 0;
      if (l > most) {
        most = l;
        pick = i;
      }
    });
    if (pick < 0) return undefined;
    const v = candidates[pick]!;
    v.left--;
    // At most one task that is only known to fit elsewhere now: two might want the same room.
    if (v.once) for (const c of candidates) if (c.once) c.left = 0;
    unput(trial, v.group, v.option, 1);
    victims.push({ assignment: v.assignment, group: v.group, option: v.option });
  }
  return victims;
}
