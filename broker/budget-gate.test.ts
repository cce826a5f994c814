import { describe, expect, it } from 'vitest';
import type { Placement } from '../solver/index.ts';
import { trimToBudgets } from './budget-gate.ts';
import type { RequestRecord } from './records.ts';
import { requestRecord } from './test-builders.ts';

const request = (id: string, team: string, gang?: RequestRecord['gang']): RequestRecord => ({
  ...requestRecord(id, team, 7200),
  ...(gang ? { gang } : {}),
});

const placed = (taskId: string, pricePerHour: number, node = `n-${taskId}`): Placement => ({
  taskId,
  cluster: 'c',
  pool: 'p',
  poolId: 'c/p',
  node,
  newNode: false,
  pricePerHour,
});

describe('placements checked against monthly budgets at their price', () => {
  it('keeps placements in batch order while their declared-duration commitment fits, holds the rest', () => {
    const batch = [request('a', 'ml'), request('b', 'ml'), request('c', 'ml'), request('free', 'other')];
    const room = new Map([['ml', { left: 5, cap: 20, policy: 'ml-budget' }]]);
    // Two hours each: a commits $4, b would take $8 more (over), c $0.50 still fits after a.
    const { kept, over } = trimToBudgets(
      [placed('c', 0.25), placed('b', 4), placed('a', 2), placed('free', 100)],
      batch,
      room,
    );
    expect(kept.map((p) => p.taskId).sort()).toEqual(['a', 'c', 'free']);
    expect([...over.keys()]).toEqual(['b']);
    expect(over.get('b')).toBe(
      "at its planned price ($8.00 for its declared duration) it would cross team ml's monthly budget of $20.00 (policy ml-budget): $1.00 left",
    );
  });

  it('takes a gang out whole when its members together do not fit', () => {
    const gang = (rank: number) => ({ id: 'g', rank, size: 2 });
    const batch = [request('g0', 'ml', gang(0)), request('g1', 'ml', gang(1))];
    const room = new Map([['ml', { left: 5, cap: 20, policy: 'ml-budget' }]]);
    const { kept, over } = trimToBudgets([placed('g0', 2), placed('g1', 2)], batch, room);
    expect(kept).toEqual([]);
    expect([...over.keys()].sort()).toEqual(['g0', 'g1']);
  });

  it('changes nothing for teams without a monthly budget', () => {
    const batch = [request('x', 'other')];
    expect(trimToBudgets([placed('x', 1000)], batch, new Map()).kept).toHaveLength(1);
  });
});
