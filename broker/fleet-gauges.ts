/**
 * The leader's gauges of the fleet, recomputed every few seconds from the broker's tables: spend rate
 * by team, cluster, pool and capacity type (and what it would be on-demand), the price of the nodes up,
 * nodes by state, month-to-date spend and budgets, requests held by reason and for how long, free
 * capacity and health per cluster.
 *
 * Two small seams read the records: {@link heldReason} (why a pending request waits, from the reason the
 * solver or a budget held it with) and {@link nodeState} (where a node stands).
 */
import type { Pool } from '../policies/index.ts';
import type { Reason } from '../protocol/index.ts';
import type { BudgetStatus } from './budgets.ts';
import type { ClusterState } from './inventory.ts';
import {
  type BrokerMetrics,
  HELD_REASONS,
  type HeldReason,
  NODE_STATES,
  type NodeState,
  PLAN_COST_KINDS,
} from './metrics.ts';
import type { LeaseSpend } from './lease-spend.ts';
import type { RequestRecord } from './records.ts';
import { holdKind } from './state.ts';

const HOUR = 3_600_000;

/** What the gauges are computed from: the broker's tables at one instant. */
export interface Fleet {
  now: number;
  clusters: Iterable<ClusterState>;
  /** What active leases use, per `cluster|node` (a node with an entry has work). */
  nodeUse: ReadonlyMap<string, unknown>;
  /** What the active leases cost per hour (kept as they start and end: no scan). */
  spend: LeaseSpend;
  requests: ReadonlyMap<string, RequestRecord>;
  /** Ids of the pending requests: queued for the next cycle, or held. */
  pending: Iterable<string>;
  pool(cluster: string, pool: string): Pool | undefined;
  /** On-demand $/hour per instance type, where known. */
  onDemand: ReadonlyMap<string, number>;
  /** Every team a policy names. */
  teams: Iterable<string>;
  /** What a team's work that ended this month cost. */
  spentThisMonth(team: string): number;
  /** The teams' budgets (empty when no policy has a monthly one). */
  budgets: readonly BudgetStatus[];
  /** Simulated seconds per second (embedded mode): running work's cost so far is scaled by it. */
  timeScale: number;
}

/**
 * Why a pending request waits, from the reason a cycle or a budget held it with; undefined when it is not
 * held (only queued again, after a lost or preempted lease).
 */
export function heldReason(held: Reason | undefined): HeldReason | undefined {
  return held === undefined ? undefined : holdKind(held);
}

/** A node the agent reports: launching until ready, then ready while it has work and idle without. */
export function nodeState(node: { ready: boolean }, busy: boolean): Exclude<NodeState, 'planned'> {
  if (!node.ready) return 'launching';
  return busy ? 'ready' : 'idle';
}

/** Keeps the fleet gauges, remembering since when each request has been held and each node not ready. */
export class FleetGauges {
  readonly #heldSince = new Map<string, number>();
  readonly #notReadySince = new Map<string, number>();

  constructor(private readonly metrics: BrokerMetrics) {}

  update(f: Fleet): void {
    this.#clusters(f);
    this.#leases(f);
    this.#budgets(f);
    this.#held(f);
  }

  /** Forgets what it remembered (the broker stands by). */
  clear(): void {
    this.#heldSince.clear();
    this.#notReadySince.clear();
    this.metrics.clearFleet();
  }

  #clusters(f: Fleet): void {
    const m = this.metrics;
    for (const g of [m.nodes, m.nodesPerHour, m.nodesNotReadyOldest, m.clusterHealthy]) g.reset();
    const seen = new Set<string>();
    const since = (key: string, at = f.now) => {
      seen.add(key);
      const t = this.#notReadySince.get(key) ?? at;
      this.#notReadySince.set(key, t);
      return t;
    };
    for (const c of f.clusters) {
      m.clusterHealthy.set({ cluster: c.name }, c.healthy ? 1 : 0);
      const count = new Map<string, number>();
      const oldest = new Map<string, number>();
      const up = new Map<string, number>();
      for (const p of c.declared.pools) {
        for (const state of NODE_STATES) count.set(`${p.name}|${state}`, 0);
        oldest.set(p.name, f.now);
        up.set(p.name, 0);
      }
      const add = (pool: string, state: NodeState) =>
        count.set(`${pool}|${state}`, (count.get(`${pool}|${state}`) ?? 0) + 1);
      for (const [id, p] of c.planned) {
        add(p.pool, 'planned');
        oldest.set(p.pool, Math.min(oldest.get(p.pool) ?? f.now, since(`${c.name}|${id}`, p.at)));
      }
      let cpu = 0;
      let gpus = 0;
      for (const n of c.nodes.values()) {
        const used = f.nodeUse.get(`${c.name}|${n.name}`) as { cpu: number; gpu: number } | undefined;
        const busy =
          used !== undefined || (n.plannedId !== undefined && f.nodeUse.has(`${c.name}|${n.plannedId}`));
        const state = nodeState(n, busy);
        add(n.pool, state);
        up.set(n.pool, (up.get(n.pool) ?? 0) + 1);
        if (state === 'launching')
          oldest.set(
            n.pool,
            Math.min(oldest.get(n.pool) ?? f.now, since(`${c.name}|${n.plannedId ?? n.name}`)),
          );
        else {
          cpu += (n.cpuMilli - (used?.cpu ?? 0)) / 1000;
          gpus += n.gpuCount - (used?.gpu ?? 0) / 1000;
        }
      }
      m.clusterFreeCpu.set({ cluster: c.name }, cpu);
      m.clusterFreeGpus.set({ cluster: c.name }, gpus);
      for (const [key, n] of count) {
        const [pool, state] = key.split('|') as [string, string];
        m.nodes.set({ cluster: c.name, pool, state }, n);
      }
      for (const [pool, t] of oldest)
        m.nodesNotReadyOldest.set({ cluster: c.name, pool }, (f.now - t) / 1000);
      for (const [pool, n] of up) {
        const declared = f.pool(c.name, pool);
        m.nodesPerHour.set(
          { cluster: c.name, pool, capacity_type: declared?.capacityType ?? 'unknown' },
          n * (declared?.price ?? 0),
        );
      }
    }
    for (const key of this.#notReadySince.keys()) if (!seen.has(key)) this.#notReadySince.delete(key);
  }

  /** Spend by team and pool, its on-demand price, running cost so far: from the kept sums. */
  #leases(f: Fleet): void {
    const m = this.metrics;
    m.spendPerHour.reset();
    m.onDemandPerHour.reset();
    for (const [key, spend] of f.spend.byPool) {
      const [team = '', cluster = '', pool = '', capacityType = ''] = key.split('|');
      const labels = { team, cluster, pool, capacity_type: capacityType };
      m.spendPerHour.set(labels, spend);
      m.onDemandPerHour.set(labels, spend * onDemandRatio(f.pool(cluster, pool), f.onDemand));
    }
    m.activeLeases.set(f.spend.count);
    m.teamSpendMonth.reset();
    for (const team of f.teams) {
      const s = f.spend.started.get(team);
      const running = s ? ((s.perHour * f.now - s.perHourTimesStart) * f.timeScale) / HOUR : 0;
      m.teamSpendMonth.set({ team }, f.spentThisMonth(team) + Math.max(0, running));
    }
  }

  #budgets(f: Fleet): void {
    const m = this.metrics;
    m.teamBudgetMonth.reset();
    for (const b of f.budgets) {
      if (!b.perMonth) continue;
      const labels = { team: b.team, policy: b.policy };
      m.teamBudgetMonth.set(labels, b.perMonth.cap);
      const used = b.perMonth.spent + b.perMonth.committed;
      m.budgetUsed.set(labels, b.perMonth.cap > 0 ? used / b.perMonth.cap : used > 0 ? 1 : 0);
    }
  }

  #held(f: Fleet): void {
    const m = this.metrics;
    const count = new Map<HeldReason, number>(HELD_REASONS.map((r) => [r, 0]));
    const oldest = new Map<HeldReason, number>(HELD_REASONS.map((r) => [r, f.now]));
    const seen = new Set<string>();
    for (const id of f.pending) {
      const r = f.requests.get(id);
      if (r?.state !== 'pending' || seen.has(id)) continue;
      const reason = heldReason(r.held);
      if (!reason) continue;
      seen.add(id);
      const since = this.#heldSince.get(id) ?? f.now;
      this.#heldSince.set(id, since);
      count.set(reason, count.get(reason)! + 1);
      oldest.set(reason, Math.min(oldest.get(reason)!, since));
    }
    for (const id of this.#heldSince.keys()) if (!seen.has(id)) this.#heldSince.delete(id);
    for (const reason of HELD_REASONS) {
      m.held.set({ reason }, count.get(reason)!);
      m.heldOldest.set({ reason }, (f.now - oldest.get(reason)!) / 1000);
    }
  }
}

/** On-demand price ÷ the pool's price (1 for on-demand pools, or when the on-demand price is unknown). */
function onDemandRatio(pool: Pool | undefined, onDemand: ReadonlyMap<string, number>): number {
  if (!pool || pool.capacityType === 'on-demand' || pool.price <= 0) return 1;
  const od = onDemand.get(pool.instanceType);
  return od !== undefined ? od / pool.price : 1;
}

/** Records what the last cycle's plan cost against its LP bound and the FFD baseline (`kind="ffd"`). */
export function observePlan(
  metrics: BrokerMetrics,
  plan: { cost: { expected: number; objective: number }; bound: number; baseline: { objective: number } },
): void {
  const values: Record<(typeof PLAN_COST_KINDS)[number], number> = {
    expected: plan.cost.expected,
    objective: plan.cost.objective,
    bound: plan.bound,
    ffd: plan.baseline.objective,
  };
  for (const kind of PLAN_COST_KINDS)
    if (Number.isFinite(values[kind])) metrics.planCost.set({ kind }, values[kind]);
    else metrics.planCost.remove({ kind });
  if (!Number.isFinite(plan.bound)) return;
  const scale = Math.max(Math.abs(plan.bound), 1e-9);
  metrics.planGap.observe(Math.max(0, plan.cost.objective - plan.bound) / scale);
}
