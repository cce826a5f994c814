/**
 * `gantry cluster onboard|list|describe|drain|remove` for platform teams, and `gantry get
 * requests|leases|nodes` for operators. Everything but `onboard` asks a running broker over NATS.
 */
import type { BudgetStatus } from '../../broker/budgets.ts';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { formatProblem, validatePaths } from '../../policies/index.ts';
import { decodeJson, encodeJson, subjects } from '../../protocol/index.ts';
import { connectNats } from '../../protocol/nats-index.ts';
import {
  agentPermissions,
  authorizationBlock,
  BROKER_PERMISSIONS,
  ensureUser,
  RUNTIME_PERMISSIONS,
  TASK_PERMISSIONS,
  type NatsUser,
} from '../credentials.ts';
import { UsageError } from '../errors.ts';
import { table } from '../table.ts';

interface NatsFlags {
  nats?: string;
  creds?: string;
  output?: string;
}

/** Sends one admin request to the broker and returns its answer; a refusal becomes a UsageError. */
async function admin(flags: NatsFlags, verb: string, body: unknown = {}): Promise<Record<string, unknown>> {
  if (!flags.nats) {
    throw new UsageError(
      `this command asks a running broker: pass --nats <url> (an embedded broker lives inside 'gantry up')`,
    );
  }
  const transport = await connectNats({
    servers: flags.nats,
    name: 'gantry-cli',
    ...(flags.creds ? { creds: flags.creds } : {}),
  });
  try {
    const reply = await transport.request(subjects.admin(verb), encodeJson(body), { timeoutMs: 5000 });
    const answer = decodeJson(reply.data) as { ok: boolean; error?: { message: string } } & Record<
      string,
      unknown
    >;
    if (!answer.ok) throw new UsageError(answer.error?.message ?? 'the broker refused');
    return answer;
  } finally {
    await transport.close();
  }
}

const natsOptions = (c: Command) =>
  c
    .option('--nats <url>', 'NATS server the broker listens on')
    .option('--creds <file>', 'credentials (nkey seed .nk or .creds)')
    .option('-o, --output <format>', 'table or json', 'table');

function print(flags: NatsFlags, json: unknown, headers: string[], rows: string[][]): void {
  if (flags.output === 'json') process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  else process.stdout.write(table(headers, rows));
}

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
    const users: NatsUser[] = [
      ensureUser(flags.credsDir, 'gantry-broker', BROKER_PERMISSIONS),
      ensureUser(flags.credsDir, 'gantry-runtime', RUNTIME_PERMISSIONS),
      ensureUser(flags.credsDir, 'gantry-tasks', TASK_PERMISSIONS),
    ];
    for (const c of onboarded) ensureUser(flags.credsDir, `agent-${c.name}`, agentPermissions(c.name));
    // Every agent onboarded so far, so the block can replace the previous one.
    for (const f of readdirSync(flags.credsDir)
      .filter((f) => /^agent-.*\.nk$/.test(f))
      .sort()) {
      const name = f.replace(/\.nk$/, '').replace(/^agent-/, '');
      users.push(ensureUser(flags.credsDir, `agent-${name}`, agentPermissions(name)));
    }
    const authFile = join(flags.credsDir, 'nats-authorization.conf');
    writeFileSync(authFile, authorizationBlock(users));
    for (const c of onboarded) {
      if (flags.nats) await admin(flags, 'onboard', { cluster: c });
      process.stdout.write(
        `Cluster ${c.name}: ${c.pools.length} pools (${c.pools.map((p) => `${p.name} ${p.instanceType} ${p.capacityType}`).join(', ')})\n` +
          `${flags.nats ? '  registered with the broker\n' : '  validated (pass --nats to register it with a running broker)\n'}` +
          `  agent credentials: ${join(flags.credsDir, `agent-${c.name}.nk`)} (may use only ${agentPermissions(c.name).publish[0]} and what its workflow tasks need)\n` +
          `  start its agent:   gantry agent -f ${flags.file.join(' -f ')} --cluster ${c.name} --nats ${flags.nats ?? 'nats://<server>:4222'} --creds ${join(flags.credsDir, `agent-${c.name}.nk`)}\n`,
      );
    }
    process.stdout.write(
      `workflow runtimes: gantry run <file.ts> --nats ${flags.nats ?? 'nats://<server>:4222'} --creds ${join(flags.credsDir, 'gantry-runtime.nk')}\n` +
        `task pods (Kubernetes): kubectl -n gantry-tasks create secret generic gantry-task-nats --from-file=creds.nk=${join(flags.credsDir, 'gantry-tasks.nk')}\n` +
        `nats-server authorization: ${authFile} (include it in the server config and reload)\n`,
    );
  });

  natsOptions(cluster.command('list').description('Clusters, their health and nodes')).action(
    async (flags: NatsFlags) => {
      const a = (await admin(flags, 'clusters')) as {
        clusters: {
          name: string;
          provider: string;
          region?: string;
          healthy: boolean;
          draining: boolean;
          nodes: number;
          pools: string[];
        }[];
      };
      print(
        flags,
        a.clusters,
        ['NAME', 'PROVIDER', 'REGION', 'HEALTHY', 'DRAINING', 'NODES', 'POOLS'],
        a.clusters.map((c) => [
          c.name,
          c.provider,
          c.region ?? '',
          String(c.healthy),
          String(c.draining),
          String(c.nodes),
          c.pools.join(','),
        ]),
      );
    },
  );

  for (const verb of ['describe', 'drain', 'remove'] as const) {
    const what = {
      describe: 'Pools, nodes and work of a cluster',
      drain: 'Stop new placements on a cluster; running work finishes',
      remove: 'Forget a drained cluster',
    }[verb];
    natsOptions(cluster.command(`${verb} <name>`).description(what)).action(
      async (name: string, flags: NatsFlags) => {
        const a = await admin(flags, verb, { name });
        process.stdout.write(`${JSON.stringify(a.cluster ?? a, null, 2)}\n`);
      },
    );
  }

  const get = program
    .command('get')
    .description('Requests, leases, nodes and budgets as the broker sees them');
  for (const what of ['requests', 'leases', 'nodes'] as const) {
    natsOptions(
      get
        .command(what)
        .description(`List ${what}`)
        .option('--state <state>', 'only this state')
        .option('--limit <n>', 'at most this many, newest', '50'),
    ).action(async (flags: NatsFlags & { state?: string; limit: string }) => {
      const limit = Number(flags.limit);
      if (!Number.isInteger(limit) || limit < 1)
        throw new UsageError(`--limit must be a whole number of at least 1, not '${flags.limit}'`);
      const a = await admin(
        flags,
        what,
        what === 'nodes' ? {} : { limit, ...(flags.state ? { state: flags.state } : {}) },
      );
      const rows = (a[what] as Record<string, unknown>[]) ?? [];
      const cols: Record<typeof what, string[]> = {
        requests: ['requestId', 'team', 'state', 'leaseId', 'attempt', 'reason'],
        leases: ['leaseId', 'requestId', 'cluster', 'pool', 'node', 'state', 'pricePerHour'],
        nodes: ['cluster', 'name', 'pool', 'capacityType', 'ready', 'cpuMilli', 'memoryMiB', 'gpuCount'],
      };
      print(
        flags,
        a,
        cols[what].map((c) => c.toUpperCase()),
        rows.map((r) => cols[what].map((c) => (r[c] === undefined ? '' : String(r[c])))),
      );
    });
  }

  natsOptions(
    get.command('budgets').description("Each team's budgets: spent, committed and remaining"),
  ).action(async (flags: NatsFlags) => {
    const a = (await admin(flags, 'budgets')) as { budgets: BudgetStatus[] };
    const usd = (v: number | undefined) => (v === undefined ? '' : `$${v.toFixed(2)}`);
    print(
      flags,
      a,
      [
        'TEAM',
        'POLICY',
        '$/HOUR CAP',
        'USED $/HOUR',
        'MONTH',
        'MONTHLY CAP',
        'SPENT',
        'COMMITTED',
        'REMAINING',
        'HELD',
      ],
      a.budgets.map((b) => [
        b.team,
        b.policy,
        usd(b.perHour?.cap),
        usd(b.perHour?.usedPerHour),
        b.perMonth?.month ?? '',
        usd(b.perMonth?.cap),
        usd(b.perMonth?.spent),
        usd(b.perMonth?.committed),
        usd(b.perMonth?.remaining),
        b.held ? 'yes' : '',
      ]),
    );
  });
}
