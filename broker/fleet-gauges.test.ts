import { describe, expect, it } from 'vitest';
import { loadPlatform } from '../policies/index.ts';
import type { LeaseMsg, Reason } from '../protocol/index.ts';
import { spendOf } from './lease-spend.ts';
import { FleetGauges, type Fleet, heldReason, nodeState, observePlan } from './fleet-gauges.ts';
import type { ClusterState } from './inventory.ts';
import { createBrokerMetrics } from './metrics.ts';
import type { LeaseRecord, RequestRecord } from './records.ts';

const { platform } = loadPlatform(['test/fixtures/platform']);
const aws = platform.clusters.find((c) => c.name === 'sim-aws')!;
const pool = (name: string) => platform.pools.find((p) => p.cluster === 'sim-aws' && p.name === name)!;

function cluster(
  nodes: { name: string; pool: string; ready: boolean; plannedId?: string }[],
  planned: [string, { pool: string; at: number }][],
): ClusterState {
  return {
    name: 'sim-aws',
    declared: aws,
    healthy: true,
    draining: false,
    nodes: new Map(
      nodes.map((n) => [
        n.name,
        { ...n, cpuMilli: 8000, memoryMiB: 32768, gpuCount: 0, capacityType: pool(n.pool).capacityType },
      ]),
    ),
    planned: new Map(planned),
    exhausted: new Map(),
  };
}

function lease(id: string, poolName: string, pricePerHour: number, startedAt?: number): LeaseRecord {
  const p = pool(poolName);
  const msg: LeaseMsg = {
    leaseId: id,
    requestId: `r-${id}`,
    cluster: 'sim-aws',
    pool: poolName,
    node: 'n1',
    pricePerHour,
    cpuMilli: 2000,
    memoryMiB: 4096,
    gpuMilli: 0,
    gpuModel: null,
    capacityType: p.capacityType,
    expiresAt: 1e13,
    attempt: 0,
    why: 'test',
    work: { kind: 'sim', durationMs: 1, outcome: 'succeeded' },
  };
  return { ...msg, state: 'running', placedAt: 0, ...(startedAt !== undefined ? { startedAt } : {}) };
}

/** A request record; a reason given as data is a hold (as a cycle or a budget records it), text is not. */
function request(id: string, state: RequestRecord['state'], why?: Reason | string): RequestRecord {
  const reason = typeof why === 'string' ? why : why && `${why.kind}: ${why.detail}`;
  return {
    requestId: id,
    team: 'ml',
    resources: {
      cpuMilli: 2000,
      memoryMiB: 4096,
      gpu: [],
      spot: undefined,
      durationSeconds: 600,
      profile: undefined,
    },
    override: false,
    work: { kind: 'sim', durationMs: 1, outcome: 'succeeded' },
    state,
    reason,
    ...(typeof why === 'object' ? { held: why } : {}),
    attempt: 0,
    createdAt: 0,
    updatedAt: 0,
  };
}

function fleet(over: Partial<Fleet>): Fleet {
  return {
    now: 0,
    clusters: [],
    nodeUse: new Map(),
    spend: spendOf([], () => 'ml'),
    requests: new Map(),
    pending: [],
    pool: (c, p) => platform.pools.find((x) => x.cluster === c && x.name === p),
    onDemand: new Map([['m7i.2xlarge', 0.4]]),
    teams: ['ml'],
    spentThisMonth: () => 0,
    budgets: [],
    timeScale: 1,
    ...over,
  };
}

async function values(metric: { get(): Promise<{ values: { labels: object; value: number }[] }> }) {
  return Object.fromEntries(
    (await metric.get()).values.map((v) => [Object.values(v.labels).join('|'), v.value]),
  ) as Record<string, number>;
}

describe('heldReason and nodeState', () => {
  it.each([
    [{ kind: 'capacity', detail: 'every compatible pool is full' }, 'capacity'],
    [{ kind: 'quota', detail: 'policy ml: gpu 4 is used up' }, 'quota'],
    [{ kind: 'budget', detail: 'team ml has used its monthly budget of $0.50' }, 'budget'],
    [{ kind: 'policy', detail: 'no compatible pool (region)' }, 'policy'],
    [{ kind: 'priority', detail: 'higher-priority work took the room' }, 'other'],
    [{ kind: 'cost', detail: 'the detail says policy: but the kind decides' }, 'other'],
    [undefined, undefined],
  ] as const)('%j → %s', (held, kind) => {
    expect(heldReason(held)).toBe(kind);
  });

  it.each([
    [false, false, 'launching'],
    [false, true, 'launching'],
    [true, true, 'ready'],
    [true, false, 'idle'],
  ] as const)('ready %s, with work %s → %s', (ready, busy, state) => {
    expect(nodeState({ ready }, busy)).toBe(state);
  });
});

describe('FleetGauges', () => {
  it('counts nodes by pool and state, prices those up, and times the oldest not ready across its planned id', async () => {
    const metrics = createBrokerMetrics();
    const gauges = new FleetGauges(metrics);
    gauges.update(fleet({ now: 1000, clusters: [cluster([], [['p0', { pool: 'cpu-spot', at: 0 }]])] }));
    expect((await values(metrics.nodes))['sim-aws|cpu-spot|planned']).toBe(1);
    expect((await values(metrics.nodesNotReadyOldest))['sim-aws|cpu-spot']).toBe(1);

    // p0 is now a launching node; n1 has work, n2 none; p1 asked for since 60 s.
    const now = 61_000;
    const c = cluster(
      [
        { name: 'n1', pool: 'cpu-od', ready: true },
        { name: 'n2', pool: 'cpu-od', ready: true },
        { name: 'i-3', pool: 'cpu-spot', ready: false, plannedId: 'p0' },
      ],
      [['p1', { pool: 'cpu-spot', at: 60_000 }]],
    );
    gauges.update(fleet({ now, clusters: [c], nodeUse: new Map([['sim-aws|n1', { cpu: 2000, gpu: 0 }]]) }));
    expect(await values(metrics.nodes)).toMatchObject({
      'sim-aws|cpu-od|ready': 1,
      'sim-aws|cpu-od|idle': 1,
      'sim-aws|cpu-od|launching': 0,
      'sim-aws|cpu-spot|launching': 1,
      'sim-aws|cpu-spot|planned': 1,
      'sim-aws|cpu-spot|idle': 0,
    });
    // The launching node has waited since it was planned, at 0.
    expect(await values(metrics.nodesNotReadyOldest)).toEqual({
      'sim-aws|cpu-spot': 61,
      'sim-aws|cpu-od': 0,
    });
    const prices = await values(metrics.nodesPerHour);
    expect(prices['sim-aws|cpu-od|on-demand']).toBeCloseTo(2 * pool('cpu-od').price, 9);
    expect(prices['sim-aws|cpu-spot|spot']).toBeCloseTo(pool('cpu-spot').price, 9);
    // Free capacity counts ready nodes only, less what leases use.
    expect((await values(metrics.clusterFreeCpu))['sim-aws']).toBe(14);
    expect((await values(metrics.clusterHealthy))['sim-aws']).toBe(1);

    // It came up: only p1 is waiting now.
    c.nodes.get('i-3')!.ready = true;
    gauges.update(fleet({ now: 62_000, clusters: [c] }));
    expect((await values(metrics.nodesNotReadyOldest))['sim-aws|cpu-spot']).toBe(2);
  });

  it('sums spend by team, cluster, pool and capacity type, with its on-demand price', async () => {
    const metrics = createBrokerMetrics();
    const requests = new Map([
      ['r-a', request('r-a', 'running')],
      ['r-b', request('r-b', 'running')],
      ['r-c', request('r-c', 'running')],
    ]);
    new FleetGauges(metrics).update(
      fleet({
        spend: spendOf(
          [lease('a', 'cpu-spot', 0.1), lease('b', 'cpu-spot', 0.2), lease('c', 'cpu-od', 0.25)],
          () => 'ml',
        ),
        requests,
      }),
    );
    const spend = await values(metrics.spendPerHour);
    expect(spend['ml|sim-aws|cpu-spot|spot']).toBeCloseTo(0.3, 9);
    expect(spend['ml|sim-aws|cpu-od|on-demand']).toBeCloseTo(0.25, 9);
    const od = await values(metrics.onDemandPerHour);
    expect(od['ml|sim-aws|cpu-spot|spot']).toBeCloseTo((0.3 * 0.4) / pool('cpu-spot').price, 9);
    expect(od['ml|sim-aws|cpu-od|on-demand']).toBeCloseTo(0.25, 9);
    expect((await metrics.activeLeases.get()).values[0]!.value).toBe(3);
  });

  it('adds running work’s cost so far to what ended this month, and reports each monthly budget', async () => {
    const metrics = createBrokerMetrics();
    const now = 10 * 3_600_000;
    new FleetGauges(metrics).update(
      fleet({
        now,
        // Two $/h for half an hour, at a time scale of 2: two simulated dollars.
        spend: spendOf([lease('a', 'cpu-od', 2, now - 1_800_000), lease('b', 'cpu-od', 5)], () => 'ml'),
        requests: new Map([
          ['r-a', request('r-a', 'running')],
          ['r-b', request('r-b', 'placed')],
        ]),
        spentThisMonth: (team) => (team === 'ml' ? 5 : 0),
        timeScale: 2,
        budgets: [
          {
            team: 'ml',
            policy: 'ml',
            perMonth: { cap: 10, month: '1970-01', spent: 5, committed: 3, remaining: 2 },
          },
        ],
      }),
    );
    expect(await values(metrics.teamSpendMonth)).toEqual({ ml: 7 });
    expect(await values(metrics.teamBudgetMonth)).toEqual({ 'ml|ml': 10 });
    expect(await values(metrics.budgetUsed)).toEqual({ 'ml|ml': 0.8 });
  });

  it('counts held requests by reason and times the longest hold, through a release and a new reason', async () => {
    const metrics = createBrokerMetrics();
    const gauges = new FleetGauges(metrics);
    const requests = new Map([
      ['a', request('a', 'pending', { kind: 'capacity', detail: 'every compatible pool is full' })],
      ['b', request('b', 'pending', { kind: 'budget', detail: 'team ml has used its monthly budget' })],
      ['c', request('c', 'pending', 'lost: node n1 went away')],
      ['d', request('d', 'running')],
    ]);
    gauges.update(fleet({ now: 0, requests, pending: ['a', 'b', 'c', 'd'] }));
    requests.get('b')!.held = { kind: 'quota', detail: 'policy ml: cpu 8 is used up' };
    // Released to the queue between cycles, still pending with its reason: still held.
    gauges.update(fleet({ now: 30_000, requests, pending: ['b', 'a', 'c'] }));
    expect(await values(metrics.held)).toEqual({ capacity: 1, quota: 1, budget: 0, policy: 0, other: 0 });
    expect(await values(metrics.heldOldest)).toEqual({
      capacity: 30,
      quota: 30,
      budget: 0,
      policy: 0,
      other: 0,
    });
    // Placed: no longer held, and its time is forgotten.
    requests.get('a')!.state = 'placed';
    gauges.update(fleet({ now: 40_000, requests, pending: ['b'] }));
    requests.get('a')!.state = 'pending';
    gauges.update(fleet({ now: 50_000, requests, pending: ['a', 'b'] }));
    expect(await values(metrics.heldOldest)).toMatchObject({ capacity: 0, quota: 50 });
  });

  it('exports nothing of the fleet once cleared (a standby)', async () => {
    const metrics = createBrokerMetrics();
    const gauges = new FleetGauges(metrics);
    gauges.update(fleet({ clusters: [cluster([{ name: 'n1', pool: 'cpu-od', ready: true }], [])] }));
    gauges.clear();
    const text = await metrics.registry.metrics();
    expect(text).not.toMatch(/^gantry_(nodes|cluster_healthy|requests_held|team_spend_month_dollars)\{/m);
    expect(text).toMatch(/^gantry_broker_leader 0$/m);
  });
});

describe('observePlan', () => {
  it('records cost, bound and the FFD baseline, and the gap to the bound', async () => {
    const metrics = createBrokerMetrics();
    observePlan(metrics, { cost: { expected: 9, objective: 11 }, bound: 10, baseline: { objective: 14 } });
    expect(await values(metrics.planCost)).toEqual({ expected: 9, objective: 11, bound: 10, ffd: 14 });
    const gap = (await metrics.planGap.get()).values;
    expect(gap.find((v) => v.metricName === 'gantry_plan_gap_ratio_sum')?.value).toBeCloseTo(0.1, 9);
  });

  it('leaves the bound out of a cycle that had none', async () => {
    const metrics = createBrokerMetrics();
    observePlan(metrics, {
      cost: { expected: 1, objective: 1 },
      bound: Number.NaN,
      baseline: { objective: 1 },
    });
    expect(Object.keys(await values(metrics.planCost)).sort()).toEqual(['expected', 'ffd', 'objective']);
    const count = (await metrics.planGap.get()).values.find(
      (v) => v.metricName === 'gantry_plan_gap_ratio_count',
    );
    expect(count?.value).toBe(0);
  });
});
