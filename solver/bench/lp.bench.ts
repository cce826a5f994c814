/**
 * `npm run bench:lp`: times both LP backends on synthetic placement LPs of growing size and prints a
 * table, to place the javascript-lp-solver → HiGHS crossover (`JS_LP_MAX_VARIABLES`). Figures only, no
 * assertions. javascript-lp-solver cannot be interrupted, so it is only run on a size when it took less
 * than JS_NEXT_SIZE_MS on the previous one.
 *
 * The model has the placement solver's shape: tasks of group g on pool p (x), nodes per pool (n, up to
 * the pool's maximum), an unplaced slack per group (u, at a big cost), demand rows Σp x + u = count,
 * cpu and memory rows Σg need·x − perNode·n ≤ free, and a ranged row per cluster of pools
 * (committed ≤ Σ cpu·n ≤ quota).
 */
import { createJsLpBackend, loadHighsBackend } from '../lp/index.ts';
import type { LpBackend, LpModel, LpSolution } from '../lp/index.ts';
import { mulberry32 } from '../../test/random.ts';

/** Do not run javascript-lp-solver on the next size once a size took longer than this. */
const JS_NEXT_SIZE_MS = 3_000;
const DENSITY = 0.3;
const SIZES: Array<[groups: number, pools: number]> = [
  [5, 5],
  [10, 10],
  [15, 15],
  [20, 20],
  [30, 30],
  [45, 45],
  [60, 60],
  [100, 100],
  [150, 150],
  [300, 300],
  [600, 100],
  [1000, 100],
];

/** A synthetic placement LP with `groups` task groups over `pools` node pools. */
function placementLp(groups: number, pools: number, density: number, seed: number): LpModel {
  const rand = mulberry32(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const model: LpModel = { variables: [], constraints: [] };
  const pool = Array.from({ length: pools }, (_, p) => {
    const cpu = pick([8, 16, 32, 64, 96]);
    const mem = cpu * pick([4, 8]);
    const node = model.variables.push({
      name: `nodes:pool-${p}`,
      cost: cpu * (0.03 + 0.03 * rand()),
      upper: 1 + Math.floor(rand() * 20),
    });
    return { cpu, mem, node: node - 1, freeCpu: Math.floor(rand() * cpu), freeMem: Math.floor(rand() * mem) };
  });
  const cpuRows = pool.map((p, i) => ({
    name: `cpu:${i}`,
    terms: [[p.node, -p.cpu]] as Array<[number, number]>,
    upper: p.freeCpu,
  }));
  const memRows = pool.map((p, i) => ({
    name: `mem:${i}`,
    terms: [[p.node, -p.mem]] as Array<[number, number]>,
    upper: p.freeMem,
  }));
  for (let g = 0; g < groups; g++) {
    const count = 1 + Math.floor(rand() * 50);
    const cpu = pick([0.5, 1, 2, 4, 8]);
    const mem = pick([1, 2, 4, 16, 32]);
    const fits = pool.map((p, i) => i).filter((i) => pool[i]!.cpu >= cpu && pool[i]!.mem >= mem);
    const eligible = fits.filter(() => rand() < density);
    if (eligible.length === 0 && fits.length > 0) eligible.push(pick(fits));
    const demand: Array<[number, number]> = [];
    for (const i of eligible) {
      const x = model.variables.push({ name: `x:g${g}/p${i}`, cost: 0.01 * rand(), upper: count }) - 1;
      demand.push([x, 1]);
      cpuRows[i]!.terms.push([x, cpu]);
      memRows[i]!.terms.push([x, mem]);
    }
    const u = model.variables.push({ name: `unplaced:g${g}`, cost: 1_000 }) - 1;
    demand.push([u, 1]);
    model.constraints.push({ name: `demand:g${g}`, terms: demand, lower: count, upper: count });
  }
  model.constraints.push(...cpuRows, ...memRows);
  for (let c = 0; c * 10 < pools; c++) {
    const members = pool.slice(c * 10, c * 10 + 10);
    const capacity = members.reduce((s, p) => s + p.cpu * (model.variables[p.node]!.upper ?? 0), 0);
    const terms = members.map((p): [number, number] => [p.node, p.cpu]);
    model.constraints.push({
      name: `quota:cluster-${c}`,
      terms,
      lower: 0.05 * capacity,
      upper: 0.8 * capacity,
    });
  }
  return model;
}

/** Median wall time over `runs` solves (the solution of the last run is returned). */
function timeSolve(backend: LpBackend, model: LpModel, runs: number): { ms: number; solution: LpSolution } {
  const times: number[] = [];
  let solution: LpSolution | undefined;
  for (let r = 0; r < runs; r++) {
    solution = backend.solve(model);
    times.push(solution.ms);
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(times.length / 2)] ?? NaN, solution: solution! };
}

function agree(a: LpSolution, b: LpSolution): string {
  if (a.status !== 'optimal' || b.status !== 'optimal') return `${a.status}/${b.status}`;
  const gap = Math.abs(a.objective - b.objective) / Math.max(1, Math.abs(b.objective));
  return gap <= 1e-6 ? 'yes' : `NO (rel gap ${gap.toExponential(1)})`;
}

async function main(): Promise<void> {
  const loadStarted = performance.now();
  const highs = await loadHighsBackend();
  console.log(`HiGHS load: ${(performance.now() - loadStarted).toFixed(0)} ms (once per process)`);
  const js = createJsLpBackend();
  const warm = placementLp(10, 10, DENSITY, 1);
  for (let i = 0; i < 20; i++) [js, highs].forEach((b) => b.solve(warm)); // JIT warm-up

  const header = [
    'groups×pools',
    'variables',
    'constraints',
    'nonzeros',
    'JS ms',
    'HiGHS ms',
    'objective',
    'agree?',
  ];
  const rows: string[][] = [header];
  let jsAllowed = true;
  for (const [groups, pools] of SIZES) {
    const model = placementLp(groups, pools, DENSITY, groups * 1_000 + pools);
    const nonzeros = model.constraints.reduce((s, c) => s + c.terms.length, 0);
    const runs = model.variables.length < 2_000 ? 7 : 3;
    const h = timeSolve(highs, model, runs);
    const j = jsAllowed ? timeSolve(js, model, runs) : undefined;
    if (j !== undefined && j.ms > JS_NEXT_SIZE_MS) jsAllowed = false;
    rows.push([
      `${groups}×${pools}`,
      String(model.variables.length),
      String(model.constraints.length),
      String(nonzeros),
      j === undefined
        ? 'skipped'
        : `${j.ms.toFixed(1)}${j.solution.status === 'optimal' ? '' : ` (${j.solution.status})`}`,
      `${h.ms.toFixed(1)}${h.solution.status === 'optimal' ? '' : ` (${h.solution.status})`}`,
      h.solution.objective.toFixed(3),
      j === undefined ? '-' : agree(j.solution, h.solution),
    ]);
    for (const s of [j?.solution, h.solution]) {
      if (s?.message !== undefined)
        console.log(`  ${groups}×${pools} ${s.backend}: ${s.message.slice(0, 300)}`);
    }
  }
  const widths = header.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  for (const r of rows) console.log(r.map((cell, c) => cell.padStart(widths[c] ?? 0)).join('  '));
}

await main();
