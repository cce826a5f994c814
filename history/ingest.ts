/**
 * Ingest: applies log entries to the history tables, exactly once. Each call applies a batch of entries
 * of one source in one transaction that also moves the source's offset (`ingest_offsets`) to the last
 * sequence applied; entries at or below the offset are skipped. A process killed mid-batch leaves
 * nothing of the batch behind, and the next one starts from the offset: every record once, no gaps.
 *
 * Records are applied set-wise: one statement per table per batch, arrays as parameters (`unnest`);
 * node lifetimes are matched with the usages around them in memory first (ingest-ledger.ts).
 */
import { LRUCache } from 'lru-cache';
import type { RunRecord } from '../protocol/index.ts';
import { copyText, type Db, type Queryable } from './db.ts';
import { IngestGapError } from './errors.ts';
import { matchLives, widenLives } from './ingest-ledger.ts';
import {
  type LifecycleRecord,
  type NodeLifeRecord,
  parseEntry,
  type Source,
  type UsageRecord,
} from './records.ts';
import type { LineageRecord } from '../protocol/index.ts';

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

export const HOUR = 3_600_000;

/** Options of {@link Ingester.apply}. */
export interface ApplyOptions {
  /**
   * The entries must continue the offset without a gap (from `logStart` when the log no longer holds
   * the entry after the offset): a follower that reads every entry passes it, so that a batch of
   * another process that read further is refused (`IngestGapError`) instead of skipping entries.
   */
  gapless?: { logStart: number };
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
  /**
   * Charge key → id, for keys known to be committed: the most recently used 200K (a key the cache let
   * go is read back from the database).
   */
  readonly #keys = new LRUCache<string, KeyId>({ max: 200_000 });

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
   */
  async apply(
    source: Source,
    entries: readonly LogEntry[],
    origin = '',
    opts: ApplyOptions = {},
  ): Promise<IngestResult> {
    const fresh: Map<string, KeyId> = new Map();
    const result = await this.db.transaction(async (tx) => {
      const rows = await tx.query<{ seq: number; origin: string }>(
        'select seq, origin from ingest_offsets where source = $1 for update',
        [source],
      );
      const offset = rows[0] && rows[0].origin === origin ? rows[0].seq : 0;
      const todo = entries.filter((e) => e.seq > offset).sort((a, b) => a.seq - b.seq);
      if (todo.length === 0) return { entries: 0, records: 0, rejected: 0, offset };
      if (opts.gapless) checkGapless(source, todo, Math.max(offset + 1, opts.gapless.logStart));
      const rejects: { seq: number; idx: number; error: string; body: string }[] = [];
      let records = 0;
      const broker: { r: UsageRecord | NodeLifeRecord | LifecycleRecord }[] = [];
      const runtime: (LineageRecord | (RunRecord & { kind: 'run' }))[] = [];
      for (const e of todo) {
        parseEntry(source, e.data).forEach((p, idx) => {
          if (!p.ok) return void rejects.push({ seq: e.seq, idx, error: p.error, body: p.body });
          records++;
          if (source === 'broker') broker.push({ r: p.record as UsageRecord });
          else runtime.push(p.record as LineageRecord);
        });
      }
      if (source === 'broker') await this.#broker(tx, broker, fresh);
      else await applyRuntime(tx, runtime);
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
      const last = todo.at(-1)!.seq;
      await tx.query(
        `insert into ingest_offsets (source, origin, seq, records, updated_at) values ($1, $5, $2, $3, $4)
         on conflict (source) do update set seq = excluded.seq, origin = excluded.origin,
           records = ingest_offsets.records + excluded.records, updated_at = excluded.updated_at`,
        [source, last, records, this.clock(), origin],
      );
      return { entries: todo.length, records, rejected: rejects.length, offset: last };
    });
    // Only keys of a committed batch may be reused by the next one.
    for (const [k, v] of fresh) this.#keys.set(k, v);
    return result;
  }

  /** Broker records: lifetimes matched with usages in memory, then each table written set-wise. */
  async #broker(
    tx: Queryable,
    records: { r: UsageRecord | NodeLifeRecord | LifecycleRecord }[],
    fresh: Map<string, KeyId>,
  ): Promise<void> {
    const leases: LifecycleRecord[] = [];
    const runEnds: LifecycleRecord[] = [];
    const ledger: (UsageRecord | NodeLifeRecord)[] = [];
    for (const { r } of records) {
      if (r.kind === 'usage' || r.kind === 'node-start' || r.kind === 'node-end') ledger.push(r);
      else if (r.kind === 'lease') leases.push(r);
      else if (r.kind === 'run') runEnds.push(r);
    }
    if (ledger.length > 0) {
      const { usages, lifeOf } = await matchLives(tx, ledger);
      if (usages.length > 0) await this.#usages(tx, usages, lifeOf, fresh);
    }
    await applyLeases(tx, leases);
    await applyRunEnds(tx, runEnds);
  }

  async #usages(
    tx: Queryable,
    rows: readonly UsageRecord[],
    lifeOf: readonly (number | null)[],
    fresh: Map<string, KeyId>,
  ): Promise<void> {
    const keyOf = (u: UsageRecord) =>
      [
        u.team,
        u.workflow ?? '',
        u.run ?? '',
        u.task ?? '',
        u.cluster,
        u.pool,
        u.gpuModel ?? '',
        u.capacityType,
        u.instanceType,
        u.nodePricePerHour,
      ] as const;
    const keyIds = await this.#keyIds(tx, rows.map(keyOf), fresh);
    const ids = keyIds.map((k) => k.id);
    const cost = rows.map(costOf);
    // COPY: the hot table's rows as text, without thousands of array parameters to build and parse. The
    // server takes them in while the rollups are summed here.
    const copying = tx.copy(
      `usage (key_id, life_id, lease, request, cluster, node, gpus, cpu_milli, memory_mib, share, cost,
         attempt, start_at, end_at, ended, long)`,
      copyText([
        ids,
        lifeOf,
        rows.map((u) => u.lease),
        rows.map((u) => u.request),
        rows.map((u) => u.cluster),
        rows.map((u) => u.node),
        rows.map((u) => u.gpus),
        rows.map((u) => u.cpuMilli),
        rows.map((u) => u.memoryMiB),
        rows.map((u) => u.share),
        cost,
        rows.map((u) => u.attempt),
        rows.map((u) => u.start),
        rows.map((u) => u.end),
        rows.map((u) => u.ended),
        rows.map(isLong),
      ]),
    );
    copying.catch(() => undefined);
    // Simulated time: each scale and how far its clock got.
    const scaled = new Map<number, number>();
    for (const u of rows)
      if (u.timeScale !== undefined && u.timeScale !== 1)
        scaled.set(u.timeScale, Math.max(scaled.get(u.timeScale) ?? -Infinity, u.end));
    if (scaled.size > 0)
      await tx.query(
        `insert into ledger_time_scales (scale, latest_at) select * from unnest($1::float8[], $2::bigint[])
         on conflict (scale) do update set latest_at = greatest(ledger_time_scales.latest_at, excluded.latest_at)`,
        [[...scaled.keys()], [...scaled.values()]],
      );
    // Lifetimes widen to cover their tasks, and sum what their tasks cost.
    const perLife = new Map<number, { s: number; e: number; c: number }>();
    rows.forEach((u, i) => {
      const life = lifeOf[i];
      if (life === null || life === undefined) return;
      const agg = perLife.get(life);
      if (agg) {
        agg.s = Math.min(agg.s, u.start);
        agg.e = Math.max(agg.e, u.end);
        agg.c += cost[i]!;
      } else perLife.set(life, { s: u.start, e: u.end, c: cost[i]! });
    });
    // Every usage goes to the hourly rollups, split at the hour: per charge key, and per group.
    const fine = new Map<string, Piece>();
    const coarse = new Map<string, Piece>();
    const add = (
      into: Map<string, Piece>,
      key: number,
      p: ReturnType<typeof hourPieces>[number],
      c: number,
      g: number,
    ) => {
      const id = `${key}|${p.hour}`;
      const agg = into.get(id) ?? { key, hour: p.hour, cost: 0, gpuMs: 0, n: 0 };
      agg.cost += c;
      agg.gpuMs += g;
      if (p.ends) agg.n++;
      into.set(id, agg);
    };
    rows.forEach((u, i) => {
      const len = u.end - u.start;
      for (const p of hourPieces(u.start, u.end)) {
        const c = cost[i]! * (len > 0 ? (p.to - p.from) / len : 1);
        const g = u.gpus * (p.to - p.from);
        add(fine, keyIds[i]!.id, p, c, g);
        add(coarse, keyIds[i]!.group, p, c, g);
      }
    });
    await copying;
    await widenLives(tx, perLife);
    await upsertPieces(tx, 'cost_hourly', 'key_id', [...fine.values()]);
    await upsertPieces(tx, 'cost_hourly_groups', 'group_id', [...coarse.values()]);
    await addSpend(tx, rows, cost);
  }

  /** Ids of the groups of charge keys, inserting the new ones (kept in `fresh` as `g:<name>`). */
  async #groupIds(tx: Queryable, keys: readonly ChargeKey[], fresh: Map<string, KeyId>): Promise<number[]> {
    const names = keys.map((k) => `g:${nameOf(GROUP_OF.map((j) => k[j]!))}`);
    const missing = new Map<string, unknown[]>();
    names.forEach((n, i) => {
      if (!this.#keys.has(n) && !fresh.has(n))
        missing.set(
          n,
          GROUP_OF.map((j) => keys[i]![j]),
        );
    });
    if (missing.size > 0) {
      const gs = [...missing.values()];
      const found = await tx.query<Record<string, string | number>>(
        `insert into group_keys (${GROUP_COLS.join(', ')})
         select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
           $8::float8[])
         on conflict (${GROUP_COLS.join(', ')}) do update set team = excluded.team
         returning *`,
        GROUP_COLS.map((_, j) => gs.map((g) => g[j])),
      );
      for (const f of found) {
        const id = f.id as number;
        fresh.set(`g:${nameOf(GROUP_COLS.map((c) => f[c]!))}`, { id, group: id });
      }
    }
    return names.map((n) => (this.#keys.get(n) ?? fresh.get(n))!.id);
  }

  /** Ids of charge keys (and of their groups), inserting the new ones. */
  async #keyIds(tx: Queryable, keys: readonly ChargeKey[], fresh: Map<string, KeyId>): Promise<KeyId[]> {
    const names = keys.map(nameOf);
    const missing = new Map<string, ChargeKey>();
    names.forEach((n, i) => {
      if (!this.#keys.has(n) && !fresh.has(n)) missing.set(n, keys[i]!);
    });
    if (missing.size > 0) {
      const ks = [...missing.values()];
      const groups = await this.#groupIds(tx, ks, fresh);
      const params = [...Array.from({ length: 10 }, (_, j) => ks.map((k) => k[j])), groups];
      // One statement: new keys inserted, known ones (the cache had let them go) returned too.
      const found = await tx.query<Record<string, string | number>>(
        `insert into charge_keys (${KEY_COLS.join(', ')}, group_id)
         select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
           $8::text[], $9::text[], $10::float8[], $11::int[])
         on conflict (${KEY_COLS.join(', ')}) do update set group_id = excluded.group_id
         returning *`,
        params,
      );
      for (const f of found)
        fresh.set(nameOf(KEY_COLS.map((c) => f[c]!)), { id: f.id as number, group: f.group_id as number });
    }
    return names.map((n) => (this.#keys.get(n) ?? fresh.get(n))!);
  }
}

/** A charge key (or group) as a cache key. */
const nameOf = (k: readonly (string | number)[]) => k.join('\u0000');

const KEY_COLS = [
  'team',
  'workflow',
  'run_id',
  'task',
  'cluster',
  'pool',
  'gpu_model',
  'capacity_type',
  'instance_type',
  'node_price',
] as const;
/** A charge key's columns without its run and task: its group (`group_keys`). */
const GROUP_COLS = KEY_COLS.filter((c) => c !== 'run_id' && c !== 'task');
const GROUP_OF = KEY_COLS.flatMap((c, j) => (c === 'run_id' || c === 'task' ? [] : [j]));

/** What a charge is grouped by, as `charge_keys` holds it. */
type ChargeKey = readonly [string, string, string, string, string, string, string, string, string, number];

/** A charge key's id and its group's. */
interface KeyId {
  id: number;
  group: number;
}

/** An hour of a rollup. */
interface Piece {
  key: number;
  hour: number;
  cost: number;
  gpuMs: number;
  n: number;
}

async function upsertPieces(
  tx: Queryable,
  table: string,
  keyCol: string,
  ps: readonly Piece[],
): Promise<void> {
  if (ps.length === 0) return;
  await tx.query(
    `insert into ${table} (${keyCol}, hour, cost, gpu_ms, executions)
     select * from unnest($1::int[], $2::bigint[], $3::float8[], $4::float8[], $5::int[])
     on conflict (${keyCol}, hour) do update set cost = ${table}.cost + excluded.cost,
       gpu_ms = ${table}.gpu_ms + excluded.gpu_ms, executions = ${table}.executions + excluded.executions`,
    [
      ps.map((p) => p.key),
      ps.map((p) => p.hour),
      ps.map((p) => p.cost),
      ps.map((p) => p.gpuMs),
      ps.map((p) => p.n),
    ],
  );
}

/**
 * Each team's spend per month (`spend_monthly`): a usage counts whole in the month it ended, as the
 * broker's budget gate counts it (broker/budgets.ts).
 */
async function addSpend(
  tx: Queryable,
  usages: readonly UsageRecord[],
  cost: readonly number[],
): Promise<void> {
  const spend = new Map<string, { team: string; month: string; cost: number }>();
  // The month of the last usage, and when it starts and ends: a batch's usages mostly share one.
  let month = '';
  let from = Infinity;
  let to = -Infinity;
  usages.forEach((u, i) => {
    if (u.end < from || u.end >= to) {
      const d = new Date(u.end);
      from = Date.UTC(d.getUTCFullYear(), d.getUTCMonth());
      to = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1);
      month = monthOf(u.end);
    }
    const id = `${u.team}\u0000${month}`;
    const s = spend.get(id);
    if (s) s.cost += cost[i]!;
    else spend.set(id, { team: u.team, month, cost: cost[i]! });
  });
  const ss = [...spend.values()];
  await tx.query(
    `insert into spend_monthly (team, month, cost) select * from unnest($1::text[], $2::text[], $3::float8[])
     on conflict (team, month) do update set cost = spend_monthly.cost + excluded.cost`,
    [ss.map((s) => s.team), ss.map((s) => s.month), ss.map((s) => s.cost)],
  );
}

/** The UTC month of a time, `YYYY-MM` (broker/budgets.ts). */
export const monthOf = (t: number) => new Date(t).toISOString().slice(0, 7);

/** What a usage costs at its share, unscaled (broker/ledger.ts `usageCost`). */
const costOf = (u: UsageRecord) => (u.nodePricePerHour * u.share * Math.max(0, u.end - u.start)) / HOUR;

/** An hour or longer: not in the hourly rollup. */
export const isLong = (u: { start: number; end: number }) => u.end - u.start >= HOUR;

/**
 * The parts of [from, to) in each clock hour (at most two for a usage shorter than an hour), and which
 * part holds its end (where the execution counts).
 */
export function hourPieces(
  from: number,
  to: number,
): { hour: number; from: number; to: number; ends: boolean }[] {
  const endHour = Math.floor((to - 1) / HOUR) * HOUR;
  if (to <= from) return [{ hour: endHour, from, to: from, ends: true }];
  const out: { hour: number; from: number; to: number; ends: boolean }[] = [];
  for (let h = Math.floor(from / HOUR) * HOUR; h < to; h += HOUR) {
    const a = Math.max(from, h);
    const b = Math.min(to, h + HOUR);
    if (b > a) out.push({ hour: h, from: a, to: b, ends: h === endHour });
  }
  return out;
}

/** Lease events become placements: where, at what price, why, and the state they reached. */
async function applyLeases(tx: Queryable, events: readonly LifecycleRecord[]): Promise<void> {
  if (events.length === 0) return;
  const merged = new Map<string, Record<string, unknown>>();
  for (const e of events) {
    const m = merged.get(e.id) ?? { lease_id: e.id, placed_at: e.at };
    if (e.state === 'placed') Object.assign(m, { placed_at: e.at });
    for (const [col, v] of [
      ['request_id', e.request],
      ['team', e.team],
      ['cluster', e.cluster],
      ['pool', e.pool],
      ['node', e.node],
      ['price_per_hour', e.pricePerHour],
      ['why', e.why],
      ['reason', e.reason],
    ] as const)
      if (v !== undefined && v !== null) m[col] = v;
    m.state = e.state;
    m.state_at = e.at;
    merged.set(e.id, m);
  }
  const ms = [...merged.values()];
  const col = (c: string) => ms.map((m) => m[c] ?? null);
  await tx.query(
    `insert into placements (lease_id, request_id, team, cluster, pool, node, price_per_hour, why, placed_at, state, state_at, reason)
     select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::float8[],
       $8::text[], $9::bigint[], $10::text[], $11::bigint[], $12::text[])
     on conflict (lease_id) do update set
       request_id = coalesce(excluded.request_id, placements.request_id),
       team = coalesce(excluded.team, placements.team),
       node = coalesce(excluded.node, placements.node),
       price_per_hour = coalesce(excluded.price_per_hour, placements.price_per_hour),
       why = coalesce(excluded.why, placements.why),
       reason = coalesce(excluded.reason, placements.reason),
       state = excluded.state, state_at = excluded.state_at`,
    [
      col('lease_id'),
      col('request_id'),
      col('team'),
      ms.map((m) => m.cluster ?? ''),
      ms.map((m) => m.pool ?? ''),
      col('node'),
      col('price_per_hour'),
      col('why'),
      col('placed_at'),
      col('state'),
      col('state_at'),
      col('reason'),
    ],
  );
}

/** In an update of `runs` by a driver's summary: the column as the broker's end left it, if it did. */
const KEEP_END = (col: string) =>
  `case when excluded.status = 'running' and runs.status <> 'running' then runs.${col} else excluded.${col} end`;

/**
 * Runs the broker ended (abandoned: their driver died; cancelled while no driver said so): a run still
 * running ends. The driver's start summary may come after (the two logs are read apart): the row is
 * made from what the broker knew, and the summary fills in the rest without undoing the end.
 */
async function applyRunEnds(tx: Queryable, events: readonly LifecycleRecord[]): Promise<void> {
  if (events.length === 0) return;
  const last = new Map(events.map((e) => [e.id, e]));
  const es = [...last.values()];
  await tx.query(
    `insert into runs (run_id, workflow, module, team, status, started_at, ended_at, input, error, cost_usd, executions)
     select id, workflow, '', team, status, at, at, '', error, 0, 0
       from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[])
         as e(id, workflow, team, status, at, error)
     on conflict (run_id) do update set status = excluded.status, ended_at = excluded.ended_at,
       error = excluded.error
     where runs.status = 'running'`,
    [
      es.map((e) => e.id),
      es.map((e) => e.request ?? 'unknown'),
      es.map((e) => e.team ?? ''),
      es.map((e) => e.state),
      es.map((e) => e.at),
      es.map((e) => e.reason ?? null),
    ],
  );
}

/** Runtime records: runs (the last summary wins), executions, their data-flow refs, stored values. */
async function applyRuntime(
  tx: Queryable,
  records: readonly (LineageRecord | (RunRecord & { kind: 'run' }))[],
): Promise<void> {
  const runs = new Map<string, RunRecord>();
  const execs: LineageRecord[] = [];
  for (const r of records) {
    if ('kind' in r) runs.set(r.run, r);
    else execs.push(r);
  }
  if (runs.size > 0) {
    const rs = [...runs.values()];
    await tx.query(
      `insert into runs (run_id, workflow, module, team, status, started_at, ended_at, input, output, error, cost_usd, executions)
       select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[],
         $8::text[], $9::text[], $10::text[], $11::float8[], $12::int[])
       on conflict (run_id) do update set workflow = excluded.workflow, module = excluded.module,
         team = excluded.team, started_at = excluded.started_at, input = excluded.input,
         output = excluded.output, cost_usd = excluded.cost_usd, executions = excluded.executions,
         -- A run the broker ended (its driver died) stays ended when its start is read after its end.
         status = ${KEEP_END('status')},
         ended_at = ${KEEP_END('ended_at')},
         error = ${KEEP_END('error')}`,
      [
        rs.map((r) => r.run),
        rs.map((r) => r.workflow),
        rs.map((r) => r.module),
        rs.map((r) => r.team),
        rs.map((r) => r.status),
        rs.map((r) => r.startedAt),
        rs.map((r) => r.endedAt ?? null),
        rs.map((r) => r.input),
        rs.map((r) => r.output ?? null),
        rs.map((r) => r.error ?? null),
        rs.map((r) => r.costUsd),
        rs.map((r) => r.executions),
      ],
    );
  }
  if (execs.length === 0) return;
  const p = (r: LineageRecord) => r.placement;
  await tx.query(
    `insert into executions (execution, attempt, run_id, parent, task, code_hash, request_id, input, output,
       error_name, error_message, asked, override, cluster, pool, node, capacity_type, price_per_hour,
       cpu_milli, memory_mib, gpu_milli, gpu_model, preemptions, started_at, ended_at, cost_usd, cached, warm)
     select * from unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
       $8::text[], $9::text[], $10::text[], $11::text[], $12::jsonb[], $13::boolean[], $14::text[], $15::text[],
       $16::text[], $17::text[], $18::float8[], $19::float8[], $20::float8[], $21::float8[], $22::text[],
       $23::int[], $24::bigint[], $25::bigint[], $26::float8[], $27::boolean[], $28::boolean[])
     on conflict do nothing`,
    [
      execs.map((r) => r.execution),
      execs.map((r) => r.attempt),
      execs.map((r) => r.run),
      execs.map((r) => r.parent ?? null),
      execs.map((r) => r.task),
      execs.map((r) => r.codeHash),
      execs.map((r) => (r.attempt === 0 ? r.execution : `${r.execution}-a${r.attempt}`)),
      execs.map((r) => r.input),
      execs.map((r) => r.output ?? null),
      execs.map((r) => r.error?.name ?? null),
      execs.map((r) => r.error?.message ?? null),
      execs.map((r) => JSON.stringify(r.asked)),
      execs.map((r) => r.override),
      execs.map((r) => p(r)?.cluster ?? null),
      execs.map((r) => p(r)?.pool ?? null),
      execs.map((r) => p(r)?.node ?? null),
      execs.map((r) => p(r)?.capacityType ?? null),
      execs.map((r) => p(r)?.pricePerHour ?? null),
      execs.map((r) => p(r)?.cpuMilli ?? null),
      execs.map((r) => p(r)?.memoryMiB ?? null),
      execs.map((r) => p(r)?.gpuMilli ?? null),
      execs.map((r) => p(r)?.gpuModel ?? null),
      execs.map((r) => r.preemptions),
      execs.map((r) => r.startedAt),
      execs.map((r) => r.endedAt),
      execs.map((r) => r.costUsd),
      execs.map((r) => r.cached),
      execs.map((r) => r.warm),
    ],
  );
  const refs = new Map<string, { hash: string; role: string; execution: string; whole: boolean }>();
  const ref = (hash: string, role: 'i' | 'o', execution: string, whole: boolean) => {
    if (hash === 'none' || hash === '') return;
    const id = `${hash}|${role}|${execution}`;
    if (!refs.has(id) || whole) refs.set(id, { hash, role, execution, whole });
  };
  const stored = new Map<string, { bytes: number; first: number; last: number }>();
  for (const r of execs) {
    ref(r.input, 'i', r.execution, true);
    if (r.output) ref(r.output, 'o', r.execution, true);
    for (const h of r.refs?.input ?? []) ref(h, 'i', r.execution, false);
    for (const h of r.refs?.output ?? []) ref(h, 'o', r.execution, false);
    for (const s of r.stored ?? []) {
      const a = stored.get(s.hash);
      stored.set(s.hash, {
        bytes: s.bytes,
        first: Math.min(a?.first ?? r.startedAt, r.startedAt),
        last: Math.max(a?.last ?? r.endedAt, r.endedAt),
      });
    }
  }
  const rs = [...refs.values()];
  await tx.query(
    `insert into lineage_refs (hash, role, execution, whole)
     select * from unnest($1::text[], $2::"char"[], $3::text[], $4::boolean[]) on conflict do nothing`,
    [rs.map((r) => r.hash), rs.map((r) => r.role), rs.map((r) => r.execution), rs.map((r) => r.whole)],
  );
  if (stored.size > 0) {
    const ss = [...stored.entries()];
    await tx.query(
      `insert into artifacts (hash, bytes, first_seen, last_seen)
       select * from unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])
       on conflict (hash) do update set first_seen = least(artifacts.first_seen, excluded.first_seen),
         last_seen = greatest(artifacts.last_seen, excluded.last_seen), deleted_at = null`,
      [ss.map(([h]) => h), ss.map(([, s]) => s.bytes), ss.map(([, s]) => s.first), ss.map(([, s]) => s.last)],
    );
  }
}
