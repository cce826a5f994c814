/**
 * The `Store` of distributed mode: a JetStream KV bucket (history 1) for current state, a JetStream
 * stream on `<stream>.events` for the event log, and one on `<stream>.journal` for the journal
 * (jetstream-journal.ts). Bulk writes are pipelined: every publish
 * goes out before any ack is awaited (up to a window), over the store's own reply subscription
 * (jetstream-publish.ts) rather than one nats.js request each.
 *
 * Written against nats-server 2.9: consumers get ONE filter subject (multi-filter consumers are a
 * 2.10 feature), and per-key TTLs are not used (2.9 accepts and ignores them).
 */
import {
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
} from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { StoreClosedError, StoreConflictError } from './errors.ts';
import { drain, ensureStream, jetStreamJournal, readStream } from './jetstream-journal.ts';
import { JetStreamPublisher } from './jetstream-publish.ts';
import { compareKeys, validateKey, validatePrefix } from './keys.ts';
import type { Journal, KeyStore, KvEntry, LogEvent, Store } from './store.ts';

/** Options of {@link openJetStreamStore}. */
export interface JetStreamStoreOptions {
  /** KV bucket name (stream `KV_<bucket>`), e.g. `gantry`. */
  bucket: string;
  /**
   * Event stream name; events go to subject `<stream>.events`, the journal to `<stream>.journal` in
   * the stream `<stream>-journal`.
   */
  stream: string;
  /** Replicas of the bucket and the streams when they are created; default 1. */
  replicas?: number;
}

/**
 * Opens the store on a connection, creating the bucket and the stream if missing. The connection
 * stays the caller's: `close()` does not close it.
 *
 * @example
 * const t = await connectNats({ servers: 'nats://nats:4222' });
 * const store = await openJetStreamStore(t.connection, { bucket: 'gantry', stream: 'GANTRY' });
 * await store.putMany(leases.map((l) => ({ key: `lease.${l.id}`, value: encodeJson(l) })));
 */
export async function openJetStreamStore(nc: NatsConnection, opts: JetStreamStoreOptions): Promise<Store> {
  const replicas = opts.replicas ?? 1;
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const kv = await new Kvm(js).create(opts.bucket, { history: 1, replicas, storage: StorageType.File });
  await ensureStream(jsm, opts.stream, `${opts.stream}.events`, replicas);
  return new JetStreamStore(js, jsm, kv, opts.bucket, opts.stream, replicas, new JetStreamPublisher(nc));
}

class JetStreamStore implements Store {
  readonly kind = 'jetstream';
  readonly #kvStream: string;
  readonly #kvPrefix: string;
  readonly #eventSubject: string;
  readonly journal: Journal;
  readonly #keys: JetStreamKeys;
  #closed = false;

  constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly kv: KV,
    bucket: string,
    private readonly stream: string,
    replicas: number,
    private readonly publisher: JetStreamPublisher,
  ) {
    this.#kvStream = `KV_${bucket}`;
    this.#kvPrefix = `$KV.${bucket}.`;
    this.#eventSubject = `${stream}.events`;
    this.#keys = new JetStreamKeys(kv, () => this.#assertOpen());
    this.journal = jetStreamJournal(
      js,
      jsm,
      publisher,
      `${stream}-journal`,
      `${stream}.journal`,
      replicas,
      () => this.#assertOpen(),
    );
  }

  get(key: string): Promise<KvEntry | undefined> {
    return this.#keys.get(key);
  }

  async put(key: string, value: Uint8Array): Promise<number> {
    this.#assertOpen();
    validateKey(key);
    return this.kv.put(key, value);
  }

  async putMany(entries: readonly { key: string; value: Uint8Array }[]): Promise<void> {
    this.#assertOpen();
    for (const e of entries) validateKey(e.key);
    // A put is a publish on the key's subject of the bucket's stream (what `kv.put` sends).
    await this.publisher.publishMany(
      entries.length,
      (i) => this.#kvPrefix + entries[i]!.key,
      (i) => entries[i]!.value,
    );
  }

  create(key: string, value: Uint8Array): Promise<number> {
    return this.#keys.create(key, value);
  }

  update(key: string, value: Uint8Array, revision: number): Promise<number> {
    return this.#keys.update(key, value, revision);
  }

  async delete(key: string): Promise<void> {
    this.#assertOpen();
    validateKey(key);
    await this.kv.delete(key);
  }

  async list(prefix: string): Promise<KvEntry[]> {
    this.#assertOpen();
    validatePrefix(prefix);
    // One filter per consumer on 2.9: `prefix.>` by consumer, the key `prefix` itself by a get.
    const [exact, under] = await Promise.all([
      prefix === '' ? undefined : this.get(prefix),
      this.#lastPerSubject(prefix === '' ? `${this.#kvPrefix}>` : `${this.#kvPrefix}${prefix}.>`),
    ]);
    const out = exact === undefined ? under : [exact, ...under];
    return out.sort((a, b) => compareKeys(a.key, b.key));
  }

  async append(data: Uint8Array): Promise<number> {
    this.#assertOpen();
    return (await this.js.publish(this.#eventSubject, data)).seq;
  }

  async appendMany(events: readonly Uint8Array[], ids?: readonly string[]): Promise<void> {
    this.#assertOpen();
    await this.publisher.publishMany(
      events.length,
      () => this.#eventSubject,
      (i) => events[i]!,
      ids && ((i) => ids[i]),
    );
  }

  async *readLog(fromSeq = 1): AsyncGenerator<LogEvent> {
    this.#assertOpen();
    yield* readStream(this.js, this.jsm, this.stream, fromSeq);
  }

  async logOrigin(): Promise<string> {
    const info = await this.jsm.streams.info(this.stream);
    return `${this.stream}@${info.created}`;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.publisher.close();
  }

  /** Live entries under `filter`, read by an ordered consumer that delivers the last value per key. */
  async #lastPerSubject(filter: string): Promise<KvEntry[]> {
    const consumer = await this.js.consumers.get(this.#kvStream, {
      filter_subjects: filter,
      deliver_policy: DeliverPolicy.LastPerSubject,
    });
    const out: KvEntry[] = [];
    if ((await consumer.info(true)).num_pending === 0) {
      void consumer.delete().catch(() => undefined);
      return out;
    }
    for await (const m of drain(consumer, (m) => m.info.pending === 0)) {
      const op = m.headers?.get('KV-Operation');
      if (op === 'DEL' || op === 'PURGE') continue;
      out.push({ key: m.subject.slice(this.#kvPrefix.length), value: m.data, revision: m.seq });
    }
    return out;
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreClosedError('jetstream');
  }
}

/** Options of {@link openJetStreamKeys}. */
export interface JetStreamKeysOptions {
  /** KV bucket name (stream `KV_<bucket>`). */
  bucket: string;
  /** Replicas of the bucket when it is created; default 1. */
  replicas?: number;
  /** How long a read or a write may take before it fails, ms; default nats.js's (5 s). */
  timeoutMs?: number;
}

/**
 * Opens a bucket for compare-and-set alone (a {@link KeyStore}), creating it if missing: leadership's,
 * on a connection of its own, so that its renewals never wait behind the state's writes — neither in
 * the connection's outgoing buffer nor in the state stream's queue on its JetStream leader.
 *
 * @example
 * const leader = await connectNats({ servers, name: 'gantry-broker-leader' });
 * const keys = await openJetStreamKeys(leader.connection, { bucket: 'gantry-leader', replicas: 3 });
 */
export async function openJetStreamKeys(nc: NatsConnection, opts: JetStreamKeysOptions): Promise<KeyStore> {
  const js = jetstream(nc, opts.timeoutMs === undefined ? {} : { timeout: opts.timeoutMs });
  const kv = await new Kvm(js).create(opts.bucket, {
    history: 1,
    replicas: opts.replicas ?? 1,
    storage: StorageType.File,
  });
  return new JetStreamKeys(kv, () => undefined);
}

/** Get, create and compare-and-set on one bucket: the {@link KeyStore} part of the JetStream store. */
class JetStreamKeys implements KeyStore {
  constructor(
    private readonly kv: KV,
    private readonly assertOpen: () => void,
  ) {}

  async get(key: string): Promise<KvEntry | undefined> {
    this.assertOpen();
    validateKey(key);
    const e = await this.kv.get(key);
    if (e === null || e.operation !== 'PUT') return undefined;
    return { key, value: e.value, revision: e.revision };
  }

  async create(key: string, value: Uint8Array): Promise<number> {
    this.assertOpen();
    validateKey(key);
    try {
      return await this.kv.create(key, value);
    } catch (err) {
      throw conflictOr(err, key, `key ${key} already exists`);
    }
  }

  async update(key: string, value: Uint8Array, revision: number): Promise<number> {
    this.assertOpen();
    validateKey(key);
    // kv.update refuses revision 0 with a plain Error; no live key is at revision 0.
    if (!(revision > 0)) throw new StoreConflictError(key, `key ${key} cannot be at revision ${revision}`);
    try {
      return await this.kv.update(key, value, revision);
    } catch (err) {
      throw conflictOr(err, key, `key ${key} is not at revision ${revision}`);
    }
  }
}

function conflictOr(err: unknown, key: string, message: string): unknown {
  if (
    err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamWrongLastSequence ||
      err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  ) {
    return new StoreConflictError(key, message, { cause: err });
  }
  return err;
}
