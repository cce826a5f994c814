/**
 * `gantry plan`: what-if planning. Reads clusters and policies, a workload and optionally the nodes
 * running now, and prints where everything would go, what it would cost, the LP bound and the FFD and greedy
 * baselines.
 */
import type { Command } from 'commander';
import { formatProblem, loadPlatform, loadWorkload, parseDuration } from '../../policies/index.ts';
import { defaultBackends, plan, poolStates, taskRequest } from '../../solver/index.ts';
import { UsageError } from '../errors.ts';
import { type Output, outputOption, serialize } from '../options.ts';
import { readNodesFile } from './nodes-file.ts';
import { printPlanTable } from './plan-table.ts';

interface PlanFlags {
  file: string[];
  workload: string;
  nodes?: string;
  output: Output;
  timeBudget: string;
  failOnUnplaced?: boolean;
}

/** Adds `gantry plan` to the program. */
export function registerPlanCommand(program: Command): void {
  const cmd = program
    .command('plan')
    .description('What-if: plan a workload on the declared clusters at least cost, and explain it')
    .requiredOption(
      '-f, --file <path...>',
      'Cluster, ResourcePolicy, ResourceProfile and PriceCatalog YAML (files or dirs)',
    )
    .requiredOption('-w, --workload <file>', 'Workload YAML, or JSON lines with one request per line')
    .option('--nodes <file>', 'running nodes and their free capacity (CSV or JSON; see README)')
    .option(
      '--fail-on-unplaced',
      'exit 1 when any task cannot be placed (by default unplaced tasks are listed and the exit code is 0)',
    )
    .option(
      '--time-budget <duration>',
      'most time the solver may take; past it the best plan found so far is printed',
      '5s',
    );
  outputOption(cmd).action(async (flags: PlanFlags) => {
    let budgetMs: number;
    try {
      budgetMs = parseDuration(flags.timeBudget) * 1000;
    } catch (err) {
      throw new UsageError(`--time-budget: ${(err as Error).message}`);
    }
    const { platform } = loadPlatform(flags.file.filter((f) => f !== flags.workload));
    const { tasks, problems } = loadWorkload(flags.workload, platform);
    if (problems.length === 0 && tasks.length === 0)
      problems.push({
        file: flags.workload,
        line: 1,
        col: 1,
        path: '',
        message:
          'no tasks to plan: write a Workload document with spec.groups, or JSON lines with one request each',
      });
    if (problems.length > 0) {
      for (const p of problems) process.stdout.write(`${formatProblem(p)}\n`);
      process.exitCode = 1;
      return;
    }
    const nodes = flags.nodes ? readNodesFile(flags.nodes, platform) : undefined;
    const requests = tasks.map((t) => taskRequest(t.id, t.team, t.resources, t.priority));
    const result = plan({ pools: poolStates(platform.pools, nodes) }, requests, platform.policies, {
      backends: await defaultBackends(),
      timeBudgetMs: budgetMs,
      diagnostics: true,
    });
    if (flags.output === 'json' || flags.output === 'yaml')
      process.stdout.write(serialize(flags.output, result));
    else
      printPlanTable(result, (s) => process.stdout.write(s), {
        wide: flags.output === 'wide',
        failOnUnplaced: flags.failOnUnplaced ?? false,
      });
    if (flags.failOnUnplaced && result.unplaced.length > 0) process.exitCode = 1;
  });
}
