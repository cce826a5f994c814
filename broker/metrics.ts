/**
 * Prometheus metrics of the broker (prom-client): queue depth, cycle and solve time, leases, and
 * per-cluster capacity and spend rate. Served on `/metrics` by `gantry broker --metrics-port`.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** The broker's metrics, registered in their own registry (one per broker, so tests can run several). */
export interface BrokerMetrics {
  registry: Registry;
  queueDepth: Gauge;
  cycles: Counter;
  cycleSeconds: Histogram;
  solveSeconds: Histogram;
  leases: Counter;
  refused: Counter<'code'>;
  badMessages: Counter<'subject'>;
  activeLeases: Gauge;
  budgetUsed: Gauge;
  budgetAlerts: Counter;
  clusterHealthy: Gauge<'cluster'>;
  clusterFreeGpus: Gauge<'cluster'>;
  clusterFreeCpu: Gauge<'cluster'>;
  spendPerHour: Gauge<'cluster' | 'team'>;
}

/** Creates the broker's metrics in a fresh registry. */
export function createBrokerMetrics(): BrokerMetrics {
  const registry = new Registry();
  const seconds = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
  return {
    registry,
    queueDepth: new Gauge({ name: 'gantry_queue_depth', help: 'Pending requests', registers: [registry] }),
    cycles: new Counter({ name: 'gantry_cycles_total', help: 'Solve cycles run', registers: [registry] }),
    cycleSeconds: new Histogram({
      name: 'gantry_cycle_seconds',
      help: 'Solve cycle time, snapshot to dispatch',
      buckets: seconds,
      registers: [registry],
    }),
    solveSeconds: new Histogram({
      name: 'gantry_solve_seconds',
      help: 'Time in the solver per cycle',
      buckets: seconds,
      registers: [registry],
    }),
    leases: new Counter({ name: 'gantry_leases_total', help: 'Leases granted', registers: [registry] }),
    refused: new Counter({
      name: 'gantry_requests_refused_total',
      help: 'Requests refused',
      labelNames: ['code'],
      registers: [registry],
    }),
    badMessages: new Counter({
      name: 'gantry_bad_messages_total',
      help: 'Malformed or unauthorised messages',
      labelNames: ['subject'],
      registers: [registry],
    }),
    budgetUsed: new Gauge({
      name: 'gantry_budget_used_ratio',
      help: "Share of a team's monthly budget spent or committed (1 = used up)",
      labelNames: ['team', 'policy'],
      registers: [registry],
    }),
    budgetAlerts: new Counter({
      name: 'gantry_budget_alerts_total',
      help: 'Budget alert thresholds crossed',
      labelNames: ['team', 'policy', 'threshold'],
      registers: [registry],
    }),
    activeLeases: new Gauge({
      name: 'gantry_active_leases',
      help: 'Leases placed, launching or running',
      registers: [registry],
    }),
    clusterHealthy: new Gauge({
      name: 'gantry_cluster_healthy',
      help: '1 when the cluster agent is healthy',
      labelNames: ['cluster'],
      registers: [registry],
    }),
    clusterFreeGpus: new Gauge({
      name: 'gantry_cluster_free_gpus',
      help: 'Free GPUs on ready nodes',
      labelNames: ['cluster'],
      registers: [registry],
    }),
    clusterFreeCpu: new Gauge({
      name: 'gantry_cluster_free_cpu_cores',
      help: 'Free cpu cores on ready nodes',
      labelNames: ['cluster'],
      registers: [registry],
    }),
    spendPerHour: new Gauge({
      name: 'gantry_spend_dollars_per_hour',
      help: 'Spend rate of active leases',
      labelNames: ['cluster', 'team'],
      registers: [registry],
    }),
  };
}
