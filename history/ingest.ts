/**
 * Ingest: applies log entries to the history tables, exactly once. Each call applies a batch of entries
 * of one source in one transaction that also moves the source's offset (`ingest_offsets`) to the last
 * sequence applied; entries at or below the offset are skipped. A process killed mid-batch leaves
 * nothing of the batch behind, and the next one starts from the offset: every record once, no gaps.
 *
 * A batch is decoded (and its rows worked out as far as they go without the database) when it is
 * handed over, and written after the batch before it has committed: a reader that hands over the next
 * batch before awaiting the last keeps the database and this process busy at once.
 *
 * Records are applied set-wise, one statement per table per batch: usages and rollups in
 * ingest-usage.ts (charge keys in ingest-keys.ts), node lifetimes in ingest-ledger.ts, placements in
 * ingest-placements.ts, runs and lineage in ingest-runtime.ts.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { RuntimeLogRecord } from '../protocol/index.ts';
import type { Db, Queryable } from './db.ts';
import { IngestGapError } from './errors.ts';
import { ChargeKeys, type FreshKeys } from './ingest-keys.ts';
import { matchLives } from './ingest-ledger.ts';
import { applyLeases, applyRunEnds } from './ingest-placements.ts';
import { applyRuntime, type PreparedRuntime, prepareRuntime } from './ingest-runtime.ts';
import { prepareUsages, type PreparedUsages, writeUsages } from './ingest-usage.ts';
import {
  type BrokerLogRecord,
  type LifecycleRecord,
  type NodeLifeRecord,
  parseEntry,
  type Source,
  type UsageRecord,
} from './records.ts';

/** An entry of a log: its sequence number in the stream and its bytes. */
export interface LogEntry {
  seq: number;
  data: Uint8Array;
}

/** What one batch did. */
export interface IngestResult {
  /** Entries applied (past the offset). */
  entries: number;
  records: number;
  rejected: number;
  /** The source's offset after the batch. */
  offset: number;
}

/** Options of {@link Ingester.apply}. */
export interface ApplyOptions {
  /**
   * The entries must continue the offset without a gap (from `logStart` when the log no longer holds
   * the entry after the offset): a follower that reads every entry passes it, so that a batch of
   * another process that read further is refused (`IngestGapError`) instead of skipping entries.
   */
  gapless?: { logStart: number };
}

/** A record that did not parse, kept with the reason. */
interface Reject {
  seq: number;
  idx: number;
  error: string;
  body: string;
}

type RuntimeRecord = RuntimeLogRecord;

/** Entries decoded, in sequence order, with what their records come to. */
interface Decoded {
  entries: readonly LogEntry[];
  records: number;
  rejects: Reject[];
  /** Usages and node lifetimes in log order. */
  ledger: (UsageRecord | NodeLifeRecord)[];
  leases: LifecycleRecord[];
  /** Runs the broker ended (abandoned, or cancelled with no driver to say so). */
  runEnds: LifecycleRecord[];
  usages: PreparedUsages;
  /** The runtime's records as the rows they come to. */
  runtime: PreparedRuntime;
}

/** Records decoded between two turns of the event loop: the batch being written goes on meanwhile. */
const RECORDS_PER_TURN = 1000;

/**
 * Parses and checks each entry's records, and works out their rows, a step at a time so that
 * the statements of the batch before go on between steps.
 */
async function decode(source: Source, entries: readonly LogEntry[]): Promise<Decoded> {
  const d: Omit<Decoded, 'usages' | 'runtime'> = {
    entries,
    records: 0,
    rejects: [],
    ledger: [],
    leases: [],
    runEnds: [],
  };
  const usages: UsageRecord[] = [];
  const runtime: RuntimeRecord[] = [];
  let sinceTurn = 0;
  for (const e of entries) {
    const parsed = parseEntry(source, e.data);
    parsed.forEach((p, idx) => {
      if (!p.ok) return void d.rejects.push({ seq: e.seq, idx, error: p.error, body: p.body });
      d.records++;
      if (source === 'runtime') return void runtime.push(p.record as RuntimeRecord);
      const r = p.record as BrokerLogRecord;
      if (r.kind === 'usage') {
        usages.push(r);
        d.ledger.push(r);
      } else if (r.kind === 'node-start' || r.kind === 'node-end') d.ledger.push(r);
      else if (r.kind === 'lease') d.leases.push(r);
      else if (r.kind === 'run') d.runEnds.push(r);
    });
    sinceTurn += parsed.length;
    if (sinceTurn >= RECORDS_PER_TURN) {
      sinceTurn = 0;
      await nextTurn();
    }
  }
  return { ...d, usages: prepareUsages(usages), runtime: prepareRuntime(runtime) };
}

function checkGapless(source: Source, todo: readonly LogEntry[], expected: number): void {
  let next = expected;
  for (const e of todo) {
    if (e.seq !== next) throw new IngestGapError(source, next, e.seq);
    next++;
  }
}

/** Applies log entries to a history database. */
export class Ingester {
  readonly #keys = new ChargeKeys();
  /** The last batch handed over: the next one is written after it commits. */
  #tail: Promise<unknown> = Promise.resolve();

  constructor(
    readonly db: Db,
    private readonly clock: () => number = Date.now,
  ) {}

  /** The last sequence applied from `source` (0 when none, or when `origin` is another log's). */
  async offset(source: Source, origin = ''): Promise<number> {
    const rows = await this.db.query<{ seq: number; origin: string }>(
      'select seq, origin from ingest_offsets where source = $1',
      [source],
    );
    return rows[0] && rows[0].origin === origin ? rows[0].seq : 0;
  }

  /**
   * Applies the entries past the source's offset, in one transaction. `origin` names the log they come
   * from: entries of a log other than the one the offset is of start again from sequence 1.
   *
   * The entries are decoded from now on; they are written when the batch handed over before them has
   * committed, and not at all when it failed (they would skip or repeat entries): the returned
   * promise rejects with its error.
   */
  apply(
    source: Source,
    entries: readonly LogEntry[],
    origin = '',
    opts: ApplyOptions = {},
  ): Promise<IngestResult> {
    const decoding = decode(
      source,
      [...entries].sort((a, b) => a.seq - b.seq),
    );
    decoding.catch(() => undefined);
    const run = this.#tail.then(async () => this.#write(source, await decoding, origin, opts));
    this.#tail = run;
    const settle = () => {
      if (this.#tail === run) this.#tail = Promise.resolve();
    };
    run.then(settle, settle);
    return run;
  }

  async #write(source: Source, all: Decoded, origin: string, opts: ApplyOptions): Promise<IngestResult> {
    const fresh: FreshKeys = new Map();
    const result = await this.db.transaction(async (tx) => {
      // On a server, the commit does not wait for its WAL to reach disk (its WAL writer flushes it
      // within a second): a server that crashes just after loses the whole batch with the offset
      // that records it (one transaction), and the next ingest reads those entries again from the
      // log, which holds them durably. Not in PGlite: with no WAL writer, nothing would flush it.
      if (this.db.kind === 'postgres') await tx.query('set local synchronous_commit = off');
      const rows = await tx.query<{ seq: number; origin: string }>(
        'select seq, origin from ingest_offsets where source = $1 for update',
        [source],
      );
      const offset = rows[0] && rows[0].origin === origin ? rows[0].seq : 0;
      const todo = all.entries.filter((e) => e.seq > offset);
      if (todo.length === 0) return { entries: 0, records: 0, rejected: 0, offset };
      if (opts.gapless) checkGapless(source, todo, Math.max(offset + 1, opts.gapless.logStart));
      // Entries another process applied meanwhile: the rest decoded again (rare: after a takeover).
      const d = todo.length === all.entries.length ? all : await decode(source, todo);
      if (source === 'broker') await this.#broker(tx, d, fresh);
      else await applyRuntime(tx, d.runtime);
      await this.#finish(tx, source, origin, d);
      const last = todo.at(-1)!.seq;
      return { entries: todo.length, records: d.records, rejected: d.rejects.length, offset: last };
    });
    // Only keys of a committed batch may be reused by the next one.
    this.#keys.commit(fresh);
    return result;
  }

  /** Broker records: lifetimes matched with usages in memory, then each table written set-wise. */
  async #broker(tx: Queryable, d: Decoded, fresh: FreshKeys): Promise<void> {
    if (d.ledger.length > 0) {
      // Each usage's lifetime, in log order: the order the usages were prepared in.
      const { lifeOf } = await matchLives(tx, d.ledger);
      await writeUsages(tx, d.usages, lifeOf, this.#keys, fresh);
    }
    await applyLeases(tx, d.leases);
    await applyRunEnds(tx, d.runEnds);
  }

  /** The batch's refused records, and the source's offset moved to its last entry. */
  async #finish(tx: Queryable, source: Source, origin: string, d: Decoded): Promise<void> {
    const { rejects } = d;
    if (rejects.length > 0)
      await tx.query(
        `insert into ingest_rejects (source, seq, idx, error, body, at)
         select $1, * , $6 from unnest($2::bigint[], $3::int[], $4::text[], $5::text[])
         on conflict do nothing`,
        [
          source,
          rejects.map((r) => r.seq),
          rejects.map((r) => r.idx),
          rejects.map((r) => r.error),
          rejects.map((r) => r.body),
          this.clock(),
        ],
      );
    await tx.query(
      `insert into ingest_offsets (source, origin, seq, records, updated_at) values ($1, $5, $2, $3, $4)
       on conflict (source) do update set seq = excluded.seq, origin = excluded.origin,
         records = ingest_offsets.records + excluded.records, updated_at = excluded.updated_at`,
      [source, d.entries.at(-1)!.seq, d.records, this.clock(), origin],
    );
  }
}
