/**
 * The local store's event log: `events.log`, one JSON line per event, `{"s":<seq>,"d":"<base64>"}`,
 * sequence numbers contiguous from 1. Opening scans the file once (newlines only, no JSON) to find the
 * last sequence and to build a sparse index of line offsets, so `read(fromSeq)` starts near its
 * first event instead of at the top of the file.
 */
import { createReadStream } from 'node:fs';
import { open, truncate, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { StoreCorruptError } from './errors.ts';
import { fromBase64, GroupCommit, syncDir, toBase64 } from './local-files.ts';
import type { LogEvent } from './store.ts';

/** One index entry every this many events. */
const INDEX_EVERY = 1024;
const SCAN_CHUNK = 1 << 20;

/** The append-only event file. */
export class EventFile {
  /** `offsets[i]` is the byte offset of event `i * INDEX_EVERY + 1`. */
  readonly #offsets: number[] = [];
  /** Last sequence assigned (durable or queued). */
  #lastSeq = 0;
  /** Bytes assigned (durable or queued). */
  #bytes = 0;
  /** Last sequence and byte length known to be on disk. */
  #durableSeq = 0;
  #durableBytes = 0;
  #fh!: FileHandle;
  readonly #commit = new GroupCommit((chunks) => this.#flush(chunks));

  private constructor(readonly path: string) {}

  /** Opens (creating) the file, drops a torn last line, and indexes it. */
  static async open(path: string): Promise<EventFile> {
    const log = new EventFile(path);
    const fh = await open(path, 'a+');
    log.#fh = fh;
    const size = (await fh.stat()).size;
    if (size === 0) await syncDir(dirname(path));
    let lines = 0;
    let lineStart = 0;
    const buf = Buffer.allocUnsafe(SCAN_CHUNK);
    for (let pos = 0; pos < size;) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(SCAN_CHUNK, size - pos), pos);
      for (let i = buf.indexOf(0x0a, 0); i !== -1 && i < bytesRead; i = buf.indexOf(0x0a, i + 1)) {
        if (lines % INDEX_EVERY === 0) log.#offsets.push(lineStart);
        lines++;
        lineStart = pos + i + 1;
      }
      pos += bytesRead;
    }
    let valid = lineStart;
    // The last newline-terminated line may still be torn (written in part): check it parses.
    if (lines > 0) {
      const lastStart = await log.#lineStartBefore(lineStart);
      const seq = await log.#seqAt(lastStart, lineStart);
      if (seq === undefined) {
        valid = lastStart;
        lines--;
        if (lines % INDEX_EVERY === 0) log.#offsets.pop();
      } else if (seq !== lines) {
        throw new StoreCorruptError(
          path,
          lines,
          `event ${seq} is on line ${lines}: sequence numbers must be contiguous`,
        );
      }
    }
    if (valid < size) await truncate(path, valid);
    log.#lastSeq = log.#durableSeq = lines;
    log.#bytes = log.#durableBytes = valid;
    return log;
  }

  /** The last durable sequence number (0 when empty). */
  get lastSeq(): number {
    return this.#durableSeq;
  }

  /** Appends events; returns the first sequence and a promise that resolves when they are durable. */
  append(events: readonly Uint8Array[]): { first: number; durable: Promise<void> } {
    const first = this.#lastSeq + 1;
    let chunk = '';
    for (const data of events) {
      const seq = ++this.#lastSeq;
      const line = `{"s":${seq},"d":"${toBase64(data)}"}\n`;
      if ((seq - 1) % INDEX_EVERY === 0) this.#offsets.push(this.#bytes + Buffer.byteLength(chunk));
      chunk += line;
    }
    this.#bytes += Buffer.byteLength(chunk);
    return { first, durable: this.#commit.add(chunk) };
  }

  /** Durable events from `fromSeq` to the last one durable now. */
  async *read(fromSeq: number): AsyncGenerator<LogEvent> {
    const endSeq = this.#durableSeq;
    const endBytes = this.#durableBytes;
    const from = Math.max(1, Math.floor(fromSeq));
    if (from > endSeq) return;
    const start = this.#offsets[Math.floor((from - 1) / INDEX_EVERY)] ?? 0;
    const input = createReadStream(this.path, { start, end: endBytes - 1 });
    const lines = createInterface({ input, crlfDelay: Infinity });
    try {
      for await (const line of lines) {
        const ev = JSON.parse(line) as { s: number; d: string };
        if (ev.s < from) continue;
        yield { seq: ev.s, data: fromBase64(ev.d) };
        if (ev.s >= endSeq) break;
      }
    } finally {
      lines.close();
      input.destroy();
    }
  }

  /** Waits for queued appends, then closes the file. */
  async close(): Promise<void> {
    await this.#commit.idle();
    await this.#fh.close();
  }

  async #flush(chunks: string[]): Promise<void> {
    const chunk = chunks.join('');
    await this.#fh.write(chunk);
    await this.#fh.datasync();
    this.#durableBytes += Buffer.byteLength(chunk);
    this.#durableSeq = this.#durableSeq + countLines(chunk);
  }

  /** Offset of the line that ends just before `end` (which is a line start). */
  async #lineStartBefore(end: number): Promise<number> {
    const step = 64 * 1024;
    for (let hi = end - 1; hi > 0; hi -= step) {
      const lo = Math.max(0, hi - step);
      const buf = Buffer.allocUnsafe(hi - lo);
      await this.#fh.read(buf, 0, hi - lo, lo);
      const nl = buf.lastIndexOf(0x0a);
      if (nl !== -1) return lo + nl + 1;
    }
    return 0;
  }

  /** The sequence number of the line in [start, end), or undefined if it does not parse. */
  async #seqAt(start: number, end: number): Promise<number | undefined> {
    const buf = Buffer.allocUnsafe(end - start);
    await this.#fh.read(buf, 0, end - start, start);
    try {
      const ev = JSON.parse(buf.toString('utf8')) as { s?: unknown; d?: unknown };
      return typeof ev.s === 'number' && typeof ev.d === 'string' ? ev.s : undefined;
    } catch {
      return undefined;
    }
  }
}

function countLines(chunk: string): number {
  let n = 0;
  for (let i = chunk.indexOf('\n'); i !== -1; i = chunk.indexOf('\n', i + 1)) n++;
  return n;
}
