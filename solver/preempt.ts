/**
 * Priority preemption: which running work to stop so that a request no pool has room for fits. Pure:
 * the broker gives the pools, the running work it could stop, and the request's policy; this picks, on
 * one node, the set of lower-priority leases the policy lets it stop that frees enough room at the
 * least rework cost (what the stopped work loses: its elapsed time × its price).
 */
import type { Policy } from '../policies/index.ts';
import { groupRequests, incompatibility, makeOption, tasksThatFit } from './groups.ts';
import type { PoolState, TaskRequest } from './types.ts';

/** Running work the broker could stop. */
export interface VictimCandidate {
  leaseId: string;
  team: string;
  priority: number;
  cluster: string;
  /** The node it runs on, as the pools name it. */
  node: string;
  cpuMilli: number;
  memoryMiB: number;
  gpuMilli: number;
  /** Dollars of work lost if stopped now: elapsed hours × its $/hour. */
  reworkCost: number;
}

/** The leases to stop for a request, where it then fits, and why. */
export interface PreemptionChoice {
  victims: VictimCandidate[];
  poolId: string;
  node: string;
  reworkCost: number;
  detail: string;
}

/**
 * Chooses victims for `request` under its team's `policy`, or undefined when the policy does not allow
 * preemption or no set of allowed victims on one node frees enough room.
 *
 * @example
 * const c = chooseVictims(request, pools, running, policy);
 * if (c) for (const v of c.victims) stop(v.leaseId, c.detail);
 */
export function chooseVictims(
  request: TaskRequest,
  pools: readonly PoolState[],
  candidates: readonly VictimCandidate[],
  policy: Policy | undefined,
): PreemptionChoice | undefined {
  const rule = policy?.preemption;
  if (!rule || (!rule.withinTeam && !rule.lowerPriority)) return undefined;
  const group = groupRequests([request], () => policy)[0]!;
  const priority = group.priority;
  const allowed = candidates.filter(
    (c) =>
      c.priority < priority &&
      (c.team === request.team ? rule.withinTeam === true : rule.lowerPriority === true),
  );
  if (allowed.length === 0) return undefined;
  const byNode = new Map<string, VictimCandidate[]>();
  for (const c of allowed) {
    const key = `${c.cluster}|${c.node}`;
    byNode.set(key, [...(byNode.get(key) ?? []), c]);
  }
  let best: PreemptionChoice | undefined;
  pools.forEach((pool, pi) => {
    if (incompatibility(group, pool)) return;
    const option = makeOption(group, pool, pi);
    if (option.perNode === 0) return;
    const gpuCount = option.gpuMilli / 1000;
    for (const node of pool.nodes) {
      const here = byNode.get(`${pool.cluster}|${node.name}`);
      if (!here) continue;
      // Least rework first; among equals the lowest priority.
      const order = [...here].sort((a, b) => a.reworkCost - b.reworkCost || a.priority - b.priority);
      const free = {
        cpuMilli: node.freeCpuMilli,
        memoryMiB: node.freeMemoryMiB,
        gpu: node.freeGpuMilli.reduce((s, g) => s + g, 0),
      };
      const victims: VictimCandidate[] = [];
      let cost = 0;
      for (const v of order) {
        if (best && cost + v.reworkCost >= best.reworkCost) break;
        victims.push(v);
        cost += v.reworkCost;
        free.cpuMilli += v.cpuMilli;
        free.memoryMiB += v.memoryMiB;
        free.gpu += v.gpuMilli;
        // Whole devices come back whole: freed GPU thousandths are counted as devices.
        const devices = Array.from({ length: pool.gpuCount }, (_, d) =>
          d < Math.floor(free.gpu / 1000) ? 1000 : 0,
        );
        if (
          tasksThatFit(
            { cpuMilli: free.cpuMilli, memoryMiB: free.memoryMiB, gpuMilli: devices },
            group.cpuMilli,
            group.memoryMiB,
            gpuCount,
          ) >= 1
        ) {
          best = {
            victims: [...victims],
            poolId: pool.id,
            node: node.name,
            reworkCost: cost,
            detail:
              `preempted by priority-${priority} work of team ${request.team} (${request.id}) on ${pool.id} node ${node.name}: ` +
              `policy ${policy!.name} allows preempting ${rule.withinTeam && rule.lowerPriority ? 'lower-priority work' : rule.withinTeam ? "its team's lower-priority work" : "other teams' lower-priority work"}`,
          };
          break;
        }
      }
    }
  });
  return best;
}
