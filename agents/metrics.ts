/**
 * Prometheus metrics of an agent (prom-client), served on `/metrics` by `gantry agent --metrics-port`:
 * whether it is registered, its leases and nodes as it sees them, launches and ends. Every series has
 * the agent's `cluster` label; counters exist from the start at 0.
 */
import { Counter, Gauge, Registry } from 'prom-client';

/** The lease states an agent counts the ends of. */
const ENDS = ['succeeded', 'failed', 'preempted', 'lost'] as const;

/** An agent's metrics, in their own registry. */
export interface AgentMetrics {
  registry: Registry;
  registered: Gauge<'cluster'>;
  leases: Gauge<'cluster' | 'state'>;
  nodes: Gauge<'cluster' | 'pool' | 'state'>;
  launches: Counter<'cluster'>;
  ends: Counter<'cluster' | 'state'>;
  heartbeats: Counter<'cluster'>;
}

/**
 * Creates an agent's metrics in a fresh registry, with the cluster's series at 0.
 *
 * @example
 * const metrics = createAgentMetrics('aws-use1');
 */
export function createAgentMetrics(cluster: string): AgentMetrics {
  const registry = new Registry();
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
  };
  m.registered.set({ cluster }, 0);
  m.launches.inc({ cluster }, 0);
  m.heartbeats.inc({ cluster }, 0);
  for (const state of ENDS) m.ends.inc({ cluster, state }, 0);
  return m;
}
