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
  subjects,
  type Transport,
} from '../../protocol/index.ts';
import type { ArtifactStore } from '../../runtime/artifacts.ts';
import {
  formatUsd,
  type LineageRecord,
  lineageDot,
  lineageGraph,
  lineageText,
  loadWorkflow,
  readLineage,
  type RunEvent,
  Runtime,
  type RunResult,
  runWorkflow,
  storeCache,
} from '../../runtime/index.ts';
import { openJetStreamArtifacts } from '../../runtime/nats-artifacts.ts';
import type { ResultLookup } from '../../runtime/lease-watch.ts';
import { openJetStreamResults } from '../../runtime/nats-results.ts';
import { type Embedded, startEmbedded } from '../embedded.ts';
import { LINEAGE_STREAM, RUNTIME_BUCKET } from '../credentials.ts';
import { connectCli, expectBroker, openStoreCli } from '../connect.ts';
import { UsageError } from '../errors.ts';
import { gantryCommand, type Output, shippedExamples, outputOption, serialize } from '../options.ts';
import { createDisplay } from '../progress.ts';
import { cancelAndSay, cancelCommand, cancelledByUser } from './run-cancel.ts';
import { costTable, eventLine, waitWatch } from './run-output.ts';
import { type HistoryFlags, historyOptions, withHistory } from './history.ts';
import { startConsole } from '../console.ts';
import { untilSignal } from './serve.ts';

interface Connection {
  transport: Transport;
  artifacts: ArtifactStore;
  store: Store;
  /** Where results are kept (over NATS: a stream per team), to read back one missed while reconnecting. */
  results?: ResultLookup;
  embedded?: Embedded;
  /** How the platform was found, when `-f` was not given. */
  platformNote?: string;
  close(): Promise<void>;
}

interface ConnectFlags {
  file?: string[];
  nats?: string;
  creds?: string;
  state: string;
  speedup?: string;
  replicas?: string;
}

/** `-f` when given; else `./examples` when it exists, said so; else a usage error saying where it looked. */
export function platformFiles(
  flags: { file?: string[] },
  command: string,
): { files: string[]; note: string } {
  if (flags.file) return { files: flags.file, note: '' };
  if (existsSync(DEFAULT_PLATFORM))
    return { files: [DEFAULT_PLATFORM], note: `platform from -f ${DEFAULT_PLATFORM} (the default)` };
  throw new UsageError(
    `${command} needs the platform's YAML: pass -f <dir> (without -f it reads ./${DEFAULT_PLATFORM}, ` +
      `and there is no ${resolve(DEFAULT_PLATFORM)}), or --nats <url> to use a running broker`,
  );
}

const DEFAULT_PLATFORM = 'examples';

/** Simulated seconds per second: `--speedup`, else 60 embedded and 1 over NATS (real clusters). */
function speedupOf(flags: ConnectFlags): number {
  if (flags.speedup !== undefined) return positive('--speedup', flags.speedup);
  return flags.nats ? 1 : 60;
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
    const target = { nats: flags.nats, creds: flags.creds };
    const nats = await connectCli(target, name);
    await expectBroker(nats, target);
    const replicas = flags.replicas === undefined ? 1 : Math.round(positive('--replicas', flags.replicas));
    const store = await openStoreCli(nats, target, {
      bucket: RUNTIME_BUCKET,
      stream: LINEAGE_STREAM,
      replicas,
    });
    return {
      transport: nats,
      artifacts: await openJetStreamArtifacts(nats.connection, undefined, replicas),
      results: await openJetStreamResults(nats.connection, replicas),
      store,
      async close() {
        await store.close();
        await nats.close();
      },
    };
  }
  const { files, note } = platformFiles(flags, `gantry ${name.replace(/^gantry-/, '')}`);
  const { platform } = loadPlatform(files);
  // A state directory another process holds is one line, from main().
  const embedded = await startEmbedded({
    platform,
    stateDir: flags.state,
    speedup: speedupOf(flags),
    heartbeatMs: 500,
  });
  return {
    transport: embedded.transport,
    artifacts: embedded.artifacts,
    store: embedded.runtimeStore,
    embedded,
    platformNote: note,
    close: () => embedded.stop(),
  };
}

interface RunFlags extends ConnectFlags {
  input?: string;
  task?: string;
  team?: string;
  output: Output;
  quiet?: boolean;
  progress: boolean;
  failOnHeld?: boolean;
  brokerWait?: string;
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
  onEvent?: (ev: RunEvent, say: (line: string) => void) => void,
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
    const code = (err as { code?: unknown }).code;
    // Node reads a .ts file as CommonJS where no package.json says "type": "module", and then cannot
    // load it beside the ES modules it imports; its own message names no way out.
    if (code === 'ERR_REQUIRE_CYCLE_MODULE' || code === 'ERR_REQUIRE_ESM')
      throw new UsageError(
        `${file} is read as CommonJS, as no package.json in its folder or above says "type": "module": ` +
          `add one there (echo '{"type":"module"}' > package.json), or name the file .mts`,
      );
    throw new UsageError((err as Error).message);
  }
  const speedup = speedupOf(flags);
  const printsEvents = flags.output === 'table';
  const display = createDisplay({ quiet: flags.quiet || !printsEvents, progress: flags.progress });
  await conn.results?.prepare(team);
  const runtime = new Runtime({
    transport: conn.transport,
    artifacts: conn.artifacts,
    ...(conn.results ? { results: conn.results } : {}),
    ...(flags.brokerWait ? { replyTimeoutMs: positive('--broker-wait', flags.brokerWait) * 1000 } : {}),
    timeScale: speedup,
    cache: storeCache(conn.store),
    progress: display.progress,
  });
  const runId = `run-${new Date().toISOString().slice(0, 19).replace(/[-:T]/g, '')}-${Math.random().toString(36).slice(2, 6)}`;
  const how = conn.embedded
    ? ` (embedded, ${speedup}× simulated time${conn.platformNote ? `, ${conn.platformNote}` : ''})`
    : speedup !== 1
      ? ` (${speedup}× simulated time)`
      : '';
  display.event(`run ${runId}: ${loaded.workflow.taskName} from ${file} as team ${team}${how}`);
  const watch = waitWatch(display);
  let failedOnHold = false;
  const sub = conn.transport.subscribe(subjects.runEvents(team, runId), (msg) => {
    const p = parseMessage(runEvent, msg.data);
    if (!p.ok) return;
    const ev = p.value;
    // --fail-on-held: the first hold the broker reports ends the run (CI that must not wait).
    if (ev.type === 'held' && ev.hold && flags.failOnHeld && !failedOnHold) {
      failedOnHold = true;
      cancelAndSay(conn.transport, team, runId, `--fail-on-held: ${ev.task} held (${ev.hold.kind})`, display);
    }
    onEvent?.(ev, (line) => display.event(line));
    watch.seen(ev);
    display.event(eventLine(ev));
  });
  await conn.transport.flush();
  const records: LineageRecord[] = [];
  let result: RunResult;
  const running = runWorkflow(loaded.workflow, input, {
    runtime,
    team,
    module,
    store: conn.store,
    runId,
    onRecord: (r) => records.push(r),
  });
  // Ctrl-C cancels the run: the broker withdraws what waits and stops what runs, and says which.
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    display.event(`cancelling run ${runId} (Ctrl-C again to quit at once)`);
    cancelAndSay(conn.transport, team, runId, 'Ctrl-C', display);
  };
  process.on('SIGINT', onSigint);
  try {
    result = await running;
  } finally {
    process.off('SIGINT', onSigint);
    watch.stop();
    display.close();
  }
  sub.unsubscribe();
  // Over NATS, warm workers outlive the run (the next run of the same module finds them warm) and stop
  // when idle for their `idleTtl`; embedded, they end with this process's clusters.
  if (conn.embedded) runtime.stopWorkers();
  return { result, records };
}

function printResult(result: RunResult, records: LineageRecord[], flags: RunFlags): number {
  const error = result.error as Error | undefined;
  if (flags.output === 'json' || flags.output === 'yaml') {
    const summary = {
      runId: result.runId,
      ok: result.ok,
      output: result.output,
      error: error ? String(error.message ?? error) : undefined,
      costUsd: result.costUsd,
      executions: result.executions,
    };
    process.stdout.write(
      flags.output === 'json' ? `${JSON.stringify(summary)}\n` : serialize('yaml', summary),
    );
    return result.ok ? 0 : 1;
  }
  if (records.some((r) => r.placement)) process.stdout.write(`\n${costTable(records)}\n`);
  const secs = ((result.endedAt - result.startedAt) / 1000).toFixed(1);
  // The seconds are the wall clock's; the cost is of the clusters' time, simulated when sped up.
  const speedup = speedupOf(flags);
  const simulated = speedup === 1 ? '' : ` in ${speedup}× simulated time`;
  if (result.ok) {
    process.stdout.write(
      `run ${result.runId} succeeded in ${secs}s, cost ${formatUsd(result.costUsd)}${simulated}\noutput: ${JSON.stringify(result.output)}\n`,
    );
    const where = flags.nats
      ? ` --nats ${flags.nats}`
      : flags.state !== '.gantry/state'
        ? ` --state ${flags.state}`
        : '';
    process.stdout.write(`lineage: ${gantryCommand()} lineage ${result.runId}${where}\n`);
    return 0;
  }
  process.stderr.write(
    `run ${result.runId} failed after ${secs}s (cost ${formatUsd(result.costUsd)}${simulated}): ${error?.name ?? 'Error'}: ${error?.message ?? String(result.error)}\n`,
  );
  return 1;
}

/** Where `gantry demo --console` serves the console. */
export const DEMO_CONSOLE_PORT = '8642';

/** Adds `gantry run`, `gantry lineage` and `gantry demo`. */
export function registerRunCommands(program: Command): void {
  const connection = (cmd: Command) =>
    cmd
      .option(
        '-f, --file <path...>',
        'platform YAML for embedded mode (Clusters, ResourcePolicies, Profiles); default ./examples, said when used',
      )
      .option('--nats <url>', 'run against a broker over NATS instead of embedded')
      .option('--creds <file>', 'NATS credentials file')
      .option(
        '--replicas <n>',
        'JetStream replicas of the run records, lineage and artifacts when created (3 on a 3-server NATS cluster)',
      )
      .option('--state <dir>', 'state directory (embedded mode)', '.gantry/state')
      .option(
        '--speedup <n>',
        "simulated seconds per second of the clusters: 60 embedded; over NATS 1, or the agents' --speedup",
      );

  connection(
    outputOption(
      program
        .command('run <file> [run]')
        .description(
          'Run a workflow: embedded by default (broker, simulated and local clusters here), or over NATS. ' +
            '`gantry run cancel <run> --nats <url>` cancels a run (Ctrl-C on gantry run does too)',
        )
        .option('--input <json>', 'the workflow input, as JSON')
        .option('--task <name>', 'the workflow to run, if the file does not export one as default')
        .option('--team <team>', 'whose ResourcePolicy applies (default: $GANTRY_TEAM)')
        .option('-q, --quiet', 'print no events (placements, retries, waits), only the result')
        .option('--no-progress', 'show no progress bar for large maps')
        .option(
          '--broker-wait <seconds>',
          'seconds to wait for the broker to answer a request before asking again (same id, so never twice): short enough to ride out a broker failover',
          '5',
        )
        .option(
          '--fail-on-held',
          'cancel the run and exit 1 as soon as the broker holds one of its tasks (quota, budget, capacity)',
        ),
      ['table', 'json', 'yaml'],
    ),
  ).action(async (file: string, run: string | undefined, flags: RunFlags) => {
    if (file === 'cancel' && !existsSync(file)) return cancelCommand(run, flags);
    if (run !== undefined) throw new UsageError(`gantry run takes one workflow file, not '${run}' too`);
    const conn = await connectRuntime(flags, 'gantry-run');
    try {
      const { result, records } = await runAndReport(conn, file, flags);
      const code = printResult(result, records, flags);
      // Ctrl-C: 130, as a shell reports a command stopped by SIGINT; --fail-on-held: 1.
      process.exitCode = cancelledByUser.has(result.runId) ? (flags.failOnHeld ? 1 : 130) : code;
    } finally {
      await conn.close();
    }
  });

  historyOptions(
    connection(
      outputOption(
        program
          .command('lineage <target>')
          .description(
            'Provenance of a run or an artifact (a run id, a sha256: hash, or the first hex digits of one as printed): what produced it, from what, where, at what cost',
          )
          .option('--downstream', 'follow consumers instead: what was made from it')
          .option('--depth <n>', 'at most this many executions along a path'),
        ['tree', 'dot', 'json', 'yaml'],
      ),
    ),
  ).action(
    async (
      target: string,
      flags: ConnectFlags & HistoryFlags & { downstream?: boolean; output: string; depth?: string },
    ) => {
      const depth = flags.depth === undefined ? undefined : positive('--depth', flags.depth);
      const graph = await withHistory({ ...flags, file: undefined }, (h) =>
        h.lineage(target, { downstream: flags.downstream ?? false, ...(depth ? { depth } : {}) }),
      );
      if (!graph) throw new UsageError(`no run or artifact '${target}' in the lineage`);
      if (graph.executions.length === 0) {
        process.stderr.write(
          flags.downstream
            ? `nothing was made from ${graph.root}: no recorded execution took it as input\n`
            : `no recorded execution produced ${graph.root}: the workflow's own code made it, or it was the run's input\n`,
        );
        return;
      }
      if (flags.output === 'json' || flags.output === 'yaml')
        process.stdout.write(serialize(flags.output, graph));
      else if (flags.output === 'dot') process.stdout.write(`${lineageDot(graph)}\n`);
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
    .option('-q, --quiet', 'print no events, only the result')
    .option('--no-progress', 'show no progress bar for large maps')
    .option('--console', 'serve the web console while it runs, and keep it up after until Ctrl-C')
    .option('--console-port <n>', 'the console on this port (default with --console: 8642; 0: any free port)')
    .action(
      async (flags: {
        state: string;
        speedup: string;
        rows: string;
        quiet?: boolean;
        progress: boolean;
        console?: boolean;
        consolePort?: string;
      }) => {
        const rows = positive('--rows', flags.rows);
        // The demo is about the examples that ship with Gantry, wherever it is run from.
        const examples = shippedExamples();
        const file = join(examples, 'workflows/train.ts');
        const runFlags: RunFlags = {
          file: [examples],
          state: flags.state,
          speedup: flags.speedup,
          team: 'research',
          input: JSON.stringify({ source: 's3://gantry-demo/clickstream', rows, epochs: 3 }),
          output: 'table',
          progress: flags.progress,
          ...(flags.quiet ? { quiet: true } : {}),
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
        const web = await startConsole(
          { consolePort: flags.consolePort ?? (flags.console ? DEMO_CONSOLE_PORT : undefined) },
          {
            broker: conn.embedded!.broker,
            transport: conn.embedded!.transport,
            platform,
            logs: [
              ['broker', conn.embedded!.store],
              ['runtime', conn.embedded!.runtimeStore],
            ],
            state: flags.state,
          },
        ).catch(async (err: unknown) => {
          await conn.close();
          throw err;
        });
        if (web) process.stdout.write(`console on ${web.url} (it stays up after the run; Ctrl-C stops it)\n`);
        try {
          const { result, records } = await runAndReport(conn, file, runFlags, (ev, say) => {
            // Reclaim the training node once, to show recovery from a spot preemption.
            if (
              !preempted &&
              ev.type === 'running' &&
              ev.task === 'train' &&
              ev.placement?.capacityType === 'spot'
            ) {
              preempted = true;
              const cloud = conn.embedded!.clouds.get(ev.placement.cluster);
              // Ten simulated seconds into training: well before it ends, at any speedup.
              setTimeout(
                () => {
                  say(`  !! the cloud reclaims spot node ${ev.placement!.node} under train`);
                  cloud?.reclaimNode(ev.placement!.node);
                },
                10_000 / speedupOf(runFlags),
              );
            }
          });
          process.exitCode = printResult(result, records, runFlags);
          if (result.ok)
            process.stdout.write(
              `cost report of the clusters: ${gantryCommand()} report cost --state ${flags.state} -f ${examples} --by team pool\n`,
            );
          if (web) {
            process.stdout.write(`console on ${web.url}: Ctrl-C stops it\n`);
            await untilSignal(async () => {});
          }
        } finally {
          await web?.close();
          await conn.close();
        }
      },
    );
}
