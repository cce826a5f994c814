/**
 * A whole batch with gangs in it: the gangs first, each whole or not at all ({@link planGangs}), then
 * the rest of the batch by {@link plan} on what the gangs left.
 */
import type { Policy } from '../policies/index.ts';
import { type GangRequest, planGangs } from './gang.ts';
import { plan, type PlanOptions } from './plan.ts';
import type { Plan, Snapshot, TaskRequest } from './types.ts';

/**
 * Plans a batch whose requests may be gang members (`request.gang`). A gang whose members are not all in
 * the batch is left unplaced (kind `capacity`: it waits for the rest).
 *
 * @example
 * const result = planBatch({ pools }, requests, platform.policies, { backends });
 * result.gangs; // where each gang went
 */
export function planBatch(
  snapshot: Snapshot,
  requests: readonly TaskRequest[],
  policies: readonly Policy[],
  options: PlanOptions = {},
): Plan {
  const single: TaskRequest[] = [];
  const byGang = new Map<string, TaskRequest[]>();
  for (const r of requests) {
    if (!r.gang) single.push(r);
    else byGang.set(r.gang.id, [...(byGang.get(r.gang.id) ?? []), r]);
  }
  if (byGang.size === 0) return plan(snapshot, requests, policies, options);
  const gangs: GangRequest[] = [];
  const incomplete: Plan['unplaced'] = [];
  for (const [id, members] of byGang) {
    const size = members[0]!.gang!.size;
    const ranks = new Set(members.map((m) => m.gang!.rank));
    if (members.length === size && ranks.size === size) {
      gangs.push({ id, members: members.sort((a, b) => a.gang!.rank - b.gang!.rank) });
    } else {
      for (const m of members)
        incomplete.push({
          taskId: m.id,
          reason: {
            kind: 'capacity',
            detail: `gang ${id} has ${ranks.size} of its ${size} members pending; it waits for the rest`,
          },
        });
    }
  }
  const g = planGangs(snapshot, gangs, policies);
  const rest = plan(g.residual, single, policies, options);
  return {
    ...rest,
    placements: [...g.placements, ...rest.placements],
    newNodes: [...g.newNodes, ...rest.newNodes],
    unplaced: [...g.unplaced, ...incomplete, ...rest.unplaced],
    cost: {
      perHour: rest.cost.perHour + g.perHour,
      expected: rest.cost.expected + g.expected,
      objective: rest.cost.objective + g.expected,
    },
    gangs: g.explanations,
  };
}
