/**
 * The agent of one cluster: registers with the broker, sends heartbeats with its nodes, launches leased
 * work through its executor (once per lease id, however often the broker asks), scales its pools through
 * its provisioner, and reports every lease and node change.
 */
import { randomUUID } from 'node:crypto';
import { pino, type Logger } from 'pino';
import type { Cluster, Pool } from '../policies/index.ts';
import {
  cancelMsg,
  encodeJson,
  launchMsg,
  MAX_FINISHED_IN_HEARTBEAT,
  type AgentEvent,
  type LeaseEndCause,
  type LeaseMsg,
  type Msg,
  parseMessage,
  scaleMsg,
  stopMsg,
  type Subscription,
  subjects,
  type TaskState,
  type Transport,
} from '../protocol/index.ts';
import { DONE, type Held, observeGauges } from './agent-gauges.ts';
import { answersWithin, EventOutbox } from './agent-events.ts';
import type { Executor } from './executor.ts';
import { type AgentMetrics, createAgentMetrics } from './metrics.ts';
import { createProvisionerCore } from './node-core.ts';
import type { NodeEvent, NodeProvisioner, ProvisionedNode } from './provisioner.ts';

/** Options of {@link createAgent}. */
export interface AgentOptions {
  transport: Transport;
  cluster: Cluster;
  executor: Executor;
  provisioner: NodeProvisioner;
  agentId?: string;
  /** Used until the broker says otherwise at registration. Default 1000. */
  heartbeatMs?: number;
  clock?: () => number;
  logger?: Logger;
  /** Divides pools' idle TTLs (a time scale for demos and tests). Default 1. */
  speedup?: number;
  metrics?: AgentMetrics;
  /** How long `readiness()` waits for the executor and the provisioner to answer. Default 5000. */
  pingTimeoutMs?: number;
  /**
   * Called once the broker removed the cluster (`gantry cluster remove`) and the agent has terminated
   * the nodes it was told to and stopped: `gantry agent` exits.
   */
  onRemoved?: (reason: string) => void;
}

/** Whether the agent can do its job now, and what it waits for. */
export interface AgentReadiness {
  ready: boolean;
  detail: string;
}

/** A running agent. */
export interface Agent {
  readonly id: string;
  readonly cluster: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Leases this agent runs now. */
  active(): string[];
  readonly metrics: AgentMetrics;
  /**
   * Ready once the broker accepted its registration, while NATS is connected and its executor and
   * provisioner answer (each within `pingTimeoutMs`). What `/readyz` answers.
   */
  readiness(): Promise<AgentReadiness>;
}

/** How long, and how many, ended leases are repeated in heartbeats. */
const FINISHED_KEPT_MS = 10_000;
/** Ended leases are remembered this long, to answer repeated launches. */
const DONE_KEPT_MS = 3_600_000;
const MAX_FINISHED = MAX_FINISHED_IN_HEARTBEAT;

/**
 * Creates an agent.
 *
 * @example
 * const agent = createAgent({ transport, cluster, executor: createSimExecutor(), provisioner: createSimProvisioner(cluster) });
 * await agent.start();
 */
export function createAgent(opts: AgentOptions): Agent {
  const { transport, cluster, executor } = opts;
  // Planned nodes, the pools' maximums and give-ups are the core's, whatever the cloud.
  const provisioner = createProvisionerCore(opts.provisioner, {
    ...(opts.clock ? { clock: opts.clock } : {}),
    speedup: opts.speedup ?? 1,
  });
  const name = cluster.name;
  const id = opts.agentId ?? `agent-${name}-${randomUUID().slice(0, 8)}`;
  const clock = opts.clock ?? Date.now;
  const log = opts.logger ?? pino({ level: 'silent' });
  const speedup = opts.speedup ?? 1;
  const metrics = opts.metrics ?? createAgentMetrics();
  metrics.initialise(
    name,
    cluster.pools.map((p) => p.name),
  );
  const pingTimeoutMs = opts.pingTimeoutMs ?? 5000;
  let registered = false;
  // Without NATS the agent can neither hear launches nor send heartbeats.
  let connected = true;
  transport.onEvent((e) => {
    if (e === 'disconnected' || e === 'reconnecting' || e === 'closed') connected = false;
    if (e === 'reconnected') connected = true;
  });
  const pools = new Map<string, Pool>(cluster.pools.map((p) => [p.name, p]));
  const leases = new Map<string, Held>();
  /** The leases not ended yet: heartbeats, gauges and consolidation look only at these. */
  const live = new Map<string, Held>();
  const waiting = new Map<string, string[]>(); // node name → leases waiting for it to come up
  const lastBusy = new Map<string, number>();
  const readyAt = new Map<string, number>();
  const cancelled = new Set<string>();
  // Leases that ended, newest last, repeated in heartbeats for a while (see heartbeatMsg.finished).
  const finished: {
    leaseId: string;
    state: TaskState;
    node?: string;
    reason?: string;
    startedAt?: number;
    at: number;
  }[] = [];
  const subs: Subscription[] = [];
  let heartbeatMs = opts.heartbeatMs ?? 1000;
  let heartbeat: NodeJS.Timeout | undefined;
  let seq = 0;
  let stopped = false;

  function report(
    leaseId: string,
    state: TaskState,
    info: { exitCode?: number; reason?: string; cause?: LeaseEndCause; ranMs?: number } = {},
  ): void {
    const held = leases.get(leaseId);
    if (!held || DONE.has(held.state)) return;
    held.state = state;
    if (DONE.has(state)) live.delete(leaseId);
    if (held.node) lastBusy.set(held.node, clock());
    if (state === 'running') held.startedAt = clock();
    const started =
      (DONE.has(state) || state === 'running') && held.startedAt !== undefined
        ? { startedAt: held.startedAt }
        : {};
    if (DONE.has(state)) {
      metrics.ends.inc({ cluster: name, state });
      held.endedAt = clock();
      finished.push({
        leaseId,
        state,
        at: clock(),
        ...(held.node ? { node: held.node } : {}),
        ...(info.reason ? { reason: info.reason } : {}),
        ...(info.cause ? { cause: info.cause } : {}),
        ...(info.ranMs !== undefined ? { ranMs: info.ranMs } : {}),
        ...started,
      });
    }
    emit({
      type: 'lease',
      cluster: name,
      leaseId,
      state,
      at: clock(),
      ...(held.node ? { node: held.node } : {}),
      ...info,
      ...started,
    });
  }

  // Events go out in batches: one message per few milliseconds instead of one per state change.
  const outbox = new EventOutbox(transport, name, log);
  const emit = (event: AgentEvent) => outbox.emit(event);

  function run(held: Held, node: string): void {
    held.node = node;
    metrics.launches.inc({ cluster: name });
    report(held.lease.leaseId, 'launching');
    // A gang's rendezvous is rank 0's node as it came up (the broker knew it by its planned id).
    const gang = held.lease.gang;
    const lease = gang ? { ...held.lease, gang: { ...gang, master: nodeName(gang.master) } } : held.lease;
    executor.start(lease, node, (state, info) => report(held.lease.leaseId, state, info));
  }

  function nodeName(nameOrPlannedId: string): string {
    return (
      provisioner.list().find((n) => n.name === nameOrPlannedId || n.plannedId === nameOrPlannedId)?.name ??
      nameOrPlannedId
    );
  }

  function readyNode(nodeName: string): ProvisionedNode | undefined {
    return provisioner.list().find((n) => (n.name === nodeName || n.plannedId === nodeName) && n.ready);
  }

  function onLaunch(msg: Msg): void {
    const parsed = parseMessage(launchMsg, msg.data);
    if (!parsed.ok) return transport.respond(msg, encodeJson(parsed));
    const foreign = parsed.value.leases.find((l) => l.cluster !== name);
    if (foreign) {
      const error = {
        code: 'wrong-cluster',
        message: `lease ${foreign.leaseId} is for ${foreign.cluster}`,
        field: 'leases.cluster',
      };
      return transport.respond(msg, encodeJson({ ok: false, error }));
    }
    transport.respond(msg, encodeJson({ ok: true }));
    for (const lease of parsed.value.leases) launch(lease);
  }

  function launch(lease: LeaseMsg): void {
    if (cancelled.has(lease.leaseId)) {
      emit({
        type: 'lease',
        cluster: name,
        leaseId: lease.leaseId,
        state: 'lost',
        at: clock(),
        reason: 'cancelled',
      });
      return;
    }
    const known = leases.get(lease.leaseId);
    if (known) {
      // Launch is idempotent: tell the broker again where the lease stands (it may have missed it).
      emit({
        type: 'lease',
        cluster: name,
        leaseId: lease.leaseId,
        state: known.state,
        at: clock(),
        ...(known.node ? { node: known.node } : {}),
        ...(known.startedAt !== undefined ? { startedAt: known.startedAt } : {}),
      });
      return;
    }
    const held: Held = { lease, state: 'placed' };
    leases.set(lease.leaseId, held);
    live.set(lease.leaseId, held);
    const node = readyNode(lease.node);
    if (node) run(held, node.name);
    else if (provisioner.list().some((n) => n.name === lease.node || n.plannedId === lease.node)) {
      const list = waiting.get(lease.node);
      if (list) list.push(lease.leaseId);
      else waiting.set(lease.node, [lease.leaseId]);
      // Taken: it starts when its node is up (the broker stops sending it again).
      report(lease.leaseId, 'launching');
    } else {
      // The node went away (consolidated, reclaimed) or could not be added: the broker places it again.
      report(lease.leaseId, 'lost', {
        reason: `node ${lease.node} is not in this cluster`,
        cause: { kind: 'unknown-node', detail: lease.node },
      });
    }
  }

  function onScale(msg: Msg): void {
    const parsed = parseMessage(scaleMsg, msg.data);
    if (!parsed.ok) return log.warn({ error: parsed.error }, 'bad scale message');
    const pool = pools.get(parsed.value.pool);
    if (!pool) return log.warn({ pool: parsed.value.pool }, 'scale for an unknown pool');
    void provisioner
      .add(pool, parsed.value.add)
      .catch((err: Error) => log.error({ pool: pool.name, err: err.message }, 'could not add nodes'));
    for (const n of parsed.value.remove) {
      void provisioner
        .remove(n)
        .catch((err: Error) => log.warn({ node: n, err: err.message }, 'could not remove node'));
    }
  }

  /** The cluster was removed: terminate the nodes the broker names, answer, and stop. */
  function onStop(msg: Msg): void {
    const parsed = parseMessage(stopMsg, msg.data);
    if (!parsed.ok) return transport.respond(msg, encodeJson(parsed));
    const { terminate, reason } = parsed.value;
    void (async () => {
      const results = await Promise.allSettled(terminate.map((n) => provisioner.remove(n)));
      const terminated = terminate.filter((_, i) => results[i]!.status === 'fulfilled');
      const failed = results.flatMap((r, i) =>
        r.status === 'rejected'
          ? [{ node: terminate[i]!, reason: String((r.reason as Error).message ?? r.reason) }]
          : [],
      );
      transport.respond(msg, encodeJson({ ok: true, terminated, failed }));
      log.info(
        { cluster: name, reason, terminated, failed },
        'cluster removed by the broker; agent stopping',
      );
      if (failed.length > 0) return; // the broker refuses the removal: keep serving
      await agent.stop();
      opts.onRemoved?.(reason);
    })();
  }

  function onCancel(msg: Msg): void {
    const parsed = parseMessage(cancelMsg, msg.data);
    if (!parsed.ok) return;
    cancelled.add(parsed.value.leaseId);
    executor.stop(parsed.value.leaseId);
    // Lost, not failed: the broker has placed (or will place) the work again.
    report(parsed.value.leaseId, 'lost', {
      reason: `cancelled: ${parsed.value.reason}`,
      cause: { kind: 'cancelled', detail: parsed.value.reason.slice(0, 500) },
    });
  }

  provisioner.onEvent((e) => {
    if (e.type === 'exhausted') return onExhausted(e);
    emit({
      type: 'node',
      cluster: name,
      node: e.node.name,
      pool: e.node.pool,
      state: e.type,
      at: clock(),
      ...(e.node.plannedId ? { plannedId: e.node.plannedId } : {}),
    });
    if (e.type === 'ready') {
      lastBusy.set(e.node.name, clock());
      readyAt.set(e.node.name, clock());
      for (const key of [e.node.name, e.node.plannedId]) {
        if (!key) continue;
        for (const leaseId of waiting.get(key) ?? []) {
          const held = leases.get(leaseId);
          if (held && !held.node && (held.state === 'placed' || held.state === 'launching'))
            run(held, e.node.name);
        }
        waiting.delete(key);
      }
      sendHeartbeat();
      return;
    }
    for (const key of [e.node.name, e.node.plannedId]) {
      for (const leaseId of (key && waiting.get(key)) || [])
        report(leaseId, 'lost', {
          reason: `node ${e.node.name} went away before it was ready`,
          cause: { kind: 'node-gone', detail: e.node.name },
        });
      if (key) waiting.delete(key);
    }
    for (const held of [...live.values()]) {
      if (held.node !== e.node.name) continue;
      executor.stop(held.lease.leaseId);
      report(held.lease.leaseId, e.type === 'preempted' ? 'preempted' : 'lost', {
        reason: `node ${e.node.name} ${e.type === 'preempted' ? 'was reclaimed (spot)' : 'went away'}`,
        cause: { kind: e.type === 'preempted' ? 'node-reclaimed' : 'node-gone', detail: e.node.name },
      });
    }
  });

  /** The cloud could not add nodes: tell the broker, and give back the leases that waited for them. */
  function onExhausted(e: Extract<NodeEvent, { type: 'exhausted' }>): void {
    log.warn({ pool: e.pool, kind: e.kind, reason: e.reason, nodes: e.plannedIds.length }, 'pool exhausted');
    emit({
      type: 'pool',
      cluster: name,
      pool: e.pool,
      state: 'exhausted',
      kind: e.kind,
      reason: e.reason.slice(0, 2000),
      retryAfterMs: e.retryAfterMs,
      plannedIds: e.plannedIds,
      at: clock(),
    });
    for (const key of e.plannedIds) {
      for (const leaseId of waiting.get(key) ?? [])
        report(leaseId, 'lost', {
          reason: `pool ${e.pool} exhausted: ${e.reason}`.slice(0, 500),
          cause: { kind: 'pool-exhausted', detail: e.pool },
        });
      waiting.delete(key);
    }
  }

  function nodesMsg() {
    return provisioner.list().map((n) => {
      const pool = pools.get(n.pool)!;
      // An executor that sees the nodes (Kubernetes) says what is free on them, and whether they
      // have joined; otherwise a node offers its pool's shape.
      const cap = executor.capacity?.(n.name);
      const ready = n.ready && (executor.capacity ? cap?.ready === true : true);
      // A node that went not-ready starts a new ready period when it comes back.
      if (!ready) readyAt.delete(n.name);
      else if (!readyAt.has(n.name))
        readyAt.set(n.name, n.ready && executor.capacity ? clock() : n.createdAt);
      return {
        name: n.name,
        pool: n.pool,
        cpuMilli: cap?.cpuMilli ?? pool.cpuMilli,
        memoryMiB: cap?.memoryMiB ?? pool.memoryMiB,
        gpuCount: cap?.gpuCount ?? pool.gpuCount,
        ready,
        ...(ready ? { readyAt: readyAt.get(n.name)! } : {}),
        capacityType: n.capacityType,
        ...(n.plannedId ? { plannedId: n.plannedId } : {}),
      };
    });
  }

  function active(): string[] {
    return [...live.keys()];
  }

  /**
   * Forgets leases that ended over an hour ago. Until then a launch the broker repeats (it restarted and
   * missed the end) is answered from memory instead of being run again.
   */
  function prune(): void {
    const before = clock() - DONE_KEPT_MS;
    for (const [id, held] of leases)
      if (DONE.has(held.state) && (held.endedAt ?? Infinity) < before) leases.delete(id);
    if (cancelled.size > 100_000) cancelled.clear();
  }

  function sendHeartbeat(): void {
    if (stopped) return;
    const since = clock() - FINISHED_KEPT_MS;
    while (finished.length > 0 && (finished[0]!.at < since || finished.length > MAX_FINISHED))
      finished.shift();
    const recent = finished.map(({ at: _at, ...f }) => f);
    const nodes = nodesMsg();
    const hb = {
      cluster: name,
      agentId: id,
      seq: seq++,
      nodes,
      activeCount: live.size,
      finished: recent,
    };
    transport.publish(subjects.heartbeat(name), encodeJson(hb));
    metrics.heartbeats.inc({ cluster: name });
    observe(nodes);
  }

  let observedAt = -Infinity;
  /** The gauges, at most once per heartbeat interval (a pool scaling up brings many heartbeats). */
  function observe(nodes: readonly { name: string; pool: string; ready: boolean }[]): void {
    if (clock() - observedAt < heartbeatMs / 2) return;
    observedAt = clock();
    // Only the leases not ended: those ended are kept an hour, and would make this a scan of them all.
    observeGauges(metrics, name, pools.keys(), live.values(), nodes);
  }

  /** Consolidation: nodes idle past their pool's TTL go away, never below the pool's minimum. */
  function consolidate(): void {
    const now = clock();
    const busy = new Set<string>();
    for (const h of live.values()) if (h.node) busy.add(h.node);
    const waitingFor = new Set(waiting.keys());
    for (const pool of pools.values()) {
      const mine = provisioner.list().filter((n) => n.pool === pool.name && n.ready);
      let count = mine.length;
      for (const n of mine) {
        if (count <= pool.minNodes) break;
        if (busy.has(n.name) || waitingFor.has(n.name) || (n.plannedId && waitingFor.has(n.plannedId)))
          continue;
        if (now - (lastBusy.get(n.name) ?? n.createdAt) < (pool.idleTtlSeconds * 1000) / speedup) continue;
        count--;
        void provisioner
          .remove(n.name)
          .catch((err: Error) => log.warn({ node: n.name, err: err.message }, 'could not remove node'));
      }
    }
  }

  async function register(): Promise<void> {
    for (let attempt = 0; !stopped; attempt++) {
      try {
        const reply = await transport.request(
          subjects.register(name),
          encodeJson({ cluster: name, agentId: id, version: '1' }),
          { timeoutMs: 2000, answeredAtOnce: true },
        );
        const body = JSON.parse(new TextDecoder().decode(reply.data)) as {
          ok: boolean;
          heartbeatMs?: number;
          error?: { message: string };
        };
        if (!body.ok) throw new Error(body.error?.message ?? 'registration refused');
        heartbeatMs = body.heartbeatMs ?? heartbeatMs;
        registered = true;
        metrics.registered.set({ cluster: name }, 1);
        return;
      } catch (err) {
        log.warn({ cluster: name, attempt, err: (err as Error).message }, 'registration failed; retrying');
        await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)));
      }
    }
  }

  const agent: Agent = {
    id,
    cluster: name,
    async start() {
      subs.push(transport.subscribe(subjects.launch(name), onLaunch));
      subs.push(transport.subscribe(subjects.scale(name), onScale));
      subs.push(transport.subscribe(subjects.cancel(name), onCancel));
      subs.push(transport.subscribe(subjects.stop(name), onStop));
      await register();
      sendHeartbeat();
      heartbeat = setInterval(() => {
        sendHeartbeat();
        consolidate();
        prune();
      }, heartbeatMs);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (heartbeat) clearInterval(heartbeat);
      for (const s of subs.splice(0)) s.unsubscribe();
      // Stopping the executor and the provisioner reports ends too: they go out with the last batch.
      await executor.close();
      await provisioner.close();
      // An executor's processes can still exit after this; nothing may publish on a transport that may
      // be closed by then.
      outbox.close();
    },
    active,
    metrics,
    async readiness() {
      if (stopped) return { ready: false, detail: 'stopping' };
      if (!connected) return { ready: false, detail: 'not connected to NATS' };
      if (!registered) return { ready: false, detail: `registering cluster ${name} with the broker` };
      const problems = (
        await Promise.all([
          answersWithin(`executor ${executor.kind}`, executor.ping?.bind(executor), pingTimeoutMs),
          answersWithin(
            `provisioner ${provisioner.kind}`,
            provisioner.ping?.bind(provisioner),
            pingTimeoutMs,
          ),
        ])
      ).filter((p): p is string => p !== undefined);
      if (problems.length > 0) return { ready: false, detail: problems.join('; ') };
      return {
        ready: true,
        detail: `cluster ${name}: registered; executor ${executor.kind} and provisioner ${provisioner.kind} answer`,
      };
    },
  };
  return agent;
}
