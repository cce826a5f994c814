import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { serveMetrics } from '../broker/index.ts';
import { encodeJson, subjects } from '../protocol/index.ts';
import { eventually, startSystem, TestClient, type TestSystem } from './system.ts';

// One suite, two transports: everything in one process, and separate connections to a real nats-server
// with the broker's state in JetStream.
describe.each(['embedded', 'nats'] as const)('broker and agents (%s)', (mode) => {
  let gantry: TestSystem | undefined;
  afterEach(async () => {
    await gantry?.stop();
    gantry = undefined;
  });

  async function start(speedup = 1000) {
    gantry = await startSystem(mode, { speedup });
    return { gantry, client: new TestClient(gantry.transport) };
  }

  it('leases, launches and finishes 500 tasks, each exactly once', async () => {
    const { client } = await start();
    const ids = Array.from({ length: 500 }, (_, i) => `t-${i}`);
    const replies = await Promise.all(ids.map((id) => client.request(id)));
    expect(replies.filter((r) => r.ok)).toHaveLength(500);
    await client.finished(ids);
    expect(ids.map((id) => client.successes(id))).toEqual(ids.map(() => 1));
    // Cheapest first: spot m7i ($0.12/h) beats on-demand n2 and m7i for 2-cpu tasks.
    const pools = new Set(replies.map((r) => (r.ok ? `${r.lease.cluster}/${r.lease.pool}` : '')));
    expect(pools.has('sim-aws/cpu-spot') || pools.has('sim-aws/cpu-od')).toBe(true);
  });

  it('each lease carries why the solver put it there, as data, and the broker keeps it', async () => {
    const { gantry, client } = await start();
    const reply = await client.request('why-1');
    if (!reply.ok) throw new Error(`refused: ${reply.error.message}`);
    const e = reply.lease.explanation;
    expect(e).toMatchObject({ group: 'why', poolId: `${reply.lease.cluster}/${reply.lease.pool}` });
    expect(['cost', 'preference']).toContain(e?.why.kind);
    expect(reply.lease.why).toContain(e!.why.detail);
    expect(gantry.broker.state.leases.get(reply.lease.leaseId)?.explanation).toEqual(e);
  });

  it('answers a retried request with the same lease (idempotent by request id)', async () => {
    const { client } = await start();
    const [a, b] = await Promise.all([client.request('same'), client.request('same')]);
    expect(a.ok && b.ok && a.lease.leaseId === b.lease.leaseId).toBe(true);
  });

  it('refuses an override beyond policy with the policy name and the field', async () => {
    const { client } = await start();
    const reply = await client.request('big', { override: true, resources: { cpu: 2, memory: '256Gi' } });
    expect(reply).toEqual({
      ok: false,
      error: {
        code: 'policy',
        message: 'override exceeds policy ml: memory 256Gi > limit 64Gi',
        field: 'resources.memory',
      },
    });
  });

  it('answers malformed messages with an error and keeps serving', async () => {
    const { gantry, client } = await start();
    const messages = [
      new TextEncoder().encode('{not json'),
      encodeJson({ requestId: 'x' }),
      encodeJson({ requestId: 'y', team: 'ml', work: { kind: 'teleport' } }),
      encodeJson({ requestId: 'z', team: 'nobody', work: { kind: 'sim', durationMs: 1 } }),
      // An id that would not fit in a subject (`gantry.v1.task.<id>.state`).
      encodeJson({ requestId: 'job 1.*', team: 'ml', work: { kind: 'sim', durationMs: 1 } }),
    ];
    const answers = await Promise.all(
      messages.map((b, i) =>
        gantry.transport
          .request(subjects.request(i === 3 ? 'nobody' : 'ml'), b)
          .then((m) => JSON.parse(new TextDecoder().decode(m.data))),
      ),
    );
    expect(answers.map((a) => [a.ok, a.error.code])).toEqual([
      [false, 'bad-json'],
      [false, 'bad-message'],
      [false, 'bad-message'],
      [false, 'no-policy'],
      [false, 'bad-message'],
    ]);
    expect(answers[4].error.field).toBe('requestId');
    expect(answers[1].error.message).toBe('team: expected string, received undefined');
    // A heartbeat published on another cluster's subject is refused, not applied.
    gantry.transport.publish(
      subjects.heartbeat('sim-gcp'),
      encodeJson({ cluster: 'sim-aws', agentId: 'evil', seq: 0, nodes: [], activeCount: 0 }),
    );
    await new Promise((r) => setTimeout(r, 50));
    const bad = (await gantry.broker.metrics.badMessages.get()).values.reduce((n, v) => n + v.value, 0);
    expect(bad).toBe(5); // four malformed requests and the foreign heartbeat (no-policy is a refusal)
    expect(gantry.broker.inventory.clusters.get('sim-aws')?.agentId).not.toBe('evil');
    const reply = await client.request('after');
    expect(reply.ok).toBe(true);
  });

  it('re-places the work of a cluster whose agent stops within two heartbeat intervals', async () => {
    // Speedup 100: new nodes take 0.9 s to come up, and each task runs 1.5 s.
    const { gantry, client } = await start(100);
    const ids = Array.from({ length: 20 }, (_, i) => `long-${i}`);
    const replies = await Promise.all(
      ids.map((id) => client.request(id, { work: { kind: 'sim', durationMs: 150_000 } })),
    );
    const victim = replies.find((r) => r.ok)!;
    if (!victim.ok) throw new Error('unreachable');
    const dead = victim.lease.cluster;
    const onDead = replies
      .filter((r) => r.ok && r.lease.cluster === dead)
      .map((r) => (r.ok ? r.lease.requestId : ''));
    await gantry.agents.find((a) => a.cluster === dead)!.stop();
    const stoppedAt = Date.now();
    await eventually(
      () => onDead.every((id) => (client.states.get(id) ?? []).includes('lost')),
      2000,
      'tasks marked lost',
    );
    expect(Date.now() - stoppedAt).toBeLessThan(2 * 100 + 150);
    await client.finished(onDead, 10_000);
    for (const id of onDead) {
      expect(client.successes(id)).toBe(1);
      const r = gantry.broker.state.requests.get(id)!;
      expect(gantry.broker.state.leases.get(r.leaseId!)!.cluster).not.toBe(dead);
    }
  });

  it('finishes every task when half the spot nodes are reclaimed, recovering them on other pools', async () => {
    const { gantry, client } = await start(100);
    const ids = Array.from({ length: 60 }, (_, i) => `spot-${i}`);
    const replies = await Promise.all(
      ids.map((id) => client.request(id, { work: { kind: 'sim', durationMs: 100_000 } })),
    );
    expect(replies.every((r) => r.ok)).toBe(true);
    const onSpot = replies
      .filter((r) => r.ok && r.lease.capacityType === 'spot')
      .map((r) => (r.ok ? r.lease.requestId : ''));
    expect(onSpot.length).toBeGreaterThan(0);
    await eventually(
      () =>
        gantry.clouds
          .get('sim-aws')!
          .list()
          .some((n) => n.ready && n.capacityType === 'spot'),
      5000,
      'spot nodes up',
    );
    const reclaimed = gantry.clouds.get('sim-aws')!.interrupt(0.5);
    expect(reclaimed.length).toBeGreaterThan(0);
    await client.finished(ids, 20_000);
    expect(ids.map((id) => client.successes(id))).toEqual(ids.map(() => 1));
    const preempted = ids.filter((id) => (client.states.get(id) ?? []).includes('preempted'));
    expect(preempted.length).toBeGreaterThan(0);
    for (const id of preempted) {
      // After a preemption the task is placed off spot.
      const r = gantry.broker.state.requests.get(id)!;
      expect(gantry.broker.state.leases.get(r.leaseId!)!.capacityType).not.toBe('spot');
    }
  });

  it('plans on other pools when the cloud cannot add nodes to one', async () => {
    const { gantry, client } = await start(1000);
    gantry.clouds
      .get('sim-aws')!
      .exhaust('cpu-spot', 'InsufficientInstanceCapacity: no m7i.2xlarge spot capacity');
    const ids = Array.from({ length: 30 }, (_, i) => `short-${i}`);
    const replies = await Promise.all(
      ids.map((id) => client.request(id, { resources: { cpu: 4, memory: '8Gi' } })),
    );
    expect(replies.every((r) => r.ok)).toBe(true);
    // The first plan bought cheap spot nodes; the cloud had none.
    expect(replies.some((r) => r.ok && r.lease.pool === 'cpu-spot')).toBe(true);
    await client.finished(ids, 20_000);
    expect(ids.map((id) => client.successes(id))).toEqual(ids.map(() => 1));
    const finalPools = ids.map((id) => {
      const r = gantry.broker.state.requests.get(id)!;
      return gantry.broker.state.leases.get(r.leaseId!)!.pool;
    });
    expect(finalPools).not.toContain('cpu-spot');
    expect(gantry.broker.inventory.clusters.get('sim-aws')!.exhausted.get('cpu-spot')?.reason).toMatch(
      /^InsufficientInstanceCapacity/,
    );
  });

  it('adds the nodes a plan needs, and removes them once idle past their TTL, never below the minimum', async () => {
    const { gantry, client } = await start(1000); // idle TTL 10m → 0.6 s, launch delay 90 s → 90 ms
    const ids = Array.from({ length: 40 }, (_, i) => `burst-${i}`);
    const replies = await Promise.all(
      ids.map((id) => client.request(id, { resources: { cpu: 4, memory: '8Gi' } })),
    );
    expect(replies.every((r) => r.ok)).toBe(true);
    await client.finished(ids);
    const aws = gantry.clouds.get('sim-aws')!;
    const peak = aws.list().length;
    expect(peak).toBeGreaterThan(1);
    await eventually(() => aws.list().length === 1, 10_000, 'idle nodes removed');
    // What is left is the on-demand pool's minimum, which was running from the start.
    expect(aws.list().map((n) => n.name)).toEqual(['cpu-od-0']);
  });

  it('serves Prometheus metrics: leases, queue, cluster health', async () => {
    const { gantry, client } = await start();
    const ids = Array.from({ length: 10 }, (_, i) => `m-${i}`);
    await Promise.all(ids.map((id) => client.request(id)));
    await client.finished(ids);
    const server = await serveMetrics(gantry.broker.metrics.registry, 0);
    try {
      const port = (server.address() as AddressInfo).port;
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(text).toMatch(/^gantry_leases_total 10$/m);
      expect(text).toMatch(/^gantry_queue_depth 0$/m);
      expect(text).toMatch(/^gantry_cluster_healthy\{cluster="sim-aws"\} 1$/m);
      expect(text).toMatch(/^gantry_cycle_seconds_count [1-9]/m);
    } finally {
      server.close();
    }
  });
});

describe('a spot-only cluster, embedded', () => {
  let gantry: TestSystem | undefined;
  afterEach(async () => {
    await gantry?.stop();
    gantry = undefined;
  });

  it('places work again on spot after a reclaim when no pool without spot could take it', async () => {
    gantry = await startSystem('embedded', {
      speedup: 1000,
      platformDir: 'test/fixtures/spot-only-platform',
    });
    const client = new TestClient(gantry.transport);
    const cloud = gantry.clouds.get('sim-spot')!;
    const reply = await client.request('only-spot', { work: { kind: 'sim', durationMs: 60_000 } });
    expect(reply).toMatchObject({ ok: true, lease: { capacityType: 'spot' } });
    await eventually(() => client.states.get('only-spot')?.includes('running') === true, 10_000, 'running');
    const node = reply.ok ? reply.lease.node : '';
    await eventually(() => cloud.list().some((n) => n.ready), 10_000, 'node up');
    expect(cloud.reclaimNode(cloud.list().find((n) => n.ready)!.name)).toBe(true);
    await client.finished(['only-spot'], 20_000);
    expect(client.states.get('only-spot')).toContain('preempted');
    expect(client.successes('only-spot')).toBe(1);
    const r = gantry.broker.state.requests.get('only-spot')!;
    const lease = gantry.broker.state.leases.get(r.leaseId!)!;
    expect(lease.capacityType).toBe('spot');
    expect(lease.actualNode ?? lease.node).not.toBe(node);
  });

  it('finds the nodes its cloud has, and the broker places the work it stopped again', async () => {
    gantry = await startSystem('embedded', {
      speedup: 1000,
      platformDir: 'test/fixtures/spot-only-platform',
    });
    const client = new TestClient(gantry.transport);
    const nodeNames = () =>
      gantry!.clouds
        .get('sim-spot')!
        .list()
        .map((n) => n.name)
        .sort();
    const ids = ['r-0', 'r-1', 'r-2', 'r-3'];
    for (const id of ids)
      void client.request(id, {
        resources: { cpu: 6, memory: '8Gi' },
        work: { kind: 'sim', durationMs: 120_000 },
      });
    await eventually(() => ids.every((id) => client.states.get(id)?.includes('running')), 10_000, 'running');
    const before = nodeNames();
    expect(before).toHaveLength(4);
    await gantry.restartAgent!('sim-spot');
    // The same four nodes, in the cloud and in the broker's inventory: none bought again.
    expect(nodeNames()).toEqual(before);
    await eventually(
      () => [...(gantry!.broker.inventory.clusters.get('sim-spot')?.nodes.keys() ?? [])].length === 4,
      5000,
      'the restarted agent reports its nodes',
    );
    await client.finished(ids, 30_000);
    expect(ids.map((id) => client.successes(id))).toEqual([1, 1, 1, 1]);
    expect(nodeNames()).toEqual(before);
  });
});
