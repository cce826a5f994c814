/**
 * `gantry run`, `gantry lineage` and `gantry demo`: running workflows and reading what they did.
 */
import { existsSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { loadPlatform } from '../../policies/index.ts';
import {
  openLocalStore,
  parseMessage,
  runEvent,
  type Store,
  StoreLockedError,
  subjects,
  type Transport,
} from '../../protocol/index.ts';
import { connectNats, openJetStreamStore } from '../../protocol/nats-index.ts';
import type { ArtifactStore } from '../../runtime/artifacts.ts';
import {
  type LineageRecord,
  lineageDot,
  lineageText,
  loadWorkflow,
  type RunEvent,
  Runtime,
  type RunResult,
  runWorkflow,
  storeCache,
} from '../../runtime/index.ts';
import { openJetStreamArtifacts } from '../../runtime/nats-artifacts.ts';
import { type Embedded, startEmbedded } from '../embedded.ts';
import { LINEAGE_STREAM, RUNTIME_BUCKET } from '../credentials.ts';
import { UsageError } from '../errors.ts';
import { table } from '../table.ts';
import { type HistoryFlags, historyOptions, withHistory } from './history.ts';

interface Connection {
  transport: Transport;
  artifacts: ArtifactStore;
  store: Store;
  embedded?: Embedded;
  close(): Promise<void>;
}

interface ConnectFlags {
  file?: string[];
  nats?: string;
  creds?: string;
  state: string;
  speedup: string;
}

function positive(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0)
    throw new UsageError(`${flag} must be a positive number, not '${value}'`);
  return n;
}

/** Connects to a running Gantry over NATS, or starts one in this process. */
async function connectRuntime(flags: ConnectFlags, name: string): Promise<Connection> {
  if (flags.nats) {
    const nats = await connectNats({
      servers: flags.nats,
      name,
      ...(flags.creds ? { creds: flags.creds } : {}),
    });
    const store = await openJetStreamStore(nats.connection, {
      bucket: RUNTIME_BUCKET,
      stream: LINEAGE_STREAM,
    });
    return {
      transport: nats,
      artifacts: await openJetStreamArtifacts(nats.connection),
      store,
      async close() {
        await store.close();
        await nats.close();
      },
    };
  }
  const files = flags.file ?? ['examples'];
  const { platform } = loadPlatform(files);
  let embedded: Embedded;
  try {
    embedded = await startEmbedded({
      platform,
      stateDir: flags.state,
      speedup: positive('--speedup', flags.speedup),
      heartbeatMs: 500,
    });
  } catch (err) {
    if (err instanceof StoreLockedError)
      throw new UsageError(
        `${flags.state} is in use by another Gantry process (a \`gantry up\`?): pass another --state, or --nats to use that one`,
      );
    throw err;
  }
  return {
    transport: embedded.transport,
    artifacts: embedded.artifacts,
    store: embedded.runtimeStore,
    embedded,
    close: () => embedded.stop(),
  };
}

const money = (usd: number) =>
  usd >= 100 ? `$${usd.toFixed(0)}` : usd >= 1 ? `$${usd.toFixed(2)}` : `$${usd.toFixed(4)}`;

/** One line per run event, as `gantry run` prints them. */
export function eventLine(ev: RunEvent): string {
  const p = ev.placement;
  const where = p ? `${p.cluster}/${p.pool} ${p.capacityType} $${p.pricePerHour.toFixed(2)}/h` : '';
  const task = ev.task.padEnd(14);
  switch (ev.type) {
    case 'placed':
      return `  placed     ${task} → ${where}  (${ev.message ? `${ev.message}; ` : ''}${p?.why ?? ''})`;
    case 'workers':
      return `  warm       ${task} → ${where}  (${ev.message ?? ''})`;
    case 'preempted':
      return `  PREEMPTED  ${task} on ${p ? `${p.cluster}/${p.node}` : '?'}: ${ev.message ?? ''}`;
    case 'retry':
      return `  retry      ${task} ${ev.message ?? ''}`;
    case 'failed':
      return `  failed     ${task} on ${where}: ${ev.message ?? ''}`;
    case 'succeeded':
      return `  done       ${task} on ${where}  ${money(ev.costUsd ?? 0)}`;
    case 'cached':
      return `  cached     ${task} (output reused, nothing ran)`;
    default:
      return '';
  }
}

/** The cost of a run by task and pool, from its lineage. */
export function costTable(records: readonly LineageRecord[]): string {
  const rows = new Map<
    string,
    {
      task: string;
      where: string;
      runs: number;
      failed: number;
      preempted: number;
      seconds: number;
      cost: number;
    }
  >();
  for (const r of records) {
    if (!r.placement) continue;
    const where = `${r.placement.cluster}/${r.placement.pool} (${r.placement.capacityType}${r.placement.gpuModel ? `, ${r.placement.gpuMilli / 1000}× ${r.placement.gpuModel}` : ''})`;
    const key = `${r.task}|${where}`;
    const row = rows.get(key) ?? {
      task: r.task,
      where,
      runs: 0,
      failed: 0,
      preempted: 0,
      seconds: 0,
      cost: 0,
    };
    row.runs++;
    if (r.error) row.failed++;
    row.preempted += r.preemptions;
    row.seconds += (r.endedAt - r.startedAt) / 1000;
    row.cost += r.costUsd;
    rows.set(key, row);
  }
  const total = [...rows.values()].reduce((a, r) => a + r.cost, 0);
  const body = [...rows.values()].map((r) => [
    r.task,
    r.where,
    String(r.runs),
    r.failed ? String(r.failed) : '',
    r.preempted ? String(r.preempted) : '',
    money(r.cost),
  ]);
  body.push(['total', '', '', '', '', money(total)]);
  return table(['TASK', 'WHERE', 'RUNS', 'FAILED', 'PREEMPTED', 'COST'], body);
}

interface RunFlags extends ConnectFlags {
  input?: string;
  task?: string;
  team?: string;
  json?: boolean;
  quiet?: boolean;
}

function parseInput(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--input is not JSON: ${(err as Error).message}`);
  }
}

/** Runs a workflow with events printed as they come; returns the result and its lineage. */
async function runAndReport(
  conn: Connection,
  file: string,
  flags: RunFlags,
  onEvent?: (ev: RunEvent) => void,
): Promise<{ result: RunResult; records: LineageRecord[] }> {
  const module = resolve(file);
  if (!existsSync(module)) throw new UsageError(`no workflow file ${file}`);
  const input = parseInput(flags.input);
  const team = flags.team ?? process.env.GANTRY_TEAM;
  if (!team) throw new UsageError('--team is required (or set GANTRY_TEAM): whose ResourcePolicy applies');
  let loaded;
  try {
    loaded = await loadWorkflow(module, flags.task);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const speedup = conn.embedded ? positive('--speedup', flags.speedup) : 1;
  const runtime = new Runtime({
    transport: conn.transport,
    artifacts: conn.artifacts,
    timeScale: speedup,
    cache: storeCache(conn.store),
    progress: flags.quiet ? false : undefined,
  });
  const runId = `run-${new Date().toISOString().slice(0, 19).replace(/[-:T]/g, '')}-${Math.random().toString(36).slice(2, 6)}`;
  const out = (line: string) => {
    if (!flags.quiet && !flags.json && line) process.stdout.write(`${line}\n`);
  };
  out(
    `run ${runId}: ${loaded.workflow.taskName} from ${file} as team ${team}${conn.embedded ? ` (embedded, ${speedup}× simulated time)` : ''}`,
  );
  const sub = conn.transport.subscribe(subjects.runEvents(runId), (msg) => {
    const p = parseMessage(runEvent, msg.data);
    if (!p.ok) return;
    const ev = p.value;
    onEvent?.(ev);
    out(eventLine(ev));
  });
  await conn.transport.flush();
  const records: LineageRecord[] = [];
  const result = await runWorkflow(loaded.workflow, input, {
    runtime,
    team,
    module,
    store: conn.store,
    runId,
    onRecord: (r) => records.push(r),
  });
  sub.unsubscribe();
  runtime.stopWorkers();
  return { result, records };
}

function printResult(result: RunResult, records: LineageRecord[], flags: RunFlags): number {
  if (flags.json) {
    process.stdout.write(
      `${JSON.stringify({ runId: result.runId, ok: result.ok, output: result.output, error: result.error ? String((result.error as Error).message ?? result.error) : undefined, costUsd: result.costUsd, executions: result.executions })}\n`,
    );
    return result.ok ? 0 : 1;
  }
  if (records.some((r) => r.placement)) process.stdout.write(`\n${costTable(records)}\n`);
  const secs = ((result.endedAt - result.startedAt) / 1000).toFixed(1);
  if (result.ok) {
    process.stdout.write(
      `run ${result.runId} succeeded in ${secs}s, cost ${money(result.costUsd)}\noutput: ${JSON.stringify(result.output)}\n`,
    );
    const state = flags.state !== '.gantry/state' ? ` --state ${flags.state}` : '';
    process.stdout.write(`lineage: node bin/gantry.js lineage ${result.runId}${state}\n`);
    return 0;
  }
  const err = result.error as Error;
  process.stderr.write(
    `run ${result.runId} failed after ${secs}s (cost ${money(result.costUsd)}): ${err?.name ?? 'Error'}: ${err?.message ?? String(result.error)}\n`,
  );
  return 1;
}

/** Adds `gantry run`, `gantry lineage` and `gantry demo`. */
export function registerRunCommands(program: Command): void {
  const connection = (cmd: Command) =>
    cmd
      .option(
        '-f, --file <path...>',
        'platform YAML for embedded mode (Clusters, ResourcePolicies, Profiles)',
        ['examples'],
      )
      .option('--nats <url>', 'run against a broker over NATS instead of embedded')
      .option('--creds <file>', 'NATS credentials file')
      .option('--state <dir>', 'state directory (embedded mode)', '.gantry/state')
      .option('--speedup <n>', 'simulated seconds per second of the embedded clusters', '60');

  connection(
    program
      .command('run <file>')
      .description(
        'Run a workflow: embedded by default (broker, simulated and local clusters here), or over NATS',
      )
      .option('--input <json>', 'the workflow input, as JSON')
      .option('--task <name>', 'the workflow to run, if the file does not export one as default')
      .option('--team <team>', 'whose ResourcePolicy applies (default: $GANTRY_TEAM)')
      .option('--json', 'print only the result as JSON')
      .option('-q, --quiet', 'print no events or progress'),
  ).action(async (file: string, flags: RunFlags) => {
    const conn = await connectRuntime(flags, 'gantry-run');
    try {
      const { result, records } = await runAndReport(conn, file, flags);
      process.exitCode = printResult(result, records, flags);
    } finally {
      await conn.close();
    }
  });

  historyOptions(
    program
      .command('lineage <target>')
      .description(
        'Provenance of a run or an artifact (a hash, or a prefix of one): what produced it, from what, where, at what cost',
      )
      .option('--downstream', 'follow consumers instead: what was made from it')
      .option('--depth <n>', 'at most this many executions along a path')
      .option('--format <format>', 'text, dot or json', 'text')
      .option('--state <dir>', 'state directory (embedded mode)', '.gantry/state')
      .option('--nats <url>', 'catch up with the lineage in JetStream first')
      .option('--creds <file>', 'NATS credentials file'),
  ).action(
    async (
      target: string,
      flags: HistoryFlags & { downstream?: boolean; format: string; depth?: string },
    ) => {
      if (!['text', 'dot', 'json'].includes(flags.format))
        throw new UsageError(`--format must be text, dot or json, not '${flags.format}'`);
      const depth = flags.depth === undefined ? undefined : positive('--depth', flags.depth);
      const graph = await withHistory(flags, (h) =>
        h.lineage(target, { downstream: flags.downstream ?? false, ...(depth ? { depth } : {}) }),
      );
      if (!graph) throw new UsageError(`no run or artifact '${target}' in the lineage`);
      if (flags.format === 'json') process.stdout.write(`${JSON.stringify(graph, null, 2)}\n`);
      else if (flags.format === 'dot') process.stdout.write(`${lineageDot(graph)}\n`);
      else process.stdout.write(`${lineageText(graph)}\n`);
    },
  );

  program
    .command('demo')
    .description(
      'Onboard the example clusters, run the example ML workflow with a spot preemption, print its cost',
    )
    .option('--state <dir>', 'state directory', '.gantry/demo')
    .option('--speedup <n>', 'simulated seconds per second', '1200')
    .option('--rows <n>', 'rows of data the workflow preprocesses (over 50M trains on 8 GPUs)', '80000000')
    .action(async (flags: { state: string; speedup: string; rows: string }) => {
      const rows = positive('--rows', flags.rows);
      const file = 'examples/workflows/train.ts';
      const runFlags: RunFlags = {
        file: ['examples'],
        state: flags.state,
        speedup: flags.speedup,
        team: 'research',
        input: JSON.stringify({ source: 's3://gantry-demo/clickstream', rows, epochs: 3 }),
      };
      const { platform } = loadPlatform(runFlags.file!);
      // Each demo starts with fresh clusters; runs and lineage from earlier demos are kept.
      rmSync(join(flags.state, 'broker'), { recursive: true, force: true });
      process.stdout.write(
        `Gantry demo: ${platform.clusters.length} simulated clusters (${platform.clusters.map((c) => `${c.name}: ${c.pools.map((p) => p.name).join(', ')}`).join('; ')}), ` +
          `policies for ${platform.policies.map((p) => p.name).join(', ')}.\n`,
      );
      const conn = await connectRuntime(runFlags, 'gantry-demo');
      let preempted = false;
      try {
        const { result, records } = await runAndReport(conn, file, runFlags, (ev) => {
          // Reclaim the training node once, to show recovery from a spot preemption.
          if (
            !preempted &&
            ev.type === 'running' &&
            ev.task === 'train' &&
            ev.placement?.capacityType === 'spot'
          ) {
            preempted = true;
            const cloud = conn.embedded!.clouds.get(ev.placement.cluster);
            setTimeout(() => {
              process.stdout.write(`  !! the cloud reclaims spot node ${ev.placement!.node} under train\n`);
              cloud?.reclaimNode(ev.placement!.node);
            }, 300);
          }
        });
        process.exitCode = printResult(result, records, runFlags);
        if (result.ok)
          process.stdout.write(
            `cost report of the clusters: node bin/gantry.js report cost --state ${flags.state} -f examples --by team pool\n`,
          );
      } finally {
        await conn.close();
      }
    });
}
