/** Runs `gantry` commands for tests, in-process or as the real binary, capturing what they print. */
import { rmSync } from 'node:fs';
import { expect, vi } from 'vitest';
import { main } from '../bin/cli.ts';
import { type GantryProcess, spawnGantry, startGantry } from './gantry-process.ts';

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

/** Polls `f` every 300 ms until `ok` holds of its value; throws with the last value after `ms`. */
export async function until<T>(
  what: string,
  f: () => Promise<T>,
  ok: (v: T) => boolean,
  ms = 20_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (ok(v)) return v;
    if (Date.now() > end)
      throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v).slice(0, 500)}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** The broker's leases in `status`, as `gantry get leases --nats` lists them. */
export async function leasesIn(
  nats: string,
  status: string,
): Promise<{ leaseId: string; requestId: string }[]> {
  const r = await spawnGantry(['get', 'leases', '--nats', nats, '--status', status, '-o', 'json']);
  if (r.code !== 0) throw new Error(`gantry get leases failed: ${r.err}`);
  return (JSON.parse(r.out) as { leases: { leaseId: string; requestId: string }[] }).leases;
}

/**
 * `gantry run --nats` of four tasks of ten simulated hours (ten minutes at 60×) each, in the spend
 * fixtures: nobody waits that long in a test, so it runs until it is stopped.
 */
export const startLongRun = (nats: string) =>
  startGantry([
    'run',
    'test/fixtures/workflows/spend.ts',
    '--task',
    'overrun',
    '--team',
    'shared',
    '--input',
    '{"ms":36000000}',
    '--nats',
    nats,
    '--speedup',
    '60',
  ]);

/** {@link startLongRun}, once the broker runs its four leases: the run, its id and the leases' ids (sorted). */
export async function startLongRunning(
  nats: string,
): Promise<{ run: GantryProcess; runId: string; leases: string[] }> {
  const run = startLongRun(nats);
  await run.waitFor(/^run (run-\S+):/m);
  const runId = /^run (run-\S+):/m.exec(run.output())![1]!;
  const running = await until(
    'four leases running',
    () => leasesIn(nats, 'running'),
    (l) => l.length === 4,
  );
  return { run, runId, leases: running.map((l) => l.leaseId).sort() };
}

/**
 * Stops a `gantry up` and the NATS server it ran on, removes its state directory, and checks that it
 * stopped cleanly: every lease it served was stopped, so it exits 0, and it printed no stack trace.
 */
export async function stopUp(
  up: GantryProcess | undefined,
  server: { stop(): Promise<unknown> } | undefined,
  state: string,
): Promise<void> {
  const code = await up?.stop();
  await server?.stop();
  rmSync(state, { recursive: true, force: true });
  expect(code).toBe(0);
  expect(up?.output()).not.toMatch(/\n\s+at /);
}
