/**
 * The NATS quick start as README.md shows it: `gantry up --nats` (a broker and an agent per example
 * cluster over a real nats-server), then `gantry run --nats` of the example workflow, `gantry get` and
 * `gantry cluster describe` against it, each as its own process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GantryProcess, spawnGantry, startGantry } from './cli.ts';
import { type NatsServer, startNatsServer } from './nats/server.ts';

let server: NatsServer;
let up: GantryProcess;

beforeAll(async () => {
  server = await startNatsServer();
  up = startGantry(['up', '-f', 'examples', '--nats', server.url]);
  await up.waitFor(/Gantry is up over NATS/);
}, 60_000);
afterAll(async () => {
  await up?.stop();
  await server?.stop();
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
  }, 90_000);

  it('stops on Ctrl-C (SIGTERM) with exit code 0', async () => {
    expect(await up.stop()).toBe(0);
  });
});
