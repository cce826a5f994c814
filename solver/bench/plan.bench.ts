/**
 * `npm run bench:plan`: plans real and synthetic batches and prints, per scenario, the solve time, the
 * plan's cost, the LP bound and the greedy baseline. Figures only; nothing here asserts.
 *
 * Costs are expected dollars for the batch (added nodes × planned duration + spot risk). Compare plan and
 * greedy only where both leave the same number of tasks unplaced; the table shows both counts.
 */
import { defaultBackends, plan } from '../index.ts';
import {
  type BenchScenario,
  cloudPools,
  openbPools,
  openbTasks,
  openPolicy,
  syntheticScale,
} from './scenarios.ts';

const only = process.argv.slice(2);

function scenarios(): (() => BenchScenario)[] {
  const cloud = () => cloudPools({ aws: ['us-east-1'], gcp: ['us-central1'] });
  return [
    () => ({
      name: 'openb default',
      pools: [...openbPools(), ...cloud()],
      tasks: openbTasks('openb_pod_list_default.csv'),
      policies: [openPolicy('openb')],
    }),
    () => ({
      name: 'openb gpuspec33',
      pools: [...openbPools(), ...cloud()],
      tasks: openbTasks('openb_pod_list_gpuspec33.csv'),
      policies: [openPolicy('openb')],
    }),
    () => ({
      name: 'openb default ×2',
      pools: [...openbPools(), ...cloud()],
      tasks: openbTasks('openb_pod_list_default.csv', 2),
      policies: [openPolicy('openb')],
    }),
    () => ({
      name: 'openb gpuspec33 ×3',
      pools: [...openbPools(), ...cloud()],
      tasks: openbTasks('openb_pod_list_gpuspec33.csv', 3),
      policies: [openPolicy('openb')],
    }),
    () => syntheticScale(50_000),
    () => syntheticScale(250_000),
  ];
}

const fmt = (n: number, d = 2) => (Number.isFinite(n) ? n.toFixed(d) : '—');

async function main(): Promise<void> {
  const backends = await defaultBackends();
  const header = [
    'scenario',
    'tasks',
    'groups',
    'pools',
    'vars',
    'backend',
    'solve ms',
    'plan $/h',
    'plan $',
    'LP bound $',
    'plan/bound',
    'greedy $',
    'greedy/plan',
    'unplaced plan/greedy',
  ];
  console.log(header.join(' | '));
  console.log(header.map(() => '---').join(' | '));
  for (const make of scenarios()) {
    const s = make();
    if (only.length && !only.some((o) => s.name.includes(o))) continue;
    const p = plan({ pools: s.pools }, s.tasks, s.policies, { backends, timeBudgetMs: 20_000 });
    const row = [
      s.name,
      String(s.tasks.length),
      String(p.solver.groups),
      String(p.solver.pools),
      String(p.solver.variables),
      p.solver.backend + (p.solver.fallback ? ' (greedy kept)' : ''),
      fmt(p.solver.ms, 0),
      fmt(p.cost.perHour),
      fmt(p.cost.expected),
      fmt(p.bound),
      p.bound > 0 ? fmt(p.cost.objective / p.bound, 4) : '—',
      fmt(p.baseline.expected),
      p.cost.expected > 0 ? fmt(p.baseline.expected / p.cost.expected, 3) : '—',
      `${p.unplaced.length}/${p.baseline.unplaced}`,
    ];
    console.log(row.join(' | '));
    if (p.solver.fallback) console.log(`   note: ${p.solver.fallback}`);
  }
}

await main();
