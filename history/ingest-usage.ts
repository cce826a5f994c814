/**
 * A batch's task usages into the history: the `usage` rows (binary COPY), the hourly rollups per charge key
 * and per group (`cost_hourly`, `cost_hourly_groups`), each team's monthly spend and the simulated
 * clocks. Everything that needs no database is worked out first ({@link prepareUsages}: costs, hour
 * pieces, COPY columns, spend), so that it can be done while the previous batch is being written; what
 * is left in the transaction is finding the charge keys and adding up per key.
 */
import { BinaryCopy, stage } from './copy-binary.ts';
import type { Queryable } from './db.ts';
import { type ChargeKeys, type FreshKeys, groupName } from './ingest-keys.ts';
import { widenLives } from './ingest-ledger.ts';
import type { UsageRecord } from './records.ts';

export const HOUR = 3_600_000;

/** What a usage costs at its share, unscaled (broker/ledger.ts `usageCost`). */
const costOf = (u: UsageRecord) => (u.nodePricePerHour * u.share * Math.max(0, u.end - u.start)) / HOUR;

/** An hour or longer: not in the hourly rollup. */
export const isLong = (u: { start: number; end: number }) => u.end - u.start >= HOUR;

/** The UTC month of a time, `YYYY-MM` (broker/budgets.ts). */
export const monthOf = (t: number) => new Date(t).toISOString().slice(0, 7);

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

/** A batch's usages, worked out as far as it goes without the database. */
export interface PreparedUsages {
  rows: readonly UsageRecord[];
  /** Each usage's group ({@link groupName}). */
  groups: string[];
  cost: number[];
  /** The usages' COPY fields after `key_id` and `life_id` (binary), usage `i`'s up to `tailEnd[i]`. */
  tails: Buffer;
  tailEnd: number[];
  /** Each usage's hour pieces: `pieces[first[i]] … pieces[first[i + 1] - 1]`. */
  first: number[];
  hours: number[];
  pieceCost: number[];
  pieceGpuMs: number[];
  /** The piece holds its usage's end (the execution counts there). */
  ends: boolean[];
  /** Each team's spend per month (`team\0month` → cost). */
  spend: Map<string, { team: string; month: string; cost: number }>;
  /** Each simulated time scale, and how far its clock got. */
  scaled: Map<number, number>;
}

/** Works out what the usages' rows, rollups and spend are, without the database. */
export function prepareUsages(rows: readonly UsageRecord[]): PreparedUsages {
  const n = rows.length;
  const p: PreparedUsages = {
    rows,
    groups: new Array<string>(n),
    cost: new Array<number>(n),
    tails: Buffer.alloc(0),
    tailEnd: new Array<number>(n),
    first: new Array<number>(n + 1),
    hours: [],
    pieceCost: [],
    pieceGpuMs: [],
    ends: [],
    spend: new Map(),
    scaled: new Map(),
  };
  // The month of the last usage, and when it starts and ends: a batch's usages mostly share one.
  let month = '';
  let monthFrom = Infinity;
  let monthTo = -Infinity;
  const tails = new BinaryCopy(n * 160);
  for (let i = 0; i < n; i++) {
    const u = rows[i]!;
    const cost = costOf(u);
    p.groups[i] = groupName(u);
    p.cost[i] = cost;
    tails.text(u.lease).text(u.request).text(u.cluster).text(u.node);
    tails.float8(u.gpus).float8(u.cpuMilli).float8(u.memoryMiB).float8(u.share).float8(cost);
    tails.int4(u.attempt).int8(u.start).int8(u.end).text(u.ended).bool(isLong(u));
    p.tailEnd[i] = tails.length;
    // Split at the hour; the execution counts in the hour it ended.
    p.first[i] = p.hours.length;
    const len = u.end - u.start;
    const endHour = Math.floor((u.end - 1) / HOUR) * HOUR;
    if (len <= 0) {
      p.hours.push(endHour);
      p.pieceCost.push(cost);
      p.pieceGpuMs.push(0);
      p.ends.push(true);
    } else
      for (let h = Math.floor(u.start / HOUR) * HOUR; h < u.end; h += HOUR) {
        const part = Math.min(u.end, h + HOUR) - Math.max(u.start, h);
        p.hours.push(h);
        p.pieceCost.push(cost * (part / len));
        p.pieceGpuMs.push(u.gpus * part);
        p.ends.push(h === endHour);
      }
    // A usage counts whole in the month it ended, as the broker's budget gate counts it.
    if (u.end < monthFrom || u.end >= monthTo) {
      const d = new Date(u.end);
      monthFrom = Date.UTC(d.getUTCFullYear(), d.getUTCMonth());
      monthTo = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1);
      month = monthOf(u.end);
    }
    const id = `${u.team}\u0000${month}`;
    const s = p.spend.get(id);
    if (s) s.cost += cost;
    else p.spend.set(id, { team: u.team, month, cost });
    if (u.timeScale !== undefined && u.timeScale !== 1)
      p.scaled.set(u.timeScale, Math.max(p.scaled.get(u.timeScale) ?? -Infinity, u.end));
  }
  p.first[n] = p.hours.length;
  p.tails = tails.slice();
  return p;
}

/** An hour of a rollup. */
interface Piece {
  key: number;
  hour: number;
  cost: number;
  gpuMs: number;
  n: number;
}

/** Sums of a rollup, per hour and key. */
class Rollup {
  readonly #hours = new Map<number, Map<number, Piece>>();

  add(key: number, hour: number, cost: number, gpuMs: number, ends: boolean): void {
    let perKey = this.#hours.get(hour);
    if (!perKey) this.#hours.set(hour, (perKey = new Map()));
    const p = perKey.get(key);
    if (p) {
      p.cost += cost;
      p.gpuMs += gpuMs;
      if (ends) p.n++;
    } else perKey.set(key, { key, hour, cost, gpuMs, n: ends ? 1 : 0 });
  }

  pieces(): Piece[] {
    return [...this.#hours.values()].flatMap((m) => [...m.values()]);
  }
}

/**
 * Writes prepared usages: `lifeOf` is each one's node lifetime (or null), as matched by
 * `matchLives`; new charge keys go to `fresh`.
 */
export async function writeUsages(
  tx: Queryable,
  p: PreparedUsages,
  lifeOf: readonly (number | null)[],
  keys: ChargeKeys,
  fresh: FreshKeys,
): Promise<void> {
  const { rows, cost } = p;
  if (rows.length === 0) return;
  const ids = await keys.resolve(tx, rows, p.groups, fresh);
  const data = new BinaryCopy(p.tails.length + rows.length * 20).header();
  for (let i = 0; i < rows.length; i++) {
    const life = lifeOf[i];
    data.row(16).int4(ids[i]!.id);
    if (life === null || life === undefined) data.null();
    else data.int8(life);
    data.bytes(p.tails.subarray(i === 0 ? 0 : p.tailEnd[i - 1], p.tailEnd[i]));
  }
  // The server takes in the rows while the rollups are summed here.
  const copying = tx.copy(
    `usage (key_id, life_id, lease, request, cluster, node, gpus, cpu_milli, memory_mib, share, cost,
       attempt, start_at, end_at, ended, long)`,
    data.end(),
  );
  copying.catch(() => undefined);
  // Lifetimes widen to cover their tasks, and sum what their tasks cost.
  const perLife = new Map<number, { s: number; e: number; c: number }>();
  const fine = new Rollup();
  const coarse = new Rollup();
  for (let i = 0; i < rows.length; i++) {
    const u = rows[i]!;
    const life = lifeOf[i];
    if (life !== null && life !== undefined) {
      const agg = perLife.get(life);
      if (agg) {
        agg.s = Math.min(agg.s, u.start);
        agg.e = Math.max(agg.e, u.end);
        agg.c += cost[i]!;
      } else perLife.set(life, { s: u.start, e: u.end, c: cost[i]! });
    }
    const { id, group } = ids[i]!;
    for (let j = p.first[i]!; j < p.first[i + 1]!; j++) {
      fine.add(id, p.hours[j]!, p.pieceCost[j]!, p.pieceGpuMs[j]!, p.ends[j]!);
      coarse.add(group, p.hours[j]!, p.pieceCost[j]!, p.pieceGpuMs[j]!, p.ends[j]!);
    }
  }
  await copying;
  if (p.scaled.size > 0)
    await tx.query(
      `insert into ledger_time_scales (scale, latest_at) select * from unnest($1::float8[], $2::bigint[])
       on conflict (scale) do update set latest_at = greatest(ledger_time_scales.latest_at, excluded.latest_at)`,
      [[...p.scaled.keys()], [...p.scaled.values()]],
    );
  await widenLives(tx, perLife);
  await upsertPieces(tx, 'cost_hourly', 'key_id', fine.pieces());
  await upsertPieces(tx, 'cost_hourly_groups', 'group_id', coarse.pieces());
  const ss = [...p.spend.values()];
  await tx.query(
    `insert into spend_monthly (team, month, cost) select * from unnest($1::text[], $2::text[], $3::float8[])
     on conflict (team, month) do update set cost = spend_monthly.cost + excluded.cost`,
    [ss.map((s) => s.team), ss.map((s) => s.month), ss.map((s) => s.cost)],
  );
}

async function upsertPieces(
  tx: Queryable,
  table: string,
  keyCol: string,
  ps: readonly Piece[],
): Promise<void> {
  if (ps.length === 0) return;
  const rows = new BinaryCopy(ps.length * 50).header();
  for (const p of ps) rows.row(5).int4(p.key).int8(p.hour).float8(p.cost).float8(p.gpuMs).int4(p.n);
  const staged = `ingest_${table}`;
  await stage(tx, staged, 'key int, hour bigint, cost float8, gpu_ms float8, executions int', rows.end());
  await tx.query(
    `insert into ${table} (${keyCol}, hour, cost, gpu_ms, executions) select * from ${staged}
     on conflict (${keyCol}, hour) do update set cost = ${table}.cost + excluded.cost,
       gpu_ms = ${table}.gpu_ms + excluded.gpu_ms, executions = ${table}.executions + excluded.executions`,
  );
}
