/**
 * Runs: a filtered, paged list (newest first, by keyset so that page 1,000 costs what page 1 does) and
 * one run with its executions (every attempt) and where each was placed and why.
 */
import type { RunRecord } from '../protocol/index.ts';
import type { Queryable } from './db.ts';
import { HistoryQueryError } from './errors.ts';
import { type ExecutionRow, toRecord } from './lineage.ts';

/** Filters of {@link listRuns}. */
export interface RunFilter {
  team?: string;
  workflow?: string;
  status?: RunRecord['status'];
  /** Runs that started at or after this time. */
  since?: number;
  /** Runs that started before this time. */
  until?: number;
  limit?: number;
  /** `next` of the previous page. */
  cursor?: string;
}

/** A page of runs. */
export interface RunPage {
  runs: RunRecord[];
  /** Pass as `cursor` for the next page; absent on the last. */
  next?: string;
}

interface RunRow {
  run_id: string;
  workflow: string;
  module: string;
  team: string;
  status: RunRecord['status'];
  started_at: number;
  ended_at: number | null;
  input: string;
  output: string | null;
  error: string | null;
  cost_usd: number;
  executions: number;
}

const toRun = (r: RunRow): RunRecord => ({
  run: r.run_id,
  workflow: r.workflow,
  module: r.module,
  team: r.team,
  status: r.status,
  startedAt: r.started_at,
  ...(r.ended_at !== null ? { endedAt: r.ended_at } : {}),
  input: r.input,
  ...(r.output !== null ? { output: r.output } : {}),
  ...(r.error !== null ? { error: r.error } : {}),
  costUsd: r.cost_usd,
  executions: r.executions,
});

const encodeCursor = (r: RunRow) =>
  Buffer.from(JSON.stringify([r.started_at, r.run_id])).toString('base64url');

function decodeCursor(c: string): [number, string] {
  try {
    const v = JSON.parse(Buffer.from(c, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(v) && typeof v[0] === 'number' && typeof v[1] === 'string') return [v[0], v[1]];
  } catch {
    // falls through
  }
  throw new HistoryQueryError(`cursor '${c.slice(0, 40)}' is not one this API gave`, 'cursor');
}

/**
 * Runs matching the filter, newest first.
 *
 * @example
 * const { runs, next } = await listRuns(db, { team: 'research', status: 'failed', limit: 20 });
 */
export async function listRuns(db: Queryable, f: RunFilter = {}): Promise<RunPage> {
  const limit = f.limit ?? 50;
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
    throw new HistoryQueryError('limit must be a whole number from 1 to 1000', 'limit');
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (sql: string, v: unknown) => {
    params.push(v);
    where.push(sql.replace('?', `$${params.length}`));
  };
  if (f.team) add('team = ?', f.team);
  if (f.workflow) add('workflow = ?', f.workflow);
  if (f.status) add('status = ?', f.status);
  if (f.since !== undefined) add('started_at >= ?', f.since);
  if (f.until !== undefined) add('started_at < ?', f.until);
  if (f.cursor) {
    const [at, id] = decodeCursor(f.cursor);
    params.push(at, id);
    where.push(`(started_at, run_id) < ($${params.length - 1}, $${params.length})`);
  }
  params.push(limit + 1);
  const rows = await db.query<RunRow>(
    `select * from runs ${where.length > 0 ? `where ${where.join(' and ')}` : ''}
     order by started_at desc, run_id desc limit $${params.length}`,
    params,
  );
  const page = rows.slice(0, limit);
  return {
    runs: page.map(toRun),
    ...(rows.length > limit ? { next: encodeCursor(page.at(-1)!) } : {}),
  };
}

/** A placement as the broker made it. */
export interface PlacementRow {
  leaseId: string;
  requestId: string | null;
  cluster: string;
  pool: string;
  node: string | null;
  pricePerHour: number | null;
  why: string | null;
  placedAt: number;
  state: string;
  stateAt: number;
  reason: string | null;
}

/** One run in full. */
export interface RunDetail {
  run: RunRecord;
  /**
   * Every attempt of every execution, in the order they started, each with its broker placements;
   * `running` while it has not ended (its `endedAt` is then its start).
   */
  executions: (ReturnType<typeof toRecord> & {
    requestId: string;
    placements: PlacementRow[];
    running: boolean;
  })[];
}

/** A run with its executions and placements; undefined when the history has no such run. */
export async function describeRun(db: Queryable, runId: string): Promise<RunDetail | undefined> {
  const [row] = await db.query<RunRow>('select * from runs where run_id = $1', [runId]);
  const execs = await db.query<ExecutionRow>(
    'select * from executions where run_id = $1 order by started_at, execution, attempt',
    [runId],
  );
  if (!row && execs.length === 0) return undefined;
  const placements = await db.query<Record<string, unknown>>(
    `select p.* from placements p where p.request_id in (select request_id from executions where run_id = $1)
     order by p.placed_at`,
    [runId],
  );
  const byRequest = new Map<string, PlacementRow[]>();
  for (const p of placements) {
    const pr: PlacementRow = {
      leaseId: p.lease_id as string,
      requestId: p.request_id as string | null,
      cluster: p.cluster as string,
      pool: p.pool as string,
      node: p.node as string | null,
      pricePerHour: p.price_per_hour as number | null,
      why: p.why as string | null,
      placedAt: p.placed_at as number,
      state: p.state as string,
      stateAt: p.state_at as number,
      reason: p.reason as string | null,
    };
    const list = byRequest.get(pr.requestId ?? '') ?? [];
    list.push(pr);
    byRequest.set(pr.requestId ?? '', list);
  }
  const run: RunRecord = row
    ? toRun(row)
    : {
        run: runId,
        workflow: execs.find((e) => !e.parent)?.task ?? execs[0]!.task,
        module: '',
        team: '',
        status: 'running',
        startedAt: execs[0]!.started_at,
        input: execs[0]!.input,
        costUsd: execs.reduce((s, e) => s + e.cost_usd, 0),
        executions: execs.length,
      };
  return {
    run,
    executions: execs.map((e) => ({
      ...toRecord(e),
      requestId: e.request_id,
      placements: byRequest.get(e.request_id) ?? [],
      running: e.ended_at === null,
    })),
  };
}
