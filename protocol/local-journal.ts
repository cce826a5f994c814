/**
 * The local store's journal: `journal.log`, one JSON line per entry, `{"s":<seq>,"d":"<base64>"}`, and
 * after a trim a first line `{"t":<seq>}` (trimmed through that sequence, so numbering continues). The
 * entries not trimmed are few (the broker trims after each compaction), so they are also kept in memory
 * and read from there; a trim rewrites the file with what remains.
 */
import { open, truncate, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { StoreCorruptError } from './errors.ts';
import { fromBase64, GroupCommit, readLinesFile, replaceFile, syncDir, toBase64 } from './local-files.ts';
import type { Journal, LogEvent } from './store.ts';

type Line = { t: number } | { s: number; d: string };

/** The journal file: appends group-committed, trims applied between two of them. */
export class JournalFile implements Journal {
  /** Entries after the trim point, in order: durable ones, then those being written. */
  #entries: LogEvent[] = [];
  /** Trimmed through this sequence (0: never). */
  #trimmed = 0;
  /** Asked to trim through this sequence by the next write. */
  #trimTo = 0;
  #lastSeq = 0;
  #durableSeq = 0;
  #fh!: FileHandle;
  readonly #commit = new GroupCommit((chunks) => this.#flush(chunks));

  private constructor(readonly path: string) {}

  /** Opens (creating) the file; a torn last line is dropped. */
  static async open(path: string): Promise<JournalFile> {
    const j = new JournalFile(path);
    const { buf, ...parsed } = await readLinesFile(path, parseLine);
    parsed.records.forEach((rec, i) => {
      if ('t' in rec) {
        if (i !== 0) throw new StoreCorruptError(path, i + 1, 'a trim mark after the first line');
        j.#trimmed = j.#lastSeq = rec.t;
        return;
      }
      if (rec.s !== j.#lastSeq + 1)
        throw new StoreCorruptError(path, i + 1, `entry ${rec.s} follows ${j.#lastSeq}: not contiguous`);
      j.#lastSeq = rec.s;
      j.#entries.push({ seq: rec.s, data: fromBase64(rec.d) });
    });
    j.#durableSeq = j.#lastSeq;
    j.#trimTo = j.#trimmed;
    if (parsed.validBytes < buf.length) await truncate(path, parsed.validBytes);
    j.#fh = await open(path, 'a');
    if (buf.length === 0) await syncDir(dirname(path));
    return j;
  }

  async append(entries: readonly Uint8Array[]): Promise<number> {
    if (entries.length === 0) return 0;
    let chunk = '';
    for (const data of entries) {
      const seq = ++this.#lastSeq;
      // Copy: the caller may reuse its buffer after the call.
      this.#entries.push({ seq, data: data.slice() });
      chunk += `{"s":${seq},"d":"${toBase64(data)}"}\n`;
    }
    const last = this.#lastSeq;
    await this.#commit.add(chunk);
    return last;
  }

  async *read(fromSeq = 1): AsyncGenerator<LogEvent> {
    const end = this.#durableSeq;
    // Copied: a trim while the reader is suspended replaces the array.
    for (const e of [...this.#entries]) if (e.seq >= fromSeq && e.seq <= end) yield e;
  }

  async trim(throughSeq: number): Promise<void> {
    const through = Math.min(Math.floor(throughSeq), this.#lastSeq);
    if (through <= this.#trimTo) return;
    this.#trimTo = through;
    // The rewrite runs in the write queue, between two appends' writes.
    await this.#commit.add('');
  }

  /** Waits for queued writes, then closes the file. */
  async close(): Promise<void> {
    await this.#commit.idle();
    await this.#fh.close();
  }

  async #flush(chunks: string[]): Promise<void> {
    const chunk = chunks.join('');
    const added = countLines(chunk);
    const upTo = this.#durableSeq + added;
    const through = Math.min(this.#trimTo, upTo);
    if (through > this.#trimmed) await this.#rewrite(through, upTo);
    else if (chunk !== '') {
      await this.#fh.write(chunk);
      await this.#fh.datasync();
    }
    this.#durableSeq += added;
  }

  /**
   * Writes the trim mark and the entries after it up to `upTo` (those on disk and those of this write) to
   * a new file, renamed over this one.
   */
  async #rewrite(through: number, upTo: number): Promise<void> {
    const lines = [`{"t":${through}}\n`];
    for (const e of this.#entries)
      if (e.seq > through && e.seq <= upTo) lines.push(`{"s":${e.seq},"d":"${toBase64(e.data)}"}\n`);
    await replaceFile(this.path, lines.join(''));
    await this.#fh.close();
    this.#fh = await open(this.path, 'a');
    this.#trimmed = through;
    this.#entries = this.#entries.filter((e) => e.seq > through);
  }
}

function parseLine(json: unknown): Line | undefined {
  if (typeof json !== 'object' || json === null) return undefined;
  const rec = json as Record<string, unknown>;
  if (typeof rec.t === 'number' && Number.isInteger(rec.t) && rec.t >= 0) return { t: rec.t };
  if (typeof rec.s === 'number' && Number.isInteger(rec.s) && typeof rec.d === 'string')
    return { s: rec.s, d: rec.d };
  return undefined;
}

function countLines(chunk: string): number {
  let n = 0;
  for (let i = chunk.indexOf('\n'); i !== -1; i = chunk.indexOf('\n', i + 1)) n++;
  return n;
}
