/**
 * The key-value view of the broker's records, compacted from the journal in the background. A cycle's
 * records go to the journal in one append (records.ts); here the latest journaled value of each request
 * is written to its key (`req.<id>`), a slice at a time, then the snapshot position (`broker.journal`:
 * the journal sequence the keys hold everything up to) moves by compare-and-set, and the journal is
 * trimmed up to it. Recovery reads the keys, then the journal after the position.
 *
 * The compare-and-set fences a broker that lost leadership: the new leader claims the position when it
 * loads, so the old one's next move fails and it trims nothing the new leader has not read.
 */
import { decodeJson, encodeJson, StoreConflictError, type Store } from '../protocol/index.ts';

/** The key of the snapshot position. */
export const POSITION_KEY = 'broker.journal';

/** Where the key-value view stands in the journal, and the revision of the key that says so. */
export interface SnapshotPosition {
  seq: number;
  /** 0: the key does not exist yet. */
  revision: number;
}

/** Keys written per `putMany`: few enough that a leadership renewal is not queued behind thousands. */
const SLICE = 1000;

/** A backlog this large is compacted at once rather than at the next tick. */
const EAGER_BACKLOG = 20_000;

const encoder = new TextEncoder();

/** Reads the snapshot position (sequence 0 when the journal was never compacted). */
export async function readPosition(store: Store): Promise<SnapshotPosition> {
  const e = await store.get(POSITION_KEY);
  if (!e) return { seq: 0, revision: 0 };
  return { seq: (decodeJson(e.value) as { seq: number }).seq, revision: e.revision };
}

/** What is journaled but not in the key-value view yet, and how it gets there. */
export class Compactor {
  /** Latest journaled JSON per key, not yet written to the key. */
  private pending = new Map<string, string>();
  /** Keys to delete (requests forgotten). */
  private gone = new Set<string>();
  /** The journal sequence that `pending` covers. */
  private upTo = 0;
  private position: SnapshotPosition = { seq: 0, revision: 0 };
  /** Set when another broker moved the position: this one compacts no more until it loads again. */
  private fenced = false;
  private running: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private onError: (err: Error) => void = () => undefined;

  constructor(private readonly store: Store) {}

  /** Records durable in the journal through `seq`: `[key, JSON]` each. */
  add(seq: number, records: readonly (readonly [string, string])[]): void {
    for (const [key, json] of records) {
      this.pending.set(key, json);
      this.gone.delete(key);
    }
    this.upTo = Math.max(this.upTo, seq);
    if (this.timer && this.pending.size >= EAGER_BACKLOG && !this.running)
      void this.compact().catch(this.onError);
  }

  /** Keys of requests forgotten: deleted from the view by the next compaction. */
  forget(keys: readonly string[]): void {
    for (const key of keys) {
      this.pending.delete(key);
      this.gone.add(key);
    }
  }

  /** Keys waiting to be written. */
  get backlog(): number {
    return this.pending.size + this.gone.size;
  }

  /**
   * After a load: the position read, and what the journal held after it (written by the next
   * compaction). Claims the position (a compare-and-set at the revision read), so a broker that led
   * before cannot move it any more; rejects with `StoreConflictError` if one moved it since the load
   * read it (the load is stale).
   */
  async claim(
    position: SnapshotPosition,
    replayed: ReadonlyMap<string, string>,
    lastSeq: number,
  ): Promise<void> {
    this.pending = new Map(replayed);
    this.gone.clear();
    this.upTo = lastSeq;
    this.fenced = false;
    this.position = position;
    this.position = { seq: position.seq, revision: await this.writePosition(position.seq) };
  }

  /** Compacts every `intervalMs` until {@link stop}; `onError` hears of failures (retried next time). */
  start(intervalMs: number, onError: (err: Error) => void): void {
    this.stop();
    this.onError = onError;
    this.timer = setInterval(() => void this.compact().catch(onError), intervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Resolves once no compaction runs: a load waits for it, since one this broker began before it lost
   * leadership may still move the position the load is about to read.
   */
  async settled(): Promise<void> {
    await this.running?.catch(() => undefined);
  }

  /**
   * Writes what is pending to its keys, moves the position and trims the journal; one compaction at a
   * time (a call while one runs waits for it). On failure what was taken is put back, unless newer
   * values came meanwhile.
   */
  compact(): Promise<void> {
    this.running ??= this.run().finally(() => (this.running = undefined));
    return this.running;
  }

  private async run(): Promise<void> {
    if (this.fenced || (this.backlog === 0 && this.upTo <= this.position.seq)) return;
    const batch = this.pending;
    const gone = this.gone;
    const upTo = this.upTo;
    this.pending = new Map();
    this.gone = new Set();
    try {
      const entries = [...batch].map(([key, json]) => ({ key, value: encoder.encode(json) }));
      for (let i = 0; i < entries.length; i += SLICE) await this.store.putMany(entries.slice(i, i + SLICE));
      await Promise.all([...gone].map((key) => this.store.delete(key)));
      this.position = { seq: upTo, revision: await this.writePosition(upTo) };
    } catch (err) {
      for (const [key, json] of batch)
        if (!this.pending.has(key) && !this.gone.has(key)) this.pending.set(key, json);
      for (const key of gone) if (!this.pending.has(key)) this.gone.add(key);
      if (err instanceof StoreConflictError) this.fenced = true;
      throw err;
    }
    await this.store.journal.trim(upTo);
  }

  /** Moves the position key to `seq` from the revision this broker knows; returns the new revision. */
  private writePosition(seq: number): Promise<number> {
    const value = encodeJson({ seq });
    return this.position.revision === 0
      ? this.store.create(POSITION_KEY, value)
      : this.store.update(POSITION_KEY, value, this.position.revision);
  }
}
