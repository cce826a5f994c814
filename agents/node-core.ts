/**
 * The node-provisioner core every agent runs its cloud through: a planned node is counted once, from
 * the moment the broker asks for it until it is ready, gone or given up; a pool's maximum has one
 * answer whatever the cloud (`exhausted` of kind `max-nodes`); a cloud that drops or refuses a node is
 * reported as data, never left as a phantom the broker keeps counting.
 *
 * Why the bookkeeping is here and not in each cloud: the broker sends `scale` and then `launch` for the
 * same planned ids at once. A cloud's `add` is asynchronous (it lists the instances the cluster has,
 * then calls the API), so a launch that arrived before it listed the node found nothing, was answered
 * "not in this cluster", and the broker planned again — and bought again — every cycle.
 */
import type { Pool } from '../policies/index.ts';
import type { ExhaustedKind, NodeEvent, NodeProvisioner, ProvisionedNode } from './provisioner.ts';

/** How long the broker plans around a pool at its maximum by default, ms (see the option). */
export const MAX_NODES_RETRY_AFTER_MS = 30_000;

/** The one answer for planned nodes past a pool's maximum, whichever provisioner gives it. */
export function atMaximum(
  pool: Pool,
  plannedIds: string[],
  retryAfterMs = MAX_NODES_RETRY_AFTER_MS,
): Extract<NodeEvent, { type: 'exhausted' }> {
  return {
    type: 'exhausted',
    pool: pool.name,
    plannedIds,
    kind: 'max-nodes',
    reason: `pool ${pool.name} is at its maximum of ${pool.maxNodes} nodes`,
    retryAfterMs,
  };
}

/** Options of {@link createProvisionerCore}. */
export interface ProvisionerCoreOptions {
  clock?: () => number;
  /** Divides the waits below (a time scale for demos and tests). Default 1. */
  speedup?: number;
  /**
   * How long the broker should plan around a pool at its maximum, ms: until then its nodes take work but
   * it adds none. The broker counts a pool's nodes itself; this covers a view older than the agent's.
   * Default 30 s.
   */
  maxNodesRetryAfterMs?: number;
  /** How long to plan around a pool whose cloud failed to launch nodes for another reason, ms. Default 60 s. */
  errorRetryAfterMs?: number;
}

/** A node asked for and not yet listed by the cloud. */
export interface PlannedNode {
  plannedId: string;
  pool: string;
  capacityType: Pool['capacityType'];
  createdAt: number;
  /** Counted against the pool's maximum (the cloud's own nodes were listed first). */
  admitted: boolean;
}

/** The core's provisioner, with its planned nodes for tests and the spend audit. */
export interface ProvisionerCore extends NodeProvisioner {
  /** Planned nodes the cloud does not list yet. */
  planned(): PlannedNode[];
  /** The cloud's provisioner behind the core. */
  readonly inner: NodeProvisioner;
}

/**
 * Puts the core in front of a cloud's provisioner. `createAgent` does this for every provisioner it
 * is given, so each cloud only lists, launches, terminates and says why a launch failed.
 *
 * @example
 * const provisioner = createProvisionerCore(createSimProvisioner(cluster), { speedup: 60 });
 */
export function createProvisionerCore(
  inner: NodeProvisioner,
  opts: ProvisionerCoreOptions = {},
): ProvisionerCore {
  if (isCore(inner)) return inner;
  const clock = opts.clock ?? Date.now;
  const speedup = opts.speedup ?? 1;
  const maxNodesRetryAfterMs = (opts.maxNodesRetryAfterMs ?? MAX_NODES_RETRY_AFTER_MS) / speedup;
  const errorRetryAfterMs = (opts.errorRetryAfterMs ?? 60_000) / speedup;
  const planned = new Map<string, PlannedNode>();
  /** Planned ids removed before the cloud listed them: terminated as soon as it does. */
  const unwanted = new Set<string>();
  /** Removals under way: the agent's idle scale-down asks every heartbeat, the cloud is called once. */
  const removing = new Map<string, Promise<void>>();
  const listeners: ((e: NodeEvent) => void)[] = [];
  const emit = (e: NodeEvent) => listeners.forEach((l) => l(e));

  /** The cloud's nodes; planned entries it now lists are settled (counted once, as its nodes). */
  function cloudNodes(): ProvisionedNode[] {
    const nodes = inner.list();
    for (const n of nodes) {
      if (!n.plannedId) continue;
      planned.delete(n.plannedId);
      if (unwanted.delete(n.plannedId)) void inner.remove(n.name).catch(() => undefined);
    }
    return nodes;
  }

  function exhausted(pool: Pool, ids: string[], kind: ExhaustedKind, reason: string, retryAfterMs: number) {
    if (ids.length === 0) return;
    for (const id of ids) planned.delete(id);
    emit({ type: 'exhausted', pool: pool.name, plannedIds: ids, kind, reason, retryAfterMs });
  }

  /** Counts the pool now and admits as many of `ids` as it has room for; the rest are refused. */
  function admit(pool: Pool, ids: string[]): string[] {
    const nodes = cloudNodes().filter((n) => n.pool === pool.name).length;
    const admitted = [...planned.values()].filter((p) => p.pool === pool.name && p.admitted).length;
    const still = ids.filter((id) => planned.has(id));
    const room = Math.max(0, pool.maxNodes - nodes - admitted);
    const wanted = still.slice(0, room);
    for (const id of wanted) planned.get(id)!.admitted = true;
    const over = still.slice(room);
    if (over.length > 0) {
      for (const id of over) planned.delete(id);
      emit(atMaximum(pool, over, maxNodesRetryAfterMs));
    }
    return wanted;
  }

  /** After the cloud's `add`: planned ids it neither lists nor reported are given up, saying why. */
  function settle(pool: Pool, ids: string[], err: unknown): void {
    cloudNodes();
    const left = ids.filter((id) => planned.has(id));
    const why = err instanceof Error ? err.message : 'the cloud did not launch it';
    exhausted(pool, left, 'error', `could not add to pool ${pool.name}: ${why}`, errorRetryAfterMs);
  }

  inner.onEvent((e) => {
    if (e.type === 'exhausted') {
      for (const id of e.plannedIds) planned.delete(id);
    } else if (e.node.plannedId) {
      planned.delete(e.node.plannedId);
    }
    emit(e);
  });

  return {
    kind: inner.kind,
    inner,
    planned: () => (cloudNodes(), [...planned.values()]),
    list() {
      const nodes = cloudNodes();
      const waiting = [...planned.values()].map((p): ProvisionedNode => ({
        name: p.plannedId,
        pool: p.pool,
        ready: false,
        capacityType: p.capacityType,
        plannedId: p.plannedId,
        createdAt: p.createdAt,
      }));
      return [...nodes, ...waiting];
    },
    async add(pool: Pool, plannedIds: readonly string[]) {
      const known = new Set(cloudNodes().flatMap((n) => (n.plannedId ? [n.plannedId] : [])));
      const fresh = [...new Set(plannedIds)].filter((id) => !known.has(id) && !planned.has(id));
      if (fresh.length === 0) return;
      // In the list before any await: a launch for these ids that arrives meanwhile waits for them.
      for (const plannedId of fresh)
        planned.set(plannedId, {
          plannedId,
          pool: pool.name,
          capacityType: pool.capacityType,
          createdAt: clock(),
          admitted: false,
        });
      let failure: unknown;
      try {
        // The instances the cluster already has count against the maximum (an agent restarted).
        await inner.whenListed?.();
        const wanted = admit(pool, fresh);
        if (wanted.length > 0) await inner.add(pool, wanted);
      } catch (err) {
        failure = err;
        throw err;
      } finally {
        settle(pool, fresh, failure);
      }
    },
    async remove(nodeName: string) {
      if (planned.has(nodeName)) {
        const p = planned.get(nodeName)!;
        planned.delete(nodeName);
        // The cloud may launch it yet; it goes as soon as it is listed.
        if (p.admitted) unwanted.add(nodeName);
        emit({
          type: 'gone',
          node: {
            name: nodeName,
            pool: p.pool,
            ready: false,
            capacityType: p.capacityType,
            plannedId: nodeName,
            createdAt: p.createdAt,
          },
        });
        return;
      }
      const under = removing.get(nodeName);
      if (under) return under;
      const done = inner.remove(nodeName).finally(() => removing.delete(nodeName));
      removing.set(nodeName, done);
      return done;
    },
    onEvent(listener) {
      listeners.push(listener);
    },
    ...(inner.ping ? { ping: () => inner.ping!() } : {}),
    ...(inner.whenListed ? { whenListed: () => inner.whenListed!() } : {}),
    close: () => inner.close(),
  };
}

function isCore(p: NodeProvisioner): p is ProvisionerCore {
  return 'inner' in p && typeof (p as ProvisionerCore).planned === 'function';
}
