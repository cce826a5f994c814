/**
 * `gantry history`: the history as its own process. It follows the broker's and the runtime's logs into
 * the history database — over NATS by a durable JetStream consumer per stream, embedded by reading the
 * state directory's logs as they grow — and serves the query API. Any number may run against one
 * PostgreSQL: one at a time ingests each log (an advisory lock; the others stand by and take over when
 * it stops), and every one answers queries.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { onDemandPrices } from '../../broker/index.ts';
import {
  type FollowEvent,
  followLog,
  followSource,
  historyApi,
  recordBudgets,
  serveHistoryApi,
  SOURCES,
  type Source,
} from '../../history/index.ts';
import { followStream } from '../../history/nats-index.ts';
import { loadPlatform } from '../../policies/index.ts';
import { openLogReader } from '../../protocol/index.ts';
import type { NatsTransport } from '../../protocol/nats-index.ts';
import { defaultBackends } from '../../solver/index.ts';
import { connectCli } from '../connect.ts';
import { BROKER_STREAM, HISTORY_CONSUMER, LINEAGE_STREAM } from '../credentials.ts';
import { listenProblem, natsProblem } from '../errors.ts';
import { apiFile, openHistoryCli } from './history.ts';
import { number, untilSignal } from './serve.ts';

/** The API's port unless `--port` says otherwise. */
export const HISTORY_PORT = '8470';

/** Each source's JetStream stream. */
export const STREAMS: Record<Source, string> = { broker: BROKER_STREAM, runtime: LINEAGE_STREAM };

interface HistoryServeFlags {
  nats?: string;
  creds?: string;
  postgres?: string;
  state: string;
  port: string;
  host: string;
  durable: string;
  file?: string[];
  poll: string;
}

/** Adds `gantry history`. */
export function registerHistoryServeCommand(program: Command): void {
  program
    .command('history')
    .description(
      'Follow the broker’s and the runtime’s logs into the history database and serve its query API',
    )
    .option('--nats <url>', 'follow the JetStream streams on this server (else the state directory’s logs)')
    .option('--creds <file>', 'NATS credentials (gantry-history.nk from gantry cluster onboard)')
    .option(
      '--postgres <url>',
      'the history in this PostgreSQL database; default: $GANTRY_POSTGRES, else PGlite',
    )
    .option(
      '--state <dir>',
      'state directory (its logs embedded; PGlite in <state>/history)',
      '.gantry/state',
    )
    .option('--port <n>', 'port of the query API (0: any free one)', HISTORY_PORT)
    .option('--host <addr>', 'address the query API listens on', '127.0.0.1')
    .option('--durable <name>', 'name of the durable JetStream consumer on each stream', HISTORY_CONSUMER)
    .option('-f, --file <path...>', 'the platform YAML: on-demand prices for cost reports')
    .option('--poll <ms>', 'how often the state directory’s logs are read (embedded)', '500')
    .action(runHistory);
}

async function runHistory(flags: HistoryServeFlags): Promise<void> {
  const port = number('--port', flags.port, 0);
  const pollMs = number('--poll', flags.poll, 10);
  const platform = flags.file ? loadPlatform(flags.file).platform : undefined;
  const target = flags.nats ? { nats: flags.nats, creds: flags.creds } : undefined;
  // NATS first: a server that is down is the one line to print, before any database is opened.
  const nats: NatsTransport | undefined = target ? await connectCli(target, 'gantry-history') : undefined;
  const postgres = flags.postgres ?? process.env.GANTRY_POSTGRES;
  const history = await openHistoryCli(flags, () => nats?.close());
  if (platform) await recordBudgets(history.db, platform, Date.now());
  const app = historyApi({
    db: history.db,
    ...(platform ? { platform, onDemand: onDemandPrices(platform), backends: await defaultBackends() } : {}),
  });
  let server: Awaited<ReturnType<typeof serveHistoryApi>>;
  try {
    server = await serveHistoryApi(app, port, flags.host);
  } catch (err) {
    await history.close();
    await nats?.close();
    throw listenProblem(err, '--port', flags.host, port) ?? err;
  }
  const announce = postgres ? undefined : apiFile(flags.state);
  if (announce) {
    mkdirSync(join(flags.state, 'history'), { recursive: true });
    writeFileSync(announce, JSON.stringify({ url: server.url, pid: process.pid }));
  }
  const abort = new AbortController();
  const progress = progressLine();
  // The same failure again (every retry) is not printed again.
  const lastError = new Map<Source, string>();
  const tell = (e: FollowEvent) => {
    if (e.kind !== 'error') lastError.delete(e.source);
    if (e.kind === 'batch') return progress.add(e.source, e.result.records, e.result.offset);
    if (e.kind === 'leading') return say(`${e.source} log: ingesting (${where(e.source)})`);
    if (e.kind === 'standby')
      return say(`${e.source} log: another gantry history ingests it; standing by to take over`);
    const err = e.error;
    const line =
      (target && natsProblem(err, target)?.message) ?? (err instanceof Error ? err.message : String(err));
    if (lastError.get(e.source) === line) return;
    lastError.set(e.source, line);
    say(`${e.source} log: ${line} (trying again)`);
  };
  const where = (source: Source) =>
    nats ? `stream ${STREAMS[source]}, consumer ${flags.durable}` : join(flags.state, source, 'events.log');
  const followers = SOURCES.map((source) =>
    followSource(
      history.db,
      source,
      (signal) =>
        nats
          ? followStream(history.ingester, source, nats.connection, STREAMS[source], signal, {
              durable: flags.durable,
              onBatch: (result) => tell({ kind: 'batch', source, result }),
              onSkipped: (from, to) =>
                say(`${source} log: entries ${from}–${to} left the stream before they were ingested`),
            })
          : followLog(history.ingester, source, openLogReader(join(flags.state, source)), signal, {
              pollMs,
              onBatch: (result) => tell({ kind: 'batch', source, result }),
            }),
      { signal: abort.signal, tell },
    ),
  );
  process.stdout.write(
    `History in ${history.db.kind === 'pglite' ? `PGlite at ${history.db.where}` : `PostgreSQL at ${history.db.where}`}, ` +
      `following ${nats ? `JetStream at ${flags.nats} (streams ${STREAMS.broker} and ${STREAMS.runtime})` : `the logs in ${flags.state}`}; ` +
      `query API on ${server.url} (GET /v1/runs, /v1/cost, /v1/lineage …). Ctrl-C stops it.\n`,
  );
  await untilSignal(async () => {
    abort.abort();
    await Promise.all(followers);
    progress.stop();
    await server.close();
    if (announce) rmSync(announce, { force: true });
    await history.close();
    await nats?.close();
  });
}

const say = (line: string) => process.stderr.write(`gantry history: ${line}\n`);

/** Every few seconds, one line of what was ingested since the last. */
function progressLine(everyMs = 5000) {
  const since: Record<string, number> = {};
  const at: Record<string, number> = {};
  const flush = () => {
    const parts = Object.keys(since)
      .filter((s) => since[s]! > 0)
      .map((s) => `${s} +${since[s]} records (at entry ${at[s]})`);
    if (parts.length > 0) say(`ingested ${parts.join(', ')}`);
    for (const s of Object.keys(since)) since[s] = 0;
  };
  const timer = setInterval(flush, everyMs);
  timer.unref();
  return {
    add(source: string, records: number, offset: number) {
      since[source] = (since[source] ?? 0) + records;
      at[source] = offset;
    },
    stop() {
      clearInterval(timer);
      flush();
    },
  };
}
