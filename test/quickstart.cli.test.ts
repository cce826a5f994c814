/**
 * The NATS quick start as README.md shows it: `gantry up --nats` (a broker and an agent per example
 * cluster over a real nats-server), then `gantry run --nats` of the example workflow, `gantry get` and
 * `gantry cluster describe` against it, and `gantry history` following it into PostgreSQL, each as its
 * own process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GantryProcess, spawnGantry, startGantry } from './cli.ts';
import { type NatsServer, startNatsServer } from './nats/server.ts';
import { sleep } from './nats/wait.ts';
import { createTestDatabase } from './postgres.ts';

let server: NatsServer;
let up: GantryProcess;
let history: GantryProcess;
let database: Awaited<ReturnType<typeof createTestDatabase>>;

beforeAll(async () => {
  server = await startNatsServer();
  database = await createTestDatabase('gantry_quickstart');
  up = startGantry(['up', '-f', 'examples', '--nats', server.url]);
  await up.waitFor(/Gantry is up over NATS/);
  history = startGantry(['history', '--nats', server.url, '--postgres', database.url, '--port', '0']);
  await history.waitFor(/query API on http/);
}, 60_000);
afterAll(async () => {
  await history?.stop();
  await up?.stop();
  await server?.stop();
  await database?.drop();
});

describe('the NATS quick start', () => {
  it('says how to run a workflow on it, runs it at the printed speed, and answers gantry get', async () => {
    expect(up.output()).toMatch(
      /^Gantry is up over NATS at nats:\/\/127\.0\.0\.1:\d+: broker broker-\w+, agents for aws-use1, gcp-usc1, onprem on simulated clouds at 60× \(a node launches in 2 s\)\. Ctrl-C stops it\.$/m,
    );
    const printed = /node bin\/gantry\.js (run .*) \\\n\s+--input '(.*)'/.exec(up.output());
    expect(printed).not.toBeNull();
    const args = [...printed![1]!.trim().split(/\s+/).slice(0), '--input', printed![2]!, '-o', 'json'];
    expect(args).toEqual(expect.arrayContaining(['--nats', server.url, '--speedup', '60']));
    const run = await spawnGantry(args, { timeoutMs: 60_000 });
    expect(run.err).toBe('');
    expect(run.code).toBe(0);
    const result = JSON.parse(run.out) as { ok: boolean; executions: number; costUsd: number };
    // The same run embedded costs about $0.15 at the same simulated speed: over NATS it must too.
    expect(result).toMatchObject({ ok: true, executions: 11 });
    expect(result.costUsd).toBeGreaterThan(0.05);
    expect(result.costUsd).toBeLessThan(1);

    const nodes = await spawnGantry(['get', 'nodes', '--nats', server.url]);
    expect(nodes.code).toBe(0);
    expect(nodes.out).toMatch(/^onprem +dgx-a100-0 +dgx-a100 +reserved +true +128 +1Ti +8$/m);
    const describe = await spawnGantry(['cluster', 'describe', 'aws-use1', '--nats', server.url]);
    expect(describe.out).toMatch(/^Health: +healthy, agent agent-aws-use1-\w+, last heartbeat \d+s ago$/m);

    // gantry history followed the streams into PostgreSQL: the run is there, as the run printed it.
    const api = /query API on (http:\/\/\S+) /.exec(history.output())![1]!;
    let runs: { run: string; executions: number; costUsd: number; status: string }[] = [];
    for (let i = 0; i < 200 && runs.length === 0; i++) {
      const listed = await spawnGantry(['get', 'runs', '--history', api, '-o', 'json']);
      expect(listed.code).toBe(0);
      runs = (JSON.parse(listed.out) as { runs: typeof runs }).runs.filter((r) => r.status !== 'running');
      if (runs.length === 0) await sleep(100);
    }
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ executions: 11, status: 'succeeded' });
    expect(runs[0]!.costUsd).toBeCloseTo(result.costUsd, 6);
    const described = await spawnGantry(['describe', 'run', runs[0]!.run, '--history', api]);
    expect(described.out).toMatch(/^Cost: +\$[\d.]+ over 11 executions$/m);
  }, 90_000);

  it('stops on Ctrl-C (SIGTERM) with exit code 0', async () => {
    expect(await up.stop()).toBe(0);
  });
});
