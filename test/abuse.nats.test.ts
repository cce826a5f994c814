/**
 * 200 malformed and unauthorised messages against a broker on a nats-server that enforces the
 * permissions `gantry cluster onboard` writes: every one is refused with a reason, and the broker keeps
 * serving.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Agent, createAgent, createSimExecutor, createSimProvisioner } from '../agents/index.ts';
import { authorizationBlock } from '../bin/credentials.ts';
import { onboardingUsers } from '../bin/onboarding.ts';
import { type Broker, createBroker } from '../broker/index.ts';
import { loadPlatform } from '../policies/index.ts';
import { decodeJson, encodeJson, openLocalStore, subjects, type Transport } from '../protocol/index.ts';
import { connectNats } from '../protocol/nats-index.ts';
import { startNatsServer, type NatsServer } from './nats/server.ts';
import { TestClient } from './system.ts';

let server: NatsServer;
let broker: Broker;
let agents: Agent[] = [];
const conns: Transport[] = [];
const byName = new Map<string, Transport>();
let client: Transport;
let rogue: Transport;

beforeAll(async () => {
  const creds = mkdtempSync(join(tmpdir(), 'gantry-creds-'));
  const users = onboardingUsers(creds, ['ml'], [{ name: 'sim-aws' }, { name: 'sim-gcp' }]);
  server = await startNatsServer({ config: authorizationBlock(users) });
  const connect = async (name: string) => {
    const c = await connectNats({
      servers: server.url,
      name,
      creds: join(creds, `${name}.nk`),
      onHandlerError: () => undefined,
    });
    conns.push(c);
    byName.set(name, c);
    return c;
  };
  const { platform } = loadPlatform(['test/fixtures/platform']);
  const brokerConn = await connect('gantry-broker');
  broker = createBroker({
    transport: brokerConn,
    store: await openLocalStore(mkdtempSync(join(tmpdir(), 'gantry-abuse-'))),
    platform,
    heartbeatMs: 100,
  });
  await broker.start();
  for (const cluster of platform.clusters) {
    const agent = createAgent({
      transport: await connect(`agent-${cluster.name}`),
      cluster,
      executor: createSimExecutor({ speedup: 1000 }),
      provisioner: createSimProvisioner(cluster, { speedup: 1000 }),
      heartbeatMs: 100,
      speedup: 1000,
    });
    await agent.start();
    agents.push(agent);
  }
  client = await connect('runtime-ml');
  rogue = byName.get('agent-sim-gcp')!;
});

afterAll(async () => {
  for (const a of agents) await a.stop();
  await broker?.stop();
  for (const c of conns) await c.close();
  await server?.stop();
});

const ask = async (body: Uint8Array) =>
  decodeJson((await client.request(subjects.request('ml'), body, { timeoutMs: 5000 })).data) as {
    ok: boolean;
    error: { code: string; message: string; field?: string };
  };

describe('malformed and unauthorised messages', () => {
  it('refuses all 200 with a reason and keeps serving', async () => {
    const replies = await Promise.all([
      ...Array.from({ length: 50 }, (_, i) => ask(new TextEncoder().encode(`{"requestId": "j${i}", `))),
      ...Array.from({ length: 50 }, (_, i) =>
        ask(encodeJson({ requestId: `s${i}`, team: 'ml', work: { kind: 'sim', durationMs: -5 } })),
      ),
      ...Array.from({ length: 50 }, (_, i) =>
        ask(
          encodeJson({
            requestId: `o${i}`,
            team: 'ml',
            override: true,
            resources: { gpu: 'L4:4' },
            work: { kind: 'sim', durationMs: 5 },
          }),
        ),
      ),
    ]);
    expect(replies.slice(0, 50).every((r) => !r.ok && r.error.code === 'bad-json')).toBe(true);
    expect(
      replies
        .slice(50, 100)
        .every((r) => !r.ok && r.error.code === 'bad-message' && r.error.field === 'work.durationMs'),
    ).toBe(true);
    expect(
      replies
        .slice(100)
        .every((r) => !r.ok && r.error.message === 'override exceeds policy ml: 4 GPUs > limit 1'),
    ).toBe(true);

    // An agent publishing for another cluster: the server refuses it (permissions from onboarding)...
    for (let i = 0; i < 25; i++)
      rogue.publish(
        subjects.heartbeat('sim-aws'),
        encodeJson({ cluster: 'sim-aws', agentId: 'rogue', seq: i, nodes: [], activeCount: 0 }),
      );
    // ...and on its own subject, events about leases it does not hold are refused by the broker.
    for (let i = 0; i < 25; i++) {
      rogue.publish(
        subjects.events('sim-gcp'),
        encodeJson({ type: 'lease', cluster: 'sim-gcp', leaseId: `forged-${i}`, state: 'succeeded', at: 0 }),
      );
    }
    await rogue.flush();
    await new Promise((r) => setTimeout(r, 300));
    expect(broker.inventory.clusters.get('sim-aws')?.agentId).not.toBe('rogue');
    const bad = (await broker.metrics.badMessages.get()).values.reduce((n, v) => n + v.value, 0);
    expect(bad).toBe(50 + 50 + 25); // malformed requests and forged events; the foreign heartbeats never arrived
    const refused = (await broker.metrics.refused.get()).values.reduce((n, v) => n + v.value, 0);
    expect(refused).toBe(50);

    // The broker still serves: a good request is leased and finishes.
    const tc = new TestClient(client, 'ml');
    const reply = await tc.request('good', { resources: { cpu: 1, memory: '2Gi' } });
    expect(reply.ok).toBe(true);
    await tc.finished(['good']);
    expect(tc.successes('good')).toBe(1);
  });

  it('refuses a runtime that publishes on an agent subject', async () => {
    client.publish(subjects.launch('sim-aws'), encodeJson({ lease: {} }));
    await client.flush();
    const reply = await new TestClient(client, 'ml').request('still-fine', { resources: { cpu: 1 } });
    expect(reply.ok).toBe(true);
  });
});
