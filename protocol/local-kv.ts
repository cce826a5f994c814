/**
 * The local store's key-value half: the live map in memory, made durable by an append-only file of
 * JSON lines (`kv.log`) that is replayed on open and rewritten (compacted) once it holds four times
 * more records than live keys.
 *
 * Records: `{"r":7,"k":"lease.a","v":"<base64>"}` (put), `{"r":8,"k":"lease.a","d":1}` (delete), and
 * `{"r":8}` (the revision reached, first line of a compacted file, so that revisions never go back).
 */
import { open, truncate, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fromBase64, GroupCommit, readLinesFile, replaceFile, syncDir, toBase64 } from './local-files.ts';

/** A live value and the revision that wrote it. */
export interface LiveValue {
  value: Uint8Array;
  revision: number;
}

type KvRecord = { r: number; k?: string; v?: string; d?: 1 };

/** Compact when the file holds this many times more records than live keys... */
const COMPACT_RATIO = 4;
/** ...and at least this many records (small files are not worth rewriting). */
const COMPACT_MIN_RECORDS = 1024;

/**
 * The durable map. Mutations apply to memory at once (so compare-and-set is decided in call order)
 * and resolve when their record is on disk.
 */
export class KvFile {
  readonly live = new Map<string, LiveValue>();
  #revision = 0;
  #records = 0;
  #fh!: FileHandle;
  readonly #commit = new GroupCommit((chunks) => this.#flush(chunks));

  private constructor(readonly path: string) {}

  /** Replays `path` (creating it if missing); a torn last line is dropped and truncated away. */
  static async open(path: string): Promise<KvFile> {
    const kv = new KvFile(path);
    const { buf, ...parsed } = await readLinesFile(path, parseRecord);
    for (const rec of parsed.records) kv.#apply(rec);
    kv.#records = parsed.records.length;
    if (parsed.validBytes < buf.length) await truncate(path, parsed.validBytes);
    kv.#fh = await open(path, 'a');
    if (buf.length === 0) await syncDir(dirname(path));
    return kv;
  }

  /** The last revision written. */
  get revision(): number {
    return this.#revision;
  }

  /** Sets keys (in order) and resolves when they are durable. */
  put(entries: readonly { key: string; value: Uint8Array }[]): {
    revisions: number[];
    durable: Promise<void>;
  } {
    const revisions: number[] = [];
    let chunk = '';
    for (const { key, value } of entries) {
      const revision = ++this.#revision;
      // Copy: the caller may reuse its buffer after the call.
      this.live.set(key, { value: value.slice(), revision });
      chunk += `{"r":${revision},"k":${JSON.stringify(key)},"v":"${toBase64(value)}"}\n`;
      revisions.push(revision);
    }
    return { revisions, durable: this.#commit.add(chunk) };
  }

  /** Deletes a live key; a missing key is a no-op. */
  delete(key: string): Promise<void> {
    if (!this.live.delete(key)) return Promise.resolve();
    const revision = ++this.#revision;
    return this.#commit.add(`{"r":${revision},"k":${JSON.stringify(key)},"d":1}\n`);
  }

  /** Waits for queued writes, then closes the file. */
  async close(): Promise<void> {
    await this.#commit.idle();
    await this.#fh.close();
  }

  #apply(rec: KvRecord): void {
    this.#revision = Math.max(this.#revision, rec.r);
    if (rec.k === undefined) return;
    if (rec.d === 1) this.live.delete(rec.k);
    else this.live.set(rec.k, { value: fromBase64(rec.v!), revision: rec.r });
  }

  async #flush(chunks: string[]): Promise<void> {
    let count = 0;
    for (const c of chunks) for (let i = c.indexOf('\n'); i !== -1; i = c.indexOf('\n', i + 1)) count++;
    const total = this.#records + count;
    if (total >= COMPACT_MIN_RECORDS && total > COMPACT_RATIO * (this.live.size + 1)) {
      // Memory already holds every queued change, so a snapshot of it makes these chunks durable too.
      await this.#compact();
      return;
    }
    await this.#fh.write(chunks.join(''));
    await this.#fh.datasync();
    this.#records = total;
  }

  /** Writes the live map to `kv.log.tmp`, fsyncs, and renames it over `kv.log` (replaceFile). */
  async #compact(): Promise<void> {
    // Built synchronously, before any await, so it is exactly the state the queued chunks produced.
    const lines = [`{"r":${this.#revision}}\n`];
    for (const [key, { value, revision }] of this.live) {
      lines.push(`{"r":${revision},"k":${JSON.stringify(key)},"v":"${toBase64(value)}"}\n`);
    }
    await replaceFile(this.path, lines.join(''));
    await this.#fh.close();
    this.#fh = await open(this.path, 'a');
    this.#records = lines.length;
  }
}

function parseRecord(json: unknown): KvRecord | undefined {
  if (typeof json !== 'object' || json === null) return undefined;
  const rec = json as Record<string, unknown>;
  if (typeof rec.r !== 'number' || !Number.isInteger(rec.r) || rec.r < 0) return undefined;
  if (rec.k === undefined) return { r: rec.r };
  if (typeof rec.k !== 'string') return undefined;
  if (rec.d === 1) return { r: rec.r, k: rec.k, d: 1 };
  if (typeof rec.v !== 'string') return undefined;
  return { r: rec.r, k: rec.k, v: rec.v };
}
