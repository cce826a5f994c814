import { describe, expect, it } from 'vitest';
import { loadPlatform } from '../policies/index.ts';
import { costReport, DIMENSIONS } from './cost-report.ts';
import type { LedgerEntry, NodeLife, TaskUsage } from './ledger.ts';

const H = 3_600_000;
const T0 = Date.UTC(2026, 10, 2, 0, 0, 0);

const node = (kind: NodeLife['kind'], at: number, over: Partial<NodeLife> = {}): NodeLife => ({
  kind,
  at,
  cluster: 'aws',
  pool: 'cpu-spot',
  node: 'n1',
  instanceType: 'm7i.2xlarge',
  capacityType: 'spot',
  gpuModel: null,
  gpuCount: 0,
  pricePerHour: 0.4,
  ...over,
});
const usage = (start: number, end: number, over: Partial<TaskUsage> = {}): TaskUsage => ({
  kind: 'usage',
  at: end,
  lease: `l-${start}`,
  request: `r-${start}`,
  cluster: 'aws',
  pool: 'cpu-spot',
  node: 'n1',
  instanceType: 'm7i.2xlarge',
  capacityType: 'spot',
  gpuModel: null,
  gpus: 0,
  cpuMilli: 2000,
  memoryMiB: 8192,
  share: 0.25,
  nodePricePerHour: 0.4,
  team: 'ml',
  workflow: 'nightly',
  run: 'run-1',
  task: 'prep',
  attempt: 0,
  start,
  end,
  ended: 'succeeded',
  ...over,
});

describe('cost report', () => {
  // One spot node up 10 hours: two tasks of a quarter node for 4 hours, one of half a node for 2.
  const entries: LedgerEntry[] = [
    node('node-start', T0),
    usage(T0, T0 + 4 * H),
    usage(T0 + H, T0 + 5 * H, { team: 'research', workflow: 'train', run: 'run-2' }),
    usage(T0 + 6 * H, T0 + 8 * H, { share: 0.5, task: 'train' }),
    node('node-end', T0 + 10 * H, { ended: 'gone' }),
  ];

  it('charges tasks their dominant share of the node and shows the rest as idle', () => {
    const r = costReport(entries, { by: ['team'], since: T0, until: T0 + 24 * H });
    // Node: $0.40 × 10 h = $4.00. Tasks: 0.1 × 4 + 0.1 × 4 + 0.2 × 2 = $1.20. Idle: $2.80.
    expect(r.totals.costUsd).toBeCloseTo(4, 10);
    expect(r.totals.taskUsd).toBeCloseTo(1.2, 10);
    expect(r.totals.idleUsd).toBeCloseTo(2.8, 10);
    expect(r.rows.map((x) => [x.key.team, Number(x.costUsd.toFixed(6))])).toEqual([
      ['(idle)', 2.8],
      ['ml', 0.8],
      ['research', 0.4],
    ]);
    expect(r.totals.executions).toBe(3);
    expect(r.rows.map((x) => x.executions)).toEqual([0, 2, 1]);
  });

  it('totals equal the sum of the rows for every grouping', () => {
    for (const d of DIMENSIONS) {
      const r = costReport(entries, { by: [d], since: T0, until: T0 + 24 * H });
      const sum = r.rows.reduce((a, x) => a + x.costUsd, 0);
      expect(Math.round(sum * 100), d).toBe(Math.round(r.totals.costUsd * 100));
    }
  });

  it('clips to the window', () => {
    const r = costReport(entries, { by: ['team'], since: T0 + 2 * H, until: T0 + 7 * H });
    // Node 5 h = $2.00; ml 2 h + 1 h × half-share... : 0.1×2 + 0.2×1 = 0.4; research 0.1×3 = 0.3.
    expect(r.totals.costUsd).toBeCloseTo(2, 10);
    expect(r.rows.find((x) => x.key.team === 'ml')!.costUsd).toBeCloseTo(0.4, 10);
    expect(r.rows.find((x) => x.key.team === 'research')!.costUsd).toBeCloseTo(0.3, 10);
  });

  it('never charges tasks more than their node: overlapping shares are scaled down', () => {
    const over: LedgerEntry[] = [
      node('node-start', T0),
      usage(T0, T0 + H, { share: 0.7 }),
      usage(T0, T0 + H, { share: 0.6, team: 'research' }),
      node('node-end', T0 + H),
    ];
    const r = costReport(over, { by: ['team'], since: T0, until: T0 + H });
    expect(r.totals.costUsd).toBeCloseTo(0.4, 10);
    expect(r.totals.idleUsd).toBe(0);
    expect(r.rows.find((x) => x.key.team === 'ml')!.costUsd).toBeCloseTo((0.4 * 0.7) / 1.3, 10);
  });

  it('prices the same work on-demand, and splits spend by day', () => {
    const { platform } = loadPlatform(['test/fixtures/platform']);
    const r = costReport(entries, { by: ['team'], since: T0, until: T0 + 48 * H, platform });
    const od = platform.pools.find(
      (p) => p.instanceType === 'm7i.2xlarge' && p.capacityType === 'on-demand',
    )!.price;
    expect(r.totals.onDemandUsd).toBeCloseTo((4 * od) / 0.4, 8);
    expect(r.totals.spotSavingsUsd).toBeCloseTo(r.totals.onDemandUsd - 4, 8);
    expect(r.days.map((d) => d.day)).toEqual(['2026-11-02']);
    expect(r.totals.greedyUsd).toBeGreaterThan(0);
    // A node still up at the end of the window is charged until then.
    const open = costReport([node('node-start', T0)], { by: ['pool'], since: T0, until: T0 + 30 * H });
    expect(open.totals.idleUsd).toBeCloseTo(0.4 * 30, 8);
    expect(open.days.map((d) => [d.day, Number(d.values['cpu-spot']!.toFixed(6))])).toEqual([
      ['2026-11-02', 9.6],
      ['2026-11-03', 2.4],
    ]);
  });
});
