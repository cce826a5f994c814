/**
 * Workflows on a nats-server that enforces the permissions `gantry cluster onboard` writes: the
 * runtime and the agents' task hosts do everything a workflow needs (requests, results, warm workers,
 * artifacts, lineage) with their own credentials, and an agent still cannot speak for another cluster.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../agents/index.ts';
import { simAgent } from '../bin/embedded.ts';
import { authorizationBlock, LINEAGE_STREAM, RUNTIME_BUCKET } from '../bin/credentials.ts';
import { onboardingUsers } from '../bin/onboarding.ts';
import { type Broker, createBroker } from '../broker/index.ts';
import { loadPlatform } from '../policies/index.ts';
import type { Store, Transport } from '../protocol/index.ts';
import { connectNats, type NatsTransport, openJetStreamStore } from '../protocol/nats-index.ts';
import { readLineage, Runtime, runWorkflow } from '../runtime/index.ts';
import { openJetStreamArtifacts } from '../runtime/nats-artifacts.ts';
import * as suite from './fixtures/workflows/suite.ts';
import { type NatsServer, startNatsServer } from './nats/server.ts';

const MODULE = fileURLToPath(new URL('./fixtures/workflows/suite.ts', import.meta.url));
let server: NatsServer;
let broker: Broker;
const agents: Agent[] = [];
const conns: NatsTransport[] = [];
const byName = new Map<string, NatsTransport>();
let runtime: Runtime;
let localRuntime: Runtime;
let runtimeStore: Store;
let brokerStore: Store;
const errors: string[] = [];

beforeAll(async () => {
  const creds = mkdtempSync(join(tmpdir(), 'gantry-creds-'));
  const { platform } = loadPlatform(['test/fixtures/runtime-platform']);
  const users = onboardingUsers(
    creds,
    platform.policies.flatMap((p) => p.teams),
    platform.clusters,
  );
  server = await startNatsServer({ config: authorizationBlock(users) });
  const connect = async (name: string) => {
    const c = await connectNats({
      servers: server.url,
      name,
      creds: join(creds, `${name}.nk`),
      onHandlerError: (err) => errors.push(`${name}: ${String(err)}`),
    });
    conns.push(c);
    byName.set(name, c);
    return c;
  };
  const brokerConn = await connect('gantry-broker');
  brokerStore = await openJetStreamStore(brokerConn.connection, {
    bucket: 'gantry-state',
    stream: 'gantry-events',
  });
  broker = createBroker({ transport: brokerConn, store: brokerStore, platform, heartbeatMs: 200 });
  await broker.start();
  for (const cluster of platform.clusters) {
    const conn = await connect(`agent-${cluster.name}`);
    const { agent } = simAgent(conn, cluster, 1000, 200, {
      transport: conn,
      artifacts: await openJetStreamArtifacts(conn.connection),
      timeScale: 1000,
      forwardStderr: false,
    });
    await agent.start();
    agents.push(agent);
  }
  const client = await connect('runtime-ml');
  runtimeStore = await openJetStreamStore(client.connection, {
    bucket: RUNTIME_BUCKET,
    stream: LINEAGE_STREAM,
  });
  runtime = new Runtime({
    transport: client,
    artifacts: await openJetStreamArtifacts(client.connection),
    progress: false,
  });
  const local = await connect('runtime-local');
  localRuntime = new Runtime({
    transport: local,
    artifacts: await openJetStreamArtifacts(local.connection),
    progress: false,
  });
}, 60_000);

afterAll(async () => {
  runtime?.stopWorkers();
  localRuntime?.stopWorkers();
  for (const a of agents) await a.stop();
  await broker?.stop();
  await brokerStore?.close();
  await runtimeStore?.close();
  for (const c of conns) await c.close();
  await server?.stop();
});

describe('workflows with least-privilege credentials', () => {
  it('pass values by reference through the object store, nested calls, warm workers and lineage', async () => {
    const big = await runWorkflow(
      suite.bigPipeline,
      { n: 2000 },
      { runtime, team: 'ml', module: MODULE, store: runtimeStore },
    );
    expect(big.error).toBeUndefined();
    expect(big.output).toMatchObject({ count: 2000 });
    const fan = await runWorkflow(
      suite.fanout,
      { n: 500, cold: 5 },
      { runtime, team: 'ml', module: MODULE, store: runtimeStore },
    );
    expect(fan.error).toBeUndefined();
    expect((fan.output as { squares: number[] }).squares[499]).toBe(499 * 499);
    const { records } = await readLineage(runtimeStore);
    expect(records.filter((r) => r.run === fan.runId && r.task === 'square')).toHaveLength(500);
    // Worker processes on the local cluster reach Gantry only through their agent.
    const oom = await runWorkflow(
      suite.oomPipeline,
      { mib: 300 },
      { runtime: localRuntime, team: 'local', module: MODULE, store: runtimeStore },
    );
    expect(oom.output).toEqual({ mib: 300, heapLimitMiB: 512 });
    expect(errors).toEqual([]);
  }, 60_000);

  it("an agent's credentials still cannot publish as another cluster", async () => {
    const rogue: Transport = byName.get('agent-sim-aws')!;
    rogue.publish('gantry.v1.agent.workstation.heartbeat', new TextEncoder().encode('{}'));
    await rogue.flush().catch(() => undefined);
    await new Promise((r) => setTimeout(r, 200));
    expect(server.log()).toMatch(
      /agent-sim-aws.*Publish Violation.*gantry\.v1\.agent\.workstation\.heartbeat/,
    );
  });
});
