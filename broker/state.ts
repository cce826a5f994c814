/**
 * The broker's in-memory tables — requests, leases, the queue of pending work — and the transitions of
 * the task lifecycle. Every change goes to the write-behind {@link RecordWriter}; nothing here does I/O.
 */
import type { TeamUsage } from '../solver/index.ts';
import {
  type HoldKind,
  type LeaseMsg,
  type Reason,
  type Store,
  type TaskState,
  TERMINAL,
} from '../protocol/index.ts';
import { Commitments } from './commitments.ts';
import { SpendCounter, spendKey } from './lease-spend.ts';
import { EndedQueue } from './retention.ts';
import {
  type LeaseRecord,
  type LifecycleEvent,
  RecordWriter,
  type RequestRecord,
  requestKey,
  storedJson,
} from './records.ts';

const ACTIVE: ReadonlySet<TaskState> = new Set(['placed', 'launching', 'running']);

/** Allowed lease transitions: a late or repeated event never moves a lease backwards. */
const ORDER: Record<TaskState, number> = {
  pending: 0,
  placed: 1,
  launching: 2,
  running: 3,
  succeeded: 4,
  failed: 4,
  preempted: 4,
  lost: 4,
};

export class BrokerState {
  readonly requests = new Map<string, RequestRecord>();
  readonly leases = new Map<string, LeaseRecord>();
  /**
   * Active leases per cluster: heartbeats and health checks look only at these. A lease is counted in
   * the sums below exactly while it is in here, on its node and from its start as they are.
   */
  private readonly activeByCluster = new Map<string, Set<LeaseRecord>>();
  /** Leases placed whose agent has not acknowledged the launch yet. */
  private readonly unacknowledged = new Set<LeaseRecord>();
  /** What the active leases cost per hour (the fleet gauges read it; no scan). */
  readonly spend = new SpendCounter();
  /** What active leases use, per `cluster|node`. */
  readonly nodeUse = new Map<string, { cpu: number; mem: number; gpu: number }>();
  /** Per cluster, per node name: its key in {@link nodeUse}. */
  private readonly nodeKeys = new Map<string, Map<string, string>>();
  /** Per team, cluster, pool and capacity type: its key in the spend sums (one string, shared). */
  private readonly spendKeys = new Map<string, Map<string, Map<string, Map<string, string>>>>();
  private readonly teamUse = new Map<string, TeamUsage>();
  /** Per cluster, per team: active leases of workflow code (tasks, warm workers) it hosts. */
  private readonly hostedOn = new Map<string, Map<string, number>>();
  /** Requests waiting for the next cycle, oldest first. */
  queue: string[] = [];
  /** Requests a cycle could not place (capacity, quota, budget): retried when something changes. */
  held = new Set<string>();
  /** Request ids of each gang's members. */
  readonly gangs = new Map<string, Set<string>>();
  /** Requests that ended (succeeded, failed), and leases that ended, in the order they did: {@link prune}'s. */
  private readonly endedRequests = new EndedQueue();
  private readonly endedLeases = new EndedQueue();

  readonly writer: RecordWriter;
  /** What the active leases commit against monthly budgets, per team (kept, not summed by a scan). */
  private readonly commitments: Commitments;

  /** @param timeScale simulated seconds per second (embedded mode on simulated clouds); default 1. */
  constructor(
    store: Store,
    private readonly clock: () => number,
    timeScale = 1,
  ) {
    this.commitments = new Commitments(
      timeScale,
      (l) => this.requests.get(l.requestId),
      () => this.active(),
      (l) => this.activeByCluster.get(l.cluster)?.has(l) ?? false,
      () => this.activeLeases(),
    );
    this.writer = new RecordWriter(store, (id) => {
      const r = this.requests.get(id);
      return r && storedJson(r, r.leaseId ? this.leases.get(r.leaseId) : undefined);
    });
  }

  /** Loads records after a start or a takeover: pending requests are queued again. */
  load(requests: readonly RequestRecord[], leases: readonly LeaseRecord[]): void {
    // A takeover starts from the store alone: whatever this broker knew before is stale.
    this.requests.clear();
    this.leases.clear();
    this.activeByCluster.clear();
    this.unacknowledged.clear();
    this.commitments.clear();
    this.spend.clear();
    this.nodeUse.clear();
    this.nodeKeys.clear();
    this.teamUse.clear();
    this.hostedOn.clear();
    this.held.clear();
    this.gangs.clear();
    this.endedRequests.clear();
    this.endedLeases.clear();
    for (const r of [...requests]
      .filter((r) => TERMINAL.has(r.state))
      .sort((a, b) => a.updatedAt - b.updatedAt))
      this.endedRequests.push(r.requestId, r.updatedAt);
    for (const l of [...leases]
      .filter((l) => ORDER[l.state] === 4)
      .sort((a, b) => (a.endedAt ?? 0) - (b.endedAt ?? 0)))
      this.endedLeases.push(l.leaseId, l.endedAt ?? 0);
    for (const r of requests) {
      this.requests.set(r.requestId, r);
      this.indexGang(r);
    }
    for (const l of leases) {
      this.leases.set(l.leaseId, l);
      this.index(l, false, l.node, undefined);
    }
    this.queue = requests
      .filter((r) => r.state === 'pending')
      .sort((a, b) => a.createdAt - b.createdAt)
      .map((r) => r.requestId);
  }

  /** Called once for every lease that ends (the cost ledger writes its usage). */
  onLeaseEnd?: (lease: LeaseRecord, request: RequestRecord | undefined) => void;

  private log(e: Omit<LifecycleEvent, 'at'>): void {
    this.writer.event({ at: this.clock(), ...e });
  }

  /**
   * A new request, queued for the next cycle, and written with the next flush: a broker that takes over
   * has it, however long it queues (a cycle that decides it before a flush comes is written once).
   */
  addRequest(r: RequestRecord): void {
    this.queueAgain(r);
    this.log({ kind: 'request', id: r.requestId, state: 'pending', team: r.team });
  }

  /**
   * A pending request this broker took before, queued again and written (a takeover's load lacked it);
   * its arrival event is in the log already, or still in the writer, which sends it again.
   */
  queueAgain(r: RequestRecord): void {
    this.requests.set(r.requestId, r);
    this.indexGang(r);
    this.queue.push(r.requestId);
    this.writer.request(r);
  }

  /** Requests still pending (no lease, not failed), queued or held. */
  undecided(): RequestRecord[] {
    return [...this.requests.values()].filter((r) => r.state === 'pending');
  }

  /** A cycle placed the request: records the lease. */
  place(r: RequestRecord, lease: LeaseMsg): LeaseRecord {
    const record = leaseRecord(lease, this.clock());
    this.leases.set(lease.leaseId, record);
    this.index(record, false, record.node, undefined);
    Object.assign(r, {
      state: 'placed',
      leaseId: lease.leaseId,
      reason: undefined,
      held: undefined,
      updatedAt: this.clock(),
    });
    this.held.delete(r.requestId);
    this.writer.lease(record);
    this.writer.request(r);
    this.log({
      kind: 'lease',
      id: lease.leaseId,
      state: 'placed',
      cluster: lease.cluster,
      pool: lease.pool,
      node: lease.node,
      team: r.team,
      pricePerHour: lease.pricePerHour,
      request: r.requestId,
      why: lease.why,
    });
    return record;
  }

  /**
   * A cycle or a budget could not place the request: it waits, with the reason, until something changes.
   * Each new reason goes to {@link onHold} (the broker tells the requester).
   */
  hold(r: RequestRecord, why: Reason): void {
    const reason = `${why.kind}: ${why.detail}`;
    r.held = why;
    if (r.reason !== reason) {
      r.reason = reason;
      r.updatedAt = this.clock();
      this.writer.request(r);
      // The kind travels on its own; the detail keeps the solver's kind only where the hold's kind is `other`.
      const kind = holdKind(why);
      this.onHold?.(r, { kind, detail: kind === why.kind ? why.detail : reason });
    }
    this.held.add(r.requestId);
  }

  /** Called when a held request's reason changes. */
  onHold?: (r: RequestRecord, hold: { kind: HoldKind; detail: string }) => void;

  /**
   * The request can never be placed (policy), or the broker withdrew it (`failure`): it fails with the
   * reason, for good (a retried request gets the same answer).
   */
  refuse(r: RequestRecord, reason: string, failure?: RequestRecord['failure']): void {
    Object.assign(r, { state: 'failed', reason, held: undefined, updatedAt: this.clock() });
    if (failure) r.failure = failure;
    this.endedRequests.push(r.requestId, r.updatedAt);
    this.held.delete(r.requestId);
    this.writer.request(r);
    this.log({ kind: 'request', id: r.requestId, state: 'failed', team: r.team, reason });
  }

  private indexGang(r: RequestRecord): void {
    if (!r.gang) return;
    const set = this.gangs.get(r.gang.id) ?? new Set<string>();
    set.add(r.requestId);
    this.gangs.set(r.gang.id, set);
  }

  /** The members of a gang (every one, whatever its state). */
  gangMembers(gangId: string): RequestRecord[] {
    return [...(this.gangs.get(gangId) ?? [])].flatMap((id) => this.requests.get(id) ?? []);
  }

  /** Moves a gang's held members back to the queue (another member arrived). */
  releaseGang(gangId: string): void {
    for (const id of this.gangs.get(gangId) ?? []) if (this.held.delete(id)) this.queue.push(id);
  }

  /** The ids of requests held, then of those queued, without copying either (a request may be in both). */
  *pendingIds(): Iterable<string> {
    yield* this.held;
    yield* this.queue;
  }

  /** Moves held requests back to the queue (capacity freed, nodes came up, a cluster recovered). */
  release(): number {
    const n = this.held.size;
    for (const id of this.held) this.queue.push(id);
    this.held.clear();
    return n;
  }

  /**
   * Applies a lease state reported by an agent. Returns the request when its state changed, `undefined`
   * for a stale or repeated report (idempotent).
   */
  transition(
    leaseId: string,
    state: TaskState,
    info: {
      node?: string | undefined;
      reason?: string | undefined;
      startedAt?: number | undefined;
      ranMs?: number | undefined;
    },
  ): RequestRecord | undefined {
    const lease = this.leases.get(leaseId);
    if (!lease || ORDER[state] <= ORDER[lease.state] || ORDER[lease.state] === 4) return undefined;
    const r = this.requests.get(lease.requestId);
    const now = this.clock();
    // As it is counted now: uncounted from there if it moves.
    const wasActive = ACTIVE.has(lease.state);
    const countedNode = lease.actualNode ?? lease.node;
    const countedStart = lease.startedAt;
    lease.state = state;
    // The placed node's own string where it is the same (one string per node, not per lease).
    if (info.node) lease.actualNode = info.node === lease.node ? lease.node : info.node;
    // The agent says when the work started (it may fold `running` into the end, or repeat it after a
    // broker restart); trusted only between the placement and now.
    const reported =
      info.startedAt !== undefined ? Math.min(now, Math.max(lease.placedAt, info.startedAt)) : undefined;
    if (state === 'running') lease.startedAt = reported ?? now;
    if (ORDER[state] === 4) {
      lease.endedAt = now;
      if (lease.startedAt === undefined && reported !== undefined) lease.startedAt = reported;
      if (info.ranMs !== undefined) lease.ranMs = info.ranMs;
    }
    if (info.reason) lease.reason = info.reason;
    this.index(lease, wasActive, countedNode, countedStart);
    if (ORDER[state] === 4) {
      this.endedLeases.push(leaseId, now);
      this.onLeaseEnd?.(lease, r);
    }
    // Launching and running are not written to the store: after a restart the agents say where each
    // lease stands. Placements and ends are.
    if (ORDER[state] === 4) this.writer.lease(lease);
    this.log({
      kind: 'lease',
      id: leaseId,
      state,
      cluster: lease.cluster,
      pool: lease.pool,
      node: lease.actualNode ?? lease.node,
      team: r?.team,
      pricePerHour: lease.pricePerHour,
      reason: info.reason,
    });
    if (!r || r.leaseId !== leaseId) return undefined;
    r.updatedAt = now;
    if (state === 'preempted' || state === 'lost') {
      // Placed again in a later cycle; after a spot preemption, off spot if the policy allows.
      Object.assign(r, {
        state: 'pending',
        leaseId: undefined,
        attempt: r.attempt + 1,
        reason: `${state}: ${info.reason ?? ''}`.trim(),
        held: undefined,
      });
      if (state === 'preempted') r.avoidSpot = true;
      this.queue.push(r.requestId);
    } else {
      r.state = state;
      if (info.reason) r.reason = info.reason;
      if (ORDER[state] === 4) this.endedRequests.push(r.requestId, now);
    }
    if (ORDER[state] === 4) this.writer.request(r);
    return r;
  }

  /** Active leases of a cluster, copied (its callers end some of them as they go). */
  activeOn(cluster: string): LeaseRecord[] {
    return [...(this.activeByCluster.get(cluster) ?? [])];
  }

  /** How many active leases a cluster has. */
  activeCount(cluster: string): number {
    return this.activeByCluster.get(cluster)?.size ?? 0;
  }

  /**
   * Forgets requests that ended before `olderThan` (and their leases), so a long-running broker does not
   * grow without bound. Returns their store keys, for the caller to delete.
   */
  prune(olderThan: number): string[] {
    const gone: string[] = [];
    for (const id of this.endedRequests.takeBefore(olderThan)) {
      const r = this.requests.get(id);
      // Ended later (its id was asked for again): taken when that end is old enough.
      if (!r || !TERMINAL.has(r.state) || r.updatedAt >= olderThan) continue;
      this.requests.delete(id);
      if (r.gang) this.gangs.delete(r.gang.id);
      if (r.leaseId) this.leases.delete(r.leaseId);
      gone.push(requestKey(id));
    }
    // Leases of earlier attempts (lost, preempted) whose request moved on; a request's last lease goes
    // with it.
    for (const id of this.endedLeases.takeBefore(olderThan)) {
      const l = this.leases.get(id);
      if (l && (l.endedAt ?? 0) < olderThan && this.requests.get(l.requestId)?.leaseId !== id)
        this.leases.delete(id);
    }
    return gone;
  }

  /** Every active lease, without copying (the caller must not end leases while it iterates). */
  *active(): Iterable<LeaseRecord> {
    for (const set of this.activeByCluster.values()) yield* set;
  }

  /**
   * Keeps the indexes in step with a lease's state: active leases per cluster, leases not yet
   * acknowledged, and what active leases use per node and per team (so a cycle does not walk every
   * lease to take a snapshot). `wasActive`, `node` and `startedAt`: how it was counted before its change.
   */
  private index(l: LeaseRecord, wasActive: boolean, node: string, startedAt: number | undefined): void {
    if (l.state === 'placed') this.unacknowledged.add(l);
    else this.unacknowledged.delete(l);
    const active = ACTIVE.has(l.state);
    // Counted as it is already (launching on the node it was placed on): nothing moves.
    if (wasActive && active && (l.actualNode ?? l.node) === node && l.startedAt === startedAt) return;
    if (wasActive) this.account(l, node, startedAt, -1);
    let set = this.activeByCluster.get(l.cluster);
    if (!set) this.activeByCluster.set(l.cluster, (set = new Set()));
    if (!active) {
      set.delete(l);
      return;
    }
    set.add(l);
    this.account(l, l.actualNode ?? l.node, l.startedAt, 1);
  }

  /** The lease's {@link spendKey} for `team`, found without building the string (its parts keep their hashes). */
  private spendKeyOf(team: string, l: LeaseRecord): string {
    let clusters = this.spendKeys.get(team);
    if (!clusters) this.spendKeys.set(team, (clusters = new Map()));
    let pools = clusters.get(l.cluster);
    if (!pools) clusters.set(l.cluster, (pools = new Map()));
    let types = pools.get(l.pool);
    if (!types) pools.set(l.pool, (types = new Map()));
    let key = types.get(l.capacityType);
    if (key === undefined) types.set(l.capacityType, (key = spendKey(team, l)));
    return key;
  }

  /**
   * `cluster|node`, one string per node shared by its leases' counts, found without building it (the
   * lease's cluster and node strings are shared too, and keep their hashes).
   */
  private nodeKey(l: LeaseRecord, name: string): string {
    let nodes = this.nodeKeys.get(l.cluster);
    if (!nodes) this.nodeKeys.set(l.cluster, (nodes = new Map()));
    let key = nodes.get(name);
    if (key === undefined) nodes.set(name, (key = `${l.cluster}|${name}`));
    return key;
  }

  /**
   * Counts (`sign` 1) or uncounts (-1) an active lease on node `name` from `startedAt`. Its team is its
   * request's, which stays while the lease is active (only requests that ended are forgotten).
   */
  private account(l: LeaseRecord, name: string, startedAt: number | undefined, sign: 1 | -1): void {
    const node = this.nodeKey(l, name);
    const team = this.requests.get(l.requestId)?.team;
    const n = this.nodeUse.get(node) ?? { cpu: 0, mem: 0, gpu: 0 };
    n.cpu += sign * l.cpuMilli;
    n.mem += sign * l.memoryMiB;
    n.gpu += sign * l.gpuMilli;
    if (n.cpu <= 0 && n.mem <= 0 && n.gpu <= 0) {
      this.nodeUse.delete(node);
      // The node counted on (the lease may have moved since): the key's own node name.
      this.nodeKeys.get(l.cluster)?.delete(node.slice(l.cluster.length + 1));
    } else this.nodeUse.set(node, n);
    this.spend.add(team ?? '', l, startedAt, sign, this.spendKeyOf(team ?? '', l));
    this.commitments.account(l, startedAt, sign);
    if (!team) return;
    if (l.work.kind === 'task' || l.work.kind === 'worker') {
      let teams = this.hostedOn.get(l.cluster);
      if (!teams) this.hostedOn.set(l.cluster, (teams = new Map()));
      const n = (teams.get(team) ?? 0) + sign;
      if (n > 0) teams.set(team, n);
      else teams.delete(team);
    }
    let u = this.teamUse.get(team);
    if (!u)
      this.teamUse.set(team, (u = { cpuMilli: 0, memoryMiB: 0, gpus: 0, gpusByModel: {}, spendPerHour: 0 }));
    u.cpuMilli += sign * l.cpuMilli;
    u.memoryMiB += sign * l.memoryMiB;
    u.gpus += (sign * l.gpuMilli) / 1000;
    if (l.gpuModel) u.gpusByModel[l.gpuModel] = (u.gpusByModel[l.gpuModel] ?? 0) + (sign * l.gpuMilli) / 1000;
    u.spendPerHour += sign * l.pricePerHour;
  }

  /** What each team's active leases cost per hour. */
  spendRates(): Map<string, number> {
    return new Map([...this.teamUse].map(([team, u]) => [team, u.spendPerHour]));
  }

  /** What each team's active leases commit against monthly budgets at `now`, in dollars. */
  committedByTeam(now: number): Map<string, number> {
    return this.commitments.byTeam(now);
  }

  /**
   * Active leases whose commitment ends by `t` (the overrun check's candidates; it may hold some that
   * end later).
   */
  commitmentsEndingBy(t: number): Iterable<LeaseRecord> {
    return this.commitments.dueBy(t);
  }

  /** Commits an active lease's cost until `until` (it runs past its declared duration). */
  extendCommitment(l: LeaseRecord, until: number): void {
    const counted = this.activeByCluster.get(l.cluster)?.has(l) ?? false;
    if (counted) this.commitments.account(l, l.startedAt, -1);
    l.committedUntil = until;
    if (counted) this.commitments.account(l, l.startedAt, 1);
  }

  /** Whether `cluster` hosts workflow code (a task, a warm worker) of `team` now. */
  hostsWorkOf(cluster: string, team: string): boolean {
    return (this.hostedOn.get(cluster)?.get(team) ?? 0) > 0;
  }

  /** Their agent took these launches: they are not sent again (unless the agent registers anew). */
  acknowledge(leaseIds: readonly string[]): void {
    for (const id of leaseIds) {
      const l = this.leases.get(id);
      if (l) this.unacknowledged.delete(l);
    }
  }

  /** Leases placed but not yet acknowledged by their agent, without copying. */
  placed(): Iterable<LeaseRecord> {
    return this.unacknowledged;
  }

  /** Resources and spend each team holds now, for quotas and budgets. */
  usage(): Record<string, TeamUsage> {
    return Object.fromEntries(this.teamUse);
  }

  counts(): Record<TaskState, number> {
    const c = {
      pending: 0,
      placed: 0,
      launching: 0,
      running: 0,
      succeeded: 0,
      failed: 0,
      preempted: 0,
      lost: 0,
    };
    for (const r of this.requests.values()) c[r.state]++;
    return c;
  }

  activeLeases(): number {
    let n = 0;
    for (const set of this.activeByCluster.values()) n += set.size;
    return n;
  }

  isDone(r: RequestRecord): boolean {
    return TERMINAL.has(r.state);
  }
}

/**
 * A new lease's record, every field in one literal in one order: records made so share one object
 * shape, where a spread and fields added later gave many (about 600 bytes a lease at 1M leases).
 */
function leaseRecord(m: LeaseMsg, placedAt: number): LeaseRecord {
  return {
    leaseId: m.leaseId,
    requestId: m.requestId,
    cluster: m.cluster,
    pool: m.pool,
    node: m.node,
    pricePerHour: m.pricePerHour,
    cpuMilli: m.cpuMilli,
    memoryMiB: m.memoryMiB,
    gpuMilli: m.gpuMilli,
    gpuModel: m.gpuModel,
    capacityType: m.capacityType,
    expiresAt: m.expiresAt,
    attempt: m.attempt,
    why: m.why,
    explanation: m.explanation,
    gang: m.gang,
    work: m.work,
    state: 'placed',
    placedAt,
    actualNode: undefined,
    startedAt: undefined,
    endedAt: undefined,
    ranMs: undefined,
    reason: undefined,
    committedUntil: undefined,
  };
}

/** The kind a hold is reported with (`holdKind`): the solver's reasons that are not holds are `other`. */
export function holdKind(why: Reason): HoldKind {
  switch (why.kind) {
    case 'capacity':
    case 'quota':
    case 'budget':
    case 'policy':
      return why.kind;
    case 'priority':
    case 'cost':
    case 'preference':
      return 'other';
  }
}
