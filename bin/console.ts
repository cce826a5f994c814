/**
 * Serving the console beside a broker in this process (`gantry up`, `gantry broker`, `gantry demo`):
 * the history store opened here and fed from the broker's and the runtime's logs before each answer,
 * the broker's admin verbs over its transport, tokens from the environment. The URL is announced in
 * the state directory, so `gantry report cost` and `gantry lineage` there ask this process.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { type Broker, onDemandPrices } from '../broker/index.ts';
import { askOver, checkTokens, ConsoleError, consoleApp } from '../console/index.ts';
import { serve } from '@hono/node-server';
import type { Server } from 'node:http';
import { catchUp, openHistory, type Source } from '../history/index.ts';
import type { Platform } from '../policies/index.ts';
import type { Store, Transport } from '../protocol/index.ts';
import { defaultBackends } from '../solver/index.ts';
import { apiFile } from './commands/history.ts';
import { listenProblem, OperationalError, UsageError } from './errors.ts';

/** Flags of a command that serves the console. */
export interface ConsoleFlags {
  consolePort?: string;
  consoleHost?: string;
}

/** What a console beside a broker needs. */
export interface ConsoleParts {
  broker: Broker;
  transport: Transport;
  platform: Platform;
  /** The logs the history is fed from. */
  logs: [Source, Store][];
  /** The state directory: the embedded history lives in `<state>/history`, and the URL is announced there. */
  state: string;
  postgres?: string | undefined;
}

/** A console that is serving. */
export interface RunningConsole {
  url: string;
  close(): Promise<void>;
}

/** Adds `--console-port` and `--console-host` to a command. */
export function consoleOptions<T extends { option(flags: string, description: string): T }>(cmd: T): T {
  return cmd
    .option('--console-port <n>', 'serve the web console on this port (0: any free port)')
    .option(
      '--console-host <host>',
      'address the console listens on (default 127.0.0.1; any other needs GANTRY_CONSOLE_TOKEN or GANTRY_CONSOLE_ADMIN_TOKEN)',
    );
}

/**
 * Serves the console when `--console-port` is given; a port in use, or no token beyond loopback, is
 * one line.
 */
export async function startConsole(
  flags: ConsoleFlags,
  parts: ConsoleParts,
): Promise<RunningConsole | undefined> {
  if (flags.consolePort === undefined) return undefined;
  const port = Number(flags.consolePort);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new UsageError(
      `--console-port must be a port number (0 for any free one), not '${flags.consolePort}'`,
    );
  const host = flags.consoleHost ?? '127.0.0.1';
  let tokens;
  try {
    tokens = checkTokens(host, {
      view: process.env.GANTRY_CONSOLE_TOKEN || undefined,
      admin: process.env.GANTRY_CONSOLE_ADMIN_TOKEN || undefined,
    });
  } catch (err) {
    if (err instanceof ConsoleError) throw new OperationalError(err.message);
    throw err;
  }
  const history = await openHistory({
    postgres: parts.postgres,
    dir: join(parts.state, 'history'),
    onCreate: (dir) =>
      process.stderr.write(`creating the history database in ${dir} (once; a few seconds)\n`),
  });
  const app = consoleApp({
    db: history.db,
    catchUp: coalesced(async () => {
      for (const [source, store] of parts.logs) await catchUp(history.ingester, source, store);
    }),
    ask: askOver(parts.transport),
    broker: parts.broker,
    platform: parts.platform,
    onDemand: onDemandPrices(parts.platform),
    backends: await defaultBackends(),
    tokens,
  });
  let served: { url: string; close(): Promise<void> };
  try {
    served = await listen(app.fetch, port, host);
  } catch (err) {
    await history.close();
    throw listenProblem(err, '--console-port', host, port) ?? err;
  }
  const announce = apiFile(parts.state);
  mkdirSync(dirname(announce), { recursive: true });
  writeFileSync(announce, JSON.stringify({ url: served.url, pid: process.pid }));
  const url = served.url.replace(/^http:\/\/(0\.0\.0\.0|::)/, 'http://127.0.0.1');
  return {
    url,
    async close() {
      rmSync(announce, { force: true });
      await served.close();
      await history.close();
    },
  };
}

/**
 * Runs `f` at most once at a time: callers that arrive while it runs wait for that run, and a call
 * within `freshMs` of the last one's end is answered by it.
 */
export function coalesced(f: () => Promise<void>, freshMs = 200): () => Promise<void> {
  let running: Promise<void> | undefined;
  let doneAt = 0;
  return () => {
    if (running) return running;
    if (Date.now() - doneAt < freshMs) return Promise.resolve();
    running = f().finally(() => {
      running = undefined;
      doneAt = Date.now();
    });
    return running;
  };
}

/** Serves `fetch` on host:port; closing also ends open event streams, which would otherwise hold it. */
function listen(
  fetch: (req: Request) => Response | Promise<Response>,
  port: number,
  host: string,
): Promise<{ url: string; close(): Promise<void> }> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch, port, hostname: host }, (info) =>
      resolve({
        url: `http://${host.includes(':') ? `[${host}]` : host}:${info.port}`,
        close: () =>
          new Promise<void>((r) => {
            server.close(() => r());
            (server as Server).closeAllConnections();
          }),
      }),
    ) as Server;
    server.once('error', reject);
  });
}
