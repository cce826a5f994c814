/**
 * Durable state: a key-value map with revisions and compare-and-set (current state: requests, leases,
 * inventory, leadership), an append-only event log (lifecycle and usage events, kept for the history),
 * and a journal (changes written ahead of the key-value map, trimmed once the map holds them). Two
 * implementations pass one contract suite: a local directory (embedded mode) and NATS JetStream (a KV
 * bucket and two streams).
 */

/** A stored value and the revision that wrote it (revisions only grow). */
export interface KvEntry {
  key: string;
  value: Uint8Array;
  revision: number;
}

/** An event in the log, numbered from 1. */
export interface LogEvent {
  seq: number;
  data: Uint8Array;
}

/**
 * A write-ahead log beside the key-value map: many changes go in one entry, durable at once, and are
 * applied to keys later; entries the map holds are trimmed. Sequence numbers start at 1 and keep
 * growing across trims and restarts.
 */
export interface Journal {
  /**
   * Appends entries in order; resolves with the last one's sequence number once all are durable (0
   * when there were none).
   */
  append(entries: readonly Uint8Array[]): Promise<number>;
  /**
   * Entries from `fromSeq` (inclusive; default 1) to the end as it is when reading starts; trimmed
   * entries are gone.
   */
  read(fromSeq?: number): AsyncIterable<LogEvent>;
  /** Drops the entries up to and including `throughSeq`; those after it stay, numbered as they were. */
  trim(throughSeq: number): Promise<void>;
}

/**
 * Keys are dot-separated tokens of `[-_=a-zA-Z0-9]` (what JetStream KV allows), e.g.
 * `lease.l-42`. Prefix queries match whole tokens: `lease` matches `lease.l-42`, not `leases.x`.
 * Every method that takes a key rejects a bad one with `BadKeyError` (keys.ts), and every write
 * resolves only once it is durable.
 */
export interface Store {
  /** `local` or `jetstream`. */
  readonly kind: string;
  /** The live entry, or `undefined` if the key is missing or deleted. */
  get(key: string): Promise<KvEntry | undefined>;
  /** Writes unconditionally; returns the new revision. */
  put(key: string, value: Uint8Array): Promise<number>;
  /**
   * Writes many keys at once (one solve cycle's leases). Durable when it resolves; faster than one
   * `put` at a time (JetStream: pipelined publishes).
   */
  putMany(entries: readonly { key: string; value: Uint8Array }[]): Promise<void>;
  /** Creates the key; rejects with `StoreConflictError` if it exists. */
  create(key: string, value: Uint8Array): Promise<number>;
  /** Replaces the value only if the key is at `revision`; rejects with `StoreConflictError` if not. */
  update(key: string, value: Uint8Array, revision: number): Promise<number>;
  /** Removes the key (a missing key is fine). */
  delete(key: string): Promise<void>;
  /** Every live entry whose key starts with the prefix's tokens, in key order. */
  list(prefix: string): Promise<KvEntry[]>;
  /** Appends one event; returns its sequence number. */
  append(data: Uint8Array): Promise<number>;
  /**
   * Appends many events, durable when it resolves. With `ids` (one per event), an event whose id the
   * log took before is not appended again, so a write retried after an acknowledgement that never
   * came stays one: JetStream's `Nats-Msg-Id` within the stream's duplicate window (two minutes by
   * default); locally, the last 100,000 ids since the store was opened.
   */
  appendMany(events: readonly Uint8Array[], ids?: readonly string[]): Promise<void>;
  /**
   * Events from `fromSeq` (inclusive; default 1) to the end of the log as it is when iteration
   * starts; events appended meanwhile are left for the next read.
   */
  readLog(fromSeq?: number): AsyncIterable<LogEvent>;
  /** The journal (local: `journal.log`; JetStream: the stream `<stream>-journal`). */
  readonly journal: Journal;
  /**
   * Which log this is: it changes when the log is made anew (a state directory removed, a stream
   * deleted and created again), when its sequence numbers start from 1 again. History keys its
   * offsets on it.
   */
  logOrigin(): Promise<string>;
  /** Waits for writes in progress, then releases the store (JetStream: not the connection). */
  close(): Promise<void>;
}

/**
 * The compare-and-set part of a {@link Store}: what leadership needs. A store of its own (its own
 * bucket, on its own connection) keeps a renewal from queueing behind the state's writes.
 */
export type KeyStore = Pick<Store, 'get' | 'create' | 'update'>;
