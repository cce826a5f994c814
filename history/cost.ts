/**
 * `gantry report cost` in SQL: the same report as the replay of the ledger (broker/cost-report.ts),
 * read from the history tables instead of every ledger entry. Its cost grows with the hours in the
 * window, not with the executions:
 *
 * - whole hours inside the window come from the hourly rollups (every usage split at the hour and
 *   summed at ingest): `cost_hourly_groups` (per team, workflow, cluster, pool, GPU, capacity type)
 *   unless the report groups by run or task, then `cost_hourly` (per charge key);
 * - the two partial hours at the window's edges are read row by row;
 * - node lifetimes give node cost and so idle cost; the few whose tasks together cost more than the
 *   node over its part of the window (shares overlapping beyond the node, or a window that cuts it
 *   short) are scaled exactly from their usages.
 */
import {
  type CostReport,
  type CostRow,
  type Dimension,
  greedyComparison,
  onDemandRatio,
  type TaskUsage,
} from '../broker/index.ts';
import type { Platform } from '../policies/index.ts';
import type { LpBackends } from '../solver/index.ts';
import type { Db, Queryable } from './db.ts';
import { HistoryQueryError } from './errors.ts';
import { HOUR } from './ingest-usage.ts';

export const DAY = 86_400_000;
const IDLE = '(idle)';

/** The columns a dimension is read from (`charge_keys`). */
const COLUMN: Record<Dimension, string> = {
  team: 'team',
  workflow: 'workflow',
  run: 'run_id',
  task: 'task',
  cluster: 'cluster',
  pool: 'pool',
  gpu: 'gpu_model',
  'capacity-type': 'capacity_type',
};
/** What every fine-grained group also carries: for idle, on-demand prices and spend by GPU. */
const BASE = ['cluster', 'pool', 'gpu_model', 'capacity_type', 'instance_type', 'node_price'] as const;

/** Options of {@link sqlCostReport}. */
export interface CostQuery {
  by: Dimension[];
  since: number;
  until: number;
  /** Width of the time buckets of `buckets` (and `days` when a day), a whole number of hours. */
  stepMs?: number;
  /** On-demand $/hour per instance type (from the platform), for the all-on-demand comparison. */
  onDemand?: Map<string, number>;
  /** With a platform: the greedy and planned comparison of the window's tasks (at most 50,000). */
  platform?: Platform;
  backends?: LpBackends;
}

/** A cost report with its buckets. */
export interface HistoryCostReport extends CostReport {
  stepMs: number;
  /** Spend per bucket of `stepMs` from `since` aligned to the epoch, split by the first grouping. */
  buckets: { start: number; values: Record<string, number> }[];
  /**
   * The ledger holds usage in simulated time, this many times faster than the clock (the largest scale
   * when several): the window is on the simulated clock. Absent for real time.
   */
  timeScale?: number;
}

type KeyRow = Record<(typeof BASE)[number] | string, string | number>;

interface Acc {
  key: KeyRow;
  cost: number;
  gpuMs: number;
  executions: number;
  /** Spend per bucket. */
  buckets: Map<number, number>;
}

/**
 * Computes the report over [since, until), its statements in one read-only transaction: one snapshot
 * of the history, however many batches are ingested meanwhile. JIT is off in it: the report's
 * statements read rollups and a window's few rows, and the planner's guess of 1,000 buckets per node
 * lifetime (generate_series) made the node query compile for 1.5 s of CPU to run for 60 ms.
 *
 * @example
 * const r = await sqlCostReport(db, { by: ['team', 'pool'], since: Date.now() - 30 * DAY, until: Date.now() });
 */
export async function sqlCostReport(db: Db, q: CostQuery): Promise<HistoryCostReport> {
  const step = q.stepMs ?? DAY;
  if (!(q.until > q.since)) throw new HistoryQueryError('until must be after since', 'until');
  if (!(step >= HOUR) || step % HOUR !== 0)
    throw new HistoryQueryError('step must be a whole number of hours', 'step');
  return db.transaction(async (tx) => {
    await tx.query('set transaction isolation level repeatable read, read only');
    await tx.query('set local jit = off');
    return costReportIn(tx, q, step);
  });
}

async function costReportIn(db: Queryable, q: CostQuery, step: number): Promise<HistoryCostReport> {
  const { since, until } = q;
  const dims = [...new Set(q.by)];
  const cols = [...new Set([...dims.map((d) => COLUMN[d]), ...BASE])];
  const groups = new Map<string, Acc>();
  const accOf = (key: KeyRow): Acc => {
    const id = JSON.stringify(cols.map((c) => key[c]));
    let acc = groups.get(id);
    if (!acc) groups.set(id, (acc = { key, cost: 0, gpuMs: 0, executions: 0, buckets: new Map() }));
    return acc;
  };
  const addBucket = (acc: Acc, bucket: number, cost: number) =>
    acc.buckets.set(bucket, (acc.buckets.get(bucket) ?? 0) + cost);

  // Whole hours from the rollup.
  const h1 = Math.ceil(since / HOUR) * HOUR;
  const h2 = Math.floor(until / HOUR) * HOUR;
  if (h1 < h2) {
    const fine = cols.includes('run_id') || cols.includes('task');
    const [rollup, id, keys] = fine
      ? ['cost_hourly', 'key_id', 'charge_keys']
      : ['cost_hourly_groups', 'group_id', 'group_keys'];
    const rows = await db.query<KeyRow & { bucket: number; cost: number; gpu_ms: number; n: number }>(
      `select ${cols.map((c) => `k.${c}`).join(', ')}, h.bucket, sum(h.cost) as cost, sum(h.gpu_ms) as gpu_ms,
         sum(h.n)::int as n
       from (select ${id} as id, (hour / $3) * $3 as bucket, sum(cost) as cost, sum(gpu_ms) as gpu_ms,
               sum(executions) as n
             from ${rollup} where hour >= $1 and hour < $2 group by 1, 2) h
       join ${keys} k on k.id = h.id
       group by ${cols.map((c) => `k.${c}`).join(', ')}, h.bucket`,
      [h1, h2, step],
    );
    for (const r of rows) {
      const acc = accOf(r);
      acc.cost += r.cost;
      acc.gpuMs += r.gpu_ms;
      acc.executions += r.n;
      addBucket(acc, r.bucket, r.cost);
    }
  }

  // Row by row: the usages in the edge hours, clipped to them.
  const raw: UsageRow[] = [];
  const edges = edgeHours(since, until);
  for (const e of edges) {
    const lohi = [Math.max(e, since), Math.min(e + HOUR, until)];
    raw.push(
      ...(await db.query<UsageRow>(
        `select ${USAGE_COLS}, $1::bigint as lo, $2::bigint as hi from usage
         where not long and end_at > $1 and end_at < $2::bigint + ${HOUR} and start_at < $2`,
        lohi,
      )),
      ...(await db.query<UsageRow>(
        `select ${USAGE_COLS}, $1::bigint as lo, $2::bigint as hi from usage
         where long and int8range(start_at, end_at) && int8range($1, $2)`,
        lohi,
      )),
    );
  }
  const keys = await keyRows(
    db,
    raw.map((r) => r.key_id),
  );
  for (const r of raw) {
    const piece = clip(r, r.lo, r.hi);
    if (!piece) continue;
    const acc = accOf(keys.get(r.key_id)!);
    acc.cost += piece.cost;
    acc.gpuMs += r.gpus * (piece.to - piece.from);
    // It counts where it ended: in this edge (or window, for longer ones), never in a whole hour.
    if (r.end_at > r.lo && r.end_at <= r.hi && r.end_at > since && r.end_at <= until) acc.executions++;
    splitBuckets(piece.from, piece.to, piece.cost, step, (b, c) => addBucket(acc, b, c));
  }

  // Node lifetimes: node cost per group and bucket, and how many overlap the window.
  const lives = await db.query<{
    cluster: string;
    pool: string;
    instance_type: string;
    capacity_type: string;
    gpu_model: string;
    price: number;
    bucket: number;
    ms: number;
    n: number;
  }>(
    `with ${LIVES_CTE}
     select cluster, pool, instance_type, capacity_type, gpu_model, price, bucket,
       sum(least(b, bucket + $3) - greatest(a, bucket))::float8 as ms,
       count(*) filter (where bucket = (a / $3) * $3)::int as n
     from l, generate_series((a / $3) * $3, ((b - 1) / $3) * $3, $3::bigint) as bucket
     where b > a
     group by 1, 2, 3, 4, 5, 6, 7`,
    [since, until, step],
  );

  // Lifetimes whose tasks may have to be scaled down: what all their tasks cost (task_cost) is more
  // than the node costs over its part of the window. The tasks' parts inside the window cost at most
  // that, so no other lifetime needs its usages read, whether the window cuts it or not.
  const candidates = await db.query<UsageRow & { life: number; a: number; b: number; price: number }>(
    `with ${LIVES_CTE}
     select c.id as life, c.a, c.b, c.price, ${USAGE_COLS.replace(/(^|, )/g, '$1u.')}
     from l c join usage u on u.life_id = c.id
     where c.b > c.a and c.task_cost > c.price * (c.b - c.a) / ${HOUR}.0 * (1 + 1e-9)`,
    [since, until],
  );
  const byLife = new Map<number, typeof candidates>();
  for (const c of candidates) {
    const list = byLife.get(c.life);
    if (list) list.push(c);
    else byLife.set(c.life, [c]);
  }
  const lifeKeys = await keyRows(
    db,
    candidates.map((c) => c.key_id),
  );
  for (const us of byLife.values()) {
    const { a, b, price } = us[0]!;
    const nodeCost = (price * (b - a)) / HOUR;
    const pieces = us.map((u) => ({ u, p: clip(u, a, b) }));
    const sum = pieces.reduce((s, x) => s + (x.p?.cost ?? 0), 0);
    if (!(sum > nodeCost && sum > 0)) continue;
    const cut = 1 - nodeCost / sum;
    for (const { u, p } of pieces) {
      if (!p) continue;
      const acc = accOf(lifeKeys.get(u.key_id)!);
      acc.cost -= p.cost * cut;
      acc.gpuMs -= u.gpus * (p.to - p.from) * cut;
      splitBuckets(p.from, p.to, -p.cost * cut, step, (bk, c) => addBucket(acc, bk, c));
    }
  }

  // Idle: node cost minus what its tasks were charged (tasks on nodes without a lifetime excepted).
  const orphans = await db.query<UsageRow>(
    `select ${USAGE_COLS} from usage where life_id is null and end_at > $1 and start_at < $2`,
    [since, until],
  );
  const orphanKeys = await keyRows(
    db,
    orphans.map((o) => o.key_id),
  );
  const poolId = (cluster: unknown, pool: unknown, price: unknown) => JSON.stringify([cluster, pool, price]);
  const charged = new Map<string, Map<number, number>>();
  const charge = (id: string, bucket: number, cost: number) => {
    const m = charged.get(id) ?? new Map<number, number>();
    m.set(bucket, (m.get(bucket) ?? 0) + cost);
    charged.set(id, m);
  };
  for (const acc of groups.values())
    for (const [bucket, cost] of acc.buckets)
      charge(poolId(acc.key.cluster, acc.key.pool, acc.key.node_price), bucket, cost);
  for (const o of orphans) {
    const k = orphanKeys.get(o.key_id)!;
    const p = clip(o, since, until);
    if (p)
      splitBuckets(p.from, p.to, -p.cost, step, (b, c) =>
        charge(poolId(k.cluster, k.pool, k.node_price), b, c),
      );
  }
  const taskGroups = [...groups.values()];
  const idle: Acc[] = [];
  let nodes = 0;
  const idleGroups = new Map<string, Acc>();
  for (const l of lives) {
    nodes += l.n;
    const id = JSON.stringify([l.cluster, l.pool, l.instance_type, l.capacity_type, l.gpu_model, l.price]);
    let acc = idleGroups.get(id);
    if (!acc) {
      const key: KeyRow = {
        team: IDLE,
        workflow: IDLE,
        run_id: IDLE,
        task: IDLE,
        cluster: l.cluster,
        pool: l.pool,
        gpu_model: l.gpu_model,
        capacity_type: l.capacity_type,
        instance_type: l.instance_type,
        node_price: l.price,
      };
      idleGroups.set(id, (acc = { key, cost: 0, gpuMs: 0, executions: 0, buckets: new Map() }));
      idle.push(acc);
    }
    const nodeCost = (l.price * l.ms) / HOUR;
    const spent = charged.get(poolId(l.cluster, l.pool, l.price));
    const used = spent?.get(l.bucket) ?? 0;
    spent?.delete(l.bucket);
    const left = nodeCost - used;
    acc.cost += left;
    acc.buckets.set(l.bucket, (acc.buckets.get(l.bucket) ?? 0) + left);
  }

  const report = assemble(q, dims, step, taskGroups, idle, nodes);
  if (q.platform && report.totals.executions > 0 && report.totals.executions <= 50_000) {
    const compared = greedyComparison(await windowTasks(db, since, until), q.platform, q.backends);
    if (compared) Object.assign(report.totals, compared);
  }
  return report;
}

/** The usage columns the report reads. */
const USAGE_COLS = 'key_id, life_id, start_at, end_at, cost, gpus';

interface UsageRow {
  key_id: number;
  life_id: number | null;
  start_at: number;
  end_at: number;
  cost: number;
  gpus: number;
  lo: number;
  hi: number;
}

/** Node lifetimes widened by their tasks (cs, ce) and clipped to the window (a, b); $1 since, $2 until. */
const LIVES_CTE = `l as (
  select id, cluster, pool, instance_type, capacity_type, gpu_model, price, end_at, task_cost,
    least(start_at, coalesce(task_start, start_at)) as cs,
    greatest(coalesce(end_at, greatest(start_at, $2::bigint)), coalesce(task_end, start_at)) as ce,
    greatest(least(start_at, coalesce(task_start, start_at)), $1::bigint) as a,
    least(greatest(coalesce(end_at, greatest(start_at, $2::bigint)), coalesce(task_end, start_at)), $2::bigint) as b
  from node_lives
  where least(start_at, coalesce(task_start, start_at)) < $2
    and greatest(coalesce(end_at, 9223372036854775807), coalesce(task_end, 0)) > $1)`;

/** The part of a usage inside [lo, hi), and its cost; undefined when none of it is (zero-length ones count). */
function clip(u: { start_at: number; end_at: number; cost: number }, lo: number, hi: number) {
  const from = Math.max(u.start_at, lo);
  const to = Math.min(u.end_at, hi);
  const len = u.end_at - u.start_at;
  if (to < from || (to === from && len > 0)) return undefined;
  return { from, to, cost: len > 0 ? (u.cost * (to - from)) / len : 0 };
}

/** The start of the window's first and last clock hours when the window does not cover them whole. */
function edgeHours(since: number, until: number): number[] {
  const first = Math.floor(since / HOUR) * HOUR;
  const last = Math.floor((until - 1) / HOUR) * HOUR;
  const out = new Set<number>();
  if (since > first || until < first + HOUR) out.add(first);
  if (until < last + HOUR || since > last) out.add(last);
  return [...out];
}

/** Splits money spent over [from, to) into buckets of `step` in proportion to time. */
function splitBuckets(
  from: number,
  to: number,
  cost: number,
  step: number,
  add: (b: number, c: number) => void,
) {
  if (to <= from) return add(Math.floor(from / step) * step, cost);
  for (let b = Math.floor(from / step) * step; b < to; b += step) {
    const a = Math.max(b, from);
    const e = Math.min(b + step, to);
    if (e > a) add(b, (cost * (e - a)) / (to - from));
  }
}

async function keyRows(db: Queryable, ids: readonly number[]): Promise<Map<number, KeyRow>> {
  const unique = [...new Set(ids)];
  const out = new Map<number, KeyRow>();
  for (let i = 0; i < unique.length; i += 10_000) {
    const rows = await db.query<KeyRow & { id: number }>(
      'select * from charge_keys where id = any($1::int[])',
      [unique.slice(i, i + 10_000)],
    );
    for (const r of rows) out.set(r.id, r);
  }
  return out;
}

/** Tasks that ended in the window, as the greedy comparison plans them again. */
async function windowTasks(db: Queryable, since: number, until: number): Promise<TaskUsage[]> {
  const rows = await db.query<Record<string, string | number>>(
    `select k.team, k.task, k.gpu_model, u.gpus, u.cpu_milli, u.memory_mib, u.start_at, u.end_at
     from usage u join charge_keys k on k.id = u.key_id where u.end_at > $1 and u.end_at <= $2 limit 50001`,
    [since, until],
  );
  return rows.map(
    (r) =>
      ({
        team: r.team,
        task: r.task || undefined,
        gpuModel: r.gpu_model || null,
        gpus: r.gpus,
        cpuMilli: r.cpu_milli,
        memoryMiB: r.memory_mib,
        start: r.start_at,
        end: r.end_at,
      }) as TaskUsage,
  );
}

/** Folds the fine-grained groups into the report's rows, totals, days and spend by GPU. */
function assemble(
  q: CostQuery,
  dims: Dimension[],
  step: number,
  tasks: readonly Acc[],
  idle: readonly Acc[],
  nodes: number,
): HistoryCostReport {
  const onDemand = q.onDemand ?? new Map<string, number>();
  const value = (k: KeyRow, d: Dimension): string => {
    const v = String(k[COLUMN[d]] ?? '');
    if (d === 'gpu') return v === '' ? 'none' : v;
    return v === '' ? '(none)' : v;
  };
  const rows = new Map<string, CostRow>();
  const buckets = new Map<number, Record<string, number>>();
  const byGpu: Record<string, number> = {};
  let costUsd = 0;
  let idleUsd = 0;
  let onDemandUsd = 0;
  let executions = 0;
  let unpricedUsd = 0;
  const first = dims[0] ?? 'team';
  for (const [list, isIdle] of [
    [tasks, false],
    [idle, true],
  ] as const) {
    for (const acc of list) {
      const k = acc.key;
      const id = JSON.stringify(dims.map((d) => value(k, d)));
      let row = rows.get(id);
      if (!row) {
        const key: CostRow['key'] = {};
        for (const d of dims) key[d] = value(k, d);
        rows.set(id, (row = { key, costUsd: 0, idleUsd: 0, onDemandUsd: 0, executions: 0, gpuHours: 0 }));
      }
      const known = onDemandRatio(
        String(k.instance_type),
        String(k.capacity_type),
        Number(k.node_price),
        onDemand,
      );
      const ratio = known ?? 1;
      if (known === undefined) unpricedUsd += acc.cost;
      row.costUsd += acc.cost;
      row.onDemandUsd += acc.cost * ratio;
      row.gpuHours += acc.gpuMs / HOUR;
      row.executions += acc.executions;
      if (isIdle) row.idleUsd += acc.cost;
      costUsd += acc.cost;
      onDemandUsd += acc.cost * ratio;
      executions += acc.executions;
      if (isIdle) idleUsd += acc.cost;
      const gpu = value(k, 'gpu');
      byGpu[gpu] = (byGpu[gpu] ?? 0) + acc.cost;
      const series = value(k, first);
      for (const [b, c] of acc.buckets) {
        const values = buckets.get(b) ?? {};
        values[series] = (values[series] ?? 0) + c;
        buckets.set(b, values);
      }
    }
  }
  const sorted = [...buckets.entries()].sort(([a], [b]) => a - b);
  return {
    since: q.since,
    until: q.until,
    by: dims,
    rows: [...rows.values()]
      .filter((r) => Math.abs(r.costUsd) > 1e-9 || r.executions > 0)
      .sort((a, b) => b.costUsd - a.costUsd),
    totals: {
      costUsd,
      taskUsd: costUsd - idleUsd,
      idleUsd,
      onDemandUsd,
      spotSavingsUsd: onDemandUsd - costUsd,
      unpricedUsd,
      executions,
      nodes,
    },
    days:
      step === DAY
        ? sorted.map(([b, values]) => ({ day: new Date(b).toISOString().slice(0, 10), values }))
        : [],
    byGpu,
    stepMs: step,
    buckets: sorted.map(([start, values]) => ({ start, values })),
  };
}
