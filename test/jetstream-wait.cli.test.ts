/**
 * A NATS cluster whose JetStream has no meta leader (two of its three servers down), through the real
 * CLI: `gantry agent` and `gantry broker` say so in one line and wait, then go on once the servers are
 * back; a one-shot command (`gantry report cost`) says so in one line and exits. Never a stack trace.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GantryProcess, spawnGantry, startGantry } from './cli.ts';
import { type NatsServer, startNatsCluster } from './nats/server.ts';
import { sleep } from './nats/wait.ts';

let servers: NatsServer[] = [];
const started: GantryProcess[] = [];
beforeAll(async () => {
  servers = await startNatsCluster(3);
  // One server of three: no majority, so no JetStream meta leader.
  await servers[1]!.kill();
  await servers[2]!.kill();
}, 60_000);
afterAll(async () => {
  for (const p of started) await p.kill('SIGKILL');
  for (const s of servers) await s[Symbol.asyncDispose]();
});

const NOT_READY =
  /^gantry: JetStream on NATS at nats:\/\/127\.0\.0\.1:\d+ does not answer yet \(no JetStream meta leader: a NATS cluster elects one shortly after its servers start, and needs more than half of them up\)/m;
const STACK = /^\s+at .*:\d+:\d+\)?$|TimeoutError/m;

describe('JetStream without a meta leader', () => {
  it('gantry report cost says so in one line and exits 1', async () => {
    const r = await spawnGantry(['report', 'cost', '--nats', servers[0]!.url], { timeoutMs: 60_000 });
    expect(r.err).toMatch(NOT_READY);
    expect(r.err).toMatch(/: start the servers that are down, or run this again once they elect one\n$/);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.code).toBe(1);
  }, 90_000);

  it('gantry agent and gantry broker wait, saying so in one line, and go on once the servers are back', async () => {
    const url = servers[0]!.url;
    const agent = startGantry([
      'agent',
      '-f',
      'test/fixtures/platform',
      '--cluster',
      'sim-aws',
      '--nats',
      url,
    ]);
    const broker = startGantry(['broker', '-f', 'test/fixtures/platform', '--nats', url, '--replicas', '3']);
    started.push(agent, broker);
    for (const p of [agent, broker]) await p.waitFor(NOT_READY, 60_000);
    await sleep(5000);
    for (const p of [agent, broker]) {
      expect(p.output()).toMatch(/trying again every 2 s\n/);
      expect(p.output()).not.toMatch(STACK);
      // One line, not one per attempt.
      expect(p.output().match(new RegExp(NOT_READY.source, 'gm'))).toHaveLength(1);
    }
    await servers[1]!.restart();
    await servers[2]!.restart();
    for (const p of [agent, broker])
      await p.waitFor(/^gantry: JetStream on NATS at .* answers; going on$/m, 90_000);
    await broker.waitFor(/"msg":"serving"/, 60_000);
    await agent.waitFor(/"msg":"agent started"/, 60_000);
    for (const p of [agent, broker]) expect(p.output()).not.toMatch(STACK);
  }, 240_000);
});
