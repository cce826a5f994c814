/** Runs `gantry` commands for tests, in-process or as the real binary, capturing what they print. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { vi } from 'vitest';
import { main } from '../bin/cli.ts';

/** Runs `gantry ...args` and returns its exit code, standard output and standard error. */
export async function runGantry(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
  try {
    const code = await main(['node', 'gantry', ...args]);
    return { code, out, err };
  } finally {
    vi.restoreAllMocks();
    process.exitCode = undefined;
  }
}

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
