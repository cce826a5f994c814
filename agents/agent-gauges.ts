/** The leases an agent holds, and its gauges of leases and nodes (what dashboards show of a cluster). */
import type { LeaseMsg, TaskState } from '../protocol/index.ts';
import { AGENT_LEASE_STATES, AGENT_NODE_STATES, type AgentMetrics } from './metrics.ts';

/** A lease the agent was given, and where it stands. */
export interface Held {
  lease: LeaseMsg;
  state: TaskState;
  node?: string;
  startedAt?: number;
  endedAt?: number;
}

/** The states a lease ends in. */
export const DONE: ReadonlySet<TaskState> = new Set(['succeeded', 'failed', 'preempted', 'lost']);

/**
 * Sets the leases gauge (per state) and the nodes gauge (per pool and state: launching, ready with
 * work, idle) of `cluster`; every pool and state is set, so a count that drops to zero reads 0.
 */
export function observeGauges(
  metrics: AgentMetrics,
  cluster: string,
  pools: Iterable<string>,
  leases: Iterable<Held>,
  nodes: readonly { name: string; pool: string; ready: boolean }[],
): void {
  const states = new Map<string, number>(AGENT_LEASE_STATES.map((s) => [s, 0]));
  const busy = new Set<string>();
  for (const h of leases) {
    if (DONE.has(h.state)) continue;
    states.set(h.state, (states.get(h.state) ?? 0) + 1);
    if (h.node) busy.add(h.node);
  }
  for (const [state, n] of states) metrics.leases.set({ cluster, state }, n);
  const count = new Map<string, number>();
  for (const p of pools) for (const state of AGENT_NODE_STATES) count.set(`${p}|${state}`, 0);
  for (const n of nodes) {
    const state = !n.ready ? 'launching' : busy.has(n.name) ? 'ready' : 'idle';
    count.set(`${n.pool}|${state}`, (count.get(`${n.pool}|${state}`) ?? 0) + 1);
  }
  for (const [key, n] of count) {
    const [pool, state] = key.split('|') as [string, string];
    metrics.nodes.set({ cluster, pool, state }, n);
  }
}
