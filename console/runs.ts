/**
 * A run as the console's run page asks for it: a task tree aggregated in the database (a map of 250K
 * items is one row per task with counts, cost and duration percentiles, not 250K rows), and one page
 * of a task's executions with their placements for the drill-down.
 */
import type { Db } from '../history/index.ts';

/** One task of a run: its executions summed up. */
export interface TaskAggregate {
  task: string;
  /** The task that called it (its parent execution's task), `''` for the workflow itself. */
  parent: string;
  executions: number;
  attempts: number;
  /** Attempts started and not yet ended. */
  running: number;
  failed: number;
  cached: number;
  preemptions: number;
  costUsd: number;
  firstStart: number;
  lastEnd: number;
  p50Ms: number;
  p99Ms: number;
  /** Where it ran: one row per cluster/pool/capacity type/$ per hour, with how many. */
  where: { cluster: string; pool: string; capacityType: string; pricePerHour: number; count: number }[];
  errors: { name: string; count: number; message: string }[];
}

/** The run's tasks, aggregated. */
export async function runTasks(db: Db, runId: string): Promise<TaskAggregate[]> {
  // One scan groups (hashing) by everything the page splits on — a map's 250K calls share one parent
  // and a few pools; a second orders durations for the percentiles.
  const groups = await db.query<{
    task: string;
    parent: string;
    cluster: string | null;
    pool: string | null;
    capacityType: string | null;
    pricePerHour: number | null;
    errorName: string | null;
    errorMessage: string | null;
    executions: number;
    attempts: number;
    running: number;
    cached: number;
    preemptions: number;
    costUsd: number;
    firstStart: number;
    lastEnd: number;
  }>(
    `select task, coalesce(parent, '') as parent, cluster, pool, capacity_type as "capacityType",
       price_per_hour as "pricePerHour", error_name as "errorName", min(error_message) as "errorMessage",
       count(*) filter (where attempt = 0)::int as executions, count(*)::int as attempts,
       count(*) filter (where ended_at is null)::int as running,
       count(*) filter (where cached)::int as cached, coalesce(sum(preemptions), 0)::int as preemptions,
       coalesce(sum(cost_usd), 0)::float8 as "costUsd",
       min(started_at)::float8 as "firstStart", max(ended_at)::float8 as "lastEnd"
     from executions where run_id = $1
     group by task, parent, cluster, pool, capacity_type, price_per_hour, error_name`,
    [runId],
  );
  const parents = await db.query<{ execution: string; task: string }>(
    'select distinct on (execution) execution, task from executions where execution = any($1::text[])',
    [[...new Set(groups.map((g) => g.parent).filter(Boolean))]],
  );
  const durations = await db.query<{ task: string; p50Ms: number; p99Ms: number }>(
    `select task,
       percentile_disc(0.5) within group (order by ended_at - started_at)::float8 as "p50Ms",
       percentile_disc(0.99) within group (order by ended_at - started_at)::float8 as "p99Ms"
     from executions where run_id = $1 group by task`,
    [runId],
  );
  const taskOf = new Map(parents.map((p) => [p.execution, p.task]));
  const merged = new Map<string, TaskAggregate>();
  for (const g of groups) {
    const parent = g.parent ? (taskOf.get(g.parent) ?? '') : '';
    const k = `${g.task}\u0000${parent}`;
    const d = durations.find((x) => x.task === g.task);
    const m: TaskAggregate = merged.get(k) ?? {
      task: g.task,
      parent,
      executions: 0,
      attempts: 0,
      running: 0,
      failed: 0,
      cached: 0,
      preemptions: 0,
      costUsd: 0,
      firstStart: g.firstStart,
      lastEnd: g.lastEnd,
      p50Ms: d?.p50Ms ?? 0,
      p99Ms: d?.p99Ms ?? 0,
      where: [],
      errors: [],
    };
    // Every execution has one first attempt (no count(distinct): it would sort a map's 250K rows).
    m.executions += g.executions;
    m.attempts += g.attempts;
    m.running += g.running;
    m.cached += g.cached;
    m.preemptions += g.preemptions;
    m.costUsd += g.costUsd;
    m.firstStart = Math.min(m.firstStart, g.firstStart);
    m.lastEnd = Math.max(m.lastEnd, g.lastEnd);
    if (g.errorName) {
      m.failed += g.attempts;
      const e = m.errors.find((x) => x.name === g.errorName);
      if (e) e.count += g.attempts;
      else m.errors.push({ name: g.errorName, count: g.attempts, message: g.errorMessage ?? '' });
    }
    if (g.cluster !== null) {
      const w = m.where.find(
        (x) =>
          x.cluster === g.cluster &&
          x.pool === g.pool &&
          x.capacityType === g.capacityType &&
          x.pricePerHour === g.pricePerHour,
      );
      if (w) w.count += g.attempts;
      else
        m.where.push({
          cluster: g.cluster,
          pool: g.pool ?? '',
          capacityType: g.capacityType ?? '',
          pricePerHour: g.pricePerHour ?? 0,
          count: g.attempts,
        });
    }
    merged.set(k, m);
  }
  return [...merged.values()]
    .map((m) => ({ ...m, where: m.where.sort((a, b) => b.count - a.count) }))
    .sort((a, b) => a.firstStart - b.firstStart);
}

/** Filters of {@link runExecutions}. */
export interface ExecutionQuery {
  task?: string | undefined;
  /** `failed` keeps only attempts that failed. */
  status?: 'failed' | 'ok' | undefined;
  /** Where the page starts: the previous page's `next`. */
  cursor?: string | undefined;
  limit?: number | undefined;
}

/** A bad query of {@link runExecutions}, naming the field. */
export class ExecutionQueryError extends Error {
  override name = 'ExecutionQueryError';
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
  }
}

/** The last row of a page: executions are ordered by (started_at, execution, attempt). */
type Position = [startedAt: number, execution: string, attempt: number];

/** The cursor of the page after this execution's attempt (what `next` holds). */
export const executionCursor = (...p: Position) => Buffer.from(JSON.stringify(p)).toString('base64url');

function decodePosition(cursor: string): Position {
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (
      Array.isArray(v) &&
      v.length === 3 &&
      Number.isSafeInteger(v[0]) &&
      typeof v[1] === 'string' &&
      Number.isSafeInteger(v[2])
    )
      return v as Position;
  } catch {
    // falls through
  }
  throw new ExecutionQueryError(`cursor '${cursor.slice(0, 40)}' is not one this API gave`, 'cursor');
}

/**
 * One page of a run's executions (every attempt) in the order they started, each with its placement
 * and why. Pages go by keyset: the page after `cursor` starts past its last row in the executions
 * index, so the last page of a 250K-item map costs what the first does (no OFFSET counting through
 * the rows before it). `total` (how many match) comes with the first page only; `next` is absent on
 * the last page.
 */
export async function runExecutions(db: Db, runId: string, q: ExecutionQuery) {
  const limit = Math.min(q.limit ?? 100, 1000);
  const params: unknown[] = [runId];
  const where = ['e.run_id = $1'];
  const add = (sql: string, ...values: unknown[]) => {
    const at = params.length;
    params.push(...values);
    where.push(sql.replace(/\$(\d)/g, (_, i: string) => `$${at + Number(i)}`));
  };
  if (q.task) add('e.task = $1', q.task);
  if (q.status === 'failed') where.push('e.error_name is not null');
  if (q.status === 'ok') where.push('e.error_name is null');
  const counted = { where: where.join(' and '), params: [...params] };
  if (q.cursor) {
    const [startedAt, execution, attempt] = decodePosition(q.cursor);
    // The bound on started_at alone lets the (run_id, started_at) index start at the cursor.
    add(
      'e.started_at >= $1 and (e.started_at, e.execution, e.attempt) > ($1, $2::text, $3)',
      startedAt,
      execution,
      attempt,
    );
  }
  params.push(limit + 1);
  const rows = await db.query<{ execution: string; attempt: number; startedAt: number }>(
    `select e.execution, e.attempt, e.task, e.parent, e.request_id as "requestId", e.cluster, e.pool,
       e.node, e.capacity_type as "capacityType", e.price_per_hour as "pricePerHour",
       e.error_name as "errorName", e.error_message as "errorMessage", e.preemptions, e.cached, e.warm,
       e.started_at::float8 as "startedAt", e.ended_at::float8 as "endedAt", e.cost_usd as "costUsd",
       e.gpu_model as "gpuModel", e.asked,
       p.placed_at::float8 as "placedAt", p.why, p.state as "leaseState", p.reason as "leaseReason"
     from executions e
     left join lateral (select * from placements x where x.request_id = e.request_id
       order by x.placed_at desc limit 1) p on true
     where ${where.join(' and ')}
     order by e.started_at, e.execution, e.attempt
     limit $${params.length}`,
    params,
  );
  // Counted on the first page only: the count reads every matching row, the page only its own.
  const [total] = q.cursor
    ? []
    : await db.query<{ n: number }>(
        `select count(*)::int as n from executions e where ${counted.where}`,
        counted.params,
      );
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    ...(total ? { total: total.n } : {}),
    executions: page,
    ...(rows.length > limit && last
      ? { next: executionCursor(last.startedAt, last.execution, last.attempt) }
      : {}),
  };
}

/** The run's own record, without its executions (a map of 250K items is not sent whole). */
export async function runRecord(db: Db, runId: string) {
  const [row] = await db.query(
    `select run_id as run, workflow, module, team, status, started_at::float8 as "startedAt",
       ended_at::float8 as "endedAt", input, output, error, cost_usd as "costUsd", executions
     from runs where run_id = $1`,
    [runId],
  );
  return row;
}
