/**
 * A simulated cloud: real instance shapes and prices come from the cluster's pools (the catalog); nodes
 * take the pool's launch delay to come up, pools stop at their maximum, and spot nodes are reclaimed at
 * the pool's interruption rate — or on demand, for tests. Like a real cloud it outlives its agent: a
 * restarted agent's provisioner (`reattach`) finds the nodes the last one bought, and those on their way.
 */
import type { Cluster, Pool } from '../policies/index.ts';
import { atMaximum } from './node-core.ts';
import type { NodeEvent, NodeProvisioner, ProvisionedNode } from './provisioner.ts';

/** Options of {@link createSimProvisioner}. */
export interface SimProvisionerOptions {
  /** Divides launch delays and multiplies interruption rates (a time scale). Default 1. */
  speedup?: number;
  /** How often spot interruptions are drawn, ms. Default 1000. */
  tickMs?: number;
  /** Random numbers in [0, 1); default Math.random. */
  random?: () => number;
  clock?: () => number;
}

/** The simulated cloud, with a handle for tests to reclaim spot nodes. */
export interface SimProvisioner extends NodeProvisioner {
  /** Reclaims this fraction of the ready spot nodes now (at least one if any). Returns their names. */
  interrupt(fraction: number): string[];
  /** Reclaims one spot node by name now; false if there is no such ready spot node. */
  reclaimNode(name: string): boolean;
  /** From now on, adding nodes to `pool` fails as a cloud out of capacity would (`undefined` heals it). */
  exhaust(pool: string, reason: string | undefined): void;
  /**
   * A provisioner over the same cloud for a restarted agent: the same nodes, launches and interruptions,
   * its own listeners. The cloud stops once every provisioner over it is closed.
   */
  reattach(): SimProvisioner;
}

/**
 * Creates a simulated cloud for one cluster, with each pool's initial nodes already running.
 *
 * @example
 * const cloud = createSimProvisioner(cluster, { speedup: 60 });
 */
export function createSimProvisioner(cluster: Cluster, opts: SimProvisionerOptions = {}): SimProvisioner {
  const speedup = opts.speedup ?? 1;
  const random = opts.random ?? Math.random;
  const clock = opts.clock ?? Date.now;
  const nodes = new Map<string, ProvisionedNode>();
  /** The listeners of each provisioner attached to the cloud. */
  const attached = new Set<((e: NodeEvent) => void)[]>();
  const timers = new Set<NodeJS.Timeout>();
  const exhausted = new Map<string, string>();
  const pools = new Map(cluster.pools.map((p) => [p.name, p]));
  const emit = (e: NodeEvent) => {
    for (const listeners of attached) listeners.forEach((l) => l(e));
  };

  for (const pool of cluster.pools) {
    for (let i = 0; i < pool.nodes; i++) {
      const name = `${pool.name}-${i}`;
      nodes.set(name, {
        name,
        pool: pool.name,
        ready: true,
        capacityType: pool.capacityType,
        createdAt: clock(),
      });
    }
  }

  const reclaim = (node: ProvisionedNode) => {
    nodes.delete(node.name);
    emit({ type: 'preempted', node });
  };

  const tickMs = opts.tickMs ?? 1000;
  const interruptions = () =>
    setInterval(() => {
      for (const node of [...nodes.values()]) {
        const pool = pools.get(node.pool);
        if (!node.ready || !pool || pool.capacityType !== 'spot' || pool.interruptionRate <= 0) continue;
        const hours = (tickMs / 3_600_000) * speedup;
        if (random() < 1 - Math.exp(-pool.interruptionRate * hours)) reclaim(node);
      }
    }, tickMs);
  let tick: NodeJS.Timeout | undefined;

  const attach = (): SimProvisioner => {
    const listeners: ((e: NodeEvent) => void)[] = [];
    attached.add(listeners);
    if (!tick) {
      tick = interruptions();
      tick.unref();
    }
    return provisioner(listeners);
  };
  const provisioner = (listeners: ((e: NodeEvent) => void)[]): SimProvisioner => ({
    kind: 'sim',
    list: () => [...nodes.values()],
    async add(pool: Pool, plannedIds: readonly string[]) {
      const outOfStock = exhausted.get(pool.name);
      if (outOfStock !== undefined) {
        const fresh = plannedIds.filter((id) => !nodes.has(id));
        if (fresh.length > 0)
          emit({
            type: 'exhausted',
            pool: pool.name,
            plannedIds: fresh,
            kind: 'capacity',
            reason: outOfStock,
            retryAfterMs: 600_000 / speedup,
          });
        return;
      }
      const count = [...nodes.values()].filter((n) => n.pool === pool.name).length;
      const fresh = [...new Set(plannedIds)].filter((id) => !nodes.has(id));
      const room = Math.max(0, pool.maxNodes - count);
      if (fresh.length > room) emit(atMaximum(pool, fresh.slice(room)));
      for (const plannedId of fresh.slice(0, room)) {
        const node: ProvisionedNode = {
          name: plannedId,
          pool: pool.name,
          ready: false,
          capacityType: pool.capacityType,
          plannedId,
          createdAt: clock(),
        };
        nodes.set(node.name, node);
        const t = setTimeout(
          () => {
            timers.delete(t);
            if (!nodes.has(node.name)) return;
            node.ready = true;
            emit({ type: 'ready', node });
          },
          (pool.launchDelaySeconds * 1000) / speedup,
        );
        timers.add(t);
      }
    },
    async remove(nodeName: string) {
      const node = nodes.get(nodeName);
      if (!node) return;
      nodes.delete(nodeName);
      emit({ type: 'gone', node });
    },
    onEvent(listener) {
      if (attached.has(listeners)) listeners.push(listener);
    },
    interrupt(fraction: number) {
      const spot = [...nodes.values()].filter((n) => n.ready && n.capacityType === 'spot');
      const victims = spot.slice(0, Math.max(spot.length > 0 ? 1 : 0, Math.round(spot.length * fraction)));
      victims.forEach(reclaim);
      return victims.map((n) => n.name);
    },
    exhaust(pool: string, reason: string | undefined) {
      if (reason === undefined) exhausted.delete(pool);
      else exhausted.set(pool, reason);
    },
    reclaimNode(name: string) {
      const node = nodes.get(name);
      if (!node || !node.ready || node.capacityType !== 'spot') return false;
      reclaim(node);
      return true;
    },
    reattach: attach,
    async close() {
      attached.delete(listeners);
      listeners.length = 0;
      if (attached.size > 0) return;
      clearInterval(tick);
      tick = undefined;
      for (const t of timers) clearTimeout(t);
    },
  });
  return attach();
}
