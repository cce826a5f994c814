/**
 * Prometheus metrics of the broker (prom-client), served on `/metrics` by `gantry broker --metrics-port`:
 * the queue and its holds, solve cycles (time, plan cost against the LP bound), leases, leadership, and
 * what the fleet costs now — spend rate by team, cluster, pool and capacity type, nodes by state, month
 * to date against each team's budget.
 *
 * Counters exist from the start at 0, for every label value known up front, so that `rate()` and
 * `increase()` see the first event. Gauges of the fleet are the leader's: a standby exports none of
 * them (see {@link BrokerMetrics.clearFleet}), so summing over brokers never counts anything twice.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Refusal } from './admission.ts';

/** Why a request waits, as `gantry_requests_held{reason}` counts it. */
export const HELD_REASONS = ['capacity', 'quota', 'budget', 'policy', 'other'] as const;
/** One of {@link HELD_REASONS}. */
export type HeldReason = (typeof HELD_REASONS)[number];

/** The codes of `gantry_requests_refused_total` (the broker's admission codes and the solver's policy). */
export const REFUSED_CODES = [
  'no-policy',
  'bad-resources',
  'policy',
  'forbidden',
] as const satisfies readonly (Refusal['code'] | 'forbidden')[];

/** Node states of `gantry_nodes{state}`: asked for, starting, ready with work, ready and idle. */
export const NODE_STATES = ['planned', 'launching', 'ready', 'idle'] as const;
/** One of {@link NODE_STATES}. */
export type NodeState = (typeof NODE_STATES)[number];

/** What `gantry_plan_cost_dollars{kind}` reports of the last cycle's plan. */
export const PLAN_COST_KINDS = ['expected', 'objective', 'bound', 'ffd'] as const;

/** The broker's metrics, registered in their own registry (one per broker, so tests can run several). */
export interface BrokerMetrics {
  registry: Registry;
  queueDepth: Gauge;
  cycles: Counter;
  cycleSeconds: Histogram;
  solveSeconds: Histogram;
  solveBudgetSeconds: Gauge;
  planCost: Gauge<'kind'>;
  planGap: Histogram;
  leases: Counter;
  refused: Counter<'code'>;
  /** Running work stopped for higher-priority work, by the team whose work was stopped. */
  preemptions: Counter<'team'>;
  badMessages: Counter<'subject'>;
  activeLeases: Gauge;
  leader: Gauge;
  budgetUsed: Gauge<'team' | 'policy'>;
  budgetAlerts: Counter<'team' | 'policy' | 'threshold'>;
  teamSpendMonth: Gauge<'team'>;
  teamBudgetMonth: Gauge<'team' | 'policy'>;
  clusterHealthy: Gauge<'cluster'>;
  clusterFreeGpus: Gauge<'cluster'>;
  clusterFreeCpu: Gauge<'cluster'>;
  spendPerHour: Gauge<'team' | 'cluster' | 'pool' | 'capacity_type'>;
  onDemandPerHour: Gauge<'team' | 'cluster' | 'pool' | 'capacity_type'>;
  nodesPerHour: Gauge<'cluster' | 'pool' | 'capacity_type'>;
  nodes: Gauge<'cluster' | 'pool' | 'state'>;
  nodesNotReadyOldest: Gauge<'cluster' | 'pool'>;
  held: Gauge<'reason'>;
  heldOldest: Gauge<'reason'>;
  /** Forgets every fleet gauge (the broker stands by: the leader exports them). */
  clearFleet(): void;
  /** Creates the counters' series of the platform's clusters and budgets at 0. */
  initialise(labels: MetricsLabels): void;
}

/** What the counters are labelled with from the start: the platform's clusters, teams and budgets. */
export interface MetricsLabels {
  clusters: readonly string[];
  /** The teams of every policy: their requests arrive under `gantry.v1.team.<team>`. */
  teams: readonly string[];
  /** Each team with a monthly budget, its policy and alert thresholds. */
  budgets: readonly { team: string; policy: string; alertAt: readonly number[] }[];
}

// 1.5 and 2 around the default solve budget of 2 s, for the alert on solve time near it.
const SECONDS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 2.5, 5, 10];
/** How far a plan's objective is above its LP bound, as a share of the bound. */
const GAP = [0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1];

/**
 * Adds Node's process metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
 * `nodejs_*`) to a registry: once per process, by the command that serves it.
 */
export function collectProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
}

/**
 * Creates the broker's metrics in a fresh registry.
 *
 * @example
 * const metrics = createBrokerMetrics();
 * metrics.initialise({ clusters: ['aws-use1'], teams: ['ml'], budgets: [] });
 */
export function createBrokerMetrics(): BrokerMetrics {
  const registry = new Registry();
  const r = [registry];
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
    new Gauge<L>({ name, help, labelNames, registers: r });
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
    new Counter<L>({ name, help, labelNames, registers: r });
  const byLease = ['team', 'cluster', 'pool', 'capacity_type'] as const;
  const byPool = ['cluster', 'pool', 'capacity_type'] as const;

  const m: BrokerMetrics = {
    registry,
    queueDepth: gauge('gantry_queue_depth', 'Pending requests: queued for the next cycle or held'),
    cycles: counter('gantry_cycles_total', 'Solve cycles run'),
    cycleSeconds: new Histogram({
      name: 'gantry_cycle_seconds',
      help: 'Solve cycle time, snapshot to dispatch',
      buckets: SECONDS,
      registers: r,
    }),
    solveSeconds: new Histogram({
      name: 'gantry_solve_seconds',
      help: 'Time in the solver per cycle',
      buckets: SECONDS,
      registers: r,
    }),
    solveBudgetSeconds: gauge('gantry_solve_budget_seconds', 'Time budget of the solver per cycle'),
    planCost: gauge(
      'gantry_plan_cost_dollars',
      "The last cycle's plan: expected dollars, the objective the solver minimises, its LP lower bound, and the first-fit-decreasing baseline's objective on the same input (kind ffd)",
      ['kind'],
    ),
    planGap: new Histogram({
      name: 'gantry_plan_gap_ratio',
      help: 'Per cycle with an LP bound: (objective - bound) / bound, how far the plan can be from the cheapest',
      buckets: GAP,
      registers: r,
    }),
    leases: counter('gantry_leases_total', 'Leases granted'),
    refused: counter('gantry_requests_refused_total', 'Requests refused', ['code']),
    preemptions: counter(
      'gantry_preemptions_total',
      'Running leases stopped so that higher-priority work fits (ResourcePolicy preemption)',
      ['team'],
    ),
    badMessages: counter('gantry_bad_messages_total', 'Malformed or unauthorised messages', ['subject']),
    activeLeases: gauge('gantry_active_leases', 'Leases placed, launching or running'),
    leader: gauge('gantry_broker_leader', '1 while this broker leads and serves, 0 while it stands by'),
    budgetUsed: gauge(
      'gantry_budget_used_ratio',
      "Share of a team's monthly budget spent or committed (1 = used up)",
      ['team', 'policy'],
    ),
    budgetAlerts: counter('gantry_budget_alerts_total', 'Budget alert thresholds crossed', [
      'team',
      'policy',
      'threshold',
    ]),
    teamSpendMonth: gauge(
      'gantry_team_spend_month_dollars',
      "A team's spend this month: work that ended, and running work's cost so far",
      ['team'],
    ),
    teamBudgetMonth: gauge('gantry_team_budget_month_dollars', "A team's monthly budget", ['team', 'policy']),
    clusterHealthy: gauge('gantry_cluster_healthy', '1 when the cluster agent is healthy', ['cluster']),
    clusterFreeGpus: gauge('gantry_cluster_free_gpus', 'Free GPUs on ready nodes', ['cluster']),
    clusterFreeCpu: gauge('gantry_cluster_free_cpu_cores', 'Free cpu cores on ready nodes', ['cluster']),
    spendPerHour: gauge(
      'gantry_spend_dollars_per_hour',
      "Spend rate of active leases: each task's share of its node's price",
      byLease,
    ),
    onDemandPerHour: gauge(
      'gantry_spend_on_demand_dollars_per_hour',
      'What the active leases would cost per hour on on-demand nodes of the same instance types',
      byLease,
    ),
    nodesPerHour: gauge(
      'gantry_nodes_dollars_per_hour',
      "Price of the nodes up now (launching or ready): what the clouds bill, idle nodes' share included",
      byPool,
    ),
    nodes: gauge('gantry_nodes', 'Nodes by state: planned, launching, ready (with work), idle', [
      'cluster',
      'pool',
      'state',
    ]),
    nodesNotReadyOldest: gauge(
      'gantry_nodes_not_ready_oldest_seconds',
      'How long the oldest node asked for and not yet ready has waited (0: none)',
      ['cluster', 'pool'],
    ),
    held: gauge('gantry_requests_held', 'Pending requests a cycle could not place, by why', ['reason']),
    heldOldest: gauge(
      'gantry_requests_held_oldest_seconds',
      'How long the longest-held pending request has been held (0: none)',
      ['reason'],
    ),
    clearFleet() {
      for (const g of [
        m.queueDepth,
        m.activeLeases,
        m.budgetUsed,
        m.teamSpendMonth,
        m.teamBudgetMonth,
        m.clusterHealthy,
        m.clusterFreeGpus,
        m.clusterFreeCpu,
        m.spendPerHour,
        m.onDemandPerHour,
        m.nodesPerHour,
        m.nodes,
        m.nodesNotReadyOldest,
        m.held,
        m.heldOldest,
        m.planCost,
      ] as Gauge<string>[])
        g.reset();
    },
    initialise(labels) {
      for (const code of REFUSED_CODES) m.refused.inc({ code }, 0);
      for (const team of labels.teams) m.badMessages.inc({ subject: `gantry.v1.team.${team}` }, 0);
      m.badMessages.inc({ subject: 'gantry.v1.broker.admin' }, 0);
      for (const cluster of labels.clusters) m.badMessages.inc({ subject: `gantry.v1.agent.${cluster}` }, 0);
      for (const b of labels.budgets)
        for (const threshold of b.alertAt)
          m.budgetAlerts.inc({ team: b.team, policy: b.policy, threshold: String(threshold) }, 0);
    },
  };
  m.leader.set(0);
  return m;
}
