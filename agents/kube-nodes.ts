/**
 * The node "provisioner" of a Kubernetes cluster whose nodes Gantry does not manage (on-prem, or a
 * cloud autoscaler of its own): its nodes are whatever Kubernetes lists in the cluster's pools, and a
 * request for more is answered at once with `exhausted`, so the broker plans on nodes that exist.
 */
import type { Pool } from '../policies/index.ts';
import type { KubeExecutor } from './kube-executor.ts';
import type { NodeEvent, NodeProvisioner, ProvisionedNode } from './provisioner.ts';

/** Options of {@link createKubeNodeProvisioner}. */
export interface KubeNodeProvisionerOptions {
  /** How often the node list is compared for changes, ms. Default 2000. */
  pollMs?: number;
  clock?: () => number;
}

/**
 * Follows the nodes the Kubernetes executor watches.
 *
 * @example
 * const provisioner = createKubeNodeProvisioner(executor);
 */
export function createKubeNodeProvisioner(
  executor: KubeExecutor,
  opts: KubeNodeProvisionerOptions = {},
): NodeProvisioner {
  const clock = opts.clock ?? Date.now;
  const listeners: ((e: NodeEvent) => void)[] = [];
  const emit = (e: NodeEvent) => listeners.forEach((l) => l(e));
  const known = new Map<string, ProvisionedNode>();

  const sync = () => {
    const seen = new Set<string>();
    for (const n of executor.kubeNodes()) {
      seen.add(n.name);
      const prev = known.get(n.name);
      const node: ProvisionedNode = {
        name: n.name,
        pool: n.pool,
        ready: n.ready,
        capacityType: n.capacityType,
        createdAt: prev?.createdAt ?? clock(),
      };
      known.set(n.name, node);
      if (node.ready && !prev?.ready) emit({ type: 'ready', node });
    }
    for (const [name, node] of known) {
      if (seen.has(name)) continue;
      known.delete(name);
      emit({ type: node.capacityType === 'spot' ? 'preempted' : 'gone', node });
    }
  };
  const timer = setInterval(sync, opts.pollMs ?? 2000);
  timer.unref();
  sync();

  return {
    kind: 'kubernetes',
    list: () => [...known.values()],
    async add(pool: Pool, plannedIds: readonly string[]) {
      if (plannedIds.length === 0) return;
      emit({
        type: 'exhausted',
        pool: pool.name,
        plannedIds: [...plannedIds],
        kind: 'managed',
        reason: `the nodes of cluster ${pool.cluster} are managed outside Gantry: it cannot add to pool ${pool.name}`,
        retryAfterMs: 10 * 60_000,
      });
    },
    async remove() {
      // Not Gantry's to remove.
    },
    // The nodes come from the executor's watch of the Kubernetes API.
    ping: () => executor.ping?.() ?? Promise.resolve(),
    onEvent(listener) {
      listeners.push(listener);
    },
    async close() {
      clearInterval(timer);
    },
  };
}
