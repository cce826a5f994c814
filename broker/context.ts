/**
 * What the broker's parts share: its options with their defaults, the in-memory state, the inventory,
 * the cost ledger and budgets, and the few flags that say whether it serves and reaches NATS.
 */
import { randomUUID } from 'node:crypto';
import { pino, type Logger } from 'pino';
import type { Platform } from '../policies/index.ts';
import { encodeJson, type KeyStore, type Msg, type Store, type Transport } from '../protocol/index.ts';
import type { LpBackends } from '../solver/index.ts';
import type { admit } from './admission.ts';
import { Budgets } from './budgets.ts';
import { Inventory } from './inventory.ts';
import { NodeLedger, usageOf } from './ledger.ts';
import { type BrokerMetrics, createBrokerMetrics, type MetricsLabels } from './metrics.ts';
import type { LeaseRecord, RecordWriter } from './records.ts';
import { BrokerState } from './state.ts';

/**
 * Who waits for a request's lease: a requester's message (answered once, on its reply subject), or a
 * batch of requests (answered many at a time on the batch's subject, `answers`).
 */
export type Waiter = Msg | { readonly answers: string };

/** Options of `createBroker`; everything but transport, store and platform has a default. */
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
  /**
   * Where the leadership key is kept. Default `store`; over NATS, a bucket of its own on a connection
   * of its own, so that a renewal never waits behind a cycle's thousands of state writes (the leader
   * would lose its lease while busy, and leadership would flap under load).
   */
  leaderStore?: KeyStore;
  newId?: () => string;
  metrics?: BrokerMetrics;
  /** Requests that ended are kept this long (memory and store), then forgotten. Default one hour. */
  retentionMs?: number;
  /**
   * A run whose driver sent no heartbeat for this long (wall clock) is abandoned: its pending requests
   * withdrawn, its leases stopped. Default 15 s.
   */
  runGraceMs?: number;
}

/** The broker's shared parts, built once by {@link createContext} and handed to each of its modules. */
export interface BrokerContext {
  readonly opts: BrokerOptions;
  readonly clock: () => number;
  readonly log: Logger;
  readonly id: string;
  readonly windowMs: number;
  readonly maxBatch: number;
  readonly heartbeatMs: number;
  readonly leaderTtlMs: number;
  readonly solveBudgetMs: number;
  readonly metrics: BrokerMetrics;
  readonly newId: () => string;
  /** Cycle numbers start again in every broker process; planned node names carry this token too. */
  readonly instance: string;
  readonly transport: Transport;
  readonly store: Store;
  readonly platform: Platform;
  readonly state: BrokerState;
  readonly writer: RecordWriter;
  readonly inventory: Inventory;
  readonly nodeLedger: NodeLedger;
  readonly budgets: Budgets;
  /** Simulated seconds per second of the cost ledger. */
  readonly scale: number;
  /** A time on the ledger's clock. */
  ledgerTime(t: number): number;
  /** Where simulated ledger time starts: this broker's start, on from where the ledger left off. */
  setLedgerEpoch(epoch: number, base: number): void;
  poolOf(cluster: string, pool: string): Platform['pools'][number] | undefined;
  /** Requesters waiting for the lease of a request. */
  readonly waiters: Map<string, Waiter[]>;
  /** Admission results per request shape; cleared when the platform changes. */
  readonly admitted: Map<string, ReturnType<typeof admit>>;
  /** Leads, loaded the state and listens. */
  serving: boolean;
  /** While the broker itself cannot reach NATS it cannot tell a dead agent from its own outage. */
  connected: boolean;
  /** Counts and answers a message that could not be taken. */
  bad(msg: Msg, subject: string, error: { code: string; message: string; field?: string }): void;
}

/** Builds the shared parts from the options. */
export function createContext(opts: BrokerOptions): BrokerContext {
  const clock = opts.clock ?? Date.now;
  const log = opts.logger ?? pino({ level: 'silent' });
  const id = opts.brokerId ?? `broker-${randomUUID().slice(0, 8)}`;
  const metrics = opts.metrics ?? createBrokerMetrics();
  const solveBudgetMs = opts.solveBudgetMs ?? 2000;
  metrics.initialise(metricLabels(opts.platform));
  metrics.solveBudgetSeconds.set(solveBudgetMs / 1000);
  const { transport, store, platform } = opts;
  const scale = opts.ledgerTimeScale ?? 1;
  const state = new BrokerState(store, clock, scale);
  const writer = state.writer;
  const inventory = new Inventory(platform.clusters);
  // The cost ledger: each lease that ran, and each node's lifetime, go to the log with the lifecycle.
  const poolOf = (cluster: string, pool: string) =>
    inventory.clusters.get(cluster)?.declared.pools.find((p) => p.name === pool);
  // Simulated time runs from when this broker started serving, on from where the ledger left off.
  let epoch = clock();
  let base = epoch;
  const ledgerTime = (t: number) => (scale === 1 ? t : Math.round(base + (t - epoch) * scale));
  const nodeLedger = new NodeLedger(poolOf, (t) => ledgerTime(t));
  const budgets = new Budgets(platform, scale, ledgerTime);
  state.onLeaseEnd = (lease: LeaseRecord, request) => {
    const usage = usageOf(lease, request, poolOf(lease.cluster, lease.pool));
    if (!usage) return;
    // Simulated time: the work's own duration where the agent said it, not the wall clock's overhead
    // (messages, the event loop) times the speedup; never longer than the broker saw it take.
    const start = ledgerTime(usage.start);
    const wall = ledgerTime(usage.end);
    const end =
      scale !== 1 && lease.ranMs !== undefined ? Math.min(wall, start + Math.round(lease.ranMs)) : wall;
    const entry = {
      ...usage,
      at: ledgerTime(usage.at),
      start,
      end,
      ...(scale !== 1 ? { timeScale: scale } : {}),
    };
    writer.event(entry);
    budgets.record(entry);
  };
  return {
    opts,
    clock,
    log,
    id,
    windowMs: opts.windowMs ?? 20,
    maxBatch: opts.maxBatch ?? 5000,
    heartbeatMs: opts.heartbeatMs ?? 1000,
    leaderTtlMs: opts.leaderTtlMs ?? 3000,
    solveBudgetMs,
    metrics,
    newId: opts.newId ?? (() => `l-${randomUUID()}`),
    instance: randomUUID().slice(0, 4),
    transport,
    store,
    platform,
    state,
    writer,
    inventory,
    nodeLedger,
    budgets,
    scale,
    ledgerTime,
    setLedgerEpoch(e, b) {
      epoch = e;
      base = b;
    },
    poolOf,
    waiters: new Map(),
    admitted: new Map(),
    serving: false,
    connected: true,
    bad(msg, subject, error) {
      metrics.badMessages.inc({ subject: subject.split('.').slice(0, 4).join('.') });
      log.warn({ subject: msg.subject, error }, 'refused a message');
      transport.respond(msg, encodeJson({ ok: false, error }));
    },
  };
}

/** The counters' label values known from the platform: its clusters, and every monthly budget's alerts. */
export function metricLabels(platform: Platform): MetricsLabels {
  return {
    clusters: platform.clusters.map((c) => c.name),
    teams: [...new Set(platform.policies.flatMap((p) => p.teams))],
    budgets: platform.policies.flatMap((p) =>
      p.budget?.perMonth === undefined
        ? []
        : p.teams.map((team) => ({ team, policy: p.name, alertAt: p.budget?.alertAt ?? [0.8, 1] })),
    ),
  };
}

/** Adds a value to the list under a key (without copying the list, which matters at 100K leases). */
export function append<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}
