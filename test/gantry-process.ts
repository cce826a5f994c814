/**
 * The real `gantry` binary as its own process, as a user runs it: one command to its end, or a
 * long-running one in the background. Free of the test runner, so benchmarks use it too.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Options of {@link spawnGantry}. */
export interface SpawnOptions {
  /** Working directory; default this repository. */
  cwd?: string;
  /** The environment; default this process's. */
  env?: NodeJS.ProcessEnv;
  /** Kill the command after this long; default 30 s. */
  timeoutMs?: number;
}

const GANTRY_BIN = fileURLToPath(new URL('../bin/gantry.js', import.meta.url));

/**
 * Runs the real `gantry` binary (`node bin/gantry.js …`) as its own process, as a user would, and
 * returns its exit code and what it printed. What a command prints when it dies — a stack trace from an
 * uncaught error — shows only this way.
 */
export function spawnGantry(
  args: readonly string[],
  opts: SpawnOptions = {},
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [GANTRY_BIN, ...args], {
      cwd: opts.cwd ?? fileURLToPath(new URL('..', import.meta.url)),
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

/** A long-running `gantry` process (`up`, `broker`, `agent`) started by {@link startGantry}. */
export interface GantryProcess {
  /** What it printed so far on stdout and stderr. */
  output(): string;
  /** Resolves when its output matches, or rejects with what it printed after `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** SIGTERM, then its exit code. */
  stop(): Promise<number | null>;
  /** Sends a signal (SIGINT is Ctrl-C, SIGKILL a driver that dies), then its exit code. */
  kill(signal: NodeJS.Signals): Promise<number | null>;
  /** Resolves with its exit code once it has ended by itself. */
  exited: Promise<number | null>;
}

/** Background processes still running: killed when this process exits. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** Starts the real `gantry` binary in the background, as `gantry up` is started by a user. */
export function startGantry(args: readonly string[], opts: SpawnOptions = {}): GantryProcess {
  const child = spawn(process.execPath, [GANTRY_BIN, ...args], {
    cwd: opts.cwd ?? fileURLToPath(new URL('..', import.meta.url)),
    env: opts.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  const listeners = new Set<() => void>();
  const onData = (d: Buffer) => {
    text += d.toString();
    for (const l of listeners) l();
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
  live.add(child);
  void exited.then(() => live.delete(child));
  return {
    output: () => text,
    waitFor(pattern, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!pattern.test(text)) return;
          listeners.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`gantry ${args.join(' ')} never printed ${pattern}; it printed:\n${text}`));
        }, timeoutMs);
        listeners.add(check);
        void exited.then(() => {
          if (listeners.has(check)) {
            listeners.delete(check);
            clearTimeout(timer);
            reject(new Error(`gantry ${args.join(' ')} exited; it printed:\n${text}`));
          }
        });
        check();
      });
    },
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
    async kill(signal) {
      if (child.exitCode === null) child.kill(signal);
      return exited;
    },
    exited,
  };
}
