/**
 * `gantry cluster onboard|list|describe|drain|remove` for platform teams, and `gantry get
 * requests|leases|nodes` for operators. Everything but `onboard` asks a running broker over NATS.
 */
import type { BudgetStatus } from '../../broker/budgets.ts';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { formatCpu, formatMemory, formatProblem, validatePaths } from '../../policies/index.ts';
import { type PlacementExplanation, PROTOCOL, taskState } from '../../protocol/index.ts';
import { askBroker, askBrokerPages } from '../connect.ts';
import { authorizationBlock, credentialName } from '../credentials.ts';
import { onboardingUsers } from '../onboarding.ts';
import { UsageError } from '../errors.ts';
import {
  type Column,
  column,
  natsOptions,
  type Output,
  outputOption,
  printObject,
  printObjects,
  wideColumn,
} from '../options.ts';
import { describeCluster, type ClusterDescription, type ClusterSummary } from './describe.ts';

interface NatsFlags {
  nats?: string;
  creds?: string;
}

interface PrintFlags extends NatsFlags {
  output: Output;
}

/** `--nats`, `--creds` and `-o`: what every command that asks the broker and prints objects takes. */
const brokerOptions = (c: Command) => outputOption(natsOptions(c));
const admin = askBroker;

/** Adds `gantry cluster …` and `gantry get …`. */
export function registerClusterCommands(program: Command): void {
  const cluster = program.command('cluster').description('Onboard and manage clusters');

  natsOptions(
    cluster
      .command('onboard')
      .description(
        "Validate a Cluster, make its agent's NATS credentials (only its own subjects), register it",
      )
      .requiredOption('-f, --file <path...>', 'the Cluster YAML (with the platform it refers to)')
      .option(
        '--creds-dir <dir>',
        'where agent credentials and the nats-server authorization block go',
        '.gantry/creds',
      ),
  ).action(async (flags: NatsFlags & { file: string[]; credsDir: string }) => {
    const { problems, platform, docs } = validatePaths(flags.file);
    if (problems.length > 0) {
      for (const p of problems) process.stdout.write(`${formatProblem(p)}\n`);
      process.exitCode = 1;
      return;
    }
    const onboarded = docs
      .filter((d) => d.kind === 'Cluster')
      .map((d) => platform.clusters.find((c) => c.name === d.name)!);
    if (onboarded.length === 0) throw new UsageError(`no Cluster document in ${flags.file.join(', ')}`);
    const users = onboardingUsers(
      flags.credsDir,
      platform.policies.flatMap((p) => p.teams),
      onboarded,
    );
    const authFile = join(flags.credsDir, 'nats-authorization.conf');
    writeFileSync(authFile, authorizationBlock(users));
    const nats = flags.nats ?? 'nats://<server>:4222';
    const cred = (name: string) => join(flags.credsDir, `${name}.nk`);
    for (const c of onboarded) {
      if (flags.nats) await admin(flags, 'onboard', { cluster: c });
      process.stdout.write(
        `Cluster ${c.name}: ${c.pools.length} pools (${c.pools.map((p) => `${p.name} ${p.instanceType} ${p.capacityType}`).join(', ')})\n` +
          `${flags.nats ? '  registered with the broker\n' : '  validated (pass --nats to register it with a running broker)\n'}` +
          `  agent credentials: ${cred(credentialName.agent(c.name))} (may use only ${PROTOCOL}.agent.${c.name}.> and what the tasks it hosts need)\n` +
          `  task pods:         kubectl -n gantry-tasks create secret generic gantry-task-nats --from-file=creds.nk=${cred(credentialName.tasks(c.name))}\n` +
          `  start its agent:   gantry agent -f ${flags.file.join(' -f ')} --cluster ${c.name} --nats ${nats} --creds ${cred(credentialName.agent(c.name))}\n`,
      );
    }
    const teams = [...new Set(platform.policies.flatMap((p) => p.teams))].sort();
    for (const t of teams)
      process.stdout.write(
        `team ${t}: gantry run <file.ts> --team ${t} --nats ${nats} --creds ${cred(credentialName.runtime(t))}\n`,
      );
    process.stdout.write(
      `broker and operators: --creds ${cred(credentialName.broker)}\n` +
        `nats-server authorization: ${authFile} (include it in the server config and reload; docs/security.md says what each credential may do)\n`,
    );
  });

  brokerOptions(cluster.command('list').description('Clusters, their health and nodes')).action(
    async (flags: PrintFlags) => {
      const a = (await admin(flags, 'clusters')) as { clusters: ClusterSummary[] };
      printObjects(flags.output, a.clusters, CLUSTER_COLUMNS);
    },
  );

  brokerOptions(
    cluster
      .command('describe <name>')
      .description('Pools, nodes and work of a cluster, as the broker sees it'),
  ).action(async (name: string, flags: PrintFlags) => {
    const a = (await admin(flags, 'describe', { name })) as { cluster: ClusterDescription };
    printObject(flags.output, a.cluster, (wide) => describeCluster(a.cluster, wide, Date.now()));
  });

  brokerOptions(
    cluster.command('drain <name>').description('Stop new placements on a cluster; running work finishes'),
  ).action(async (name: string, flags: PrintFlags) => {
    const a = await admin(flags, 'drain', { name });
    const line = `cluster ${name} draining: no new placements; running work finishes (gantry cluster describe ${name} shows what is left)\n`;
    printObject(flags.output, a.cluster ?? a, () => line);
  });

  brokerOptions(
    cluster.command('undrain <name>').description('Place new work on a drained cluster again'),
  ).action(async (name: string, flags: PrintFlags) => {
    const a = await admin(flags, 'undrain', { name });
    printObject(flags.output, a.cluster ?? a, () => `cluster ${name} takes new placements again\n`);
  });

  brokerOptions(
    cluster
      .command('remove <name>')
      .description(
        'Forget a drained cluster whose nodes Gantry bought are gone, and stop its agent (--force terminates them first)',
      )
      .option('--force', 'terminate the nodes Gantry bought for the cluster first'),
  ).action(async (name: string, flags: PrintFlags & { force?: boolean }) => {
    // Terminating nodes takes the cloud a while: wait as long as the broker waits for the agent.
    const a = (await admin(flags, 'remove', { name, force: flags.force === true }, 70_000)) as {
      terminated?: string[];
      agentStopped?: boolean;
    };
    const terminated = a.terminated ?? [];
    const line =
      `cluster ${name} removed` +
      (terminated.length > 0 ? `; terminated ${terminated.length} node(s): ${terminated.join(', ')}` : '') +
      (a.agentStopped ? '; its agent stopped' : '; its agent did not answer (stop it yourself)') +
      '\n';
    printObject(flags.output, a, () => line);
  });

  const get = program
    .command('get')
    .description('Requests, leases, nodes, budgets, clusters, policies and profiles as the broker sees them');
  for (const what of ['requests', 'leases', 'nodes'] as const) {
    const cmd = brokerOptions(get.command(what).description(`List ${what}`));
    if (what !== 'nodes')
      cmd
        .option('--status <status>', `only ${what} with this status (${taskState.options.join(', ')})`)
        .option('--limit <n>', 'at most this many, newest', '50');
    cmd.action(async (flags: PrintFlags & { status?: string; limit?: string }) => {
      const limit = Number(flags.limit ?? 50);
      if (!Number.isInteger(limit) || limit < 1)
        throw new UsageError(`--limit must be a whole number of at least 1, not '${flags.limit}'`);
      if (flags.status !== undefined && !(taskState.options as readonly string[]).includes(flags.status))
        throw new UsageError(
          `--status must be one of ${taskState.options.join(', ')}, not '${flags.status}'`,
        );
      const a =
        what === 'nodes'
          ? await admin(flags, what, {})
          : await askBrokerPages(flags, what, { limit, ...(flags.status ? { state: flags.status } : {}) });
      const rows = (a[what] as Record<string, unknown>[]) ?? [];
      printObjects(flags.output, rows, LIST_COLUMNS[what], a);
    });
  }

  brokerOptions(
    get.command('budgets').description("Each team's budgets: spent, committed and remaining"),
  ).action(async (flags: PrintFlags) => {
    const a = (await admin(flags, 'budgets')) as { budgets: BudgetStatus[] };
    printObjects(flags.output, a.budgets, BUDGET_COLUMNS, a);
  });
}

const cell = (v: unknown) => (v === undefined || v === null ? '' : String(v));
const field = (name: string) => (r: Record<string, unknown>) => cell(r[name]);

const CLUSTER_COLUMNS = [
  column<ClusterSummary>('NAME', (c) => c.name),
  column<ClusterSummary>('PROVIDER', (c) => c.provider),
  column<ClusterSummary>('REGION', (c) => c.region ?? ''),
  column<ClusterSummary>('HEALTHY', (c) => String(c.healthy)),
  column<ClusterSummary>('DRAINING', (c) => String(c.draining)),
  column<ClusterSummary>('NODES', (c) => String(c.nodes)),
  column<ClusterSummary>('POOLS', (c) => c.pools.join(',')),
  wideColumn<ClusterSummary>('AGENT', (c) => c.agentId ?? ''),
  wideColumn<ClusterSummary>('LAST HEARTBEAT', (c) =>
    c.lastHeartbeat ? new Date(c.lastHeartbeat).toISOString() : '',
  ),
];

type Row = Record<string, unknown>;
const LIST_COLUMNS: Record<'requests' | 'leases' | 'nodes', Column<Row>[]> = {
  requests: [
    column('REQUEST', field('requestId')),
    column('TEAM', field('team')),
    column('STATUS', field('state')),
    column('LEASE', field('leaseId')),
    column('ATTEMPT', field('attempt')),
    column('REASON', field('reason')),
  ],
  leases: [
    column('LEASE', field('leaseId')),
    column('REQUEST', field('requestId')),
    column('CLUSTER', field('cluster')),
    column('POOL', field('pool')),
    column('NODE', field('node')),
    column('STATUS', field('state')),
    column('$/HOUR', (r) => (typeof r.pricePerHour === 'number' ? `$${r.pricePerHour.toFixed(4)}` : '')),
    wideColumn('WHY', (r) => {
      const e = r.explanation as PlacementExplanation | undefined;
      return e ? `[${e.why.kind}] ${e.why.detail}` : cell(r.why);
    }),
    wideColumn('NEXT BEST', (r) => {
      const n = (r.explanation as PlacementExplanation | undefined)?.nextBest;
      return n ? `${n.poolId} $${n.costPerTask.toFixed(4)}: ${n.whyNot.detail}` : '';
    }),
  ],
  nodes: [
    column('CLUSTER', field('cluster')),
    column('NAME', field('name')),
    column('POOL', field('pool')),
    column('CAPACITY', field('capacityType')),
    column('READY', field('ready')),
    column('CPU', (r) => (typeof r.cpuMilli === 'number' ? formatCpu(r.cpuMilli) : '')),
    column('MEMORY', (r) => (typeof r.memoryMiB === 'number' ? formatMemory(r.memoryMiB) : '')),
    column('GPUS', field('gpuCount')),
    wideColumn('PLANNED AS', field('plannedId')),
    wideColumn('READY AT', (r) => (typeof r.readyAt === 'number' ? new Date(r.readyAt).toISOString() : '')),
  ],
};

const usd = (v: number | undefined) => (v === undefined ? '' : `$${v.toFixed(2)}`);
const BUDGET_COLUMNS = [
  column<BudgetStatus>('TEAM', (b) => b.team),
  column<BudgetStatus>('POLICY', (b) => b.policy),
  column<BudgetStatus>('$/HOUR CAP', (b) => usd(b.perHour?.cap)),
  column<BudgetStatus>('USED $/HOUR', (b) => usd(b.perHour?.usedPerHour)),
  column<BudgetStatus>('MONTH', (b) => b.perMonth?.month ?? ''),
  column<BudgetStatus>('MONTHLY CAP', (b) => usd(b.perMonth?.cap)),
  column<BudgetStatus>('SPENT', (b) => usd(b.perMonth?.spent)),
  column<BudgetStatus>('COMMITTED', (b) => usd(b.perMonth?.committed)),
  column<BudgetStatus>('REMAINING', (b) => usd(b.perMonth?.remaining)),
  column<BudgetStatus>('HELD', (b) => (b.held ? 'yes' : '')),
];
