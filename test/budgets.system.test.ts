/**
 * A seeded simulated month of a team with a monthly budget: tasks that run up to four times their
 * declared hour, spot and preemptions. Actual spend (the ledger's usage) never exceeds
 * the cap by more than one health tick of the team's running leases, in any calendar month.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterAll, describe, expect, it } from 'vitest';
import { createBroker, readLifecycle, type TaskUsage, usageCost } from '../broker/index.ts';
import { loadPlatform } from '../policies/index.ts';
import { defaultBackends } from '../solver/index.ts';
import { mulberry32 } from './random.ts';
import { eventually, startSystem, TestClient, type TestSystem } from './system.ts';

const SPEEDUP = 100_000;
const HEARTBEAT_MS = 40;
const CAP = 20;
const NODE_PRICE = 0.4032;

describe('a simulated month under a monthly budget', () => {
  let system: TestSystem;
  afterAll(() => system?.stop());

  it('spends within perMonth but for one tick, through overruns and preemptions', async () => {
    system = await startSystem('embedded', {
      platformDir: 'test/fixtures/spend-platform',
      speedup: SPEEDUP,
      heartbeatMs: HEARTBEAT_MS,
    });
    const client = new TestClient(system.transport);
    // A tick that runs late lets running leases go on unobserved for as long: the slack below counts the
    // longest stall of this process's event loop (broker, agents and clock share it), not only the period.
    const stalls = monitorEventLoopDelay({ resolution: 10 });
    stalls.enable();
    const random = mulberry32(12);
    const cloud = system.clouds.get('sim-aws')!;
    // 30 simulated days, a wave of tasks every simulated day (0.86 s).
    const waveMs = (24 * 3_600_000) / SPEEDUP;
    const ids: string[] = [];
    for (let wave = 0; wave < 30; wave++) {
      for (let i = 0; i < 8; i++) {
        const id = `m-${wave}-${i}`;
        ids.push(id);
        const hours = 0.5 + random() * 3.5;
        void client.request(
          id,
          { team: 'month', resources: {}, work: { kind: 'sim', durationMs: Math.round(hours * 3_600_000) } },
          120_000,
        );
      }
      await new Promise((r) => setTimeout(r, waveMs / 2));
      // A spot node reclaimed now and then.
      if (random() < 0.3)
        for (const n of system.broker.inventory.clusters.get('sim-aws')?.nodes.keys() ?? [])
          if (cloud.reclaimNode(n)) break;
      await new Promise((r) => setTimeout(r, waveMs / 2));
    }
    // Everything ends: done, or stopped by the budget, or held until the cap and then given up on.
    await eventually(() => system.broker.state.activeLeases() === 0, 30_000, 'no lease running');

    const byMonth = new Map<string, number>();
    let stopped = 0;
    for await (const e of readLifecycle(system.brokerStore)) {
      if (e.kind === 'usage' && (e as TaskUsage).team === 'month') {
        const u = e as TaskUsage;
        const month = new Date(u.end).toISOString().slice(0, 7);
        byMonth.set(month, (byMonth.get(month) ?? 0) + usageCost(u));
      }
      if (e.kind === 'lease' && e.state === 'failed' && e.reason?.startsWith('budget-overrun:')) stopped++;
    }
    // One tick (HEARTBEAT_MS / 2 of wall-clock time, and however late it ran) of every node the pools may
    // hold, running.
    stalls.disable();
    const tickHours = ((HEARTBEAT_MS / 2 + stalls.max / 1e6) / 3_600_000) * SPEEDUP;
    const slack = 16 * NODE_PRICE * tickHours;
    const total = [...byMonth.values()].reduce((a, b) => a + b, 0);
    console.log(
      `simulated month: spent ${[...byMonth].map(([m, v]) => `${m} $${v.toFixed(2)}`).join(', ')} of $${CAP}/month (slack $${slack.toFixed(2)}, longest stall ${(stalls.max / 1e6).toFixed(0)} ms), ${stopped} leases stopped at the cap`,
    );
    // Without the cap these tasks would spend about $190 at on-demand prices.
    expect(total).toBeGreaterThan(CAP * 0.8);
    for (const spent of byMonth.values()) expect(spent).toBeLessThanOrEqual(CAP + slack);
    expect(stopped).toBeGreaterThan(0);
  }, 120_000);
});

describe('holds end', () => {
  let system: TestSystem;
  afterAll(() => system?.stop());

  it('refuses a request no cluster could take while one drains; holds one the draining cluster could', async () => {
    system = await startSystem('embedded', { speedup: 1000 });
    const client = new TestClient(system.transport);
    const { decodeJson, encodeJson, subjects } = await import('../protocol/index.ts');
    const drained = await system.transport.request(subjects.admin('drain'), encodeJson({ name: 'sim-gcp' }));
    expect(decodeJson(drained.data)).toMatchObject({ ok: true });
    // No pool anywhere has an H200: refused with the reason, not held until the drain ends.
    const never = await client.request(
      'never',
      { resources: { cpu: 2, memory: '4Gi', gpu: 'H200:1' } },
      10_000,
    );
    expect(never).toMatchObject({ ok: false, error: { code: 'policy' } });
    expect(never.ok ? '' : never.error.message).toMatch(/^policy: no compatible pool \(/);
    // Only the draining cluster has L4s: it waits for it.
    void client.request('later', { resources: { cpu: 2, memory: '4Gi', gpu: 'L4:1' } }, 60_000);
    const later = () => system.broker.state.requests.get('later');
    await eventually(() => later()?.reason !== undefined, 5000, 'held');
    expect(later()).toMatchObject({ state: 'pending' });
    expect(later()!.reason).toMatch(/^policy: /);
  }, 30_000);
});

describe('budget commitments survive a broker restart', () => {
  let system: TestSystem;
  afterAll(() => system?.stop());

  it('a lease extended past its declared hour keeps its extended commitment in a new broker', async () => {
    const speedup = 3600; // a simulated hour in a second
    system = await startSystem('embedded', {
      platformDir: 'test/fixtures/spend-platform',
      speedup,
      heartbeatMs: 200,
    });
    await eventually(() => system.broker.isLeader(), 10_000, 'the broker leads');
    const client = new TestClient(system.transport);
    // Declares the team's default hour, runs a day: the broker extends it every tick until the $20 cap.
    void client.request(
      'extended',
      { team: 'month', resources: {}, work: { kind: 'sim', durationMs: 24 * 3_600_000 } },
      120_000,
    );
    const lease = () =>
      [...system.broker.state.leases.values()].find(
        (l) => l.requestId === 'extended' && l.state === 'running',
      );
    await eventually(
      () => (lease()?.committedUntil ?? 0) > (lease()?.startedAt ?? Infinity) + 1000,
      20_000,
      'the lease extended past its declared hour',
    );
    const { leaseId, committedUntil } = lease()!;
    await system.broker.stop();
    const second = createBroker({
      transport: system.transport,
      store: system.brokerStore,
      platform: loadPlatform(['test/fixtures/spend-platform']).platform,
      backends: await defaultBackends(),
      heartbeatMs: 200,
      ledgerTimeScale: speedup,
    });
    try {
      await second.start();
      await eventually(() => second.state.leases.has(leaseId), 10_000, 'the new broker loaded the lease');
      // Not rebuilt from the declared hour: the commitment the first broker extended to, or later.
      expect(second.state.leases.get(leaseId)?.committedUntil).toBeGreaterThanOrEqual(committedUntil!);
    } finally {
      await second.stop();
    }
  }, 60_000);
});
