/**
 * `gantry apply -f <dir>`: the platform's Cluster, ResourcePolicy, ResourceProfile and PriceCatalog YAML,
 * validated here with file:line errors, sent to a running broker, which plans with what changed from its
 * next solve cycle. `gantry get clusters|policies|profiles`: what the broker plans with now.
 */
import type { Command } from 'commander';
import {
  type Cluster,
  formatCpu,
  formatDuration,
  formatGpu,
  formatMemory,
  formatProblem,
  type Policy,
  type Profile,
  validatePaths,
} from '../../policies/index.ts';
import { askBroker } from '../connect.ts';
import { UsageError } from '../errors.ts';
import {
  type Column,
  column,
  natsOptions,
  type Output,
  outputOption,
  printObjects,
  serialize,
  wideColumn,
} from '../options.ts';
import { table } from '../table.ts';

interface Flags {
  nats?: string;
  creds?: string;
  output: Output;
}

interface Applied {
  kind: string;
  name: string;
  action: 'created' | 'configured' | 'unchanged';
}

/** What the broker plans with (the `platform` admin verb). */
interface BrokerPlatform {
  clusters: Cluster[];
  policies: Policy[];
  profiles: Profile[];
}

const APPLIED_KINDS = new Set(['Cluster', 'ResourcePolicy', 'ResourceProfile', 'PriceCatalog']);

/** Adds `gantry apply` and `gantry get clusters|policies|profiles` (under the existing `get`). */
export function registerPlatformCommands(program: Command): void {
  outputOption(
    natsOptions(
      program
        .command('apply')
        .description(
          'Send changed Cluster, ResourcePolicy, ResourceProfile and PriceCatalog YAML to a running broker: effective from its next cycle',
        )
        .requiredOption('-f, --file <path...>', "the platform's YAML (files or dirs), as the broker reads it")
        .option('--dry-run', 'validate and say what would change, change nothing'),
    ),
  ).action(async (flags: Flags & { file: string[]; dryRun?: boolean }) => {
    const { problems, platform, docs } = validatePaths(flags.file);
    if (problems.length > 0) {
      for (const p of problems) process.stdout.write(`${formatProblem(p)}\n`);
      const n = problems.length;
      process.stderr.write(`\n${n} problem${n === 1 ? '' : 's'}: nothing was sent to the broker\n`);
      process.exitCode = 1;
      return;
    }
    const sent = docs.filter((d) => APPLIED_KINDS.has(d.kind));
    if (sent.length === 0)
      throw new UsageError(
        `no Cluster, ResourcePolicy, ResourceProfile or PriceCatalog document in ${flags.file.join(', ')}`,
      );
    const named = (kind: string) => new Set(sent.filter((d) => d.kind === kind).map((d) => d.name));
    const clusters = platform.clusters.filter((c) => named('Cluster').has(c.name));
    const policies = platform.policies.filter((p) => named('ResourcePolicy').has(p.name));
    const profiles = [...platform.profiles.values()].filter((p) => named('ResourceProfile').has(p.name));
    const before = (await askBroker(flags, 'platform')) as unknown as BrokerPlatform;
    const answer = await askBroker(flags, 'apply', {
      clusters,
      policies,
      profiles,
      dryRun: flags.dryRun ?? false,
    });
    if (flags.output === 'json' || flags.output === 'yaml') {
      process.stdout.write(serialize(flags.output, answer));
      return;
    }
    const applied = answer.applied as Applied[];
    const verb = (a: Applied['action']) => (flags.dryRun && a !== 'unchanged' ? `${a} (dry run)` : a);
    for (const a of applied) process.stdout.write(`${a.kind.toLowerCase()}/${a.name} ${verb(a.action)}\n`);
    const repriced = priceChanges(before.clusters, clusters);
    for (const d of sent.filter((x) => x.kind === 'PriceCatalog'))
      process.stdout.write(
        `pricecatalog/${d.name} ${repriced.length > 0 ? 'applied through the pools it prices' : 'unchanged'}\n`,
      );
    if (repriced.length > 0)
      process.stdout.write(`\nPrices that change:\n${table(['POOL', 'WAS $/HOUR', 'NOW $/HOUR'], repriced)}`);
    const changes = applied.filter((a) => a.action !== 'unchanged').length;
    process.stdout.write(
      changes === 0
        ? '\nnothing to change: the broker already plans with these documents\n'
        : flags.dryRun
          ? `\n${changes} change${changes === 1 ? '' : 's'} would apply from the next solve cycle (dry run: nothing sent)\n`
          : `\n${changes} change${changes === 1 ? '' : 's'} effective from the broker's next solve cycle (kept in its store across restarts)\n`,
    );
  });

  const get = program.commands.find((c) => c.name() === 'get');
  if (!get) throw new Error('gantry get must be registered before the platform commands');
  const listing = <T>(
    what: 'clusters' | 'policies' | 'profiles',
    description: string,
    columns: Column<T>[],
  ) =>
    outputOption(natsOptions(get.command(what).description(description))).action(async (flags: Flags) => {
      const a = (await askBroker(flags, 'platform')) as unknown as BrokerPlatform;
      const items = a[what] as unknown as T[];
      printObjects(flags.output, items, columns);
    });
  listing<Cluster>('clusters', 'The clusters and pools the broker plans with (-o yaml: in full)', [
    column('NAME', (c) => c.name),
    column('PROVIDER', (c) => c.provider),
    column('CLOUD', (c) => c.cloud),
    column('REGION', (c) => c.region),
    column('POOLS', (c) => c.pools.map((p) => p.name).join(',')),
    wideColumn('GPUS', (c) =>
      c.pools
        .filter((p) => p.gpuCount > 0)
        .map((p) => `${p.name}:${p.gpuCount}× ${p.gpuModel}`)
        .join(','),
    ),
  ]);
  listing<Policy>('policies', 'The ResourcePolicies the broker plans with (-o yaml: in full)', [
    column('NAME', (p) => p.name),
    column('TEAMS', (p) => p.teams.join(',')),
    column('SPOT', (p) => p.spot),
    column('PRIORITY', (p) => String(p.priority)),
    column('QUOTAS', (p) => String(p.quotas.length)),
    column('BUDGET', (p) =>
      [
        p.budget?.perHour !== undefined ? `$${p.budget.perHour}/h` : '',
        p.budget?.perMonth !== undefined ? `$${p.budget.perMonth}/month` : '',
      ]
        .filter(Boolean)
        .join(', '),
    ),
    wideColumn('ALLOWED CLUSTERS', (p) => p.allowed?.clusters?.join(',') ?? ''),
    wideColumn('GPU MODELS', (p) => p.allowed?.gpuModels?.join(',') ?? ''),
    wideColumn('MAX $/TASK-HOUR', (p) =>
      p.maxPricePerTaskHour !== undefined ? `$${p.maxPricePerTaskHour}` : '',
    ),
  ]);
  listing<Profile>('profiles', 'The ResourceProfiles the broker resolves (-o yaml: in full)', [
    column('NAME', (p) => p.name),
    column('CPU', (p) => (p.cpu !== undefined ? formatCpu(p.cpu) : '')),
    column('MEMORY', (p) => (p.memory !== undefined ? formatMemory(p.memory) : '')),
    column('GPU', (p) => (p.gpu ? formatGpu(p.gpu) : '')),
    column('DURATION', (p) => (p.duration !== undefined ? formatDuration(p.duration) : '')),
    wideColumn('DESCRIPTION', (p) => p.description ?? ''),
  ]);
}

/** Pools whose price differs between what the broker holds and what is being applied. */
function priceChanges(held: readonly Cluster[], applied: readonly Cluster[]): string[][] {
  const was = new Map(held.flatMap((c) => c.pools.map((p) => [p.id, p.price] as const)));
  const rows: string[][] = [];
  for (const c of applied)
    for (const p of c.pools) {
      const before = was.get(p.id);
      if (before !== undefined && before !== p.price)
        rows.push([p.id, `$${before.toFixed(4)}`, `$${p.price.toFixed(4)}`]);
    }
  return rows;
}
