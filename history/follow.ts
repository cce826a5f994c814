/**
 * Feeding the history from the logs: a catch-up read of a log past the source's offset (the embedded
 * state directory, or a stream read once), following a log as it grows, one process at a time per
 * source (a PostgreSQL advisory lock; the others stand by and take over when it goes), and serving the
 * API on a port.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { serve } from '@hono/node-server';
import type { Hono } from 'hono';
import type { Store } from '../protocol/index.ts';
import type { Db } from './db.ts';
import type { IngestResult, Ingester, LogEntry } from './ingest.ts';
import { SOURCES, type Source } from './records.ts';

/** Entries per transaction. */
export const BATCH = 500;

/**
 * Applies what `store`'s log holds past the source's offset, `batch` entries per transaction, reading
 * and decoding each batch while the one before is written; returns how many entries were applied.
 *
 * @example
 * await catchUp(history.ingester, 'broker', await openLocalStore('.gantry/state/broker'));
 */
export async function catchUp(
  ingester: Ingester,
  source: Source,
  store: Pick<Store, 'logOrigin' | 'readLog'>,
  opts: { batch?: number; onBatch?: (r: IngestResult) => void; gapless?: boolean } = {},
): Promise<number> {
  const origin = await store.logOrigin();
  const from = (await ingester.offset(source, origin)) + 1;
  let pending: LogEntry[] = [];
  let applied = 0;
  // One batch written while the next is read and decoded.
  let writing: Promise<void> | undefined;
  const flush = async () => {
    if (pending.length === 0) return;
    const next = ingester
      .apply(source, pending, origin, opts.gapless ? { gapless: { logStart: 1 } } : {})
      .then((r) => {
        applied += r.entries;
        opts.onBatch?.(r);
      });
    // Awaited below or in the next flush; a failure of the one before fails it too.
    next.catch(() => undefined);
    pending = [];
    await writing;
    writing = next;
  };
  for await (const e of store.readLog(from)) {
    pending.push(e);
    if (pending.length >= (opts.batch ?? BATCH)) await flush();
  }
  await flush();
  await writing;
  return applied;
}

/** What a follower tells as it goes. */
export type FollowEvent =
  | { kind: 'leading'; source: Source }
  | { kind: 'standby'; source: Source }
  | { kind: 'batch'; source: Source; result: IngestResult }
  | { kind: 'error'; source: Source; error: unknown };

/** Options of {@link followSource}. */
export interface FollowSourceOptions {
  signal: AbortSignal;
  /** Between attempts to take the lock, and after a failure; default 2000 ms. */
  retryMs?: number;
  tell?: (e: FollowEvent) => void;
}

/** An arbitrary constant: the advisory lock of the first source; the next ones follow it. */
const INGEST_LOCK = 7_315_100;

/**
 * Runs `follow` for `source` while this process holds the source's ingest lock, until `signal` aborts:
 * when another process holds the lock this one stands by and retries, and when `follow` fails (NATS
 * or the database away) it lets the lock go and starts again.
 *
 * @example
 * await followSource(history.db, 'broker', (signal) => followLog(history.ingester, 'broker', log, signal), { signal });
 */
export async function followSource(
  db: Db,
  source: Source,
  follow: (signal: AbortSignal) => Promise<void>,
  opts: FollowSourceOptions,
): Promise<void> {
  const { signal } = opts;
  const retry = () => sleep(opts.retryMs ?? 2000, undefined, { signal }).catch(() => undefined);
  let standing = false;
  while (!signal.aborted) {
    const lock = await db.tryLock(INGEST_LOCK + SOURCES.indexOf(source)).catch((error: unknown) => {
      opts.tell?.({ kind: 'error', source, error });
      return null;
    });
    if (!lock) {
      if (lock === undefined && !standing) opts.tell?.({ kind: 'standby', source });
      standing = lock === undefined;
      await retry();
      continue;
    }
    standing = false;
    opts.tell?.({ kind: 'leading', source });
    const inner = new AbortController();
    const stop = () => inner.abort();
    signal.addEventListener('abort', stop, { once: true });
    void lock.lost.then(stop);
    try {
      await follow(inner.signal);
    } catch (error) {
      if (!signal.aborted) opts.tell?.({ kind: 'error', source, error });
    } finally {
      signal.removeEventListener('abort', stop);
      await lock.release().catch(() => undefined);
    }
    if (!signal.aborted) await retry();
  }
}

/**
 * Applies a log's new entries every `pollMs` (default 500) until `signal` aborts: a local state
 * directory's log, read without its lock while its owner writes.
 */
export async function followLog(
  ingester: Ingester,
  source: Source,
  log: Pick<Store, 'logOrigin' | 'readLog'>,
  signal: AbortSignal,
  opts: { pollMs?: number; onBatch?: (r: IngestResult) => void } = {},
): Promise<void> {
  while (!signal.aborted) {
    await catchUp(ingester, source, log, {
      gapless: true,
      ...(opts.onBatch ? { onBatch: opts.onBatch } : {}),
    });
    await sleep(opts.pollMs ?? 500, undefined, { signal }).catch(() => undefined);
  }
}

/** Serves the API app on `host:port` (0 picks a free port); resolves with its URL and a stop. */
export function serveHistoryApi(
  app: Hono,
  port: number,
  host = '127.0.0.1',
): Promise<{ url: string; close(): Promise<void> }> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, port, hostname: host }, (info) =>
      resolve({
        url: `http://${host}:${info.port}`,
        close: () => new Promise<void>((r) => server.close(() => r())),
      }),
    );
    server.once('error', reject);
  });
}
