/**
 * The broker: keeps the inventory and the queue, places work in solve cycles, leases it to clusters and
 * follows it to the end. It talks only through a {@link Transport} and keeps state in a {@link Store}, so
 * the same code runs embedded (in-process transport, local directory) and over NATS with JetStream.
 */
import { randomUUID } from 'node:crypto';
import { pino, type Logger } from 'pino';
import type { Cluster, Platform } from '../policies/index.ts';
import {
  agentEvents,
  encodeJson,
  heartbeatMsg,
  type Msg,
  parseMessage,
  registerMsg,
  requestMsg,
  type RequestMsg,
  type Store,
  type Subscription,
  subjects,
  type TaskStateMsg,
  type Transport,
  type BrokerFailureKind,
} from '../protocol/index.ts';
import type { LpBackends } from '../solver/index.ts';
import { admit } from './admission.ts';
import { handleAdmin } from './admin.ts';
import { appliedClusterKey, restoreApplied } from './apply.ts';
import { runCycle } from './cycle.ts';
import { Inventory } from './inventory.ts';
import { Budgets, type Monthly } from './budgets.ts';
import { onDemandPrices } from './cost-report.ts';
import { FleetGauges, observePlan } from './fleet-gauges.ts';
import { type NodeLife, NodeLedger, type TaskUsage, usageOf } from './ledger.ts';
import { Leadership } from './leader.ts';
import { overrunActions } from './overrun.ts';
import { type BrokerMetrics, createBrokerMetrics, type MetricsLabels } from './metrics.ts';
import type { Readiness } from './metrics-http.ts';
import { loadRecords, readLifecycle, type RequestRecord } from './records.ts';
import { BrokerState } from './state.ts';

/** A node asked for that has not appeared after this long is no longer counted on. */
const PLANNED_MAX_AGE_MS = 180_000;

/** How often requests that ended long ago are forgotten. */
const PRUNE_INTERVAL_MS = 60_000;

/** How often per-cluster capacity and spend gauges are recomputed. */
const GAUGE_INTERVAL_MS = 5000;

/** Leases per launch message (a lease is about 600 bytes of JSON; NATS's default limit is 1 MiB). */
const LAUNCH_CHUNK = 1000;

/** Options of {@link createBroker}; everything but transport, store and platform has a default. */
export interface BrokerOptions {
  transport: Transport;
  store: Store;
  platform: Platform;
  backends?: LpBackends;
  /** Milliseconds since the epoch. Default `Date.now`. */
  clock?: () => number;
  logger?: Logger;
  brokerId?: string;
  /** A cycle starts this long after the first pending request, or at once when `maxBatch` are waiting. */
  windowMs?: number;
  maxBatch?: number;
  /** The agents' heartbeat interval: unhealthy after 1.5 missed, work re-placed after 2. */
  heartbeatMs?: number;
  /**
   * Simulated seconds per second (embedded mode on simulated clouds): the cost ledger's times run this
   * much faster than the clock from the broker's start, so reports show simulated hours. Default 1.
   */
  ledgerTimeScale?: number;
  /**
   * The clusters stop with the broker (embedded mode): their nodes' lifetimes end in the ledger when it
   * stops. Otherwise open nodes stay open for the next leader to follow.
   */
  nodesStopWithBroker?: boolean;
  leaseTtlMs?: number;
  /** Time budget of the solver per cycle. */
  solveBudgetMs?: number;
  /** A leader that stops renewing is replaced after this long. */
  leaderTtlMs?: number;
  newId?: () => string;
  metrics?: BrokerMetrics;
  /** Requests that ended are kept this long (memory and store), then forgotten. Default one hour. */
  retentionMs?: number;
}

/** A running broker. */
export interface Broker {
  readonly id: string;
  readonly metrics: BrokerMetrics;
  readonly state: BrokerState;
  readonly inventory: Inventory;
  readonly platform: Platform;
  /** Starts serving (once it leads). */
  start(): Promise<void>;
  /** Stops serving and writes what is buffered. */
  stop(): Promise<void>;
  isLeader(): boolean;
  /**
   * Ready when it leads and serves, or stands by and reached the store within the leadership TTL
   * (so it can take over with fresh state), and its transport is connected. What `/readyz` answers.
   */
  readiness(): Readiness;
  /** Recomputes the fleet gauges now (a scrape is coming); they are also recomputed every 5 s. */
  refreshGauges(): void;
  /** Adds or replaces a cluster (onboarding). */
  onboard(cluster: Cluster): Promise<void>;
  /** Resolves when no request is queued and no cycle runs. */
  idle(): Promise<void>;
}

/**
 * Creates a broker.
 *
 * @example
 * const broker = createBroker({ transport: createMemoryTransport(), store: await openLocalStore('.gantry'), platform });
 * await broker.start();
 */
export function createBroker(opts: BrokerOptions): Broker {
  const clock = opts.clock ?? Date.now;
  const log = opts.logger ?? pino({ level: 'silent' });
  const id = opts.brokerId ?? `broker-${randomUUID().slice(0, 8)}`;
  const windowMs = opts.windowMs ?? 20;
  const maxBatch = opts.maxBatch ?? 5000;
  const heartbeatMs = opts.heartbeatMs ?? 1000;
  const metrics = opts.metrics ?? createBrokerMetrics();
  const leaderTtlMs = opts.leaderTtlMs ?? 3000;
  const solveBudgetMs = opts.solveBudgetMs ?? 2000;
  metrics.initialise(metricLabels(opts.platform));
  metrics.solveBudgetSeconds.set(solveBudgetMs / 1000);
  const gauges = new FleetGauges(metrics);
  const newId = opts.newId ?? (() => `l-${randomUUID()}`);
  // Cycle numbers start again in every broker process; planned node names carry this token too.
  const instance = randomUUID().slice(0, 4);
  const { transport, store, platform } = opts;
  const state = new BrokerState(store, clock);
  const writer = state.writer;
  // The cost ledger: each lease that ran, and each node's lifetime, go to the log with the lifecycle.
  const poolOf = (cluster: string, pool: string) =>
    inventory.clusters.get(cluster)?.declared.pools.find((p) => p.name === pool);
  const scale = opts.ledgerTimeScale ?? 1;
  // Simulated time runs from when this broker started serving, on from where the ledger left off.
  let epoch = clock();
  let base = epoch;
  const ledgerTime = (t: number) => (scale === 1 ? t : Math.round(base + (t - epoch) * scale));
  const nodeLedger = new NodeLedger(poolOf, (t) => ledgerTime(t));
  const budgets = new Budgets(platform, scale, ledgerTime);
  state.onLeaseEnd = (lease, request) => {
    const usage = usageOf(lease, request, poolOf(lease.cluster, lease.pool));
    if (!usage) return;
    const entry = {
      ...usage,
      at: ledgerTime(usage.at),
      start: ledgerTime(usage.start),
      end: ledgerTime(usage.end),
    };
    writer.event(entry);
    budgets.record(entry);
  };

  /** Dollars, with four decimals under $1 (so small amounts that differ look different). */
  const usd = (v: number) => `$${v.toFixed(v < 1 ? 4 : 2)}`;

  /**
   * Holds the requests of teams whose monthly budget is used, or that would cross it; logs alerts.
   * Returns the rest.
   */
  function withinBudgets(batch: RequestRecord[]): RequestRecord[] {
    const teams = new Set(batch.map((r) => r.team));
    if (!budgets.anyMonthly(teams)) return batch;
    const now = clock();
    const committed = budgets.committedByTeam(state.active(), state.requests, now);
    const standing = new Map<string, Monthly | undefined>();
    for (const team of teams) {
      const m = budgets.monthly(team, committed.get(team) ?? 0, now);
      standing.set(team, m);
      if (!m) continue;
      metrics.budgetUsed.set({ team, policy: m.policy }, m.ratio);
      for (const threshold of budgets.newAlerts(team, m, now)) {
        log.warn({ team, policy: m.policy, threshold, used: Number(m.ratio.toFixed(3)) }, 'budget alert');
        metrics.budgetAlerts.inc({ team, policy: m.policy, threshold: String(threshold) });
      }
    }
    // Within what is left, requests go in order while their least possible cost fits.
    return batch.filter((r) => {
      const m = standing.get(r.team);
      if (!m) return true;
      if (m.held) {
        state.hold(r, m.held);
        return false;
      }
      const cost = budgets.leastCost(r);
      if (cost > m.left) {
        state.hold(
          r,
          `budget: this request (at least ${usd(cost)}) would cross team ${r.team}'s monthly budget of $${m.cap.toFixed(2)} (policy ${m.policy}): ${usd(Math.max(0, m.left))} left`,
        );
        return false;
      }
      m.left -= cost;
      return true;
    });
  }
  const inventory = new Inventory(platform.clusters);
  const waiters = new Map<string, Msg[]>();
  const subs: Subscription[] = [];
  const timers: NodeJS.Timeout[] = [];
  let cycleNo = 0;
  let cycleTimer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  const inflight: Promise<void>[] = [];
  let serving = false;
  let idleWaiters: (() => void)[] = [];

  const leadership = new Leadership(store, id, clock, leaderTtlMs, {
    onElected: () =>
      void serve().catch((err: Error) => {
        // Could not load the state: let another broker try.
        log.error({ err: err.message }, 'could not start serving; stepping down');
        void leadership.stop();
      }),
    onDeposed: () =>
      void unserve(false).catch((err: Error) =>
        log.error({ err: err.message }, 'could not stop serving cleanly'),
      ),
  });

  function bad(msg: Msg, subject: string, error: { code: string; message: string; field?: string }): void {
    metrics.badMessages.inc({ subject: subject.split('.').slice(0, 4).join('.') });
    log.warn({ subject: msg.subject, error }, 'refused a message');
    transport.respond(msg, encodeJson({ ok: false, error }));
  }

  function schedule(): void {
    metrics.queueDepth.set(state.queue.length + state.held.size);
    if (!serving || running) return;
    if (state.queue.length >= maxBatch) {
      if (cycleTimer) clearTimeout(cycleTimer);
      cycleTimer = undefined;
      setImmediate(cycle);
    } else if (state.queue.length > 0 && !cycleTimer) {
      cycleTimer = setTimeout(cycle, windowMs);
    } else if (state.queue.length === 0) {
      for (const w of idleWaiters) w();
      idleWaiters = [];
    }
  }

  function cycle(): void {
    cycleTimer = undefined;
    if (running || !serving) return;
    const before = [...state.queue];
    running = runOneCycle()
      .catch((err: Error) => {
        log.error({ err: err.message }, 'cycle failed; its requests wait for the next one');
        for (const id of before)
          if (state.requests.get(id)?.state === 'pending' && !state.queue.includes(id)) state.queue.push(id);
      })
      .finally(() => {
        running = undefined;
        schedule();
      });
  }

  async function runOneCycle(): Promise<void> {
    const started = clock();
    const ids = [...new Set(state.queue.splice(0, maxBatch))];
    const batch = withinBudgets(
      ids.map((i) => state.requests.get(i)).filter((r): r is RequestRecord => r?.state === 'pending'),
    );
    if (batch.length === 0) return;
    const number = ++cycleNo;
    const result = runCycle({
      number,
      batch,
      state,
      inventory,
      platform,
      backends: opts.backends,
      now: clock(),
      leaseTtlMs: opts.leaseTtlMs ?? 3_600_000,
      timeBudgetMs: solveBudgetMs,
      newId,
      instance,
    });
    // Durable before anyone hears of the leases. The write runs while the next cycle plans (at most
    // two writes in flight), so the store's latency does not hold up placement.
    const durable = writer.flushDurably(
      () => serving,
      (err) => log.warn({ err: err.message }, 'state write failed; retrying'),
    );
    const announce = durable.then((ok) => {
      // A broker deposed meanwhile says nothing: the new leader loads these leases and announces them.
      if (ok && serving) announceCycle(result);
    });
    inflight.push(announce);
    if (inflight.length > 1) await inflight.shift();
    metrics.cycles.inc();
    metrics.leases.inc(result.leases.length);
    metrics.solveSeconds.observe(result.solveMs / 1000);
    metrics.cycleSeconds.observe((clock() - started) / 1000);
    metrics.activeLeases.set(state.activeLeases());
    observePlan(metrics, result.plan);
    log.info(
      {
        cycle: number,
        tasks: result.tasks,
        leases: result.leases.length,
        held: result.held,
        solveMs: Math.round(result.solveMs),
        backend: result.backend,
      },
      'cycle',
    );
  }

  /** Tells agents and requesters what a cycle decided, once it is durable. */
  function announceCycle(result: ReturnType<typeof runCycle>): void {
    for (const [cluster, pools] of result.scale) {
      for (const [pool, add] of pools)
        transport.publish(subjects.scale(cluster), encodeJson({ pool, add, remove: [] }));
    }
    const byCluster = new Map<string, string[]>();
    const encoded = new Map<string, string>();
    for (const { lease } of result.leases) {
      append(byCluster, lease.cluster, lease.leaseId);
      encoded.set(lease.leaseId, JSON.stringify(lease));
    }
    for (const [cluster, ids] of byCluster) dispatch(cluster, ids, encoded);
    for (const { lease, request } of result.leases) {
      if (log.isLevelEnabled('debug')) {
        const { requestId, runId, taskId } = request;
        log.debug(
          {
            requestId,
            runId,
            taskId,
            leaseId: lease.leaseId,
            cluster: lease.cluster,
            pool: lease.pool,
            node: lease.node,
          },
          'placed',
        );
      }
      const text = encoded.get(lease.leaseId)!;
      // Nobody waits for a reply when the broker placed a request again (after a preemption or a
      // lost cluster): the requester hears of the new lease on the task's state subject.
      if (!answerRaw(request.requestId, `{"ok":true,"lease":${text}}`))
        transport.publish(
          subjects.taskState(request.requestId),
          new TextEncoder().encode(
            `{"requestId":${JSON.stringify(request.requestId)},"leaseId":${JSON.stringify(lease.leaseId)},"state":"placed","at":${clock()},"lease":${text}}`,
          ),
        );
    }
    for (const { request, reason } of result.refused) {
      metrics.refused.inc({ code: 'policy' });
      answer(request.requestId, { ok: false, error: { code: 'policy', message: reason } });
      publishState(request.requestId, undefined, 'failed', reason);
    }
  }

  function answer(requestId: string, body: unknown): void {
    answerRaw(requestId, JSON.stringify(body));
  }

  /** Answers everyone waiting for `requestId`; false when nobody was. */
  function answerRaw(requestId: string, json: string): boolean {
    const ws = waiters.get(requestId);
    if (!ws) return false;
    waiters.delete(requestId);
    const data = new TextEncoder().encode(json);
    for (const w of ws) transport.respond(w, data);
    return true;
  }

  function publishState(
    requestId: string,
    leaseId: string | undefined,
    s: string,
    reason?: string,
    node?: string,
    extra?: Pick<TaskStateMsg, 'hold' | 'failure'>,
  ): void {
    transport.publish(
      subjects.taskState(requestId),
      encodeJson({ requestId, leaseId, state: s, at: clock(), reason, node, ...extra }),
    );
  }

  /**
   * Ends a lease the broker decided to stop (budget, cancelled or abandoned run): failed with a typed
   * reason for its requester, and its work stopped on the agent.
   */
  function stopLease(leaseId: string, failure: { kind: BrokerFailureKind; detail: string }): boolean {
    const lease = state.leases.get(leaseId);
    const r = lease && state.transition(leaseId, 'failed', { reason: `${failure.kind}: ${failure.detail}` });
    if (!lease || !r) return false;
    transport.publish(subjects.cancel(lease.cluster), encodeJson({ leaseId, reason: failure.detail }));
    log.warn({ leaseId, requestId: r.requestId, ...failure }, 'lease stopped');
    publishState(r.requestId, leaseId, 'failed', r.reason, undefined, { failure });
    state.release();
    flushSoon();
    return true;
  }

  /** Extends or stops leases past their committed duration under a monthly budget. */
  function checkOverruns(now: number): void {
    if (!anyMonthly) return;
    const actions = overrunActions({
      active: state.active(),
      requests: state.requests,
      budgets,
      now,
      lookaheadMs: Math.max(50, heartbeatMs / 2) * 2,
      timeScale: scale,
    });
    for (const a of actions) {
      if (a.kind === 'extend') a.lease.committedUntil = a.until;
      else stopLease(a.lease.leaseId, { kind: 'budget-overrun', detail: a.detail });
    }
  }

  /**
   * Sends launches to a cluster's agent in chunks; the agent launches each lease once. `encoded` holds
   * leases already turned into JSON (a cycle encodes each once, for the reply and the launch).
   */
  function dispatch(
    cluster: string,
    leaseIds: readonly string[],
    encoded?: ReadonlyMap<string, string>,
  ): void {
    const json: string[] = [];
    for (const id of leaseIds) {
      const text = encoded?.get(id);
      if (text) json.push(text);
      else {
        const l = state.leases.get(id);
        if (l) json.push(JSON.stringify(toLeaseMsg(l)));
      }
    }
    for (let i = 0; i < json.length; i += LAUNCH_CHUNK) {
      const chunk = json.slice(i, i + LAUNCH_CHUNK);
      const body = new TextEncoder().encode(`{"leases":[${chunk.join(',')}]}`);
      transport.request(subjects.launch(cluster), body, { timeoutMs: 5000 }).catch((err: Error) => {
        // The redispatch loop sends them again.
        log.warn({ cluster, leases: chunk.length, err: err.message }, 'launch not acknowledged');
      });
    }
  }

  // Most requests repeat a handful of shapes: their admission is computed once. The platform's policies
  // do not change while the broker runs; onboarding clears the cache anyway.
  const admitted = new Map<string, ReturnType<typeof admit>>();
  function admitCached(m: RequestMsg): ReturnType<typeof admit> {
    const key = `${m.team}\u0000${m.override}\u0000${JSON.stringify(m.resources)}`;
    let result = admitted.get(key);
    if (!result) {
      if (admitted.size >= 10_000) admitted.clear();
      result = admit(m, platform);
      admitted.set(key, result);
    }
    return result;
  }

  function onRequest(msg: Msg): void {
    const parsed = parseMessage(requestMsg, msg.data);
    if (!parsed.ok) return bad(msg, subjects.request, parsed.error);
    const m = parsed.value;
    const known = state.requests.get(m.requestId);
    if (known) {
      // Idempotent: a retried request gets the lease it already has, or waits for it.
      const lease = known.leaseId ? state.leases.get(known.leaseId) : undefined;
      if (lease) return transport.respond(msg, encodeJson({ ok: true, lease: toLeaseMsg(lease) }));
      if (known.state === 'failed')
        return transport.respond(
          msg,
          encodeJson({ ok: false, error: { code: 'policy', message: known.reason ?? 'failed' } }),
        );
      waiters.set(m.requestId, [...(waiters.get(m.requestId) ?? []), msg]);
      return;
    }
    const resources = admitCached(m);
    if ('code' in resources) {
      metrics.refused.inc({ code: resources.code });
      log.info(
        { requestId: m.requestId, runId: m.runId, taskId: m.taskId, error: resources.message },
        'request refused',
      );
      return transport.respond(msg, encodeJson({ ok: false, error: resources }));
    }
    const now = clock();
    state.addRequest({
      requestId: m.requestId,
      team: m.team,
      runId: m.runId,
      taskId: m.taskId,
      workflow: m.workflow,
      resources,
      priority: m.priority,
      override: m.override,
      work: m.work,
      state: 'pending',
      attempt: 0,
      createdAt: now,
      updatedAt: now,
    });
    waiters.set(m.requestId, [msg]);
    schedule();
  }

  function onHeartbeat(msg: Msg): void {
    const cluster = clusterOf(msg);
    const parsed = parseMessage(heartbeatMsg, msg.data);
    if (!parsed.ok) return bad(msg, msg.subject, parsed.error);
    if (parsed.value.cluster !== cluster)
      return bad(msg, msg.subject, {
        code: 'unauthorised',
        message: `heartbeat for ${parsed.value.cluster} on ${cluster}'s subject`,
        field: 'cluster',
      });
    const wasHealthy = inventory.clusters.get(cluster)?.healthy;
    const previousAgent = inventory.clusters.get(cluster)?.agentId;
    const c = inventory.heartbeat(parsed.value, clock());
    if (!c)
      return bad(msg, msg.subject, {
        code: 'unknown-cluster',
        message: `cluster ${cluster} is not onboarded`,
        field: 'cluster',
      });
    for (const e of nodeLedger.heartbeat(cluster, parsed.value.nodes, ledgerTime(clock()))) writer.event(e);
    metrics.clusterHealthy.set({ cluster }, 1);
    // Ends the broker missed (it restarted, or a message was lost while NATS restarted).
    let changed = false;
    for (const f of parsed.value.finished)
      changed = applyLeaseState(cluster, f.leaseId, f.state, f.node, f.reason, f.startedAt) || changed;
    // A new agent id: the agent restarted and knows nothing of what its predecessor ran.
    if (previousAgent !== undefined && previousAgent !== parsed.value.agentId) {
      for (const l of state.activeOn(cluster)) {
        if (l.state === 'launching' || l.state === 'running') lose(l.leaseId, 'the agent restarted');
      }
    }
    if (changed) flushSoon();
    if (!wasHealthy || state.held.size > 0) {
      state.release();
      schedule();
    }
  }

  function onEvents(msg: Msg): void {
    const cluster = clusterOf(msg);
    const parsed = parseMessage(agentEvents, msg.data);
    if (!parsed.ok) return bad(msg, msg.subject, parsed.error);
    let changed = false;
    for (const ev of parsed.value.events) {
      if (ev.cluster !== cluster) {
        bad(msg, msg.subject, {
          code: 'unauthorised',
          message: `event for ${ev.cluster} on ${cluster}'s subject`,
          field: 'events.cluster',
        });
        continue;
      }
      if (ev.type === 'node') {
        if (ev.state !== 'ready') {
          inventory.clusters.get(cluster)?.nodes.delete(ev.node);
          // The agent's time of the end: a preempted task's end is stamped the same.
          for (const e of nodeLedger.end(cluster, ev.node, ev.state, ledgerTime(Math.min(clock(), ev.at))))
            writer.event(e);
        }
        state.release();
        schedule();
        continue;
      }
      if (ev.type === 'pool') {
        log.warn(
          { cluster, pool: ev.pool, reason: ev.reason, retryAfterMs: ev.retryAfterMs },
          'pool exhausted; planning elsewhere',
        );
        inventory.exhaust(cluster, ev.pool, ev.plannedIds, clock() + ev.retryAfterMs, ev.reason);
        state.release();
        schedule();
        continue;
      }
      const lease = state.leases.get(ev.leaseId);
      if (!lease || lease.cluster !== cluster) {
        bad(msg, msg.subject, {
          code: 'unknown-lease',
          message: `no lease ${ev.leaseId} on ${cluster}`,
          field: 'events.leaseId',
        });
        continue;
      }
      changed = applyLeaseState(cluster, ev.leaseId, ev.state, ev.node, ev.reason, ev.startedAt) || changed;
    }
    if (changed) flushSoon();
  }

  /** Applies a lease state from an agent; true when it changed something. */
  function applyLeaseState(
    cluster: string,
    leaseId: string,
    s: import('../protocol/index.ts').TaskState,
    node?: string,
    reason?: string,
    startedAt?: number,
  ): boolean {
    const lease = state.leases.get(leaseId);
    if (!lease || lease.cluster !== cluster) return false;
    // A launch on a node that never came up: stop counting on that node.
    if (s === 'lost' && reason?.includes('is not in this cluster'))
      inventory.clusters.get(cluster)?.planned.delete(lease.node);
    const r = state.transition(leaseId, s, { node, reason, startedAt });
    if (!r) return false;
    // The requester heard `placed` in the reply; `launching` is the agent's business.
    if (s !== 'launching') publishState(r.requestId, leaseId, s, reason, node);
    if (s === 'succeeded' || s === 'failed' || s === 'preempted' || s === 'lost') {
      state.release();
      schedule();
    }
    return true;
  }

  function lose(leaseId: string, reason: string): void {
    const lease = state.leases.get(leaseId);
    // The agent must not start it late, now that it will be placed again.
    if (lease) transport.publish(subjects.cancel(lease.cluster), encodeJson({ leaseId, reason }));
    log.warn({ leaseId, reason, state: lease?.state }, 'lease lost');
    const r = state.transition(leaseId, 'lost', { reason });
    if (r) publishState(r.requestId, leaseId, 'lost', reason);
    flushSoon();
    schedule();
  }

  let flushTimer: NodeJS.Timeout | undefined;
  function flushSoon(): void {
    flushTimer ??= setTimeout(() => {
      flushTimer = undefined;
      writer.flush().catch((err: Error) => {
        log.warn({ err: err.message }, 'state write failed; retrying');
        flushSoon();
      });
    }, 5);
  }

  function onRegister(msg: Msg): void {
    const cluster = clusterOf(msg);
    const parsed = parseMessage(registerMsg, msg.data);
    if (!parsed.ok) return bad(msg, msg.subject, parsed.error);
    if (parsed.value.cluster !== cluster || !inventory.clusters.has(cluster)) {
      return bad(msg, msg.subject, {
        code: 'unknown-cluster',
        message: `cluster ${parsed.value.cluster} is not onboarded here`,
        field: 'cluster',
      });
    }
    log.info({ cluster, agentId: parsed.value.agentId }, 'agent registered');
    transport.respond(msg, encodeJson({ ok: true, heartbeatMs, brokerId: id }));
    // Leases this agent should run but may not know (the broker restarted before dispatching).
    dispatch(
      cluster,
      state
        .activeOn(cluster)
        .filter((l) => l.state === 'placed')
        .map((l) => l.leaseId),
    );
  }

  // While the broker itself cannot reach NATS it cannot tell a dead agent from its own outage.
  let connected = true;
  transport.onEvent((e) => {
    if (e === 'disconnected' || e === 'reconnecting') connected = false;
    if (e === 'reconnected') {
      connected = true;
      // Agents get a fresh grace period from now: their heartbeats could not reach us either.
      for (const c of inventory.clusters.values())
        if (c.lastHeartbeat !== undefined) c.lastHeartbeat = clock();
    }
  });

  function tick(): void {
    try {
      checkClusters();
    } catch (err) {
      log.error({ err: (err as Error).message }, 'health check failed');
    }
  }

  function checkClusters(): void {
    const now = clock();
    if (!connected) return;
    inventory.expirePlanned(now, PLANNED_MAX_AGE_MS);
    checkOverruns(now);
    for (const c of inventory.checkHealth(now, 1.5 * heartbeatMs, 0.5 * heartbeatMs)) {
      metrics.clusterHealthy.set({ cluster: c.name }, 0);
      for (const l of state.activeOn(c.name)) lose(l.leaseId, `cluster ${c.name} stopped sending heartbeats`);
    }
    // Launches an agent never acknowledged (lost in flight, agent restarting) are sent again.
    const again = new Map<string, string[]>();
    for (const l of state.placed()) {
      if (!inventory.clusters.get(l.cluster)?.healthy || now - l.placedAt < 3000) continue;
      append(again, l.cluster, l.leaseId);
    }
    for (const [cluster, ids] of again) dispatch(cluster, ids);
    if (state.held.size > 0) {
      state.release();
      schedule();
    }
  }

  /** Forgets requests that ended more than `retentionMs` ago, in memory and in the store. */
  function prune(): void {
    const keys = state.prune(clock() - (opts.retentionMs ?? 3_600_000));
    if (keys.length === 0) return;
    void Promise.all(keys.map((k) => store.delete(k))).catch((err: Error) =>
      log.warn({ err: err.message }, 'could not delete old records'),
    );
  }

  const onDemand = onDemandPrices(platform);
  const teams = [...new Set(platform.policies.flatMap((p) => p.teams))];
  const anyMonthly = budgets.anyMonthly(teams);
  /** The fleet's gauges (spend, nodes, budgets, holds, capacity), for dashboards and alerts. */
  function updateGauges(): void {
    const now = clock();
    const active = [...state.active()];
    gauges.update({
      now,
      clusters: inventory.clusters.values(),
      nodeUse: state.nodeUse,
      active,
      requests: state.requests,
      pending: [...state.queue, ...state.held],
      pool: poolOf,
      onDemand,
      teams,
      spentThisMonth: (team) => budgets.spent(team, now),
      budgets: anyMonthly ? budgets.status(active, state.requests, now) : [],
      timeScale: scale,
    });
  }

  async function serve(): Promise<void> {
    if (serving) return;
    const { requests, leases } = await loadRecords(store);
    // This month's spend per team, from the ledger.
    const spent = new Budgets(platform, scale, ledgerTime);
    const lives: NodeLife[] = [];
    let lastAt = 0;
    for await (const e of readLifecycle(store)) {
      if (e.kind === 'usage') spent.record(e as TaskUsage);
      else if (e.kind === 'node-start' || e.kind === 'node-end') lives.push(e as NodeLife);
      if (e.kind === 'usage' || e.kind === 'node-start' || e.kind === 'node-end')
        lastAt = Math.max(lastAt, e.at);
    }
    if (scale !== 1) {
      epoch = clock();
      base = Math.max(epoch, lastAt);
    }
    if (!leadership.leading || serving) return;
    state.load(requests, leases);
    budgets.replaceSpent(spent);
    // Nodes the ledger has open stay open; the next heartbeats end those that are gone.
    for (const e of lives) nodeLedger.replay(e);
    // Agents get a full grace period from now: this broker has not been listening.
    for (const c of inventory.clusters.values()) c.lastHeartbeat = clock();
    serving = true;
    metrics.leader.set(1);
    updateGauges();
    subs.push(transport.subscribe(subjects.request, onRequest, { queue: 'gantry-broker' }));
    subs.push(transport.subscribe(subjects.heartbeat('*'), onHeartbeat));
    subs.push(transport.subscribe(subjects.events('*'), onEvents));
    subs.push(transport.subscribe(subjects.register('*'), onRegister));
    subs.push(
      transport.subscribe(subjects.admin('>'), (msg) =>
        handleAdmin(msg, {
          transport,
          state,
          inventory,
          platform,
          metrics,
          onboard,
          forget,
          schedule,
          bad,
          budgets: () => budgets.status([...state.active()], state.requests, clock()),
          store,
          reconfigured: () => {
            admitted.clear();
            schedule();
          },
        }),
      ),
    );
    timers.push(setInterval(tick, Math.max(50, heartbeatMs / 2)));
    timers.push(setInterval(updateGauges, GAUGE_INTERVAL_MS));
    timers.push(setInterval(prune, PRUNE_INTERVAL_MS));
    log.info({ brokerId: id, requests: requests.length, leases: leases.length }, 'serving');
    // Leases placed before a restart: the agents are told again. They launch each lease once, and answer
    // for the ones they know with where they stand (ends this broker may have missed).
    const again = new Map<string, string[]>();
    for (const l of leases) {
      if (l.state === 'placed' || l.state === 'launching' || l.state === 'running')
        append(again, l.cluster, l.leaseId);
    }
    for (const [cluster, ids] of again) dispatch(cluster, ids);
    schedule();
  }

  /**
   * Stops serving. `stillLeading`: this broker stops by choice and still holds leadership, so it writes
   * what it buffered; a deposed broker must not, since a new leader may already own the state.
   */
  async function unserve(stillLeading: boolean): Promise<void> {
    const wasServing = serving;
    serving = false;
    metrics.leader.set(0);
    gauges.clear();
    for (const s of subs.splice(0)) s.unsubscribe();
    for (const t of timers.splice(0)) clearInterval(t);
    if (cycleTimer) clearTimeout(cycleTimer);
    cycleTimer = undefined;
    await running;
    await Promise.all(inflight.splice(0));
    if (wasServing && stillLeading) await writer.flush();
  }

  /** Forgets a removed cluster for good (it would come back from the store at the next start). */
  async function forget(name: string): Promise<void> {
    admitted.clear();
    for (const e of nodeLedger.endCluster(name, 'removed', ledgerTime(clock()))) writer.event(e);
    platform.pools.splice(0, platform.pools.length, ...platform.clusters.flatMap((c) => c.pools));
    await store.delete(`cluster.${name}`);
    await store.delete(appliedClusterKey(name));
  }

  async function onboard(cluster: Cluster): Promise<void> {
    admitted.clear();
    const known = platform.clusters.findIndex((c) => c.name === cluster.name);
    if (known >= 0) platform.clusters.splice(known, 1, cluster);
    else platform.clusters.push(cluster);
    platform.pools.splice(0, platform.pools.length, ...platform.clusters.flatMap((c) => c.pools));
    inventory.add(cluster);
    metrics.initialise(metricLabels(platform));
    await store.put(`cluster.${cluster.name}`, encodeJson(cluster));
  }

  return {
    id,
    metrics,
    state,
    inventory,
    platform,
    async start() {
      for (const e of await store.list('cluster')) {
        const c = JSON.parse(new TextDecoder().decode(e.value)) as Cluster;
        if (!platform.clusters.some((p) => p.name === c.name)) await onboard(c);
      }
      // What `gantry apply` changed since the files were written wins over them.
      const restored = await restoreApplied(platform, store, {
        onboard,
        reconfigured: () => admitted.clear(),
      });
      if (restored.some((r) => r.action !== 'unchanged'))
        log.info(
          { applied: restored.filter((r) => r.action !== 'unchanged').map((r) => `${r.kind}/${r.name}`) },
          'platform changes made by gantry apply restored over the files',
        );
      await leadership.start();
    },
    async stop() {
      // Clusters that stop with the broker (embedded mode) end their nodes' lifetimes in the ledger.
      if (opts.nodesStopWithBroker && leadership.leading)
        for (const c of inventory.clusters.values())
          for (const e of nodeLedger.endCluster(c.name, 'stopped', ledgerTime(clock()))) writer.event(e);
      // Write everything first, then step down, so a standby never loads stale state.
      await unserve(leadership.leading);
      await leadership.stop();
    },
    isLeader: () => leadership.leading,
    refreshGauges() {
      if (serving) updateGauges();
    },
    readiness() {
      if (!connected) return { ready: false, detail: 'not connected to NATS' };
      if (leadership.leading)
        return serving
          ? { ready: true, detail: `leading (${id})` }
          : { ready: false, detail: 'elected leader, loading the state' };
      const last = leadership.lastContact;
      if (last === undefined) return { ready: false, detail: 'has not reached the state store yet' };
      if (clock() - last > leaderTtlMs)
        return {
          ready: false,
          detail: `standby: no answer from the state store for ${Math.round((clock() - last) / 1000)}s`,
        };
      return { ready: true, detail: `standby (${id}), the state store answers` };
    },
    onboard,
    idle() {
      if (state.queue.length === 0 && !running) return Promise.all(inflight).then(() => undefined);
      return new Promise((resolve) => idleWaiters.push(resolve));
    },
  };
}

/** The counters' label values known from the platform: its clusters, and every monthly budget's alerts. */
function metricLabels(platform: Platform): MetricsLabels {
  return {
    clusters: platform.clusters.map((c) => c.name),
    budgets: platform.policies.flatMap((p) =>
      p.budget?.perMonth === undefined
        ? []
        : p.teams.map((team) => ({ team, policy: p.name, alertAt: p.budget?.alertAt ?? [0.8, 1] })),
    ),
  };
}

function toLeaseMsg(l: import('./records.ts').LeaseRecord) {
  const {
    state: _s,
    actualNode: _a,
    startedAt: _st,
    endedAt: _e,
    reason: _r,
    placedAt: _p,
    committedUntil: _c,
    ...msg
  } = l;
  return msg;
}

/** Adds a value to the list under a key (without copying the list, which matters at 100K leases). */
function append<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/** The cluster an agent subject belongs to: `gantry.v1.agent.<cluster>.<verb>`. */
function clusterOf(msg: Msg): string {
  return msg.subject.split('.')[3] ?? '';
}
