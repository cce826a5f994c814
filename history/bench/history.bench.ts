/**
 * `npm run bench:history [-- --rows 10000000 --executions 1000000 --pglite-rows 300000 --pglite-executions 300000 --replay-max 1000000]`:
 * the history at scale. Prints figures; asserts nothing.
 *
 * - Ingest: ledger and lineage records/s through the ingester (schema check, rows staged by binary
 *   COPY and merged set-wise, offsets in the batch's transaction; the next batch decoded while one is
 *   written) into PGlite and into PostgreSQL, and the process's memory as the history grows.
 * - The cost report grouped by team and pool over every ledger row, on PostgreSQL, beside the replay of
 *   the ledger it replaces (`costReport` over the entries in memory).
 * - Lineage downstream 5 hops over `--executions` executions, beside the replay (`lineageGraph`).
 *
 * A replay needs all of history in memory: past `--replay-max` rows it is timed on that many and scaled
 * up, and says so. PostgreSQL is the server the tests use (`GANTRY_TEST_POSTGRES`, default
 * 127.0.0.1:5432), in a database made for the run and dropped after.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { costReport, type LedgerEntry } from '../../broker/index.ts';
import type { LineageRecord } from '../../protocol/index.ts';
import { lineageGraph } from '../../runtime/index.ts';
import { createTestDatabase } from '../../test/postgres.ts';
import { type History, openHistory, sqlCostReport, sqlLineage } from '../index.ts';
import { ledgerStream, lineageStream, stepOutput, take } from './data.ts';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : Number(process.argv[i + 1]);
};
const ROWS = arg('rows', 10_000_000);
const EXECUTIONS = arg('executions', 1_000_000);
const PGLITE_ROWS = arg('pglite-rows', Math.min(ROWS, 300_000));
const PGLITE_EXECUTIONS = arg('pglite-executions', Math.min(EXECUTIONS, 300_000));
const REPLAY_MAX = arg('replay-max', 1_000_000);
/** Records per log entry, and entries per transaction (what gantry history applies at once). */
const PER_ENTRY = 50;
const PER_BATCH = 200;
/** Batches generated ahead of ingesting them. */
const AHEAD = 10;
const T0 = Date.UTC(2026, 0, 1);
const SEED = 42;

const mib = () => Math.round(process.memoryUsage().rss / 2 ** 20);
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const rate = (n: number, ms: number) => `${Math.round(n / (ms / 1000)).toLocaleString('en-US')}/s`;
const enc = new TextEncoder();
const say = (s: string) => process.stdout.write(`${s}\n`);

/**
 * Ingests `n` records of `gen` into `history` as `source`, as `gantry history` does: each batch handed
 * over while the one before is written. Returns the time spent applying and the memory at each tenth.
 * The log is generated ahead, {@link AHEAD} batches at a time with nothing being written, and not
 * timed: what is timed is the wall time from handing over a chunk's first batch to its last commit.
 */
async function ingest<T>(
  history: History,
  source: 'broker' | 'runtime',
  gen: Iterator<T>,
  n: number,
  label: string,
): Promise<{ ms: number; memory: { records: number; rssMiB: number }[] }> {
  let seq = 0;
  let done = 0;
  let ms = 0;
  const memory: { records: number; rssMiB: number }[] = [];
  let nextMark = n / 10;
  let lastPrint = Date.now();
  while (done < n) {
    const chunk: { seq: number; data: Uint8Array }[][] = [];
    for (let b = 0; b < AHEAD && done < n; b++) {
      const entries: { seq: number; data: Uint8Array }[] = [];
      for (let e = 0; e < PER_BATCH && done < n; e++) {
        const records = [...take(gen, Math.min(PER_ENTRY, n - done))];
        done += records.length;
        entries.push({ seq: ++seq, data: enc.encode(JSON.stringify(records)) });
      }
      chunk.push(entries);
    }
    const t = performance.now();
    let writing: Promise<unknown> | undefined;
    for (const entries of chunk) {
      const next = history.ingester.apply(source, entries, 'bench');
      await writing;
      writing = next;
    }
    await writing;
    ms += performance.now() - t;
    chunk.length = 0;
    if (done >= nextMark) {
      memory.push({ records: done, rssMiB: mib() });
      while (nextMark <= done) nextMark += n / 10;
    }
    if (Date.now() - lastPrint > 10_000) {
      process.stderr.write(
        `  ${label}: ${done.toLocaleString('en-US')} of ${n.toLocaleString('en-US')} records\n`,
      );
      lastPrint = Date.now();
    }
  }
  return { ms, memory };
}

/** The ledger's and then lineage's ingest into `history`: a row of figures each. */
async function ingestBoth(history: History, name: string, ledger: number, executions: number) {
  const r = await ingest(history, 'broker', ledgerStream(SEED, T0), ledger, `${name} ledger`);
  const l = await ingest(history, 'runtime', lineageStream(5), executions, `${name} lineage`);
  return [
    [
      `ingest ledger → ${name}`,
      `${ledger.toLocaleString('en-US')} records`,
      rate(ledger, r.ms),
      '',
      memoryLine(r.memory),
    ],
    [
      `ingest lineage → ${name}`,
      `${executions.toLocaleString('en-US')} executions`,
      rate(executions, l.ms),
      '',
      memoryLine(l.memory),
    ],
  ];
}

/** Median of `times` runs of `fn`, in ms. */
async function median(times: number, fn: () => Promise<unknown> | unknown): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < times; i++) {
    const t = performance.now();
    await fn();
    ms.push(performance.now() - t);
  }
  return ms.sort((a, b) => a - b)[Math.floor(ms.length / 2)]!;
}

function memoryLine(memory: { records: number; rssMiB: number }[]): string {
  return memory.map((m) => `${(m.records / 1e6).toFixed(m.records < 1e6 ? 2 : 1)}M:${m.rssMiB}`).join(' ');
}

async function main(): Promise<void> {
  say(
    `bench:history: ${ROWS.toLocaleString('en-US')} ledger rows, ${EXECUTIONS.toLocaleString('en-US')} executions ` +
      `(PGlite ${PGLITE_ROWS.toLocaleString('en-US')} rows, ${PGLITE_EXECUTIONS.toLocaleString('en-US')} executions; ` +
      `replays on at most ${REPLAY_MAX.toLocaleString('en-US')})`,
  );
  const rows: string[][] = [];

  // PGlite: ingest only (one process, WebAssembly).
  const dir = mkdtempSync(join(tmpdir(), 'gantry-bench-history-'));
  try {
    const lite = await openHistory({ dir });
    rows.push(...(await ingestBoth(lite, 'PGlite', PGLITE_ROWS, PGLITE_EXECUTIONS)));
    await lite.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const database = await createTestDatabase('gantry_bench_history');
  try {
    const pg = await openHistory({ dir: '', postgres: database.url });
    rows.push(...(await ingestBoth(pg, 'PostgreSQL', ROWS, EXECUTIONS)));
    await pg.db.exec('vacuum analyze');

    // The cost report over the whole ledger, by team and pool.
    const [span] = await pg.db.query<{ a: number; b: number }>(
      'select min(start_at) as a, max(end_at) as b from usage',
    );
    const window = { since: span!.a, until: span!.b + 1 };
    const before = mib();
    let sqlTotal = 0;
    const sqlMs = await median(3, async () => {
      sqlTotal = (await sqlCostReport(pg.db, { by: ['team', 'pool'], ...window })).totals.costUsd;
    });
    const sqlMiB = Math.max(0, mib() - before);
    const replayN = Math.min(ROWS, REPLAY_MAX);
    const ledger: LedgerEntry[] = [...take(ledgerStream(SEED, T0), replayN)];
    const last = ledger.at(-1)!.at;
    const heldMiB = mib();
    const replayBase = before + sqlMiB;
    let replayTotal = 0;
    const replayMs = await median(1, () => {
      replayTotal = costReport(ledger, { by: ['team', 'pool'], since: window.since, until: last + 1 }).totals
        .costUsd;
    });
    ledger.length = 0;
    const scaled = ROWS > replayN;
    rows.push([
      'cost report by team, pool (SQL)',
      `${ROWS.toLocaleString('en-US')} rows`,
      secs(sqlMs),
      `$${Math.round(sqlTotal).toLocaleString('en-US')}`,
      `rss +${sqlMiB} MiB`,
    ]);
    rows.push([
      'cost report by team, pool (replay)',
      `${replayN.toLocaleString('en-US')} rows`,
      scaled ? `${secs((replayMs * ROWS) / replayN)} scaled (${secs(replayMs)} measured)` : secs(replayMs),
      `$${Math.round(replayTotal).toLocaleString('en-US')}${scaled ? ' (first rows)' : ''}`,
      `holds ${heldMiB - replayBase} MiB${scaled ? ` (≈${Math.round(((heldMiB - replayBase) * ROWS) / replayN)} MiB for all)` : ''}`,
    ]);

    // Lineage downstream 5 hops from an artifact in the middle of history.
    const runs = Math.floor(EXECUTIONS / 6);
    const target = stepOutput(Math.floor(runs / 2), 2);
    let sqlNodes = 0;
    const lineMs = await median(5, async () => {
      sqlNodes = (await sqlLineage(pg.db, target, { downstream: true, depth: 5 }))?.executions.length ?? 0;
    });
    const lineN = Math.min(EXECUTIONS, REPLAY_MAX);
    const records: LineageRecord[] = [...take(lineageStream(5), lineN)];
    const replayTarget = stepOutput(Math.floor(Math.floor(lineN / 6) / 2), 2);
    let replayNodes = 0;
    const lineReplayMs = await median(3, () => {
      replayNodes =
        lineageGraph(records, replayTarget, { downstream: true, depth: 5 })?.executions.length ?? 0;
    });
    records.length = 0;
    const lineScaled = EXECUTIONS > lineN;
    rows.push([
      'lineage downstream 5 hops (SQL)',
      `${EXECUTIONS.toLocaleString('en-US')} executions`,
      `${lineMs.toFixed(1)} ms`,
      `${sqlNodes} executions`,
      '',
    ]);
    rows.push([
      'lineage downstream 5 hops (replay)',
      `${lineN.toLocaleString('en-US')} executions`,
      lineScaled
        ? `${((lineReplayMs * EXECUTIONS) / lineN).toFixed(0)} ms scaled`
        : `${lineReplayMs.toFixed(1)} ms`,
      `${replayNodes} executions`,
      '',
    ]);
    const [size] = await pg.db.query<{ s: string }>(
      'select pg_size_pretty(pg_database_size(current_database())) as s',
    );
    say(`PostgreSQL database: ${size!.s}`);
    await pg.close();
  } finally {
    await database.drop();
  }
  const header = ['what', 'over', 'time / rate', 'answer', 'memory (MiB, rss at each tenth)'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  say(line(header));
  for (const r of rows) say(line(r));
}

await main();
