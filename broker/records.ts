/**
 * The broker's durable records — requests and leases — and how they are stored: written ahead to the
 * journal, many in one entry, once per solve cycle; compacted in the background into one KV key per
 * request (`req.<id>`, its current lease inside; compaction.ts); lifecycle events in the event log.
 */
import { randomUUID } from 'node:crypto';
import { Compactor, readPosition, type SnapshotPosition } from './compaction.ts';
import type { LedgerEntry } from './ledger.ts';
import type { ResolvedResources } from '../policies/index.ts';
import { decodeJson, encodeJson, type Store } from '../protocol/index.ts';
import type { BrokerFailureKind, LeaseMsg, Reason, TaskState, WorkSpec } from '../protocol/index.ts';

/** A resource request and where it stands. */
export interface RequestRecord {
  requestId: string;
  team: string;
  runId?: string | undefined;
  taskId?: string | undefined;
  workflow?: string | undefined;
  resources: ResolvedResources;
  priority?: number | undefined;
  override: boolean;
  work: WorkSpec;
  state: TaskState;
  /** Why it is still pending (held by a quota or budget, no capacity), for `gantry get requests`. */
  reason?: string | undefined;
  /** While a cycle or a budget holds it: why, as data (`reason` is its text). */
  held?: Reason | undefined;
  /** Set when the broker withdrew it (budget, queue time, a cancelled run): why, as data. */
  failure?: { kind: BrokerFailureKind; detail: string } | undefined;
  leaseId?: string | undefined;
  attempt: number;
  /** A gang member: which gang, its rank, and how many members the gang has. */
  gang?: { id: string; rank: number; size: number } | undefined;
  /** Set after a spot preemption: the next placement avoids spot. */
  avoidSpot?: boolean | undefined;
  createdAt: number;
  updatedAt: number;
}

/** A lease and its lifecycle. */
export interface LeaseRecord extends LeaseMsg {
  state: TaskState;
  placedAt: number;
  /** The node the work actually ran on, once the agent says (a planned node gets a real name). */
  actualNode?: string | undefined;
  startedAt?: number | undefined;
  endedAt?: number | undefined;
  /**
   * How long its work ran on its cluster's clock, ms, when the agent said (simulated clusters): what the
   * ledger charges, rather than the broker's wall-clock time times the speedup.
   */
  ranMs?: number | undefined;
  reason?: string | undefined;
  /**
   * Until when (broker clock) its cost is committed against a monthly budget, once extended past its
   * declared duration; unset: its start plus the declared duration.
   */
  committedUntil?: number | undefined;
}

/**
 * An event in the lifecycle log (also what `gantry report` will read). Kind `run`: the broker ended a
 * run its driver no longer speaks for (`state` abandoned or cancelled; `request` holds its workflow).
 */
export interface LifecycleEvent {
  at: number;
  kind: 'request' | 'lease' | 'node' | 'cluster' | 'run';
  id: string;
  state: string;
  cluster?: string | undefined;
  pool?: string | undefined;
  node?: string | undefined;
  team?: string | undefined;
  pricePerHour?: number | undefined;
  reason?: string | undefined;
  /** For leases: the request placed, and why the solver chose there. */
  request?: string | undefined;
  why?: string | undefined;
}

const safe = (id: string) =>
  id.replace(/[^-_=a-zA-Z0-9]/g, (c) => `=${c.charCodeAt(0).toString(16).padStart(2, '0')}`);

/** KV key of a request. Ids may hold characters KV keys cannot; they are escaped. */
export const requestKey = (id: string) => `req.${safe(id)}`;

/**
 * Write-behind buffer, flushed as one batch: the changed requests (each with its current lease) to the
 * journal and the events since the last flush to the event log, a few large entries each, both at once.
 * A request changed twice before a flush is written once, as it is at the flush. The KV view follows
 * from the journal ({@link Compactor}), off the path of the answers.
 */
export class RecordWriter {
  /** Compacts the journal into the KV view. */
  readonly compactor: Compactor;
  private readonly dirty = new Set<string>();
  /** Requests being written by flushes not yet durable, each with the flush writing them. */
  private readonly writing = new Map<Set<string>, Promise<void>>();
  /** Settles as the next flush does (the one that takes what is buffered now), once someone waits for it. */
  private next: { done: Promise<void>; settle(flush: Promise<void>): void } | undefined;
  private events: (LifecycleEvent | LedgerEntry)[] = [];
  /**
   * Event log entries a flush could not write, sent again as they were, with the same ids: one that
   * was stored though its acknowledgement was lost is not stored twice (the cost ledger would count
   * its usage twice).
   */
  private unsent: { data: Uint8Array; id: string }[] = [];
  /** Ids of event log entries: this writer's own, then a count. */
  private readonly idPrefix = randomUUID();
  private entries = 0;
  private flushing: Promise<void> = Promise.resolve();
  private soon: NodeJS.Timeout | undefined;

  /** @param current the JSON to store for a request id ({@link storedJson}), its current lease included. */
  constructor(
    private readonly store: Store,
    private readonly current: (requestId: string) => string | undefined,
  ) {
    this.compactor = new Compactor(store);
  }

  request(r: RequestRecord): void {
    this.dirty.add(r.requestId);
  }

  lease(l: LeaseRecord): void {
    this.dirty.add(l.requestId);
  }

  event(e: LifecycleEvent | LedgerEntry): void {
    this.events.push(e);
  }

  get pending(): number {
    return this.dirty.size + this.events.length + this.unsent.length;
  }

  /** Whether a change of this request is not durable yet (buffered, or in a flush not yet done). */
  unwritten(requestId: string): boolean {
    if (this.dirty.has(requestId)) return true;
    for (const set of this.writing.keys()) if (set.has(requestId)) return true;
    return false;
  }

  /**
   * Resolves once each of these requests is durable as it is now (or later): at once for one written
   * already, else when the write that holds its change lands. Rejects if that write fails (the change is
   * written again by a later flush, which the caller does not wait for). Starts no write by itself.
   */
  written(requestIds: Iterable<string>): Promise<void> {
    const waits = new Set<Promise<void>>();
    for (const id of requestIds) {
      if (this.dirty.has(id)) waits.add(this.nextFlush());
      else
        for (const [set, flush] of this.writing)
          if (set.has(id)) {
            waits.add(flush);
            break;
          }
    }
    if (waits.size === 0) return Promise.resolve();
    return Promise.all(waits).then(() => undefined);
  }

  private nextFlush(): Promise<void> {
    if (!this.next) {
      let settle!: (flush: Promise<void>) => void;
      const done = new Promise<void>((resolve) => (settle = resolve));
      this.next = { done, settle };
    }
    return this.next.done;
  }

  /**
   * Writes everything buffered; resolves when it is durable. Flushes run one after another. If the store
   * fails (NATS restarting), what was not written is put back (records unless newer versions were
   * buffered meanwhile), and the promise rejects: the caller retries.
   */
  flush(): Promise<void> {
    const taken = [...this.dirty];
    const events = this.events;
    const inFlight = new Set(taken);
    const next = this.next;
    this.next = undefined;
    this.dirty.clear();
    this.events = [];
    const run = this.flushing.then(async () => {
      try {
        const records = taken.flatMap((id): [string, string][] => {
          const json = this.current(id);
          return json !== undefined ? [[requestKey(id), json]] : [];
        });
        const chunks = this.unsent;
        this.unsent = [];
        for (let i = 0; i < events.length; i += EVENTS_PER_ENTRY)
          chunks.push({
            data: encodeJson(events.slice(i, i + EVENTS_PER_ENTRY)),
            id: `${this.idPrefix}-${++this.entries}`,
          });
        const [journaled, logged] = await Promise.allSettled([
          records.length > 0 ? this.store.journal.append(journalEntries(records)) : 0,
          chunks.length > 0
            ? this.store.appendMany(
                chunks.map((c) => c.data),
                chunks.map((c) => c.id),
              )
            : undefined,
        ]);
        // Each half is put back only if it failed: the other is durable, and writing it again would
        // repeat events in the log. Records are written again as they are by then (the journal keeps
        // the latest of each); event entries as they were, under their ids.
        if (journaled.status === 'fulfilled') {
          if (records.length > 0) this.compactor.add(journaled.value, records);
        } else for (const id of taken) this.dirty.add(id);
        if (logged.status === 'rejected') this.unsent = [...chunks, ...this.unsent];
        if (journaled.status === 'rejected') throw journaled.reason;
        if (logged.status === 'rejected') throw logged.reason;
      } finally {
        this.writing.delete(inFlight);
      }
    });
    this.writing.set(inFlight, run);
    next?.settle(run);
    this.flushing = run.catch(() => undefined);
    return run;
  }

  /**
   * Flushes within `delayMs` unless a flush is already due then (requests taken between cycles are
   * written many at a time, not one flush each), if `still()` says so then (a deposed broker writes
   * nothing); failures go to `onError`, and what failed is written by the next flush.
   */
  flushSoon(delayMs: number, still: () => boolean, onError: (err: Error) => void): void {
    if (this.soon) return;
    this.soon = setTimeout(() => {
      this.soon = undefined;
      if (still()) this.flush().catch(onError);
    }, delayMs);
  }

  /** Flushes until it succeeds, waiting longer after each failure; gives up when `keepTrying` says so. */
  async flushDurably(keepTrying: () => boolean, onError: (err: Error) => void): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.flush();
        return true;
      } catch (err) {
        onError(err as Error);
        if (!keepTrying()) return false;
        // Short waits: a JetStream stream electing a leader answers again within a second or two.
        await new Promise((r) => setTimeout(r, Math.min(500, 50 * 2 ** attempt)));
      }
    }
  }
}

/** Events per log entry: about 250 bytes each, well under NATS's 1 MiB message limit. */
const EVENTS_PER_ENTRY = 1000;

/**
 * Characters of record JSON per journal entry: under NATS's 1 MiB message limit even if every character
 * took three bytes. A record larger than that goes alone.
 */
const JOURNAL_ENTRY_CHARS = 256 * 1024;

const encoder = new TextEncoder();

/** Journal entries of `[key, JSON]` records: each a JSON array of records, up to the size above. */
function journalEntries(records: readonly (readonly [string, string])[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let part: string[] = [];
  let chars = 0;
  for (const [, json] of records) {
    if (part.length > 0 && chars + json.length > JOURNAL_ENTRY_CHARS) {
      out.push(encoder.encode(`[${part.join(',')}]`));
      part = [];
      chars = 0;
    }
    part.push(json);
    chars += json.length + 1;
  }
  if (part.length > 0) out.push(encoder.encode(`[${part.join(',')}]`));
  return out;
}

/** A request as stored: with its current lease, whose work is the request's (stored once, in the request). */
export type StoredRequest = RequestRecord & { lease?: StoredLease | undefined };

/** A lease as stored inside its request; records written before the work was left out still hold it. */
export type StoredLease = Omit<LeaseRecord, 'work'> & { work?: WorkSpec | undefined };

/** The JSON a request is stored as ({@link StoredRequest}): its current lease inside, without the work. */
export function storedJson(r: RequestRecord, lease: LeaseRecord | undefined): string {
  const json = JSON.stringify(r);
  if (!lease) return json;
  // Left out by setting it undefined for the moment, rather than copying every other field.
  const work = lease.work;
  (lease as StoredLease).work = undefined;
  try {
    return `${json.slice(0, -1)},"lease":${JSON.stringify(lease)}}`;
  } finally {
    lease.work = work;
  }
}

/** What a load found in the journal past the snapshot: for the compactor to claim and write. */
export interface JournalReplay {
  position: SnapshotPosition;
  /** `[key, JSON]` of each request the journal held past the position, the latest of each. */
  replayed: Map<string, string>;
  /** The last journal sequence read. */
  lastSeq: number;
}

/**
 * Loads every request and current lease from the store (on start, and when a standby takes over): the
 * KV view, then the journal past its snapshot position, a later record of a request replacing an
 * earlier one.
 */
export async function loadRecords(
  store: Store,
): Promise<{ requests: RequestRecord[]; leases: LeaseRecord[]; journal: JournalReplay }> {
  const position = await readPosition(store);
  const byId = new Map<string, StoredRequest>();
  for (const e of await store.list('req')) {
    const r = decodeJson(e.value) as StoredRequest;
    byId.set(r.requestId, r);
  }
  const replayed = new Map<string, string>();
  let lastSeq = position.seq;
  for await (const entry of store.journal.read(position.seq + 1)) {
    for (const r of decodeJson(entry.data) as StoredRequest[]) {
      byId.set(r.requestId, r);
      replayed.set(requestKey(r.requestId), JSON.stringify(r));
    }
    lastSeq = entry.seq;
  }
  const requests: RequestRecord[] = [];
  const leases: LeaseRecord[] = [];
  for (const { lease, ...r } of byId.values()) {
    requests.push(r);
    if (!lease) continue;
    lease.work ??= r.work;
    leases.push(lease as LeaseRecord);
  }
  return { requests, leases, journal: { position, replayed, lastSeq } };
}

/** Reads the lifecycle log (cost ledger entries included): each entry holds the events of one flush. */
export async function* readLifecycle(store: Store, fromSeq = 1): AsyncIterable<LifecycleEvent | LedgerEntry> {
  for await (const entry of store.readLog(fromSeq))
    yield* decodeJson(entry.data) as (LifecycleEvent | LedgerEntry)[];
}
