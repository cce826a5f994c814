/**
 * The broker: keeps the inventory and the queue, places work in solve cycles, leases it to clusters and
 * follows it to the end. It talks only through a {@link Transport} and keeps state in a {@link Store}, so
 * the same code runs embedded (in-process transport, local directory) and over NATS with JetStream.
 *
 * Its parts: {@link createContext} (options and shared state), {@link createDispatch} (intake and what
 * goes out), {@link createScheduler} (solve cycles), {@link createAgentHandlers} (agents' messages and
 * health). This file wires them and owns leadership, loading and stopping.
 */
import type { Cluster, Platform } from '../policies/index.ts';
import {
  batchSubjects,
  encodeJson,
  leaseStatusSubjects,
  type Msg,
  type Store,
  StoreConflictError,
  type Subscription,
  subjects,
  type Transport,
} from '../protocol/index.ts';
import { createAgentHandlers } from './agent-handlers.ts';
import { handleAdmin } from './admin.ts';
import { appliedClusterKey, restoreApplied } from './apply.ts';
import { Budgets } from './budgets.ts';
import { append, type BrokerOptions, createContext, metricLabels } from './context.ts';
import { onDemandPrices } from './cost-report.ts';
import { createDispatch } from './dispatch.ts';
import { createEnforcement } from './enforcement.ts';
import { createRunControl } from './runs.ts';
import { FleetGauges } from './fleet-gauges.ts';
import type { Inventory } from './inventory.ts';
import type { NodeLife, TaskUsage } from './ledger.ts';
import { type ElectedHow, Leadership } from './leader.ts';
import { answerLeaseStatus } from './lease-status.ts';
import type { BrokerMetrics } from './metrics.ts';
import type { Readiness } from './metrics-http.ts';
import { loadRecords, readLifecycle } from './records.ts';
import { createScheduler } from './scheduling.ts';
import type { BrokerState } from './state.ts';

export type { BrokerOptions } from './context.ts';

/** How often requests that ended long ago are forgotten. */
const PRUNE_INTERVAL_MS = 60_000;

/** How often the journal is compacted into the KV view (and sooner when much waits). */
const COMPACT_INTERVAL_MS = 1000;

/** Leases sent again per turn of the event loop when a broker starts serving. */
const ANNOUNCE_SLICE = 2000;

/** How often per-cluster capacity and spend gauges are recomputed. */
const GAUGE_INTERVAL_MS = 5000;

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
  const ctx = createContext(opts);
  const { clock, log, id, metrics, leaderTtlMs, transport, store, platform, state, writer, inventory } = ctx;
  const { nodeLedger, budgets, scale, ledgerTime, poolOf, admitted } = ctx;
  const gauges = new FleetGauges(metrics);
  const scheduler = createScheduler(ctx, { announce: (result) => outbox.announceCycle(result) });
  const schedule = () => scheduler.schedule();
  const outbox = createDispatch(ctx, { schedule });
  const { dispatch } = outbox;
  const agents = createAgentHandlers(ctx, { schedule, dispatch, publishState: outbox.publishState });
  const flush = () =>
    void writer.flush().catch((err: Error) => log.warn({ err: err.message }, 'state write failed'));
  const enforcement = createEnforcement(ctx, {
    schedule,
    publishState: outbox.publishState,
    answer: outbox.answer,
    flush,
  });
  // Each new reason a request is held for goes to its requester (`gantry run` prints it).
  state.onHold = (r, hold) =>
    outbox.publishState(r.requestId, undefined, 'pending', hold.detail, undefined, { hold });
  const runs = createRunControl(
    ctx,
    { enforcement, publishState: outbox.publishState, flush },
    opts.runGraceMs,
  );
  const subs: Subscription[] = [];
  const timers: NodeJS.Timeout[] = [];

  /** Whether the state in memory is the store's (this broker loaded it and led since). */
  let loaded = false;
  const leadership = new Leadership(opts.leaderStore ?? store, id, clock, leaderTtlMs, {
    onElected: (how) =>
      void serve(how).catch((err: Error) => {
        // Could not load the state (the store has no leader yet): let another broker try, and try
        // again after a TTL when none does.
        log.error({ err: err.message }, 'could not start serving; stepping down, campaigning again');
        void leadership.resign();
      }),
    onDeposed: () => {
      log.warn({ brokerId: id }, 'no longer leading; stopped serving');
      void unserve(false).catch((err: Error) =>
        log.error({ err: err.message }, 'could not stop serving cleanly'),
      );
    },
  });
  transport.onEvent((event) => {
    if (event !== 'closed') log.info({ event }, 'nats');
  });

  /** Forgets requests that ended more than `retentionMs` ago, in memory and (next compaction) in the store. */
  function prune(): void {
    writer.compactor.forget(state.prune(clock() - (opts.retentionMs ?? 3_600_000)));
  }

  const onDemand = onDemandPrices(platform);
  const teams = [...new Set(platform.policies.flatMap((p) => p.teams))];
  const anyMonthly = budgets.anyMonthly(teams);
  /** The fleet's gauges (spend, nodes, budgets, holds, capacity), for dashboards and alerts. */
  function updateGauges(): void {
    const now = clock();
    gauges.update({
      now,
      clusters: inventory.clusters.values(),
      nodeUse: state.nodeUse,
      spend: state.spend,
      requests: state.requests,
      pending: state.pendingIds(),
      pool: poolOf,
      onDemand,
      teams,
      spentThisMonth: (team) => budgets.spent(team, now),
      // Commitments depend on each lease's start and extension: summed only where a budget needs them.
      budgets: anyMonthly ? budgets.status(() => state.committedByTeam(now), state.spendRates(), now) : [],
      timeScale: scale,
    });
  }

  /**
   * Loads the records and claims the snapshot position they were read at: from then on a broker that
   * led before can no longer move it or trim the journal. If the position moved since it was read (a
   * write of this broker's that timed out but landed late, or another broker's), the records are read
   * again; after three tries the conflict goes to the caller.
   */
  async function loadClaimed(): Promise<Awaited<ReturnType<typeof loadRecords>>> {
    for (let attempt = 1; ; attempt++) {
      await writer.compactor.settled();
      const loaded = await loadRecords(store);
      const { position, replayed, lastSeq } = loaded.journal;
      try {
        await writer.compactor.claim(position, replayed, lastSeq);
        return loaded;
      } catch (err) {
        if (!(err instanceof StoreConflictError) || attempt >= 3) throw err;
        log.warn({ err: err.message }, 'the snapshot position moved while loading; loading again');
      }
    }
  }

  /** Loads requests, leases, spend and open nodes from the store; false if leadership went meanwhile. */
  async function load(): Promise<boolean> {
    const { requests, leases } = await loadClaimed();
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
      const epoch = clock();
      ctx.setLedgerEpoch(epoch, Math.max(epoch, lastAt));
    }
    if (!leadership.leading || ctx.serving) return false;
    // Requests this broker took and could not write before it stopped leading (the store refused
    // writes) are not in the store: nobody else decided them, since a decision is announced only once
    // durable. They are queued again, not left until their requesters ask again.
    const untold = state.undecided();
    state.load(requests, leases);
    const carried = untold.filter((r) => !state.requests.has(r.requestId));
    for (const r of carried) state.queueAgain(r);
    if (carried.length > 0)
      log.info({ requests: carried.length }, 'requests taken before and not in the store queued again');
    budgets.replaceSpent(spent);
    // Nodes the ledger has open stay open; the next heartbeats end those that are gone.
    for (const e of lives) nodeLedger.replay(e);
    return true;
  }

  /**
   * Starts serving: loads the state, unless this broker `continued` leading (nobody led since it last
   * did, so what it holds is the latest: a store without a JetStream leader for a while only paused it).
   */
  async function serve(how: ElectedHow): Promise<void> {
    if (ctx.serving) return;
    const from = clock();
    const resumed = how === 'continued' && loaded;
    if (!resumed) {
      loaded = false;
      log.info({ brokerId: id }, 'elected; loading the state');
      if (!(await load())) return;
      loaded = true;
    }
    // Agents get a full grace period from now: this broker has not been listening.
    for (const c of inventory.clusters.values()) c.lastHeartbeat = clock();
    ctx.serving = true;
    metrics.leader.set(1);
    updateGauges();
    subs.push(transport.subscribe(subjects.request('*'), outbox.onRequest, { queue: 'gantry-broker' }));
    subs.push(transport.subscribe(subjects.agentRequest('*'), outbox.onRequest, { queue: 'gantry-broker' }));
    subs.push(
      transport.subscribe(batchSubjects.requests('*'), outbox.onRequests, { queue: 'gantry-broker' }),
    );
    // Where calls stand, for runtimes that heard nothing past a call's deadline (lease-status.ts).
    const status = (msg: Msg) => answerLeaseStatus(ctx, msg);
    subs.push(transport.subscribe(leaseStatusSubjects.team('*'), status, { queue: 'gantry-broker' }));
    subs.push(transport.subscribe(leaseStatusSubjects.agent('*'), status, { queue: 'gantry-broker' }));
    subs.push(transport.subscribe(subjects.heartbeat('*'), agents.onHeartbeat));
    subs.push(transport.subscribe(subjects.events('*'), agents.onEvents));
    subs.push(transport.subscribe(subjects.register('*'), agents.onRegister));
    subs.push(transport.subscribe(subjects.runControl('*', '*'), runs.onControl));
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
          bad: ctx.bad,
          budgets: () => budgets.status(() => state.committedByTeam(clock()), state.spendRates(), clock()),
          cancelRun: (runId, reason) =>
            runs.cancel(runId, {
              kind: 'run-cancelled',
              detail: `run ${runId} was cancelled${reason ? ` (${reason})` : ''}`,
            }),
          store,
          reconfigured: () => {
            admitted.clear();
            schedule();
          },
        }),
      ),
    );
    timers.push(
      setInterval(
        () => {
          agents.tick();
          enforcement.tick();
          runs.tick();
        },
        Math.max(50, ctx.heartbeatMs / 2),
      ),
    );
    timers.push(setInterval(updateGauges, GAUGE_INTERVAL_MS));
    timers.push(setInterval(prune, PRUNE_INTERVAL_MS));
    writer.compactor.start(COMPACT_INTERVAL_MS, (err) =>
      log.warn({ err: err.message }, 'could not compact the journal into the state; retrying'),
    );
    log.info(
      { brokerId: id, resumed, requests: state.requests.size, ms: clock() - from },
      resumed ? 'serving again with the state it holds' : 'serving',
    );
    void announceAgain(resumed);
  }

  /**
   * Once what is buffered is durable: requesters still waiting hear of the leases their requests got (a
   * cycle's answer is lost when serving stops before it is durable, or with the broker that took it),
   * and leases are sent to their agents again (they launch each lease once, and answer for the ones they
   * know with where they stand). A broker that `resumed` (nobody led in between) sends only the launches
   * not acknowledged yet — some never went out, their cycle durable while it was not serving; the agents
   * have the rest. A new leader cannot know what its predecessor sent: every active lease goes again, a
   * slice at a time, so that heartbeats and leadership renewals are not held up behind 100K launches.
   */
  async function announceAgain(resumed: boolean): Promise<void> {
    const ok = await writer.flushDurably(
      () => ctx.serving,
      (err) => log.warn({ err: err.message }, 'state write failed; retrying'),
    );
    if (!ok) return;
    const answered = outbox.answerDecided();
    const again = new Map<string, string[]>();
    for (const l of resumed ? state.placed() : state.active()) append(again, l.cluster, l.leaseId);
    schedule();
    let leases = 0;
    for (const [cluster, ids] of again)
      for (let i = 0; i < ids.length; i += ANNOUNCE_SLICE) {
        if (!ctx.serving) return;
        dispatch(cluster, ids.slice(i, i + ANNOUNCE_SLICE));
        leases += Math.min(ANNOUNCE_SLICE, ids.length - i);
        await new Promise((r) => setImmediate(r));
      }
    log.info({ leases, answered, resumed }, 'announced again');
  }

  /**
   * Stops serving. `stillLeading`: this broker stops by choice and still holds leadership, so it writes
   * what it buffered; a deposed broker must not, since a new leader may already own the state.
   */
  async function unserve(stillLeading: boolean): Promise<void> {
    const wasServing = ctx.serving;
    ctx.serving = false;
    metrics.leader.set(0);
    gauges.clear();
    for (const s of subs.splice(0)) s.unsubscribe();
    for (const t of timers.splice(0)) clearInterval(t);
    writer.compactor.stop();
    await scheduler.stop();
    if (!(wasServing && stillLeading)) return;
    await writer.flush();
    // So that the next start reads the KV view alone; the journal keeps it if this fails.
    await writer.compactor
      .compact()
      .catch((err: Error) => log.warn({ err: err.message }, 'could not compact the journal before stopping'));
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
      if (ctx.serving) updateGauges();
    },
    readiness() {
      if (!ctx.connected) return { ready: false, detail: 'not connected to NATS' };
      if (leadership.leading)
        return ctx.serving
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
    idle: () => scheduler.idle(),
  };
}
