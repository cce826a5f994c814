import { describe, expect, it } from 'vitest';
import { loadPlatform } from '../policies/index.ts';
import { Budgets } from './budgets.ts';
import type { TaskUsage } from './ledger.ts';
import type { LeaseRecord, RequestRecord } from './records.ts';

const { platform } = loadPlatform(['test/fixtures/budget-platform']);
const now = Date.UTC(2026, 10, 20);

function request(id: string, cpu = 2): RequestRecord {
  return {
    requestId: id,
    team: 'ml',
    resources: {
      cpuMilli: cpu * 1000,
      memoryMiB: cpu * 4096,
      gpu: [],
      spot: undefined,
      durationSeconds: 3600,
      profile: undefined,
    },
    override: false,
    work: { kind: 'sim', durationMs: 1, outcome: 'succeeded' },
    state: 'running',
    attempt: 0,
    createdAt: now,
    updatedAt: now,
  };
}

const usage = (cost: number, end: number): TaskUsage =>
  ({ kind: 'usage', team: 'ml', nodePricePerHour: cost, share: 1, start: end - 3_600_000, end }) as TaskUsage;

describe('monthly budgets', () => {
  it("holds a team once this month's spend and what its running work committed reach the cap", () => {
    const b = new Budgets(platform);
    b.record(usage(0.3, now - 1000));
    b.record(usage(5, Date.UTC(2026, 9, 30))); // last month: does not count
    expect(b.spent('ml', now)).toBeCloseTo(0.3, 10);
    const running: LeaseRecord = {
      requestId: 'r1',
      pricePerHour: 0.25,
      placedAt: now,
      startedAt: now,
    } as LeaseRecord;
    const requests = new Map([['r1', request('r1')]]);
    const check = b.check('ml', [running], requests, now);
    expect(check.held).toBe(
      'team ml has used its monthly budget of $0.50 (policy ml-budget): $0.30 spent and $0.25 committed this month',
    );
    expect(check.alerts.map((a) => a.threshold)).toEqual([0.5, 1]);
    // Alerts fire once per month and threshold.
    expect(b.check('ml', [running], requests, now).alerts).toEqual([]);
    expect(b.check('ml', [], requests, now).held).toBeUndefined();
  });

  it("prices a request at its share of the cheapest pool the team's policy allows", () => {
    const b = new Budgets(platform);
    // Spot is never allowed: the cheapest on-demand 8-vCPU, 32 GiB node, a quarter of it, for an hour.
    const cheapest = Math.min(
      ...platform.pools.filter((p) => p.capacityType !== 'spot' && p.gpuCount === 0).map((p) => p.price),
    );
    expect(b.leastCost(request('r2'))).toBeCloseTo(cheapest / 4, 10);
  });
});
