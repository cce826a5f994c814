/**
 * Prometheus metrics of an agent (prom-client), served on `/metrics` by `gantry agent --metrics-port`:
 * whether it is registered, its leases and nodes as it sees them, launches and ends. Every series has
 * the agent's `cluster` label, so the agents of one process (embedded mode) share one set of metrics;
 * each agent creates its cluster's series at 0 when it is created ({@link AgentMetrics.initialise}).
 */
import { Counter, Gauge, Registry } from 'prom-client';

/** The lease states an agent counts the ends of. */
const ENDS = ['succeeded', 'failed', 'preempted', 'lost'] as const;
/** What `gantry_agent_nodes{state}` counts: starting, ready with work, ready and idle. */
export const AGENT_NODE_STATES = ['launching', 'ready', 'idle'] as const;
/** What `gantry_agent_leases{state}` counts. */
export const AGENT_LEASE_STATES = ['placed', 'launching', 'running'] as const;

/** An agent's metrics, in their own registry. */
export interface AgentMetrics {
  registry: Registry;
  registered: Gauge<'cluster'>;
  leases: Gauge<'cluster' | 'state'>;
  nodes: Gauge<'cluster' | 'pool' | 'state'>;
  launches: Counter<'cluster'>;
  ends: Counter<'cluster' | 'state'>;
  heartbeats: Counter<'cluster'>;
  /** Creates a cluster's series at 0. */
  initialise(cluster: string, pools: readonly string[]): void;
}

/**
 * Creates agents' metrics in `registry` (by default a fresh one; in embedded mode the broker's).
 *
 * @example
 * const metrics = createAgentMetrics();
 * const agent = createAgent({ transport, cluster, executor, provisioner, metrics });
 */
export function createAgentMetrics(registry: Registry = new Registry()): AgentMetrics {
  const r = [registry];
  const m: AgentMetrics = {
    registry,
    registered: new Gauge({
      name: 'gantry_agent_registered',
      help: '1 once the broker accepted the agent',
      labelNames: ['cluster'],
      registers: r,
    }),
    leases: new Gauge({
      name: 'gantry_agent_leases',
      help: 'Leases the agent runs, by state (placed, launching, running)',
      labelNames: ['cluster', 'state'],
      registers: r,
    }),
    nodes: new Gauge({
      name: 'gantry_agent_nodes',
      help: "The cluster's nodes as the agent sees them: launching, ready (with work), idle",
      labelNames: ['cluster', 'pool', 'state'],
      registers: r,
    }),
    launches: new Counter({
      name: 'gantry_agent_launches_total',
      help: 'Leases started on a node',
      labelNames: ['cluster'],
      registers: r,
    }),
    ends: new Counter({
      name: 'gantry_agent_lease_ends_total',
      help: 'Leases that ended, by how',
      labelNames: ['cluster', 'state'],
      registers: r,
    }),
    heartbeats: new Counter({
      name: 'gantry_agent_heartbeats_total',
      help: 'Heartbeats sent to the broker',
      labelNames: ['cluster'],
      registers: r,
    }),
    initialise(cluster, pools) {
      m.registered.set({ cluster }, 0);
      m.launches.inc({ cluster }, 0);
      m.heartbeats.inc({ cluster }, 0);
      for (const state of ENDS) m.ends.inc({ cluster, state }, 0);
      for (const state of AGENT_LEASE_STATES) m.leases.set({ cluster, state }, 0);
      for (const pool of pools)
        for (const state of AGENT_NODE_STATES) m.nodes.set({ cluster, pool, state }, 0);
    },
  };
  return m;
}
