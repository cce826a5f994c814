/**
 * An agent says why it ended a lease it could not run as data (`cause: { kind, detail }`), so that the
 * broker switches on the kind instead of reading the reason's words.
 */
import { describe, expect, it } from 'vitest';
import { loadPlatform } from '../policies/index.ts';
import {
  type AgentEvent,
  createMemoryTransport,
  decodeJson,
  encodeJson,
  type LeaseMsg,
  subjects,
} from '../protocol/index.ts';
import { createAgent } from './agent.ts';
import { createSimExecutor } from './sim-executor.ts';
import { createSimProvisioner } from './sim-provisioner.ts';

const { platform } = loadPlatform(['test/fixtures/platform']);
const simAws = platform.clusters.find((c) => c.name === 'sim-aws')!;
// One ready spot node from the start.
const cluster = {
  ...simAws,
  pools: simAws.pools.map((p) => (p.capacityType === 'spot' ? { ...p, nodes: 1 } : p)),
};
const pool = cluster.pools.find((p) => p.capacityType === 'spot')!;

function lease(id: string, node: string): LeaseMsg {
  return {
    leaseId: id,
    requestId: `r-${id}`,
    cluster: cluster.name,
    pool: pool.name,
    node,
    pricePerHour: 1,
    cpuMilli: 100,
    memoryMiB: 100,
    gpuMilli: 0,
    gpuModel: null,
    capacityType: pool.capacityType,
    expiresAt: Date.now() + 60_000,
    attempt: 0,
    why: 'test',
    work: { kind: 'sim', durationMs: 60_000, outcome: 'succeeded' },
  };
}

async function start() {
  const transport = createMemoryTransport();
  transport.subscribe(subjects.register(cluster.name), (msg) =>
    transport.respond(msg, encodeJson({ ok: true, heartbeatMs: 60_000, brokerId: 'b' })),
  );
  const events: AgentEvent[] = [];
  transport.subscribe(subjects.events(cluster.name), (msg) =>
    events.push(...(decodeJson(msg.data) as { events: AgentEvent[] }).events),
  );
  const cloud = createSimProvisioner(cluster, { speedup: 1 });
  const agent = createAgent({ transport, cluster, executor: createSimExecutor(), provisioner: cloud });
  await agent.start();
  const launch = (l: LeaseMsg) =>
    transport.request(subjects.launch(cluster.name), encodeJson({ leases: [l] }), { timeoutMs: 1000 });
  const ends = () =>
    events.flatMap((e) => (e.type === 'lease' && e.cause ? [[e.leaseId, e.state, e.cause] as const] : []));
  return { transport, agent, cloud, launch, ends };
}

describe('lease ends the agent reports as data', () => {
  it('a lease for a node the cluster does not have: lost, unknown-node', async () => {
    const { transport, agent, launch, ends } = await start();
    await launch(lease('l-1', 'no-such-node'));
    await new Promise((r) => setTimeout(r, 50));
    expect(ends()).toEqual([['l-1', 'lost', { kind: 'unknown-node', detail: 'no-such-node' }]]);
    await agent.stop();
    await transport.close();
  });

  it('a lease on a spot node that is reclaimed: preempted, node-reclaimed', async () => {
    const { transport, agent, cloud, launch, ends } = await start();
    const node = cloud.list().find((n) => n.capacityType === 'spot' && n.ready);
    await launch({ ...lease('l-2', node!.name), pool: node!.pool, capacityType: 'spot' });
    expect(cloud.reclaimNode(node!.name)).toBe(true);
    await new Promise((r) => setTimeout(r, 50));
    expect(ends()).toEqual([['l-2', 'preempted', { kind: 'node-reclaimed', detail: node!.name }]]);
    await agent.stop();
    await transport.close();
  });
});
