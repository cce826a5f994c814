/**
 * `gantry cluster remove` through the real binary, against a broker and a `gantry agent` process over a
 * real nats-server: it refuses a cluster that is not drained or still has nodes Gantry bought (naming
 * them), terminates them with --force, and the agent stops.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type Broker, createBroker } from '../broker/index.ts';
import { loadPlatform } from '../policies/index.ts';
import { openLocalStore, type Transport } from '../protocol/index.ts';
import { connectNats } from '../protocol/nats-index.ts';
import { defaultBackends } from '../solver/index.ts';
import { type GantryProcess, runGantry, startGantry } from './cli.ts';
import { type NatsServer, startNatsServer } from './nats/server.ts';
import { eventually, TestClient } from './system.ts';

let server: NatsServer | undefined;
let broker: Broker | undefined;
let agent: GantryProcess | undefined;
const conns: Transport[] = [];
afterEach(async () => {
  await agent?.stop();
  await broker?.stop();
  for (const c of conns.splice(0)) await c.close();
  await server?.stop();
});

describe('gantry cluster remove', () => {
  it('refuses until drained and the bought nodes are gone; --force terminates them and stops the agent', async () => {
    server = await startNatsServer();
    const nc = await connectNats({ servers: server.url, name: 'broker' });
    conns.push(nc);
    const { platform } = loadPlatform(['test/fixtures/cloud-platform']);
    broker = createBroker({
      transport: nc,
      store: await openLocalStore(mkdtempSync(join(tmpdir(), 'gantry-rm-'))),
      platform,
      backends: await defaultBackends(),
      heartbeatMs: 100,
    });
    await broker.start();
    agent = startGantry([
      'agent',
      '-f',
      'test/fixtures/cloud-platform',
      '--cluster',
      'aws-use1',
      '--nats',
      server.url,
      '--speedup',
      '10',
      '--heartbeat',
      '100',
    ]);
    await agent.waitFor(/agent started/);
    // Work that makes the broker buy a node on aws-use1; the node stays, idle, for its TTL.
    const client = new TestClient(nc);
    const reply = await client.request('t1', { resources: { cpu: 4, memory: '8Gi' } });
    expect(reply.ok).toBe(true);
    await client.finished(['t1']);
    const bought = () =>
      [...broker!.inventory.clusters.get('aws-use1')!.nodes.values()].filter((n) => n.plannedId);
    await eventually(() => bought().length > 0, 10_000, 'a node bought');
    const names = bought().map((n) => n.name);
    const as = ['--nats', server.url];

    const early = await runGantry('cluster', 'remove', 'aws-use1', ...as);
    expect([early.code, early.err]).toEqual([
      2,
      'gantry: cluster aws-use1 is not drained: gantry cluster drain aws-use1, let its work finish, then remove it\n',
    ]);
    expect((await runGantry('cluster', 'drain', 'aws-use1', ...as)).code).toBe(0);
    const running = await runGantry('cluster', 'remove', 'aws-use1', ...as);
    expect([running.code, running.err]).toEqual([
      2,
      `gantry: cluster aws-use1 still has ${names.length} node(s) Gantry bought: ${names.join(', ')} (--force terminates them first)\n`,
    ]);
    expect(broker.inventory.clusters.has('aws-use1')).toBe(true);

    const forced = await runGantry('cluster', 'remove', 'aws-use1', '--force', ...as);
    expect([forced.code, forced.err]).toEqual([0, '']);
    expect(forced.out).toBe(
      `cluster aws-use1 removed; terminated ${names.length} node(s): ${names.join(', ')}; its agent stopped\n`,
    );
    expect(broker.inventory.clusters.has('aws-use1')).toBe(false);
    expect(await agent.exited).toBe(0);
    expect(agent.output()).toMatch(/cluster removed by the broker; agent stopping/);
  });
});
