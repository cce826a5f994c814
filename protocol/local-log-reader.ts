/**
 * Reading a local store's event log from another process, without its lock: what the history follows
 * while `gantry up` or `gantry run` owns the state directory. Only whole lines that parse and continue
 * the sequence are read, so an append in progress (or a torn last line the owner will drop) is never
 * seen; the next read picks up from the last line read.
 */
import { open, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fromBase64 } from './local-files.ts';
import type { LogEvent } from './store.ts';

/** The log half of a `Store`, read only. */
export interface LogReader {
  /** As `Store.logOrigin`: the same value the owning store gives. */
  logOrigin(): Promise<string>;
  /** Events from `fromSeq` to the last whole one on disk now. */
  readLog(fromSeq?: number): AsyncIterable<LogEvent>;
}

const CHUNK = 1 << 20;

/**
 * A reader of `<dir>/events.log` (missing is empty). It keeps where it stopped, so following a log reads
 * each byte once.
 *
 * @example
 * const log = openLogReader('.gantry/state/broker');
 * for await (const e of log.readLog(1)) console.log(e.seq);
 */
export function openLogReader(dir: string): LogReader {
  const abs = resolve(dir);
  const path = join(abs, 'events.log');
  /** The end of the last line read: its sequence and byte offset, in the file of inode `ino`. */
  let at = { ino: -1, seq: 0, byte: 0 };
  return {
    async logOrigin() {
      const s = await stat(path).catch(() => undefined);
      return `${abs}#${s?.ino ?? 0}`;
    },
    async *readLog(fromSeq = 1) {
      const from = Math.max(1, Math.floor(fromSeq));
      let fh;
      try {
        fh = await open(path, 'r');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
      try {
        const { ino, size } = await fh.stat();
        // Start where the last read stopped when it is at or before `from`, else from the top.
        if (at.ino !== ino || at.seq >= from || at.byte > size) at = { ino, seq: 0, byte: 0 };
        let pos = at.byte;
        let carry = Buffer.alloc(0);
        const buf = Buffer.allocUnsafe(CHUNK);
        while (pos < size) {
          const { bytesRead } = await fh.read(buf, 0, Math.min(CHUNK, size - pos), pos);
          if (bytesRead === 0) break;
          pos += bytesRead;
          const data = carry.length > 0 ? Buffer.concat([carry, buf.subarray(0, bytesRead)]) : buf;
          const end = carry.length > 0 ? data.length : bytesRead;
          let start = 0;
          for (let nl = data.indexOf(0x0a, 0); nl !== -1 && nl < end; nl = data.indexOf(0x0a, start)) {
            const ev = parseLine(data.toString('utf8', start, nl));
            if (!ev || ev.s !== at.seq + 1) return;
            at = { ino, seq: ev.s, byte: at.byte + (nl + 1 - start) };
            start = nl + 1;
            if (ev.s >= from) yield { seq: ev.s, data: fromBase64(ev.d) };
          }
          carry = Buffer.from(data.subarray(start, end));
        }
      } finally {
        await fh.close();
      }
    },
  };
}

function parseLine(line: string): { s: number; d: string } | undefined {
  try {
    const ev = JSON.parse(line) as { s?: unknown; d?: unknown };
    return typeof ev.s === 'number' && typeof ev.d === 'string' ? { s: ev.s, d: ev.d } : undefined;
  } catch {
    return undefined;
  }
}
