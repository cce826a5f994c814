/**
 * The `Store` of embedded mode: durable in one local directory, owned by one process at a time.
 *
 * Layout: `LOCK` (the owner's pid), `kv.log` (see local-kv.ts), `events.log` (see local-log.ts),
 * `journal.log` (see local-journal.ts).
 * Every mutation resolves only after its record is fsynced; concurrent mutations share fsyncs.
 * Reads see a mutation as soon as it is called (before it is durable), like a database's own session.
 */
import { LRUCache } from 'lru-cache';
import { mkdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { StoreClosedError, StoreConflictError } from './errors.ts';
import { compareKeys, keyHasPrefix, validateKey, validatePrefix } from './keys.ts';
import { acquireLock } from './local-files.ts';
import { JournalFile } from './local-journal.ts';
import { KvFile } from './local-kv.ts';
import { EventFile } from './local-log.ts';
import type { Journal, KvEntry, LogEvent, Store } from './store.ts';

/**
 * Opens (creating) a local store in `dir`. Rejects with `StoreLockedError` if another live process
 * has it open, and with `StoreCorruptError` if a file is damaged other than by a torn last line.
 *
 * @example
 * const store = await openLocalStore('.gantry/state');
 * const rev = await store.create('leader', encodeJson({ id: 'broker-1' }));
 * await store.update('leader', encodeJson({ id: 'broker-1', at: Date.now() }), rev);
 * await store.close();
 */
export async function openLocalStore(dir: string): Promise<Store> {
  const abs = resolve(dir);
  await mkdir(abs, { recursive: true });
  const release = await acquireLock(abs);
  try {
    const kv = await KvFile.open(join(abs, 'kv.log'));
    const opened: { close(): Promise<void> }[] = [kv];
    try {
      const events = await EventFile.open(join(abs, 'events.log'));
      opened.push(events);
      const journal = await JournalFile.open(join(abs, 'journal.log'));
      const origin = `${abs}#${(await stat(join(abs, 'events.log'))).ino}`;
      return new LocalStore(kv, events, journal, release, origin);
    } catch (err) {
      await Promise.all(opened.map((f) => f.close()));
      throw err;
    }
  } catch (err) {
    await release();
    throw err;
  }
}

class LocalStore implements Store {
  readonly kind = 'local';
  #closed = false;
  /** Ids of events appended by {@link appendMany} (see Store.appendMany), the latest 100,000. */
  readonly #appended = new LRUCache<string, true>({ max: 100_000 });

  constructor(
    private readonly kv: KvFile,
    private readonly events: EventFile,
    private readonly journalFile: JournalFile,
    private readonly release: () => Promise<void>,
    private readonly origin: string,
  ) {}

  async logOrigin(): Promise<string> {
    return this.origin;
  }

  readonly journal: Journal = {
    append: async (entries) => {
      this.#assertOpen();
      return this.journalFile.append(entries);
    },
    read: (fromSeq) => this.#readJournal(fromSeq),
    trim: async (throughSeq) => {
      this.#assertOpen();
      await this.journalFile.trim(throughSeq);
    },
  };

  async *#readJournal(fromSeq?: number): AsyncGenerator<LogEvent> {
    this.#assertOpen();
    yield* this.journalFile.read(fromSeq);
  }

  async get(key: string): Promise<KvEntry | undefined> {
    this.#assertOpen();
    validateKey(key);
    const live = this.kv.live.get(key);
    return live === undefined ? undefined : { key, value: live.value, revision: live.revision };
  }

  async put(key: string, value: Uint8Array): Promise<number> {
    this.#assertOpen();
    validateKey(key);
    const { revisions, durable } = this.kv.put([{ key, value }]);
    await durable;
    return revisions[0]!;
  }

  async putMany(entries: readonly { key: string; value: Uint8Array }[]): Promise<void> {
    this.#assertOpen();
    // Validate all before writing any, so a bad key leaves the store untouched.
    for (const e of entries) validateKey(e.key);
    if (entries.length === 0) return;
    await this.kv.put(entries).durable;
  }

  async create(key: string, value: Uint8Array): Promise<number> {
    this.#assertOpen();
    validateKey(key);
    const cur = this.kv.live.get(key);
    if (cur !== undefined) {
      throw new StoreConflictError(key, `key ${key} already exists (revision ${cur.revision})`);
    }
    return this.put(key, value);
  }

  async update(key: string, value: Uint8Array, revision: number): Promise<number> {
    this.#assertOpen();
    validateKey(key);
    const cur = this.kv.live.get(key);
    if (cur === undefined || cur.revision !== revision) {
      const now = cur === undefined ? 'does not exist' : `is at revision ${cur.revision}`;
      throw new StoreConflictError(key, `key ${key} ${now}, not ${revision}`);
    }
    return this.put(key, value);
  }

  async delete(key: string): Promise<void> {
    this.#assertOpen();
    validateKey(key);
    await this.kv.delete(key);
  }

  async list(prefix: string): Promise<KvEntry[]> {
    this.#assertOpen();
    validatePrefix(prefix);
    const out: KvEntry[] = [];
    for (const [key, { value, revision }] of this.kv.live) {
      if (keyHasPrefix(key, prefix)) out.push({ key, value, revision });
    }
    return out.sort((a, b) => compareKeys(a.key, b.key));
  }

  async append(data: Uint8Array): Promise<number> {
    this.#assertOpen();
    const { first, durable } = this.events.append([data]);
    await durable;
    return first;
  }

  async appendMany(events: readonly Uint8Array[], ids?: readonly string[]): Promise<void> {
    this.#assertOpen();
    const fresh = ids ? events.filter((_, i) => !this.#appended.has(ids[i]!)) : events;
    if (fresh.length === 0) return;
    await this.events.append(fresh).durable;
    for (const id of ids ?? []) this.#appended.set(id, true);
  }

  async *readLog(fromSeq = 1): AsyncGenerator<LogEvent> {
    this.#assertOpen();
    yield* this.events.read(fromSeq);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await Promise.all([this.kv.close(), this.events.close(), this.journalFile.close()]);
    } finally {
      await this.release();
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreClosedError('local');
  }
}
