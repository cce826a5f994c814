import { describe, expect, it } from 'vitest';
import { makePolicy, makePool, makeTasks } from '../test/builders.ts';
import { chooseVictims, type VictimCandidate } from './index.ts';

const pool = makePool('c/cpu').running(2, { cpu: 8, memoryGi: 32 }).maxNew(0).obj();
const victim = (leaseId: string, node: string, extra: Partial<VictimCandidate> = {}): VictimCandidate => ({
  leaseId,
  team: 'batch',
  priority: 0,
  cluster: 'c',
  node,
  cpuMilli: 4000,
  memoryMiB: 16 * 1024,
  gpuMilli: 0,
  reworkCost: 1,
  ...extra,
});
const [request] = makeTasks('high', 1, {
  team: 'urgent',
  cpuMilli: 8000,
  memoryMiB: 16 * 1024,
  priority: 100,
});

describe('choosing victims for priority preemption', () => {
  const running = [
    victim('a', 'cpu-0', { reworkCost: 5 }),
    victim('b', 'cpu-0', { reworkCost: 6 }),
    victim('c', 'cpu-1', { reworkCost: 1 }),
    victim('d', 'cpu-1', { reworkCost: 2 }),
  ];

  it('frees one node at the least rework cost', () => {
    const c = chooseVictims(
      request!,
      [pool],
      running,
      makePolicy('urgent', { preemption: { withinTeam: false, lowerPriority: true } }),
    );
    expect(c?.victims.map((v) => v.leaseId)).toEqual(['c', 'd']);
    expect(c).toMatchObject({ node: 'cpu-1', reworkCost: 3, poolId: 'c/cpu' });
    expect(c?.detail).toContain("policy urgent allows preempting other teams' lower-priority work");
  });

  it.each([
    ['off by default', undefined],
    ['only within the team', { withinTeam: true, lowerPriority: false }],
  ])('stops no other team: %s', (_, preemption) => {
    const policy = makePolicy('urgent', preemption ? { preemption } : {});
    expect(chooseVictims(request!, [pool], running, policy)).toBeUndefined();
  });

  it('stops its own team only under withinTeam, and never work of equal or higher priority', () => {
    const own = running.map((v) => ({ ...v, team: 'urgent' }));
    const policy = makePolicy('urgent', { preemption: { withinTeam: true, lowerPriority: false } });
    expect(chooseVictims(request!, [pool], own, policy)?.victims).toHaveLength(2);
    const equal = own.map((v) => ({ ...v, priority: 100 }));
    expect(chooseVictims(request!, [pool], equal, policy)).toBeUndefined();
  });
});
