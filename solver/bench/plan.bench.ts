/**
 * `npm run bench:plan`: plans the openb trace scenario (default, gpuspec33 and multigpu20 pod lists, ×1,
 * ×2, ×3) and the synthetic 250K and 1M batches, and prints per row: the plan's $/h and unplaced tasks, the
 * aggregate LP bound, the node-level bound, FFD and greedy on the same input, the ratios, and plan time.
 * Figures only; nothing here asserts.
 *
 *   npm run bench:plan                                   # everything
 *   npm run bench:plan -- --workload default --scale 1   # one trace row
 *   npm run bench:plan -- --synthetic 250000             # one synthetic row
 *   npm run bench:plan -- --no-synthetic                 # the trace rows only
 *   npm run bench:plan -- --broker-budget 2000           # the broker-path plan's time budget (ms)
 *
 * "plan $/h", "unplaced", "plan ms" (wall clock), "plan CPU ms" (this process's CPU time, all its threads:
 * the figure to read on a shared machine) and "peak RSS" are the broker-path plan (no diagnostics) under the
 * broker budget (`--broker-budget`; default the latency goal of its size: 1 s up to 30K tasks, 5 s up to
 * 250K, 20 s above); the bounds, FFD and greedy come from a second plan of
 * the same input with diagnostics and `--time-budget` (default 20000 ms).
 *
 * "plan $", the bounds, FFD, greedy and the ratios are the solver's objective: expected dollars of the batch
 * (each new node's price for its planned duration and launch delay, spot rework) plus preference terms,
 * which is what the bounds bound. "plan $/h" is the new nodes' price per hour, another unit: on the trace
 * rows nodes have no launch delay and tasks run one hour, so the two agree; on the synthetic rows tasks
 * run 10 minutes to 2 hours and nodes take 2 minutes to launch, so they do not, and $/h over a bound
 * in $ means nothing. Each row runs
 * in a process of its own, so "peak RSS" is that process's peak resident memory (building the input and
 * the broker-path plan, HiGHS's WebAssembly memory included), measured before the diagnostics run.
 */
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { defaultBackends, plan, type Plan } from '../index.ts';
import { type BenchScenario, OPENB_WORKLOADS, syntheticScale, traceScenario } from './scenarios.ts';

const { values: flags } = parseArgs({
  options: {
    workload: { type: 'string', multiple: true },
    scale: { type: 'string', multiple: true },
    synthetic: { type: 'string', multiple: true },
    'no-synthetic': { type: 'boolean', default: false },
    'no-trace': { type: 'boolean', default: false },
    'time-budget': { type: 'string', default: '20000' },
    'broker-budget': { type: 'string' },
    row: { type: 'string' },
  },
});

function list(values: string[] | undefined, fallback: readonly string[]): string[] {
  return values?.flatMap((v) => v.split(',')).filter(Boolean) ?? [...fallback];
}

function scenarios(): (() => BenchScenario)[] {
  const out: (() => BenchScenario)[] = [];
  const onlySynthetic = flags.synthetic !== undefined && flags.workload === undefined;
  if (!flags['no-trace'] && !onlySynthetic) {
    for (const w of list(flags.workload, OPENB_WORKLOADS)) {
      if (!(OPENB_WORKLOADS as readonly string[]).includes(w)) {
        console.error(`--workload ${w}: expected one of ${OPENB_WORKLOADS.join(', ')}`);
        process.exit(2);
      }
      for (const s of list(flags.scale, ['1', '2', '3'])) out.push(() => traceScenario(w, Number(s)));
    }
  }
  const onlyTrace = flags.workload !== undefined && flags.synthetic === undefined;
  if (!flags['no-synthetic'] && !onlyTrace)
    for (const n of list(flags.synthetic, ['250000', '1000000'])) out.push(() => syntheticScale(Number(n)));
  return out;
}

/** The broker-path plan's budget: the flag, else the latency goal for a batch of this size. */
function brokerBudget(tasks: number): number {
  if (flags['broker-budget'] !== undefined) return Number(flags['broker-budget']);
  return tasks <= 30_000 ? 1000 : tasks <= 250_000 ? 5000 : 20_000;
}

const fmt = (n: number | undefined, d = 2) => (n !== undefined && Number.isFinite(n) ? n.toFixed(d) : '—');
const ratio = (a: number, b: number | undefined) => (b !== undefined && b > 0 ? fmt(a / b, 3) : '—');

function row(s: BenchScenario, p: Plan, ms: number, cpuMs: number, rssMiB: number): string[] {
  const ffd = p.diagnostics?.ffd;
  const greedy = p.diagnostics?.greedy;
  return [
    s.name,
    String(s.tasks.length),
    fmt(p.cost.perHour),
    fmt(p.cost.objective),
    String(p.unplaced.length),
    fmt(p.bounds.lp),
    fmt(p.bounds.node),
    ffd ? `${fmt(ffd.objective)} (${ffd.unplaced})` : '—',
    greedy ? `${fmt(greedy.objective)} (${greedy.unplaced})` : '—',
    ratio(p.cost.objective, p.bounds.lp),
    ratio(p.cost.objective, p.bounds.node),
    ratio(p.cost.objective, ffd?.objective),
    fmt(ms, 0),
    fmt(cpuMs, 0),
    fmt(rssMiB, 0),
    p.solver.method + (p.solver.nodeModel ? ` (${p.solver.nodeModel})` : ''),
  ];
}

async function main(): Promise<void> {
  const backends = await defaultBackends();
  const timeBudgetMs = Number(flags['time-budget']);
  const header = [
    'workload',
    'tasks',
    'plan $/h',
    'plan $',
    'unplaced',
    'LP bound $',
    'node bound $',
    'FFD $ (unpl.)',
    'greedy $ (unpl.)',
    'plan/LP',
    'plan/node',
    'plan/FFD',
    'plan ms',
    'plan CPU ms',
    'peak RSS MiB',
    'plan from',
  ];
  if (flags.row !== undefined) {
    // One row, in this process: the broker-path plan timed and its peak memory, then the diagnostics.
    const s = scenarios()[Number(flags.row)]!();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const fast = plan({ pools: s.pools }, s.tasks, s.policies, {
      backends,
      timeBudgetMs: brokerBudget(s.tasks.length),
    });
    const ms = performance.now() - t0;
    const used = process.cpuUsage(cpu0);
    const cpuMs = (used.user + used.system) / 1000;
    const rssMiB = process.resourceUsage().maxRSS / 1024;
    const full = plan({ pools: s.pools }, s.tasks, s.policies, {
      backends,
      timeBudgetMs,
      diagnostics: true,
    });
    const p = { ...full, cost: fast.cost, unplaced: fast.unplaced, solver: fast.solver };
    console.log(`| ${row(s, p, ms, cpuMs, rssMiB).join(' | ')} |`);
    return;
  }
  console.log(`| ${header.join(' | ')} |`);
  console.log(`| ${header.map(() => '---').join(' | ')} |`);
  const count = scenarios().length;
  for (let i = 0; i < count; i++) {
    const child = spawnSync(
      process.execPath,
      [...process.execArgv, process.argv[1]!, ...process.argv.slice(2), '--row', String(i)],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    );
    if (child.status !== 0) console.log(`| row ${i} failed: exit ${child.status ?? child.signal} |`);
  }
}

await main();
