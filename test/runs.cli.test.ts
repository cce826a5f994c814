/**
 * Runs are owned, through real processes over a real nats-server: `gantry up --nats` serves the broker
 * and agents; a `gantry run --nats` killed with SIGKILL has its leases stopped after the grace period
 * and shows as abandoned in `gantry get runs`;
 * Ctrl-C (SIGINT) cancels and prints what it stopped; `gantry run cancel <run>` does the same from
 * another terminal, and `gantry get runs` shows the run cancelled.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type GantryProcess,
  leasesIn,
  spawnGantry,
  startGantry,
  startLongRunning,
  stopUp,
  until,
} from './cli.ts';
import { type NatsServer, startNatsServer } from './nats/server.ts';

let server: NatsServer;
let up: GantryProcess;
/** This file's own state directory: `gantry get runs` must not read (or fill) the repository's. */
let state: string;

beforeAll(async () => {
  state = mkdtempSync(join(tmpdir(), 'gantry-runs-'));
  server = await startNatsServer();
  up = startGantry(['up', '-f', 'test/fixtures/spend-platform', '--nats', server.url, '--run-grace', '6']);
  await up.waitFor(/Gantry is up over NATS/);
  // The first `gantry get runs` creates the history database (PGlite): seconds, more on a busy
  // machine; done here, so that it is not counted against a test's grace period.
  expect(await runsWith('running', 120_000)).toEqual([]);
}, 180_000);
// Every lease the tests started was stopped, and its task's ctx.sleep with it: up stops cleanly.
afterAll(() => stopUp(up, server, state), 30_000);

/** Leases the broker has in `status`. */
const leases = (status: string) => leasesIn(server.url, status);

/** The ids of the runs `gantry get runs` lists in `status`. */
async function runsWith(status: string, timeoutMs = 30_000): Promise<string[]> {
  const r = await spawnGantry(
    ['get', 'runs', '--nats', server.url, '--state', state, '--status', status, '-o', 'json'],
    { timeoutMs },
  );
  // (Its first call says on stderr that it creates the history database.)
  expect(r.code, r.err).toBe(0);
  return (JSON.parse(r.out) as { runs: { run: string }[] }).runs.map((x) => x.run);
}

describe('runs are owned', () => {
  it('stops the leases of a run whose driver was killed, after the grace period', async () => {
    const { run, runId, leases: ids } = await startLongRunning(server.url);
    expect(await runsWith('running')).toContain(runId);
    await run.kill('SIGKILL');
    // Grace 6 s: the leases still run just after the kill, and are stopped soon after the grace.
    expect((await leases('running')).map((l) => l.leaseId).sort()).toEqual([...ids].sort());
    await until(
      'no lease running',
      () => leases('running'),
      (l) => l.length === 0,
      15_000,
    );
    const failed = await leases('failed');
    for (const id of ids) expect(failed.map((l) => l.leaseId)).toContain(id);
    const requests = await spawnGantry([
      'get',
      'requests',
      '--nats',
      server.url,
      '--status',
      'failed',
      '-o',
      'json',
    ]);
    const reasons = (JSON.parse(requests.out) as { requests: { reason?: string }[] }).requests.map(
      (r) => r.reason ?? '',
    );
    expect(
      reasons.filter((r) =>
        /^run-abandoned: run run-\S+'s driver sent no heartbeat for \d+ s \(grace 6 s\)/.test(r),
      ),
    ).toHaveLength(4);
    // The history says it ended, though its driver never could.
    await until(
      'the run abandoned in the history',
      () => runsWith('abandoned'),
      (r) => r.includes(runId),
    );
    expect(await runsWith('running')).not.toContain(runId);
  }, 60_000);

  it('cancels on Ctrl-C and prints what it stopped', async () => {
    const { run } = await startLongRunning(server.url);
    const code = await run.kill('SIGINT');
    const out = run.output();
    expect(code).toBe(130);
    expect(out).toMatch(/cancelling run run-\S+ \(Ctrl-C again to quit at once\)/);
    expect(out.match(/^ {2}stopped {4}long {11}on sim-aws\/\S+ \(lease l-[\w-]+\)$/gm)).toHaveLength(4);
    expect(out).toMatch(
      /^run run-\S+ cancelled: 4 running lease\(s\) stopped, 0 pending request\(s\) withdrawn$/m,
    );
    expect(await leases('running')).toEqual([]);
    expect(out).toMatch(
      /^run run-\S+ failed after .*RunCancelledError: long: run run-\S+ was cancelled \(Ctrl-C\)$/m,
    );
  }, 60_000);

  it('gantry run cancel <run> stops a run from another terminal; gantry get runs says cancelled', async () => {
    const { run, runId } = await startLongRunning(server.url);
    const cancel = await spawnGantry(['run', 'cancel', runId, '--nats', server.url]);
    expect(cancel.err).toBe('');
    expect(cancel.code).toBe(0);
    expect(cancel.out).toMatch(new RegExp(`^run ${runId} cancelled: 4 running lease\\(s\\) stopped`, 'm'));
    await run.waitFor(/^run run-\S+ failed after/m);
    // It ends by itself once it has said why: a SIGTERM sent as that line arrives could beat its exit.
    expect(await run.exited).toBe(1);
    expect(run.output()).toMatch(
      /: RunCancelledError: long: run run-\S+ was cancelled \(gantry run cancel\)$/m,
    );
    const again = await spawnGantry(['run', 'cancel', runId, '--nats', server.url]);
    expect(again.out).toBe(`run ${runId}: nothing pending or running to cancel\n`);
    expect(await runsWith('cancelled')).toContain(runId);
  }, 60_000);

  it('says what gantry run cancel needs', async () => {
    const r = await spawnGantry(['run', 'cancel', 'run-x']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(
      /^gantry: gantry run cancel needs --nats <url>: an embedded run lives in its gantry run process; press Ctrl-C there/,
    );
  });
});
