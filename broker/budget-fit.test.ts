import { describe, expect, it } from 'vitest';
import type { Placement } from '../solver/index.ts';
import { placementsOverBudget } from './budget-fit.ts';
import type { RequestRecord } from './records.ts';

const request = (id: string, team: string, hours: number, gang?: string): RequestRecord =>
  ({
    requestId: id,
    team,
    resources: { durationSeconds: hours * 3600 },
    ...(gang ? { gang: { id: gang, rank: 0, size: 2 } } : {}),
  }) as RequestRecord;

const placed = (taskId: string, pricePerHour: number): Placement => ({
  taskId,
  cluster: 'c',
  pool: 'p',
  poolId: 'c/p',
  node: `n-${taskId}`,
  newNode: true,
  pricePerHour,
});

describe('placements past a monthly budget', () => {
  it('keeps the cheapest within what is left and takes back the rest, naming the budget', () => {
    const requests = new Map(
      [request('a', 'ml', 1), request('b', 'ml', 1), request('c', 'ml', 2), request('d', 'other', 10)].map(
        (r) => [r.requestId, r],
      ),
    );
    // a: $4.10, b: $0.40, c: $0.80 (two hours at $0.40); 'other' has no monthly budget.
    const over = placementsOverBudget(
      [placed('a', 4.1), placed('b', 0.4), placed('c', 0.4), placed('d', 98)],
      requests,
      new Map([['ml', { left: 2, cap: 20, policy: 'month' }]]),
    );
    expect([...over.keys()]).toEqual(['a']);
    expect(over.get('a')).toBe(
      "placed, it would commit $4.10 and cross team ml's monthly budget of $20.00 (policy month): $0.8000 left",
    );
  });

  it('takes back a gang whole', () => {
    const requests = new Map(
      [request('g0', 'ml', 1, 'g'), request('g1', 'ml', 1, 'g')].map((r) => [r.requestId, r]),
    );
    const over = placementsOverBudget(
      [placed('g0', 1), placed('g1', 1)],
      requests,
      new Map([['ml', { left: 1.5, cap: 20, policy: 'month' }]]),
    );
    expect([...over.keys()].sort()).toEqual(['g0', 'g1']);
  });
});
