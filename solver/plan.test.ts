import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Policy } from '../policies/index.ts';
import { makePolicy, makePool, makeTasks } from '../test/builders.ts';
import { assertFeasible } from '../test/feasibility.ts';
import {
  createJsLpBackend,
  loadHighsBackend,
  type LpBackend,
  plan,
  type Plan,
  type PoolState,
  type TaskRequest,
} from './index.ts';

interface Scenario {
  name: string;
  pools: PoolState[];
  tasks: TaskRequest[];
  policies: Policy[];
  check(p: Plan): void;
}

const nodesOf = (p: Plan) => Object.fromEntries(p.newNodes.map((n) => [n.poolId, n.count]));
const where = (p: Plan, prefix: string) =>
  p.placements.filter((x) => x.taskId.startsWith(prefix)).map((x) => x.poolId);

const SCENARIOS: Scenario[] = [
  {
    name: 'spot is cheaper but the policy forbids it',
    pools: [makePool('c/od').price(1).obj(), makePool('c/sp').spot().price(0.3).obj()],
    tasks: [
      ...makeTasks('safe', 4, { team: 'safe', cpuMilli: 8000 }),
      ...makeTasks('cheap', 4, { team: 'cheap', cpuMilli: 8000 }),
    ],
    policies: [makePolicy('safe', { spot: 'never' }), makePolicy('cheap')],
    check(p) {
      expect(where(p, 'safe')).toEqual(Array(4).fill('c/od'));
      expect(where(p, 'cheap')).toEqual(Array(4).fill('c/sp'));
      expect(nodesOf(p)).toEqual({ 'c/od': 4, 'c/sp': 4 });
      expect(p.cost.expected).toBeCloseTo(4 * 1 + 4 * 0.3, 9);
      expect(p.cost.perHour).toBeCloseTo(5.2, 9);
    },
  },
  {
    name: 'a quota forces the second choice',
    pools: [
      makePool('c/h100').cpu(96).gpus('H100', 8).price(10).obj(),
      makePool('c/a100').cpu(96).gpus('A100', 8).price(14).obj(),
    ],
    tasks: makeTasks('train', 2, {
      team: 't',
      gpu: [
        { model: 'H100', count: 8 },
        { model: 'A100', count: 8 },
      ],
    }),
    policies: [makePolicy('t', { quotas: [{ resource: 'gpu', model: 'H100', nominal: 8 }] })],
    check(p) {
      expect(nodesOf(p)).toEqual({ 'c/h100': 1, 'c/a100': 1 });
      expect(p.cost.expected).toBeCloseTo(24, 9);
      expect(p.groups[0]?.why.kind).toBe('quota');
      expect(p.groups[0]?.why.detail).toContain('policy t: H100 quota 8 GPUs');
      expect(p.groups[0]?.chosen.find((c) => c.poolId === 'c/a100')?.why.kind).toBe('quota');
    },
  },
  {
    name: 'one H100 node beats two A100 nodes',
    pools: [
      makePool('c/h100').cpu(96).gpus('H100', 8).price(20).obj(),
      makePool('c/a100').cpu(48).gpus('A100', 4).price(12).obj(),
    ],
    tasks: makeTasks('ft', 8, {
      gpu: [
        { model: 'H100', count: 1 },
        { model: 'A100', count: 1 },
      ],
    }),
    policies: [makePolicy('team-a')],
    check(p) {
      expect(nodesOf(p)).toEqual({ 'c/h100': 1 });
      expect(p.cost.expected).toBeCloseTo(20, 9);
      expect(p.groups[0]?.nextBest).toMatchObject({
        poolId: 'c/a100',
        whyNot: { kind: 'cost', detail: 'costs more per task' },
      });
      expect(p.groups[0]?.why.kind).toBe('cost');
    },
  },
  {
    name: 'CPU tasks do not strand the GPUs of a running node',
    pools: [
      makePool('c/gpu').cpu(16).memoryGi(64).gpus('L4', 4).price(4).running(1).obj(),
      makePool('c/cpu').cpu(8).price(0.5).obj(),
    ],
    tasks: [
      ...makeTasks('prep', 2, { cpuMilli: 8000 }),
      ...makeTasks('eval', 4, { cpuMilli: 4000, gpu: [{ model: 'L4', count: 1 }] }),
    ],
    policies: [makePolicy('team-a')],
    check(p) {
      expect(where(p, 'eval')).toEqual(Array(4).fill('c/gpu'));
      expect(p.placements.filter((x) => x.taskId.startsWith('eval')).every((x) => x.node === 'gpu-0')).toBe(
        true,
      );
      expect(where(p, 'prep')).toEqual(['c/cpu', 'c/cpu']);
      expect(p.cost.expected).toBeCloseTo(1, 9);
      // FFD takes the GPU tasks first and keeps the CPU tasks off the GPU node, as the LP does.
      expect(p.baseline.expected).toBeCloseTo(1, 9);
    },
  },
  {
    name: 'fragmented running nodes take the small tasks, the big one gets a new node',
    pools: [makePool('c/a100').cpu(64).memoryGi(512).gpus('A100', 8).price(10).running(2, { gpus: 4 }).obj()],
    tasks: [
      ...makeTasks('small', 4, { gpu: [{ model: 'A100', count: 2 }] }),
      ...makeTasks('big', 1, { gpu: [{ model: 'A100', count: 8 }] }),
    ],
    policies: [makePolicy('team-a')],
    check(p) {
      expect(nodesOf(p)).toEqual({ 'c/a100': 1 });
      expect(p.cost.expected).toBeCloseTo(10, 9);
      expect(p.placements.find((x) => x.taskId === 'big-0')?.newNode).toBe(true);
      expect(
        p.placements
          .filter((x) => x.taskId.startsWith('small'))
          .map((x) => x.node)
          .sort(),
      ).toEqual(['a100-0', 'a100-0', 'a100-1', 'a100-1']);
    },
  },
  {
    name: 'a budget cap leaves a task unplaced and says which budget',
    pools: [makePool('c/h100').cpu(96).gpus('H100', 8).price(40).obj()],
    tasks: makeTasks('big', 2, { team: 'b', gpu: [{ model: 'H100', count: 8 }] }),
    policies: [makePolicy('b', { budget: { perHour: 50, alertAt: [0.8, 1], onOverrun: 'extend' } })],
    check(p) {
      expect(p.placements).toHaveLength(1);
      expect(p.unplaced).toEqual([
        { taskId: 'big-1', reason: { kind: 'budget', detail: 'policy b: budget $50/hour is reached' } },
      ]);
      expect(p.cost.expected).toBeCloseTo(40, 9);
    },
  },
  {
    name: 'a GPU model the policy does not allow is never used, and the reason names the policy',
    pools: [makePool('c/h100').cpu(96).gpus('H100', 8).price(40).obj()],
    tasks: makeTasks('x', 1, { team: 'p', gpu: [{ model: 'H100', count: 1 }] }),
    policies: [makePolicy('p', { allowed: { gpuModels: ['L4', 'T4'] } })],
    check(p) {
      expect(p.placements).toEqual([]);
      expect(p.unplaced[0]?.reason).toEqual({
        kind: 'policy',
        detail: 'no compatible pool (policy p allows GPU models L4, T4)',
      });
    },
  },
  {
    name: "a CPU-only group's next-best pool is not blamed on the team's GPU quota",
    pools: [
      makePool('c/h100').cpu(96).gpus('H100', 8).price(10).obj(),
      makePool('c/a100').cpu(96).gpus('A100', 8).price(14).obj(),
      makePool('c/cpu1').cpu(8).price(0.5).obj(),
      makePool('c/cpu2').cpu(8).price(0.5).obj(),
    ],
    tasks: [
      ...makeTasks('train', 2, {
        team: 't',
        gpu: [
          { model: 'H100', count: 8 },
          { model: 'A100', count: 8 },
        ],
      }),
      ...makeTasks('prep', 1, { team: 't', cpuMilli: 8000 }),
    ],
    policies: [makePolicy('t', { quotas: [{ resource: 'gpu', model: 'H100', nominal: 8 }] })],
    check(p) {
      const train = p.groups.find((g) => g.group === 'train')!;
      const prep = p.groups.find((g) => g.group === 'prep')!;
      expect(train.why.kind).toBe('quota');
      // The CPU task rides on the spare cpu of the H100 node added for the GPU work.
      expect(prep.chosen).toMatchObject([
        {
          poolId: 'c/h100',
          onRunningNodes: false,
          why: { kind: 'cost', detail: 'spare room on nodes the plan adds for other work' },
        },
      ]);
      expect(prep.why.kind).toBe('cost');
      expect(prep.nextBest).toMatchObject({
        poolId: 'c/cpu1',
        whyNot: { kind: 'cost', detail: 'costs more per task' },
      });
    },
  },
  {
    name: 'fallbacks [cb, ca]: the cheaper ca is passed over by the fallback order, not by its cost',
    pools: [
      makePool('c/cb').cpu(96).gpus('H100', 8).price(10).obj(),
      makePool('c/ca').cpu(96).gpus('A100', 8).price(9.8).obj(),
    ],
    tasks: makeTasks('ft', 8, {
      team: 'f',
      gpu: [
        { model: 'H100', count: 1 },
        { model: 'A100', count: 1 },
      ],
    }),
    policies: [makePolicy('f', { fallbacks: [{ gpu: 'H100' }, { gpu: 'A100' }] })],
    check(p) {
      expect(nodesOf(p)).toEqual({ 'c/cb': 1 });
      const g = p.groups[0]!;
      expect(g.chosen).toMatchObject([{ poolId: 'c/cb', tasks: 8, why: { kind: 'preference' } }]);
      expect(g.why.kind).toBe('preference');
      expect(g.nextBest).toMatchObject({ poolId: 'c/ca', whyNot: { kind: 'preference' } });
      expect(g.nextBest?.whyNot.detail).toBe('costs no more per task, but c/ca is fallback 2 of policy f');
    },
  },
];

const backends: Record<string, () => Promise<LpBackend>> = {
  'javascript-lp-solver': async () => createJsLpBackend(),
  highs: loadHighsBackend,
};

describe.each(Object.keys(backends))('plan on %s', (name) => {
  let backend: LpBackend;
  beforeAll(async () => {
    backend = await backends[name]!();
  });

  it.each(SCENARIOS.map((s) => [s.name, s] as const))('%s', (_n, s) => {
    const p = plan({ pools: s.pools }, s.tasks, s.policies, { backends: { js: backend, highs: backend } });
    expect(p.solver.backend).toBe(backend.name);
    expect(p.solver.fallback ?? '').not.toMatch(/^LP /);
    s.check(p);
    assertFeasible(p, s.pools, s.tasks);
    if (p.unplaced.length === 0 && p.baseline.unplaced === 0)
      expect(p.cost.objective).toBeLessThanOrEqual(p.baseline.objective + 1e-9);
    // The bound is on the whole batch: it holds for every plan that places as many tasks as the LP does.
    if (Number.isFinite(p.bound) && p.unplaced.length <= Math.floor(p.bounds.lpUnplaced + 1e-6))
      expect(p.bound).toBeLessThanOrEqual(p.cost.objective + 1e-6);
    // The node-level bound is for what the plan leaves out: it holds for the plan whatever that is.
    if (p.bounds.node !== undefined) expect(p.bounds.node).toBeLessThanOrEqual(p.cost.objective + 1e-6);
  });
});

describe('plan: properties', () => {
  const GPU = ['H100', 'A100', 'L4'] as const;
  const poolArb = fc.record({
    cpu: fc.constantFrom(4, 8, 16, 48),
    gpu: fc.option(fc.record({ model: fc.constantFrom(...GPU), count: fc.constantFrom(1, 4, 8) }), {
      nil: undefined,
    }),
    price: fc.double({ min: 0.1, max: 40, noNaN: true }),
    spot: fc.boolean(),
    running: fc.integer({ min: 0, max: 3 }),
    maxNew: fc.integer({ min: 0, max: 12 }),
  });
  const taskArb = fc.record({
    count: fc.integer({ min: 1, max: 12 }),
    cpu: fc.constantFrom(500, 1000, 2000, 4000, 8000),
    gpu: fc.option(fc.record({ model: fc.constantFrom(...GPU, '*'), count: fc.constantFrom(1, 2, 4, 8) }), {
      nil: undefined,
    }),
    hours: fc.constantFrom(0.25, 1, 3),
    team: fc.constantFrom('a', 'b'),
  });

  it('every plan is feasible node by node and never costs more than greedy', async () => {
    const highs = await loadHighsBackend();
    fc.assert(
      fc.property(
        fc.array(poolArb, { minLength: 1, maxLength: 5 }),
        fc.array(taskArb, { minLength: 1, maxLength: 5 }),
        (ps, ts) => {
          const pools = ps.map((q, i) => {
            const b = makePool(`c/p${i}`)
              .cpu(q.cpu)
              .memoryGi(q.cpu * 4)
              .price(q.price)
              .maxNew(q.maxNew);
            if (q.gpu) b.gpus(q.gpu.model, q.gpu.count);
            if (q.spot) b.spot(0.05);
            return b.running(q.running).obj();
          });
          const tasks = ts.flatMap((t, i) =>
            makeTasks(`g${i}`, t.count, {
              team: t.team,
              cpuMilli: t.cpu,
              durationSeconds: t.hours * 3600,
              ...(t.gpu ? { gpu: [t.gpu] } : {}),
            }),
          );
          const policies = [
            makePolicy('a', { quotas: [{ resource: 'gpu', nominal: 12 }] }),
            makePolicy('b', { spot: 'never' }),
          ];
          const p = plan({ pools }, tasks, policies, { backends: { highs } });
          assertFeasible(p, pools, tasks);
          // Where both place everything, the plan never costs more. (Where capacity is short, the plan may
          // leave out other tasks than greedy does — fewer big ones — so costs are not comparable.)
          if (p.unplaced.length === 0 && p.baseline.unplaced === 0) {
            expect(p.cost.objective).toBeLessThanOrEqual(p.baseline.objective + 1e-9);
          }
        },
      ),
      { numRuns: 150, seed: 20261125 },
    );
  });
});
