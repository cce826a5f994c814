/**
 * The broker's durable records — requests and leases — and how they are stored: one KV key each
 * (`req.<id>`, `lease.<id>`), written in batches once per solve cycle, plus lifecycle events in the log.
 */
import type { LedgerEntry } from './ledger.ts';
import type { ResolvedResources } from '../policies/index.ts';
import { decodeJson, encodeJson, type Store } from '../protocol/index.ts';
import type { LeaseMsg, Reason, TaskState, WorkSpec } from '../protocol/index.ts';

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
  reason?: string | undefined;
  /**
   * Until when (broker clock) its cost is committed against a monthly budget, once extended past its
   * declared duration; unset: its start plus the declared duration.
   */
  committedUntil?: number | undefined;
}

/** An event in the lifecycle log (also what `gantry report` will read). */
export interface LifecycleEvent {
  at: number;
  kind: 'request' | 'lease' | 'node' | 'cluster';
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
 * Write-behind buffer, flushed as one batch: one KV entry per changed request (its current lease inside
 * it) and one log entry holding all the events since the last flush. A request changed twice before a
 * flush is written once, as it is at the flush. One KV write per task and cycle keeps a JetStream broker
 * above 20K decisions/s.
 */
export class RecordWriter {
  private readonly dirty = new Set<string>();
  /** Requests being written by flushes not yet durable. */
  private readonly writing = new Set<Set<string>>();
  private events: (LifecycleEvent | LedgerEntry)[] = [];
  private flushing: Promise<void> = Promise.resolve();

  /** @param current the record to store for a request id, its current lease included. */
  constructor(
    private readonly store: Store,
    private readonly current: (requestId: string) => StoredRequest | undefined,
  ) {}

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
    return this.dirty.size + this.events.length;
  }

  /** Whether a change of this request is not durable yet (buffered, or in a flush not yet done). */
  unwritten(requestId: string): boolean {
    if (this.dirty.has(requestId)) return true;
    for (const set of this.writing) if (set.has(requestId)) return true;
    return false;
  }

  /**
   * Writes everything buffered; resolves when it is durable. Flushes run one after another. If the store
   * fails (NATS restarting), what was taken is put back, unless newer versions were buffered meanwhile,
   * and the promise rejects: the caller retries.
   */
  flush(): Promise<void> {
    const taken = [...this.dirty];
    const events = this.events;
    const inFlight = new Set(taken);
    this.writing.add(inFlight);
    this.dirty.clear();
    this.events = [];
    const run = this.flushing.then(async () => {
      try {
        const entries = taken.flatMap((id) => {
          const value = this.current(id);
          return value ? [{ key: requestKey(id), value: encodeJson(value) }] : [];
        });
        if (entries.length > 0) await this.store.putMany(entries);
        const chunks: Uint8Array[] = [];
        for (let i = 0; i < events.length; i += EVENTS_PER_ENTRY)
          chunks.push(encodeJson(events.slice(i, i + EVENTS_PER_ENTRY)));
        if (chunks.length > 0) await this.store.appendMany(chunks);
      } catch (err) {
        for (const id of taken) this.dirty.add(id);
        this.events = [...events, ...this.events];
        throw err;
      } finally {
        this.writing.delete(inFlight);
      }
    });
    this.flushing = run.catch(() => undefined);
    return run;
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

/** A request as stored: with its current lease. */
export type StoredRequest = RequestRecord & { lease?: LeaseRecord | undefined };

/** Loads every request and current lease from the store (on start, and when a standby takes over). */
export async function loadRecords(
  store: Store,
): Promise<{ requests: RequestRecord[]; leases: LeaseRecord[] }> {
  const requests: RequestRecord[] = [];
  const leases: LeaseRecord[] = [];
  for (const e of await store.list('req')) {
    const { lease, ...r } = decodeJson(e.value) as StoredRequest;
    requests.push(r);
    if (lease) leases.push(lease);
  }
  return { requests, leases };
}

/** Reads the lifecycle log (cost ledger entries included): each entry holds the events of one flush. */
export async function* readLifecycle(store: Store, fromSeq = 1): AsyncIterable<LifecycleEvent | LedgerEntry> {
  for await (const entry of store.readLog(fromSeq))
    yield* decodeJson(entry.data) as (LifecycleEvent | LedgerEntry)[];
}
