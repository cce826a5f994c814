/**
 * Starts a real nats-server for integration tests, the way nats.js's own tests do: a free loopback
 * port, a temp directory for JetStream, and a process that is always killed when the test process
 * exits. Never touches the shared server on :4222.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { locate, NATS_SERVER, notFound } from '../requirements.ts';

/** Options of {@link startNatsServer}. */
export interface NatsServerOptions {
  /** Enable JetStream (store in `<dir>/js`); default true. */
  jetstream?: boolean;
  /** Extra nats-server configuration (e.g. an `authorization { … }` block), appended to a generated file. */
  config?: string;
  /** Milliseconds to wait for "Server is ready"; default 10 000. */
  readyTimeoutMs?: number;
}

/** A running nats-server owned by a test. */
export interface NatsServer {
  /** `nats://127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  /** Temp directory: JetStream data (`js/`) and config. Removed by dispose, or when the process exits. */
  readonly dir: string;
  /** SIGTERM, then wait for the process to exit. */
  stop(): Promise<void>;
  /** SIGKILL (a crash), then wait for the process to exit. */
  kill(): Promise<void>;
  /** Starts again on the same port and store directory (stops first if running): JetStream data survives. */
  restart(): Promise<void>;
  /** Recent server log lines, for failure messages. */
  log(): string;
  [Symbol.asyncDispose](): Promise<void>;
}

const live = new Set<ChildProcess>();
const dirs = new Set<string>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** Finds nats-server (the global setup has made sure there is one, or stopped the run). */
export function natsServerBinary(): string {
  const found = locate(NATS_SERVER);
  if (found === undefined) throw new Error(notFound([NATS_SERVER]));
  return found;
}

/** Asks the kernel for a free loopback port. */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', resolve);
  });
  const addr = srv.address();
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  if (addr === null || typeof addr === 'string') throw new Error('could not get a free port');
  return addr.port;
}

/**
 * Starts nats-server on a free loopback port with a temp JetStream directory.
 *
 * @example
 * await using server = await startNatsServer();
 * const t = await connectNats({ servers: server.url });
 */
export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServer> {
  const bin = natsServerBinary();
  const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));
  const jetstream = opts.jetstream ?? true;
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'gantry-nats-'));
  dirs.add(dir);
  const storeDir = join(dir, 'js');
  let args = ['-a', '127.0.0.1', '-p', String(port)];
  if (jetstream) args.push('-js', '-sd', storeDir);
  if (opts.config !== undefined) {
    const file = join(dir, 'server.conf');
    const js = jetstream ? `jetstream {\n  store_dir: ${JSON.stringify(storeDir)}\n}\n` : '';
    await writeFile(file, `listen: 127.0.0.1:${port}\n${js}${opts.config}\n`);
    args = ['-c', file];
  }
  const readyTimeoutMs = opts.readyTimeoutMs ?? 10_000;
  let lines: string[] = [];
  let child: ChildProcess | undefined;

  const start = async (): Promise<void> => {
    lines = [];
    // setpriv --pdeathsig: the kernel kills the server if this process dies without running 'exit'
    // handlers (SIGKILL, a timeout's SIGTERM).
    const proc = setpriv
      ? spawn(setpriv, ['--pdeathsig', 'KILL', bin, ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    live.add(proc);
    proc.once('exit', () => live.delete(proc));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(
          new Error(`nats-server on port ${port} not ready in ${readyTimeoutMs} ms:\n${lines.join('\n')}`),
        );
      }, readyTimeoutMs);
      let buffered = '';
      proc.stderr!.setEncoding('utf8');
      proc.stderr!.on('data', (chunk: string) => {
        buffered += chunk;
        const parts = buffered.split('\n');
        buffered = parts.pop()!;
        for (const line of parts) {
          lines.push(line);
          if (lines.length > 200) lines.shift();
          if (line.includes('Server is ready')) {
            clearTimeout(timer);
            resolve();
          }
        }
      });
      proc.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      proc.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`nats-server exited (${code ?? signal}) before it was ready:\n${lines.join('\n')}`));
      });
    });
  };

  const signal = async (sig: NodeJS.Signals): Promise<void> => {
    const proc = child;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill(sig);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };

  await start();
  const server: NatsServer = {
    url: `nats://127.0.0.1:${port}`,
    port,
    dir,
    stop: () => signal('SIGTERM'),
    kill: () => signal('SIGKILL'),
    restart: async () => {
      await signal('SIGTERM');
      await start();
    },
    log: () => lines.join('\n'),
    [Symbol.asyncDispose]: async () => {
      await signal('SIGTERM');
      await rm(dir, { recursive: true, force: true });
      dirs.delete(dir);
    },
  };
  return server;
}

/**
 * Starts `size` nats-servers routed into one cluster, each with JetStream (clustered, so streams can
 * have `size` replicas); `extraConfig(i)` is appended to server i's configuration. Resolves once every server is ready; JetStream elects its meta leader shortly
 * after, so the first stream creation may need a retry.
 *
 * @example
 * const servers = await startNatsCluster(3);
 * const t = await connectNats({ servers: servers.map((s) => s.url) });
 */
export async function startNatsCluster(
  size = 3,
  extraConfig: (i: number) => string = () => '',
): Promise<NatsServer[]> {
  const routes = await Promise.all(Array.from({ length: size }, () => freePort()));
  const name = `gantry-${process.pid}-${routes[0]}`;
  return Promise.all(
    routes.map((port, i) =>
      startNatsServer({
        config: [
          `server_name: n${i}-${port}`,
          `cluster {`,
          `  name: ${name}`,
          `  listen: 127.0.0.1:${port}`,
          `  routes: [${routes.map((r) => `nats-route://127.0.0.1:${r}`).join(', ')}]`,
          `}`,
          extraConfig(i),
        ].join('\n'),
      }),
    ),
  );
}
