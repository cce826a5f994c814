/**
 * One solve cycle, a numbered and timed sequence: snapshot → plan → admit (leases, written durably in one
 * batch) → dispatch (scale and launch messages to agents, replies to the requesters).
 */
import type { Platform } from '../policies/index.ts';
import type { LeaseMsg, PlacementExplanation, Reason } from '../protocol/index.ts';
import {
  planBatch,
  type LpBackends,
  type Placement,
  type Plan,
  type PoolState,
  type TaskRequest,
  taskRequest,
} from '../solver/index.ts';
import { GANG_PORT } from './admission.ts';
import { type BudgetRoom, trimToBudgets } from './budget-gate.ts';
import type { Inventory } from './inventory.ts';
import { type Preemption, preemptFor } from './preemption.ts';
import type { RequestRecord } from './records.ts';
import type { BrokerState } from './state.ts';

/** What a cycle decided, for the broker to dispatch. */
export interface CycleResult {
  number: number;
  tasks: number;
  leases: { lease: LeaseMsg; request: RequestRecord }[];
  /** Nodes to add, per cluster and pool: their planned ids. */
  scale: Map<string, Map<string, string[]>>;
  refused: { request: RequestRecord; reason: Reason }[];
  held: number;
  /** Running work this cycle stopped for higher-priority requests (policy `preemption`). */
  preemptions: Preemption[];
  solveMs: number;
  backend: string;
  /** What the plan costs, its LP lower bound and the FFD baseline, for the metrics. */
  plan: Pick<Plan, 'cost' | 'bound' | 'baseline'>;
}

export interface CycleInput {
  number: number;
  batch: RequestRecord[];
  /** Monthly-budget room of the batch's teams (from the budget gate): placements are checked at their price. */
  budgetRoom?: ReadonlyMap<string, BudgetRoom>;
  state: BrokerState;
  inventory: Inventory;
  platform: Platform;
  backends: LpBackends | undefined;
  now: number;
  leaseTtlMs: number;
  timeBudgetMs: number;
  newId: () => string;
  /** A token of this broker process: planned node ids stay unique across restarts and failovers. */
  instance: string;
  /**
   * Whether a pool of a cluster left out of the plan (unhealthy or draining) could ever take the request:
   * a request none could is refused, not held forever.
   */
  couldFitElsewhere(r: RequestRecord): boolean;
}

/** Plans a batch and records the outcome in the broker's state. */
export function runCycle(input: CycleInput): CycleResult {
  const { state, inventory, platform, now } = input;
  const batch = withWholeGangs(input.batch, state);
  const pools = inventory.snapshot(state.nodeUse, now);
  const byId = new Map(batch.map((r) => [r.requestId, r]));
  const requests: TaskRequest[] = batch.map((r) => {
    const resources =
      r.avoidSpot && r.resources.spot !== 'required'
        ? { ...r.resources, spot: 'never' as const }
        : r.resources;
    const t = taskRequest(r.requestId, r.team, resources, r.priority);
    return r.gang ? { ...t, gang: r.gang } : t;
  });
  const usage = state.usage();
  const result = planBatch({ pools, usage }, requests, platform.policies, {
    ...(input.backends ? { backends: input.backends } : {}),
    timeBudgetMs: input.timeBudgetMs,
  });

  const { kept: placements, over } = trimToBudgets(result.placements, batch, input.budgetRoom);
  const used = new Set(placements.map((p) => p.node));

  // Planned node ids are unique per plan; make them unique for good, and name them as the agent will.
  // A new node none of the kept placements uses is not planned at all.
  const plannedIds = new Map<string, string>();
  const scale = new Map<string, Map<string, string[]>>();
  for (const nn of result.newNodes) {
    nn.ids.forEach((id, k) => {
      if (!used.has(id)) return;
      const planned = `${nn.pool}-${input.instance}c${input.number}n${k}`;
      plannedIds.set(id, planned);
      const byPool = scale.get(nn.cluster) ?? new Map<string, string[]>();
      const list = byPool.get(nn.pool);
      if (list) list.push(planned);
      else byPool.set(nn.pool, [planned]);
      scale.set(nn.cluster, byPool);
      inventory.clusters.get(nn.cluster)?.planned.set(planned, { pool: nn.pool, at: now });
    });
  }

  const poolById = new Map<string, PoolState>(pools.map((p) => [p.id, p]));
  const explain = explainer(result);
  const gangWhy = new Map((result.gangs ?? []).map((g) => [g.gang, g.detail]));
  // Rank 0's node is each gang's rendezvous (MASTER_ADDR).
  const masters = new Map<string, string>();
  for (const p of placements) {
    const g = byId.get(p.taskId)!.gang;
    if (g?.rank === 0) masters.set(g.id, plannedIds.get(p.node) ?? p.node);
  }
  // One text per group, pool and node kind, shared by its leases (one copy each was most of a lease's memory).
  const whys = new Map<string, string>();
  const whyOn = (p: Placement, pool: PoolState, e: PlacementExplanation | undefined) => {
    const key = `${p.group}|${p.poolId}|${p.newNode}`;
    let why = whys.get(key);
    if (why === undefined) {
      why =
        `${pool.id} at $${pool.price}/h per node${p.newNode ? ' (new node)' : ''}` +
        (e ? `: ${e.why.detail}` : '');
      whys.set(key, why);
    }
    return why;
  };
  const leases: CycleResult['leases'] = [];
  for (const p of placements) {
    const r = byId.get(p.taskId)!;
    const pool = poolById.get(p.poolId)!;
    const explanation = explain(p);
    const gpu = r.resources.gpu.find((g) => g.model === '*' || g.model === pool.gpuModel);
    const lease: LeaseMsg = {
      leaseId: input.newId(),
      requestId: r.requestId,
      cluster: p.cluster,
      pool: p.pool,
      node: plannedIds.get(p.node) ?? p.node,
      pricePerHour: p.pricePerHour,
      cpuMilli: r.resources.cpuMilli,
      memoryMiB: r.resources.memoryMiB,
      gpuMilli: Math.round((gpu?.count ?? 0) * 1000),
      gpuModel: gpu ? pool.gpuModel : null,
      capacityType: pool.capacityType,
      expiresAt: now + input.leaseTtlMs,
      attempt: r.attempt,
      why: r.gang
        ? `gang ${r.gang.id} rank ${r.gang.rank}: ${gangWhy.get(r.gang.id) ?? pool.id}`
        : whyOn(p, pool, explanation),
      ...(explanation ? { explanation } : {}),
      ...(r.gang
        ? {
            gang: {
              id: r.gang.id,
              size: r.gang.size,
              rank: r.gang.rank,
              master: masters.get(r.gang.id)!,
              port: GANG_PORT,
            },
          }
        : {}),
      work: r.work,
    };
    state.place(r, lease);
    leases.push({ lease, request: r });
  }

  const refused: CycleResult['refused'] = [];
  const waiting: { record: RequestRecord; request: TaskRequest }[] = [];
  const requestById = new Map(requests.map((t) => [t.id, t]));
  let held = 0;
  for (const [id, detail] of over) {
    state.hold(byId.get(id)!, { kind: 'budget', detail });
    held++;
  }
  // "No compatible pool" is final when every cluster was in the snapshot, or no pool of the clusters that
  // were not (down or draining) could take the task either.
  const everyClusterIn = [...inventory.clusters.values()].every((c) => c.healthy && !c.draining);
  const retry: RequestRecord[] = [];
  for (const u of result.unplaced) {
    const r = byId.get(u.taskId)!;
    if (u.reason.kind === 'policy' && r.avoidSpot && r.resources.spot !== 'required') {
      // Placed again after a spot reclaim, it avoids spot; where only spot pools could take it, it may go
      // back to spot rather than be refused (next cycle, first).
      r.avoidSpot = false;
      state.hold(r, { kind: 'capacity', detail: `no pool without spot could take it: ${u.reason.detail}` });
      retry.push(r);
    } else if (u.reason.kind === 'policy' && (everyClusterIn || !input.couldFitElsewhere(r))) {
      state.refuse(r, `${u.reason.kind}: ${u.reason.detail}`);
      refused.push({ request: r, reason: u.reason });
    } else {
      state.hold(r, u.reason);
      held++;
      if (u.reason.kind === 'capacity' && !r.gang)
        waiting.push({ record: r, request: requestById.get(r.requestId)! });
    }
  }
  // What is left once this cycle's leases are counted: preemption frees room on top of it.
  const preemptions = preemptFor(
    waiting,
    inventory.snapshot(state.nodeUse, now),
    state,
    platform,
    now,
    new Set(leases.map((l) => l.lease.leaseId)),
  );
  for (const p of preemptions) {
    state.hold(p.request, {
      kind: 'capacity',
      detail: `preempting ${p.victims.length} lower-priority task(s): ${p.detail}`,
    });
    retry.push(p.request);
  }
  // First in the next cycle (ahead of the work a preemption stopped).
  for (const r of retry.reverse()) {
    state.held.delete(r.requestId);
    state.queue.unshift(r.requestId);
  }
  return {
    preemptions,
    number: input.number,
    tasks: batch.length,
    leases,
    scale,
    refused,
    held,
    solveMs: result.solver.ms,
    backend: result.solver.backend,
    plan: { cost: result.cost, bound: result.bound, baseline: result.baseline },
  };
}

/** The explanation each placement carries onto its lease: its group's entry for the pool, built once. */
function explainer(result: Plan): (p: Placement) => PlacementExplanation | undefined {
  const cache = new Map<string, PlacementExplanation | undefined>();
  const clip = (r: Reason): Reason => ({ kind: r.kind, detail: r.detail.slice(0, 2000) });
  return (p) => {
    const onRunningNodes = !p.newNode;
    const key = `${p.group}|${p.poolId}|${onRunningNodes}`;
    if (cache.has(key)) return cache.get(key);
    const g = p.group === undefined ? undefined : result.groups[p.group];
    const c = g?.chosen.find((x) => x.poolId === p.poolId && x.onRunningNodes === onRunningNodes);
    const e: PlacementExplanation | undefined =
      g && c
        ? {
            group: g.group.slice(0, 500),
            shape: g.shape.slice(0, 500),
            poolId: c.poolId,
            onRunningNodes,
            costPerTask: c.costPerTask,
            why: clip(c.why),
            ...(g.nextBest
              ? {
                  nextBest: {
                    poolId: g.nextBest.poolId,
                    costPerTask: g.nextBest.costPerTask,
                    whyNot: clip(g.nextBest.whyNot),
                  },
                }
              : {}),
          }
        : undefined;
    cache.set(key, e);
    return e;
  };
}

/**
 * The batch with every pending member of each gang in it: members held (waiting for the rest) are planned
 * with the ones that came in this cycle, so a gang is planned whole.
 */
function withWholeGangs(batch: RequestRecord[], state: BrokerState): RequestRecord[] {
  const ids = new Set(batch.map((r) => r.requestId));
  const out = [...batch];
  const seen = new Set<string>();
  for (const r of batch) {
    if (!r.gang || seen.has(r.gang.id)) continue;
    seen.add(r.gang.id);
    for (const m of state.gangMembers(r.gang.id)) {
      if (m.state !== 'pending' || ids.has(m.requestId)) continue;
      ids.add(m.requestId);
      state.held.delete(m.requestId);
      out.push(m);
    }
  }
  return out;
}
