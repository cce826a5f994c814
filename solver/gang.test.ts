import { describe, expect, it } from 'vitest';
import { makePolicy, makePool, makeTasks } from '../test/builders.ts';
import { createJsLpBackend, planBatch, type TaskRequest } from './index.ts';

/** A gang of `size` members of 96 cpu / 8 H100 each. */
function gang(id: string, size: number, extra: Partial<TaskRequest> = {}): TaskRequest[] {
  return makeTasks(id, size, {
    team: 'research',
    cpuMilli: 96_000,
    memoryMiB: 512 * 1024,
    gpu: [{ model: 'H100', count: 8 }],
    ...extra,
  }).map((t, rank) => ({ ...t, gang: { id, size, rank } }));
}
const h100 = (id: string) => makePool(id).cpu(192).memoryGi(2048).gpus('H100', 8);
const policies = [makePolicy('research')];
const backends = { js: createJsLpBackend() };

describe('gangs in the solver', () => {
  it('puts a 4-node gang on distinct nodes of one pool, running nodes first, the rest new', () => {
    const pools = [h100('aws/h100').price(98).running(1).obj(), h100('gcp/h100').price(88).maxNew(3).obj()];
    const p = planBatch(
      { pools },
      [...gang('train', 4), ...makeTasks('etl', 2, { team: 'research' })],
      policies,
      { backends },
    );
    const members = p.placements.filter((x) => x.taskId.startsWith('train'));
    expect(members.map((m) => m.poolId)).toEqual(Array(4).fill('aws/h100'));
    expect(new Set(members.map((m) => m.node)).size).toBe(4);
    // Rank 0 goes to the running node: its address is known before the new nodes come up.
    expect(members[0]).toMatchObject({ taskId: 'train-0', node: 'h100-0', newNode: false });
    expect(members.slice(1).every((m) => m.newNode)).toBe(true);
    expect(p.newNodes.find((n) => n.poolId === 'aws/h100')?.count).toBe(3);
    expect(p.gangs?.[0]).toMatchObject({
      gang: 'train',
      size: 4,
      chosen: { poolId: 'aws/h100', existing: 1, added: 3 },
    });
    // The rest of the batch is planned too, on what the gang left.
    expect(p.placements.filter((x) => x.taskId.startsWith('etl'))).toHaveLength(2);
  });

  it('leaves the whole gang unplaced when no pool has room for every member', () => {
    const pools = [h100('aws/h100').maxNew(3).obj(), h100('gcp/h100').maxNew(2).obj()];
    const p = planBatch({ pools }, gang('train', 4), policies, { backends });
    expect(p.placements).toEqual([]);
    expect(p.newNodes).toEqual([]);
    expect(p.unplaced.map((u) => [u.taskId, u.reason.kind])).toEqual(
      [0, 1, 2, 3].map((r) => [`train-${r}`, 'capacity']),
    );
    expect(p.unplaced[0]!.reason.detail).toContain('room for 3 of the gang');
  });

  it('does not split a gang across pools even when that would fit', () => {
    const pools = [h100('aws/h100').maxNew(2).obj(), h100('aws/h100b').maxNew(2).obj()];
    const p = planBatch({ pools }, gang('train', 4), policies, { backends });
    expect(p.placements).toHaveLength(0);
    expect(p.unplaced).toHaveLength(4);
  });

  it('holds the gang on a quota it would cross as a whole', () => {
    const pools = [h100('aws/h100').obj()];
    const quota = [makePolicy('research', { quotas: [{ resource: 'gpu', model: 'H100', nominal: 24 }] })];
    const p = planBatch({ pools }, gang('train', 4), quota, { backends });
    expect(p.placements).toHaveLength(0);
    expect(new Set(p.unplaced.map((u) => u.reason.kind))).toEqual(new Set(['quota']));
  });

  it('waits for members not yet in the batch', () => {
    const pools = [h100('aws/h100').obj()];
    const p = planBatch({ pools }, gang('train', 4).slice(0, 3), policies, { backends });
    expect(p.placements).toHaveLength(0);
    expect(p.unplaced[0]!.reason.detail).toContain('3 of its 4 members');
  });

  it('picks the cheapest pool that takes the whole gang and prices each member', () => {
    const pools = [h100('aws/h100').price(98).obj(), h100('gcp/h100').price(88).obj()];
    const p = planBatch({ pools }, gang('train', 2), policies, { backends });
    expect(p.placements.map((x) => [x.poolId, x.pricePerHour])).toEqual([
      ['gcp/h100', 88],
      ['gcp/h100', 88],
    ]);
    expect(p.cost.perHour).toBe(176);
  });
});
