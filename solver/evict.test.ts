import { describe, expect, it } from 'vitest';
import type { Policy } from '../policies/index.ts';
import { makePolicy, makePool, makeTasks } from '../test/builders.ts';
import { placeByEviction } from './evict.ts';
import { groupRequests, incompatibility, makeOption, type Option } from './groups.ts';
import { Ledger } from './ledger.ts';
import { type PackContext, Packer } from './pack.ts';
import type { PoolState, TaskRequest } from './types.ts';

function contextOf(pools: PoolState[], tasks: TaskRequest[], policies: Policy[]): PackContext {
  const groups = groupRequests(tasks, (team) => policies.find((p) => p.teams.includes(team)));
  const options: Option[] = [];
  const optionsByGroup = groups.map((g) => {
    const ids: number[] = [];
    pools.forEach((pool, pi) => {
      if (incompatibility(g, pool)) return;
      const o = makeOption(g, pool, pi);
      if (o.perNode === 0) return;
      ids.push(options.length);
      options.push(o);
    });
    return ids;
  });
  return { groups, pools, options, optionsByGroup, ledger: new Ledger(groups, pools, {}) };
}

/** An any-GPU task already on the only G1 node, and a task that needs G1 left over. */
function crowded(policy: Policy) {
  const pools = [
    makePool('onprem/g1').cpu(8).gpus('G1', 1).price(0).maxNew(0).running(1).obj(),
    makePool('c/l4').cpu(8).gpus('L4', 1).price(1).obj(),
  ];
  const tasks = [
    ...makeTasks('any', 1, { team: policy.teams[0]!, gpu: [{ model: '*', count: 1 }] }),
    ...makeTasks('g1', 1, { gpu: [{ model: 'G1', count: 1 }] }),
  ];
  const ctx = contextOf(pools, tasks, [policy, makePolicy('team-a')]);
  const packer = new Packer(ctx);
  const any = ctx.groups.find((g) => g.taskIds[0] === 'any-0')!;
  const g1 = ctx.groups.find((g) => g.taskIds[0] === 'g1-0')!;
  const onG1 = ctx.optionsByGroup[any.index]!.find((oi) => ctx.options[oi]!.pool === 0)!;
  expect(packer.place(onG1, packer.binsByPool[0]![0]!, 1)).toBe(1);
  const packing = {
    assignments: packer.assignments,
    bins: packer.usedBins(),
    unplaced: [{ group: g1.index, count: 1 }],
  };
  return { ctx, packer, packing, any, g1 };
}

describe('placeByEviction', () => {
  it('moves a task that can go elsewhere off the only node a constrained task fits', () => {
    const { ctx, packer, packing, any, g1 } = crowded(makePolicy('flex'));
    const out = placeByEviction(ctx, packer, packing);
    expect(out.unplaced).toEqual([]);
    const poolOf = (gi: number) =>
      out.assignments.filter((a) => ctx.options[a.option]!.group === gi).map((a) => a.bin.id);
    expect(poolOf(g1.index)).toEqual(['g1-0']);
    expect(poolOf(any.index)).toEqual(['new:c/l4#1']);
    // The G1 node's device went from one task to the other, and only one device was handed out.
    expect(packer.binsByPool[0]![0]!.gpuMilli).toEqual([0]);
  });

  it('leaves a task under a quota where it is (it might not be placed again)', () => {
    const quota: Policy = makePolicy('quota', {
      quotas: [{ resource: 'gpu', model: 'L4', nominal: 8 }],
    });
    const { ctx, packer, packing, g1 } = crowded(quota);
    const out = placeByEviction(ctx, packer, packing);
    expect(out.unplaced).toEqual([{ group: g1.index, count: 1 }]);
  });
});

describe('placeByEviction with only running nodes', () => {
  it('moves one constrained task to another running node of its models that has room', () => {
    const pools = [
      makePool('onprem/g1').cpu(8).gpus('G1', 1).price(0).maxNew(0).running(1).obj(),
      makePool('onprem/g2').cpu(8).gpus('G2', 1).price(0).maxNew(0).running(1).obj(),
    ];
    const tasks = [
      ...makeTasks('either', 1, {
        gpu: [
          { model: 'G1', count: 1 },
          { model: 'G2', count: 1 },
        ],
      }),
      ...makeTasks('g1', 1, { gpu: [{ model: 'G1', count: 1 }] }),
    ];
    const ctx = contextOf(pools, tasks, [makePolicy('team-a')]);
    const packer = new Packer(ctx);
    const either = ctx.groups.find((g) => g.taskIds[0] === 'either-0')!;
    const g1 = ctx.groups.find((g) => g.taskIds[0] === 'g1-0')!;
    const onG1 = ctx.optionsByGroup[either.index]!.find((oi) => ctx.options[oi]!.pool === 0)!;
    expect(packer.place(onG1, packer.binsByPool[0]![0]!, 1)).toBe(1);
    const out = placeByEviction(ctx, packer, {
      assignments: packer.assignments,
      bins: packer.usedBins(),
      unplaced: [{ group: g1.index, count: 1 }],
    });
    expect(out.unplaced).toEqual([]);
    const nodeOf = (gi: number) =>
      out.assignments.filter((a) => ctx.options[a.option]!.group === gi).map((a) => a.bin.id);
    expect(nodeOf(g1.index)).toEqual(['g1-0']);
    expect(nodeOf(either.index)).toEqual(['g2-0']);
  });
});
