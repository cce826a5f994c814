import { beforeAll, describe, expect, it } from 'vitest';
import { assertFeasible } from '../test/feasibility.ts';
import { type BenchScenario, traceScenario } from './bench/scenarios.ts';
import { createJsLpBackend, loadHighsBackend, type LpBackend, plan } from './index.ts';

/**
 * Small scenarios cut from the openb trace: a slice of a pod list on a slice of the nodes, with the cloud
 * pools of the benchmark. Each must be feasible node by node, no worse than FFD, and at or above its bounds.
 */
function cut(workload: string, pods: [number, number], nodes: number, cloud = 12): BenchScenario {
  const s = traceScenario(workload, 1);
  let left = nodes;
  const onprem = s.pools
    .filter((p) => p.cluster === 'openb')
    .map((p) => {
      const keep = p.nodes.slice(0, Math.max(0, Math.min(left, Math.ceil(p.nodes.length / 8))));
      left -= keep.length;
      return { ...p, nodes: keep };
    })
    .filter((p) => p.nodes.length > 0);
  const clouds = s.pools.filter((p) => p.cluster !== 'openb');
  // Cheapest CPU pools and cheapest GPU pools of each model, so every pod has somewhere to go.
  const gpu = new Map<string, (typeof clouds)[number]>();
  for (const p of [...clouds].sort((a, b) => a.price - b.price)) {
    const k = `${p.gpuModel}/${p.gpuCount}`;
    if (!gpu.has(k)) gpu.set(k, p);
  }
  const pick = [...gpu.values()].slice(0, cloud);
  return {
    name: `${workload} pods ${pods[0]}–${pods[1]} on ${nodes} nodes`,
    pools: [...onprem, ...pick],
    tasks: s.tasks.slice(pods[0], pods[1]),
    policies: s.policies,
  };
}

const TABLE: [string, () => BenchScenario][] = [
  ['default: the first pods on a few nodes', () => cut('default', [0, 120], 10)],
  ['default: a later slice, cloud takes the rest', () => cut('default', [4000, 4150], 6)],
  ['gpuspec33: model-constrained pods', () => cut('gpuspec33', [2000, 2150], 12)],
  ['multigpu20: multi-GPU pods', () => cut('multigpu20', [6000, 6120], 8)],
  ['multigpu20: no running nodes at all', () => cut('multigpu20', [100, 200], 0)],
];

const backends: Record<string, () => Promise<LpBackend>> = {
  'javascript-lp-solver': async () => createJsLpBackend(),
  highs: loadHighsBackend,
};

describe.each(Object.keys(backends))('trace scenarios on %s', (name) => {
  let backend: LpBackend;
  beforeAll(async () => {
    backend = await backends[name]!();
  });

  it.each(TABLE)('%s', (_n, make) => {
    const s = make();
    const p = plan({ pools: s.pools }, s.tasks, s.policies, {
      backends: { js: backend, highs: backend },
      timeBudgetMs: 60_000,
    });
    assertFeasible(p, s.pools, s.tasks);
    // Never worse than FFD: no more unplaced, and no dearer when as many are placed.
    expect(p.unplaced.length).toBeLessThanOrEqual(p.baseline.unplaced);
    if (p.unplaced.length === p.baseline.unplaced)
      expect(p.cost.objective).toBeLessThanOrEqual(p.baseline.objective + 1e-9);
    expect(Number.isFinite(p.bounds.lp)).toBe(true);
    // Never more unplaced than the LP leaves (fractionally) unplaced.
    expect(p.unplaced.length).toBeLessThanOrEqual(Math.ceil(p.bounds.lpUnplaced - 1e-6));
    if (p.unplaced.length <= Math.floor(p.bounds.lpUnplaced + 1e-6))
      expect(p.bounds.lp).toBeLessThanOrEqual(p.cost.objective + 1e-6);
    // The node-level bound is for what the plan leaves out, so it holds for the plan in every case.
    expect(p.bounds.node).toBeGreaterThanOrEqual(p.bounds.lp - 1e-6);
    expect(p.bounds.node).toBeLessThanOrEqual(p.cost.objective + 1e-6);
  });
});
