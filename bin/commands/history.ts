/**
 * The history from the command line: `gantry history` (ingest and the query API as a process),
 * `gantry get runs` and `gantry describe run`, and how `report cost` and `lineage` reach the history:
 * a running API (`--history <url>`, `GANTRY_HISTORY`, or the one `gantry up` announces in the state
 * directory), else the store opened here (`--postgres <url>` / `GANTRY_POSTGRES`, else PGlite in
 * `<state>/history`), first catching up with the logs (the state directory, or JetStream with --nats).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { onDemandPrices } from '../../broker/index.ts';
import {
  catchUp,
  type History,
  type HistoryClient,
  historyApi,
  httpHistoryClient,
  localHistoryClient,
  openHistory,
  recordBudgets,
  type RunDetail,
} from '../../history/index.ts';
import { loadPlatform, type Platform } from '../../policies/index.ts';
import { formatUsd } from '../../runtime/index.ts';
import {
  openLocalStore,
  RUN_STATUSES,
  type RunRecord,
  type Store,
  StoreLockedError,
} from '../../protocol/index.ts';
import { defaultBackends } from '../../solver/index.ts';
import { BROKER_BUCKET, BROKER_STREAM, LINEAGE_STREAM, RUNTIME_BUCKET } from '../credentials.ts';
import { connectCli, openStoreCli } from '../connect.ts';
import { UsageError } from '../errors.ts';
import {
  checkWindow,
  column,
  type Output,
  outputOption,
  printObject,
  printObjects,
  wideColumn,
} from '../options.ts';
import { table } from '../table.ts';

/** Where a command finds the history. */
export interface HistoryFlags {
  history?: string;
  postgres?: string;
  state: string;
  nats?: string;
  creds?: string;
  file?: string[];
}

/** Adds `--history <url>` and `--postgres <url>` (the others, `--state`, `--nats`, are the command's). */
export function historyOptions(cmd: Command): Command {
  return cmd
    .option(
      '--history <url>',
      'ask a running history API (gantry history, gantry up); default: $GANTRY_HISTORY',
    )
    .option(
      '--postgres <url>',
      'the history in this PostgreSQL database; default: $GANTRY_POSTGRES, else PGlite in the state directory',
    );
}

/** The file `gantry up` and `gantry history` write so that commands on the same state directory ask them. */
export const apiFile = (state: string) => join(state, 'history', 'api.json');

function announced(state: string): string | undefined {
  try {
    const { url, pid } = JSON.parse(readFileSync(apiFile(state), 'utf8')) as { url: string; pid: number };
    process.kill(pid, 0);
    return url;
  } catch {
    return undefined;
  }
}

/**
 * Runs `use` with a client of the history, as the flags say; a store opened here is caught up with the
 * logs first and closed after.
 */
export async function withHistory<T>(
  flags: HistoryFlags,
  use: (client: HistoryClient) => Promise<T>,
): Promise<T> {
  const url = flags.history ?? process.env.GANTRY_HISTORY ?? announced(flags.state);
  if (url) return use(httpHistoryClient(url, process.env.GANTRY_CONSOLE_TOKEN || undefined));
  const postgres = flags.postgres ?? process.env.GANTRY_POSTGRES;
  if (
    !postgres &&
    !flags.nats &&
    !['broker', 'runtime', 'history'].some((d) => existsSync(join(flags.state, d)))
  )
    throw new UsageError(
      `no Gantry state in ${flags.state}: pass --state <dir>, --history <url> of a running history, --postgres <url>, or --nats`,
    );
  const platform: Platform | undefined = flags.file ? loadPlatform(flags.file).platform : undefined;
  return withCaughtUpHistory(flags, async (history) => {
    if (platform) await recordBudgets(history.db, platform, Date.now());
    const app = historyApi({
      db: history.db,
      ...(platform
        ? { platform, onDemand: onDemandPrices(platform), backends: await defaultBackends() }
        : {}),
    });
    return use(localHistoryClient(app, history.db.where));
  });
}

/**
 * Runs `use` with the history database opened here (`--postgres`, else PGlite in `<state>/history`),
 * caught up with the logs first (JetStream with `--nats`, else the state directory's), and closed after.
 */
export async function withCaughtUpHistory<T>(
  flags: Omit<HistoryFlags, 'history' | 'file'>,
  use: (history: History) => Promise<T>,
): Promise<T> {
  // Reach NATS before creating or opening the database: a server that is down is the one line to print,
  // and nothing is created for a question that cannot be answered.
  const logs = flags.nats ? await openNatsLogs({ nats: flags.nats, creds: flags.creds }) : undefined;
  const history = await openHistoryCli(flags, () => logs?.close());
  try {
    await catchUpFrom(history, flags, logs);
    return await use(history);
  } finally {
    await history.close();
    await logs?.close();
  }
}

/**
 * Opens the history as the flags say (`--postgres`, `$GANTRY_POSTGRES`, else PGlite in
 * `<state>/history`, saying so when it is created); `onFail` releases what was opened before.
 */
export async function openHistoryCli(
  flags: { postgres?: string | undefined; state: string },
  onFail: () => Promise<void> | undefined,
): Promise<History> {
  return openHistory({
    postgres: flags.postgres ?? process.env.GANTRY_POSTGRES,
    dir: join(flags.state, 'history'),
    onCreate: (dir) =>
      process.stderr.write(`creating the history database in ${dir} (once; a few seconds)\n`),
  }).catch(async (err: unknown) => {
    await onFail();
    throw err;
  });
}

/** The broker's and the runtime's logs in JetStream, opened before any database is touched. */
async function openNatsLogs(target: { nats: string; creds: string | undefined }) {
  const nats = await connectCli(target, 'gantry-history-cli');
  const stores: [source: 'broker' | 'runtime', store: Store][] = [];
  const close = async () => {
    for (const [, store] of stores) await store.close();
    await nats.close();
  };
  try {
    for (const [source, bucket, stream] of [
      ['broker', BROKER_BUCKET, BROKER_STREAM],
      ['runtime', RUNTIME_BUCKET, LINEAGE_STREAM],
    ] as const)
      stores.push([source, await openStoreCli(nats, target, { bucket, stream })]);
  } catch (err) {
    await close();
    throw err;
  }
  return { stores, close };
}

/** Ingests what the logs hold that the history does not: JetStream with --nats, else the state directory. */
async function catchUpFrom(
  history: History,
  flags: Pick<HistoryFlags, 'state'>,
  logs: Awaited<ReturnType<typeof openNatsLogs>> | undefined,
): Promise<void> {
  if (logs) {
    for (const [source, store] of logs.stores) await catchUp(history.ingester, source, store);
    return;
  }
  for (const source of ['broker', 'runtime'] as const) {
    const dir = join(flags.state, source);
    if (!existsSync(dir)) continue;
    let store: Store;
    try {
      store = await openLocalStore(dir);
    } catch (err) {
      if (!(err instanceof StoreLockedError)) throw err;
      process.stderr.write(
        `gantry: ${dir} is in use by process ${err.pid}: answering from the history as last ingested (ask that process with --history)\n`,
      );
      continue;
    }
    try {
      await catchUp(history.ingester, source, store);
    } finally {
      await store.close();
    }
  }
}

const when = (t: number | undefined) =>
  t === undefined ? '' : new Date(t).toISOString().slice(0, 19).replace('T', ' ');
const took = (r: { startedAt: number; endedAt?: number }) =>
  r.endedAt === undefined ? '' : `${((r.endedAt - r.startedAt) / 1000).toFixed(1)}s`;

const RUN_COLUMNS = [
  column<RunRecord>('RUN', (r) => r.run),
  column<RunRecord>('WORKFLOW', (r) => r.workflow),
  column<RunRecord>('TEAM', (r) => r.team),
  column<RunRecord>('STATUS', (r) => r.status),
  column<RunRecord>('STARTED', (r) => when(r.startedAt)),
  column<RunRecord>('TOOK', took),
  column<RunRecord>('EXECUTIONS', (r) => String(r.executions)),
  column<RunRecord>('COST', (r) => formatUsd(r.costUsd)),
  wideColumn<RunRecord>('ERROR', (r) => r.error ?? ''),
  wideColumn<RunRecord>('MODULE', (r) => r.module),
];

type DescribedExecution = RunDetail['executions'][number];

/** A running execution's phase: its lease's state while placed or launching, else running. */
const phase = (e: DescribedExecution) => {
  const state = e.placements.at(-1)?.state;
  return state === 'placed' || state === 'launching' ? state : 'running';
};

/** What an execution came to, or its phase while it runs. */
const outcome = (e: DescribedExecution) =>
  e.running ? phase(e) : e.error ? `failed: ${e.error.name}` : e.cached ? 'cached' : 'ok';

/** The text of `gantry describe run`; `now` dates how long running executions have run. */
export function describeRunText(d: RunDetail, wide: boolean, now = Date.now()): string {
  const r = d.run;
  const running = d.executions.filter((e) => e.running).length;
  const lines = [
    `Run:         ${r.run}`,
    `Workflow:    ${r.workflow}${r.module ? ` (${r.module})` : ''}`,
    `Team:        ${r.team}`,
    `Status:      ${r.status}${r.error ? `: ${r.error}` : ''}`,
    `Started:     ${when(r.startedAt)}${r.endedAt !== undefined ? `, took ${took(r)}` : ''}`,
    `Cost:        ${formatUsd(r.costUsd)} over ${r.executions} executions`,
    `Input:       ${r.input}`,
    ...(r.output ? [`Output:      ${r.output}`] : []),
    '',
    `Executions (${d.executions.length}${running ? `, ${running} running` : ''}):`,
  ];
  const rows = d.executions.map((e) => {
    const p = e.placement;
    return [
      e.task,
      e.execution,
      String(e.attempt + 1),
      outcome(e),
      p ? `${p.cluster}/${p.pool} ${p.capacityType}` : 'driver',
      p ? `$${p.pricePerHour.toFixed(2)}` : '',
      formatUsd(e.costUsd),
      e.running
        ? `${((now - e.startedAt) / 1000).toFixed(1)}s so far`
        : `${((e.endedAt - e.startedAt) / 1000).toFixed(1)}s`,
      ...(wide ? [e.placements.map((pl) => `${pl.leaseId}: ${pl.why ?? ''}`).join('; ')] : []),
    ];
  });
  lines.push(
    table(
      [
        'TASK',
        'EXECUTION',
        'ATTEMPT',
        'OUTCOME',
        'WHERE',
        '$/HOUR',
        'COST',
        'TOOK',
        ...(wide ? ['WHY'] : []),
      ],
      rows,
    )
      .trimEnd()
      .split('\n')
      .map((l) => `  ${l}`)
      .join('\n'),
  );
  return `${lines.join('\n')}\n`;
}

/** Adds `gantry get runs` and `gantry describe run`. */
export function registerHistoryCommands(program: Command): void {
  const get = program.commands.find((c) => c.name() === 'get') ?? program.command('get');
  const state = (c: Command) =>
    c
      .option('--state <dir>', 'state directory of an embedded Gantry', '.gantry/state')
      .option('--nats <url>', 'catch up with the logs in JetStream first')
      .option('--creds <file>', 'NATS credentials');
  outputOption(
    historyOptions(
      state(
        get
          .command('runs')
          .description('Runs from the history, newest first: filter by team, workflow, status and time')
          .option('--team <team>', 'only this team')
          .option('--workflow <name>', 'only this workflow')
          .option('--status <status>', RUN_STATUSES.join(', '))
          .option('--since <when>', 'started at or after (7d, 12h, or a date)')
          .option('--until <when>', 'started before (a duration back from now, or a date)')
          .option('--limit <n>', 'at most this many', '50')
          .option('--cursor <token>', 'the next page, as the last one said'),
      ),
    ),
  ).action(
    async (
      flags: HistoryFlags & {
        output: Output;
        team?: string;
        workflow?: string;
        status?: string;
        since?: string;
        until?: string;
        limit: string;
        cursor?: string;
      },
    ) => {
      if (flags.status && !(RUN_STATUSES as readonly string[]).includes(flags.status))
        throw new UsageError(`--status must be one of ${RUN_STATUSES.join(', ')}, not '${flags.status}'`);
      // Checked before the history is opened, so that the message names the flag.
      checkWindow(flags.since, flags.until);
      if (!/^\d+$/.test(flags.limit) || Number(flags.limit) < 1 || Number(flags.limit) > 1000)
        throw new UsageError(`--limit must be a whole number from 1 to 1000, not '${flags.limit}'`);
      const page = await withHistory(flags, (h) =>
        h.runs({
          team: flags.team,
          workflow: flags.workflow,
          status: flags.status,
          since: flags.since,
          until: flags.until,
          limit: flags.limit,
          cursor: flags.cursor,
        }),
      );
      printObjects(flags.output, page.runs, RUN_COLUMNS, page);
      if (page.next && (flags.output === 'table' || flags.output === 'wide'))
        process.stderr.write(`more: --cursor ${page.next}\n`);
    },
  );

  const describe =
    program.commands.find((c) => c.name() === 'describe') ??
    program.command('describe').description('Describe one object in full');
  outputOption(
    historyOptions(
      state(
        describe
          .command('run <id>')
          .description('A run from the history: its executions, where each ran, why and at what cost'),
      ),
    ),
  ).action(async (id: string, flags: HistoryFlags & { output: Output }) => {
    const d = await withHistory(flags, (h) => h.run(id));
    if (!d) throw new UsageError(`no run '${id}' in the history (gantry get runs lists them)`);
    printObject(flags.output, d, (wide) => describeRunText(d, wide));
  });
}
