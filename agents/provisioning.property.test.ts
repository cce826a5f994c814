/**
 * Properties of buying nodes, for any sequence of plans, launches and cloud failures: instances launched
 * never exceed nodes planned (nor a pool's maximum), and every instance is either used or terminated
 * within its pool's idle TTL. The agent runs on the in-process transport with the simulated cloud, on
 * fake timers so that simulated hours pass at once.
 */
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { loadPlatform } from '../policies/index.ts';
import { createMemoryTransport, encodeJson, type LeaseMsg, subjects } from '../protocol/index.ts';
import { createAgent } from './agent.ts';
import type { Executor } from './executor.ts';
import { createSimExecutor } from './sim-executor.ts';
import { createSimProvisioner } from './sim-provisioner.ts';

const cluster = loadPlatform(['test/fixtures/cloud-platform']).platform.clusters.find(
  (c) => c.name === 'aws-use1',
)!;
const pool = cluster.pools[0]!;
const HEARTBEAT_MS = 1000;
const TTL_MS = pool.idleTtlSeconds * 1000;

type Step =
  | { kind: 'plan'; nodes: number; tasks: number; durationMs: number }
  | { kind: 'launch-existing'; durationMs: number }
  | { kind: 'stockout'; on: boolean }
  | { kind: 'wait'; ms: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constant('plan' as const),
    nodes: fc.integer({ min: 1, max: 4 }),
    tasks: fc.integer({ min: 0, max: 4 }),
    durationMs: fc.integer({ min: 1000, max: 3_600_000 }),
  }),
  fc.record({
    kind: fc.constant('launch-existing' as const),
    durationMs: fc.integer({ min: 1000, max: 600_000 }),
  }),
  fc.record({ kind: fc.constant('stockout' as const), on: fc.boolean() }),
  fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 1_200_000 }) }),
);

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
});
afterEach(() => {
  vi.useRealTimers();
});

/** Runs one sequence and checks the properties along the way. */
async function check(steps: Step[]): Promise<void> {
  const transport = createMemoryTransport();
  transport.subscribe(subjects.register(cluster.name), (msg) =>
    transport.respond(msg, encodeJson({ ok: true, heartbeatMs: HEARTBEAT_MS, brokerId: 'b' })),
  );
  const cloud = createSimProvisioner(cluster, { tickMs: 3_600_000 });
  const launched = new Set<string>();
  const readyAt = new Map<string, number>();
  cloud.onEvent((e) => {
    if (e.type === 'ready') readyAt.set(e.node.name, Date.now());
  });
  // When each node was last used: a lease running on it, or ending there.
  const lastUse = new Map<string, number>();
  const running = new Map<string, string>(); // lease → node
  const sim = createSimExecutor();
  const executor: Executor = {
    ...sim,
    start(lease, node, report) {
      running.set(lease.leaseId, node);
      sim.start(lease, node, (state, info) => {
        if (state !== 'running') {
          running.delete(lease.leaseId);
          lastUse.set(node, Date.now());
        }
        report(state, info);
      });
    },
  };
  const agent = createAgent({ transport, cluster, executor, provisioner: cloud, heartbeatMs: HEARTBEAT_MS });
  await agent.start();
  const planned = new Set<string>();
  let n = 0;
  const lease = (node: string, durationMs: number): LeaseMsg => ({
    leaseId: `l${++n}`,
    requestId: `r${n}`,
    cluster: cluster.name,
    pool: pool.name,
    node,
    pricePerHour: pool.price,
    cpuMilli: 1000,
    memoryMiB: 1024,
    gpuMilli: 0,
    gpuModel: null,
    capacityType: pool.capacityType,
    expiresAt: Date.now() + 86_400_000,
    attempt: 0,
    why: 'property',
    work: { kind: 'sim', durationMs, outcome: 'succeeded' },
  });
  const send = async (subject: string, body: unknown) => {
    transport.publish(subject, encodeJson(body));
    await vi.advanceTimersByTimeAsync(0);
  };
  const invariants = () => {
    const nodes = cloud.list();
    for (const node of nodes) launched.add(node.name);
    // Never more instances than nodes planned (the pool starts empty), nor than the pool's maximum.
    expect(launched.size).toBeLessThanOrEqual(planned.size);
    expect(nodes.length).toBeLessThanOrEqual(pool.maxNodes);
    for (const node of nodes) expect(planned.has(node.name)).toBe(true);
    // Every ready instance is used, or was used (or came up) within the idle TTL and a heartbeat.
    const busy = new Set(running.values());
    for (const node of nodes.filter((x) => x.ready)) {
      if (busy.has(node.name)) continue;
      const since = Math.max(readyAt.get(node.name) ?? 0, lastUse.get(node.name) ?? 0);
      expect(Date.now() - since).toBeLessThanOrEqual(TTL_MS + 2 * HEARTBEAT_MS);
    }
  };

  for (const s of steps) {
    if (s.kind === 'plan') {
      const ids = Array.from({ length: s.nodes }, () => `${pool.name}-n${++n}`);
      ids.forEach((id) => planned.add(id));
      await send(subjects.scale(cluster.name), { pool: pool.name, add: ids, remove: [] });
      const leases = Array.from({ length: s.tasks }, (_, i) => lease(ids[i % ids.length]!, s.durationMs));
      if (leases.length > 0) await send(subjects.launch(cluster.name), { leases });
    } else if (s.kind === 'launch-existing') {
      const ready = cloud.list().find((x) => x.ready);
      if (ready) await send(subjects.launch(cluster.name), { leases: [lease(ready.name, s.durationMs)] });
    } else if (s.kind === 'stockout') {
      cloud.exhaust(pool.name, s.on ? 'InsufficientInstanceCapacity' : undefined);
    } else {
      // In heartbeat-sized strides, so that the properties are checked as time passes.
      for (let left = s.ms; left > 0; left -= HEARTBEAT_MS) {
        await vi.advanceTimersByTimeAsync(Math.min(HEARTBEAT_MS, left));
        invariants();
      }
    }
    invariants();
  }
  // Once all work has ended and the TTL has passed, nothing Gantry bought is left running.
  for (let t = 0; t < 3_600_000 + TTL_MS + 3 * HEARTBEAT_MS; t += 60_000) {
    await vi.advanceTimersByTimeAsync(60_000);
    invariants();
  }
  expect(cloud.list().filter((x) => x.pool === pool.name)).toEqual([]);
  await agent.stop();
  await transport.close();
}

describe('buying nodes', () => {
  it('launches no more than planned, and never keeps an idle instance past its TTL', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 12 }), (steps) => check(steps)),
      { numRuns: 40 },
    );
  });
});
