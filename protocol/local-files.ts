/**
 * File plumbing of the local store: the directory lock, group commit (one write and one fsync for
 * everything queued meanwhile), and the line codec shared by the KV and event files.
 */
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { StoreCorruptError, StoreLockedError } from './errors.ts';

/**
 * Takes `<dir>/LOCK` (holding our pid) or throws `StoreLockedError` naming the live holder. A lock
 * whose pid is dead, or that is empty (a crash while locking), is stale and taken over.
 * Returns the function that releases it.
 */
export async function acquireLock(dir: string): Promise<() => Promise<void>> {
  const path = join(dir, 'LOCK');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(path, 'wx');
      try {
        await fh.writeFile(`${process.pid}\n`);
        await fh.sync();
      } finally {
        await fh.close();
      }
      return () => unlink(path).catch(() => undefined);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = Number.parseInt((await readFile(path, 'utf8').catch(() => '')).trim(), 10);
    if (Number.isInteger(holder) && holder > 0 && isAlive(holder)) throw new StoreLockedError(dir, holder);
    await unlink(path).catch(() => undefined);
  }
  throw new StoreLockedError(dir, -1);
}

function isAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Opens a directory and fsyncs it, so that a created or renamed file survives a power cut. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Serializes writes and batches them: `add` queues a chunk and resolves once `flush` has made it
 * durable. While one flush runs, new chunks queue up and go out together in the next one, so N
 * concurrent single puts cost far fewer than N fsyncs. After a failed flush every later `add`
 * rejects with the same error: memory and disk may disagree, and the store must be reopened.
 */
export class GroupCommit {
  #queue: { chunk: string; resolve: () => void; reject: (err: unknown) => void }[] = [];
  #running: Promise<void> | undefined;
  #failed: unknown;

  constructor(private readonly flush: (chunks: string[]) => Promise<void>) {}

  add(chunk: string): Promise<void> {
    if (this.#failed !== undefined) return Promise.reject(this.#failed);
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ chunk, resolve, reject });
      this.#running ??= this.#loop();
    });
  }

  /** Resolves when everything queued so far is written (or has failed). */
  async idle(): Promise<void> {
    while (this.#running !== undefined) await this.#running;
  }

  async #loop(): Promise<void> {
    // Let the caller's synchronous burst (e.g. a loop of `put` without await) join the first batch.
    await Promise.resolve();
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue;
        this.#queue = [];
        try {
          if (this.#failed !== undefined) throw this.#failed;
          await this.flush(batch.map((b) => b.chunk));
        } catch (err) {
          this.#failed ??= err;
          for (const b of batch) b.reject(err);
          continue;
        }
        for (const b of batch) b.resolve();
      }
    } finally {
      this.#running = undefined;
    }
  }
}

/** A parsed file: its records, and how many leading bytes hold them (the rest is a torn tail). */
export interface ParsedLines<T> {
  records: T[];
  /** Byte length of the valid prefix; smaller than the file when the last line was torn. */
  validBytes: number;
}

/**
 * Splits newline-terminated JSON records. The last line may be torn by a crash (no newline, or not
 * JSON): it is left out and `validBytes` stops before it. A bad line anywhere else is corruption and
 * `onBad(lineNumber, reason)` must throw.
 */
export function parseLines<T>(
  buf: Buffer,
  parse: (json: unknown) => T | undefined,
  onBad: (line: number, reason: string) => never,
): ParsedLines<T> {
  const records: T[] = [];
  let start = 0;
  let line = 0;
  while (start < buf.length) {
    const nl = buf.indexOf(0x0a, start);
    line++;
    if (nl === -1) break; // torn: no newline
    const text = buf.toString('utf8', start, nl);
    let record: T | undefined;
    try {
      record = parse(JSON.parse(text));
    } catch {
      record = undefined;
    }
    if (record === undefined) {
      if (nl + 1 >= buf.length) break; // torn: the last line, written only in part
      onBad(line, `not a valid record: ${text.slice(0, 80)}`);
    }
    records.push(record);
    start = nl + 1;
  }
  return { records, validBytes: start };
}

/**
 * Reads and parses a file of JSON lines (a missing file is empty); a bad line before the last throws
 * `StoreCorruptError`. Returns the bytes read with the parse.
 */
export async function readLinesFile<T>(
  path: string,
  parse: (json: unknown) => T | undefined,
): Promise<ParsedLines<T> & { buf: Buffer }> {
  const buf = await readFile(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return Buffer.alloc(0);
    throw err;
  });
  const parsed = parseLines(buf, parse, (line, reason) => {
    throw new StoreCorruptError(path, line, reason);
  });
  return { ...parsed, buf };
}

/** Writes `text` to `<path>.tmp`, fsyncs it and renames it over `path` (durable once it resolves). */
export async function replaceFile(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w');
  try {
    await fh.write(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await syncDir(dirname(path));
}

/** Base64 of bytes, for JSON lines. */
export function toBase64(data: Uint8Array): string {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64');
}

/** Bytes of base64, as a plain `Uint8Array` view. */
export function fromBase64(text: string): Uint8Array {
  const buf = Buffer.from(text, 'base64');
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}
