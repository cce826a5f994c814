/**
 * The node-provisioner core, one lifecycle for every cloud. `createCloudProvisioner` watches a cloud
 * through its adapter (list, launch, terminate, a launch's refusals as data): it adopts the instances
 * found at start, reports nodes ready, spot reclaims as preempted and other ends as gone.
 * `createProvisionerCore` sits in front of every agent's provisioner: a planned node is counted once, from
 * the moment the broker asks for it until it is ready, gone or given up; a pool's maximum has one
 * answer whatever the cloud (`exhausted` of kind `max-nodes`); a cloud that drops or refuses a node is
 * reported as data, never left as a phantom the broker keeps counting.
 *
 * Why the bookkeeping is here and not in each cloud: the broker sends `scale` and then `launch` for the
 * same planned ids at once. A cloud's `add` is asynchronous (it lists the instances the cluster has,
 * then calls the API), so a launch that arrived before it listed the node found nothing, was answered
 * "not in this cluster", and the broker planned again — and bought again — every cycle.
 */
import { pino, type Logger } from 'pino';
import type { Cluster, Pool } from '../policies/index.ts';
import {
  type CloudAdapter,
  type CloudInstance,
  type ExhaustedKind,
  type LaunchOutcome,
  type NodeEvent,
  type NodeProvisioner,
  PollHealth,
  type ProvisionedNode,
} from './provisioner.ts';

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

  /** Planned ids reported gone before the cloud listed them: their instances are not the agent's. */
  const dropped = new Set<string>();

  /** Removes a node once, however often it is asked (the agent's idle scale-down asks every heartbeat). */
  function removeOnce(nodeName: string): Promise<void> {
    const under = removing.get(nodeName);
    if (under) return under;
    const done = inner.remove(nodeName).finally(() => removing.delete(nodeName));
    removing.set(nodeName, done);
    return done;
  }

  /** The cloud's nodes; planned entries it now lists are settled (counted once, as its nodes). */
  function cloudNodes(): ProvisionedNode[] {
    const nodes = inner.list();
    for (const n of nodes) {
      if (!n.plannedId) continue;
      planned.delete(n.plannedId);
      if (unwanted.delete(n.plannedId))
        // Asked again at the next listing should the cloud refuse now.
        removeOnce(n.name).catch(() => unwanted.add(n.plannedId!));
    }
    return nodes.filter((n) => !n.plannedId || !dropped.has(n.plannedId));
  }

  function exhausted(pool: Pool, ids: string[], kind: ExhaustedKind, reason: string, retryAfterMs: number) {
    if (ids.length === 0) return;
    for (const id of ids) planned.delete(id);
    emit({ type: 'exhausted', pool: pool.name, plannedIds: ids, kind, reason, retryAfterMs });
  }

  /** Counts the pool now and admits as many of `ids` as it has room for; the rest are refused. */
  function admit(pool: Pool, ids: string[]): string[] {
    cloudNodes();
    // Every instance the cloud has counts, those on their way out too: they run until they are gone.
    const nodes = inner.list().filter((n) => n.pool === pool.name).length;
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
      // The agent was told this node went; it hears nothing more of it, and it is terminated.
      if (dropped.has(e.node.plannedId)) {
        if (e.type === 'ready') cloudNodes();
        else dropped.delete(e.node.plannedId);
        return;
      }
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
        if (p.admitted) {
          unwanted.add(nodeName);
          dropped.add(nodeName);
        }
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
      return removeOnce(nodeName);
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

/** Options of {@link createCloudProvisioner}. */
export interface CloudProvisionerOptions {
  /** How often the cloud's instances are listed, ms. Default 5000. */
  pollMs?: number;
  clock?: () => number;
  logger?: Logger;
}

/** A cloud's provisioner, with a handle to list its instances now. */
export interface CloudProvisioner extends NodeProvisioner {
  /** Lists the instances now (after any listing under way) and reports what changed; rejects if it failed. */
  refresh(): Promise<void>;
}

/** An instance the core watches. */
interface Watched {
  instance: CloudInstance;
  node: ProvisionedNode;
  /** A listing has shown it: only then does its absence mean it is gone (clouds list eventually). */
  listed: boolean;
}

/** How long an instance Gantry terminated is kept from being adopted again at most (EC2 lists them ~1 h). */
const FORGET_TERMINATED_MS = 2 * 3_600_000;

/**
 * The core's watch of one cloud, the same for every cloud: it lists the cluster's instances every
 * `pollMs`, adopts the ones it did not launch (an agent restarted: they count against maximums at
 * once), reports nodes `ready` when they run and `preempted` (spot) or `gone` when they end without
 * being asked, and never adopts or loses again an instance it is terminating. The adapter only lists,
 * launches, terminates and says why a launch failed.
 *
 * @example
 * const provisioner = createCloudProvisioner(cluster, ec2Adapter(cluster, opts), { pollMs: 5000 });
 */
export function createCloudProvisioner(
  cluster: Cluster,
  adapter: CloudAdapter,
  opts: CloudProvisionerOptions = {},
): CloudProvisioner {
  const pollMs = opts.pollMs ?? 5000;
  const clock = opts.clock ?? Date.now;
  const log = opts.logger ?? pino({ level: 'silent' });
  const pools = new Map(cluster.pools.map((p) => [p.name, p]));
  const watched = new Map<string, Watched>();
  /** Instances being terminated; `afterPoll`: listings numbered above it started once it was done. */
  const terminating = new Map<string, { afterPoll: number; at: number }>();
  const listeners: ((e: NodeEvent) => void)[] = [];
  const warned = new Set<string>();
  /** Launches under way per pool: an instance of theirs listed before its planned id is tagged is theirs. */
  const launching = new Map<string, number>();
  // Three listings missed in a row, and the cloud is taken not to answer.
  const health = new PollHealth(adapter.listCall, 3 * pollMs + 5000, clock);
  let polls = 0;
  let synced = false;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let chain: Promise<void> = Promise.resolve();
  let firstListing: Promise<void> | undefined;

  function emit(event: NodeEvent): void {
    for (const listener of listeners) {
      try {
        listener(event);
      } catch (err) {
        log.error({ err: (err as Error).message, event: event.type }, 'node event listener failed');
      }
    }
  }

  /** Starts watching an instance this process did not launch; undefined if its pool is not the cluster's. */
  function adopt(inst: CloudInstance): Watched | undefined {
    const pool = inst.pool === undefined ? undefined : pools.get(inst.pool);
    if (!pool) {
      if (!warned.has(inst.id))
        log.warn({ instance: inst.id, pool: inst.pool }, 'instance of no pool; ignored');
      warned.add(inst.id);
      return undefined;
    }
    const node: ProvisionedNode = {
      name: inst.name,
      pool: pool.name,
      ready: false,
      capacityType: pool.capacityType,
      ...(inst.plannedId ? { plannedId: inst.plannedId } : {}),
      createdAt: inst.createdAt ?? clock(),
    };
    const w = { instance: inst, node, listed: false };
    watched.set(inst.id, w);
    return w;
  }

  /**
   * Applies what the cloud says of one instance; `announce`: report a node that comes up. An untagged
   * instance of a pool being launched into is left to the launch's answer, which names its planned id;
   * adopted now, it would count twice against the pool's maximum (as itself and as the planned node).
   */
  function observe(inst: CloudInstance, announce: boolean): void {
    const launchedNow = !inst.plannedId && (launching.get(inst.pool ?? '') ?? 0) > 0;
    const w = watched.get(inst.id) ?? (inst.state === 'ended' || launchedNow ? undefined : adopt(inst));
    if (!w) return;
    if (inst.state === 'ended') return lose(w, inst);
    w.instance = { ...inst, spot: w.instance.spot || inst.spot };
    // A planned id tagged after the launch (EC2) arrives with a later listing.
    if (!w.node.plannedId && inst.plannedId) w.node.plannedId = inst.plannedId;
    // Until it is ready nothing runs on the node, so it may still take its final name (EC2's DNS name).
    if (!w.node.ready) w.node.name = inst.name;
    if (inst.state === 'running' && !w.node.ready) {
      w.node.ready = true;
      if (announce) emit({ type: 'ready', node: w.node });
    }
  }

  /** The instance ended without being asked: reclaimed when it was spot, gone otherwise. */
  function lose(w: Watched, inst?: CloudInstance): void {
    watched.delete(w.instance.id);
    const reclaimed = w.instance.spot || inst?.spot === true || w.node.capacityType === 'spot';
    log.info({ node: w.node.name, instance: w.instance.id }, reclaimed ? 'node reclaimed' : 'node lost');
    emit({ type: reclaimed ? 'preempted' : 'gone', node: w.node });
  }

  async function pollOnce(): Promise<void> {
    if (closed) return;
    const n = ++polls;
    const before = new Set(watched.keys());
    const instances = await adapter.list();
    if (closed) return;
    const seen = new Set(instances.map((i) => i.id));
    for (const inst of instances) {
      if (terminating.has(inst.id)) {
        if (inst.state === 'ended') terminating.delete(inst.id);
        continue;
      }
      // The first listing adopts quietly: those nodes are in `list()`, nothing changed for them.
      observe(inst, synced);
      const w = watched.get(inst.id);
      if (w) w.listed = true;
    }
    // Only instances known when the listing began can be missing from it: later ones were launched since.
    for (const id of before) {
      const w = watched.get(id);
      if (w?.listed && !seen.has(id) && !terminating.has(id)) lose(w);
    }
    for (const [id, t] of terminating)
      if ((t.afterPoll < n && !seen.has(id)) || clock() - t.at > FORGET_TERMINATED_MS) terminating.delete(id);
    synced = true;
    health.ok();
  }

  function refresh(): Promise<void> {
    const next = chain.then(pollOnce);
    chain = next.catch((err: unknown) => health.failed(err));
    return next;
  }

  function schedule(delayMs: number): void {
    if (closed) return;
    timer = setTimeout(() => {
      refresh()
        .catch((err: Error) =>
          log.warn({ cluster: cluster.name, err: err.message }, 'could not list instances'),
        )
        .finally(() => schedule(pollMs));
    }, delayMs);
    timer.unref();
  }

  function find(nodeName: string): Watched | undefined {
    for (const w of watched.values())
      if (w.node.name === nodeName || w.node.plannedId === nodeName || w.instance.id === nodeName) return w;
    return undefined;
  }

  schedule(0);

  return {
    kind: adapter.kind,
    refresh,
    list: () => [...watched.values()].map((w) => w.node),
    whenListed() {
      if (synced) return Promise.resolve();
      // One first listing for every caller; another after a failed one.
      firstListing ??= refresh().catch((err: unknown) => {
        firstListing = undefined;
        throw err;
      });
      return firstListing;
    },
    async add(pool: Pool, plannedIds: readonly string[]) {
      if (!synced) await this.whenListed!();
      const known = new Set(
        [...watched.values()].flatMap((w) => (w.node.plannedId ? [w.node.plannedId] : [])),
      );
      const fresh = [...new Set(plannedIds)].filter((id) => !known.has(id));
      if (fresh.length === 0) return;
      launching.set(pool.name, (launching.get(pool.name) ?? 0) + 1);
      let outcome: LaunchOutcome;
      try {
        outcome = await adapter.launch(pool, fresh);
      } finally {
        launching.set(pool.name, launching.get(pool.name)! - 1);
      }
      for (const inst of outcome.launched) {
        // A listing during the launch may have adopted it already, without its planned id.
        const w = watched.get(inst.id) ?? adopt({ ...inst, pool: pool.name });
        if (w && inst.plannedId) w.node.plannedId = inst.plannedId;
        observe(inst, true);
      }
      for (const r of outcome.refused) {
        log.warn({ pool: pool.name, nodes: r.plannedIds.length, reason: r.reason }, 'pool exhausted');
        emit({ type: 'exhausted', pool: pool.name, ...r });
      }
      if (outcome.failed) throw outcome.failed;
    },
    async remove(nodeName: string) {
      const w = find(nodeName);
      if (!w) return;
      const id = w.instance.id;
      terminating.set(id, { afterPoll: Infinity, at: clock() });
      try {
        await adapter.terminate(w.instance);
      } catch (err) {
        terminating.delete(id);
        throw err;
      }
      terminating.set(id, { afterPoll: polls, at: clock() });
      if (watched.delete(id)) emit({ type: 'gone', node: w.node });
    },
    onEvent(listener) {
      listeners.push(listener);
    },
    async ping() {
      health.check();
    },
    async close() {
      closed = true;
      clearTimeout(timer);
      await chain;
      await adapter.close();
    },
  };
}
