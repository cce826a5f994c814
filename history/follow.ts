/**
 * Feeding the history from the logs: a catch-up read of a store's log past the source's offset (the
 * embedded state directory, or a stream read once), and serving the API on a port.
 */
import { serve } from '@hono/node-server';
import type { Hono } from 'hono';
import type { Store } from '../protocol/index.ts';
import type { IngestResult, Ingester, LogEntry } from './ingest.ts';
import type { Source } from './records.ts';

/** Entries per transaction. */
export const BATCH = 500;

/**
 * Applies what `store`'s log holds past the source's offset, `batch` entries per transaction; returns
 * how many entries were applied.
 *
 * @example
 * await catchUp(history.ingester, 'broker', await openLocalStore('.gantry/state/broker'));
 */
export async function catchUp(
  ingester: Ingester,
  source: Source,
  store: Store,
  opts: { batch?: number; onBatch?: (r: IngestResult) => void } = {},
): Promise<number> {
  const origin = await store.logOrigin();
  const from = (await ingester.offset(source, origin)) + 1;
  let pending: LogEntry[] = [];
  let applied = 0;
  const flush = async () => {
    if (pending.length === 0) return;
    const r = await ingester.apply(source, pending, origin);
    applied += r.entries;
    opts.onBatch?.(r);
    pending = [];
  };
  for await (const e of store.readLog(from)) {
    pending.push(e);
    if (pending.length >= (opts.batch ?? BATCH)) await flush();
  }
  await flush();
  return applied;
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
