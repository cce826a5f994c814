/** Runs `gantry` commands for tests, in-process or as the real binary, capturing what they print. */
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

export { type GantryProcess, type SpawnOptions, spawnGantry, startGantry } from './gantry-process.ts';
