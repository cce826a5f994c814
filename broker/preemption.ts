/**
 * Priority preemption in a cycle: for each request no pool had room for, whose policy allows it, the
 * solver picks lower-priority running work to stop ({@link chooseVictims}); the broker ends those leases
 * as preempted (they are placed again) and puts the request first in the next cycle.
 */
import type { Platform } from '../policies/index.ts';
import {
  chooseVictims,
  type PoolState,
  type PreemptionChoice,
  type TaskRequest,
  type VictimCandidate,
} from '../solver/index.ts';
import type { LeaseRecord, RequestRecord } from './records.ts';
import type { BrokerState } from './state.ts';

/** One preemption a cycle decided: who stopped whom, and why. */
export interface Preemption {
  request: RequestRecord;
  victims: { lease: LeaseRecord; request: RequestRecord }[];
  detail: string;
}

/**
 * Preempts for `held` requests (unplaced for capacity) where their policies allow; returns what it did.
 * Leases placed in this cycle and gang members are never victims.
 */
export function preemptFor(
  held: readonly { record: RequestRecord; request: TaskRequest }[],
  pools: readonly PoolState[],
  state: BrokerState,
  platform: Platform,
  now: number,
  placedNow: ReadonlySet<string>,
): Preemption[] {
  const wanting = held.filter(({ record }) => {
    const p = platform.policyFor(record.team)?.preemption;
    return p && (p.withinTeam || p.lowerPriority);
  });
  if (wanting.length === 0) return [];
  const candidates: VictimCandidate[] = [];
  for (const l of state.active()) {
    const r = state.requests.get(l.requestId);
    if (!r || l.gang || placedNow.has(l.leaseId)) continue;
    const hours = l.startedAt !== undefined ? Math.max(0, now - l.startedAt) / 3_600_000 : 0;
    candidates.push({
      leaseId: l.leaseId,
      team: r.team,
      priority: r.priority ?? platform.policyFor(r.team)?.priority ?? 0,
      cluster: l.cluster,
      node: l.actualNode ?? l.node,
      cpuMilli: l.cpuMilli,
      memoryMiB: l.memoryMiB,
      gpuMilli: l.gpuMilli,
      reworkCost: hours * l.pricePerHour,
    });
  }
  const out: Preemption[] = [];
  const taken = new Set<string>();
  const ordered = [...wanting].sort((a, b) => (b.request.priority ?? 0) - (a.request.priority ?? 0));
  for (const { record, request } of ordered) {
    const choice: PreemptionChoice | undefined = chooseVictims(
      request,
      pools,
      candidates.filter((c) => !taken.has(c.leaseId)),
      platform.policyFor(record.team),
    );
    if (!choice) continue;
    const victims = choice.victims.map((v) => {
      taken.add(v.leaseId);
      const lease = state.leases.get(v.leaseId)!;
      return { lease, request: state.requests.get(lease.requestId)! };
    });
    for (const { lease, request: vr } of victims) {
      // Stopped for other work, not reclaimed: the victim keeps its spot preference.
      const avoidSpot = vr.avoidSpot;
      state.transition(lease.leaseId, 'preempted', { reason: choice.detail });
      vr.avoidSpot = avoidSpot;
    }
    out.push({ request: record, victims, detail: choice.detail });
  }
  return out;
}
