/**
 * The history's HTTP JSON API, what `gantry report cost`, `gantry lineage`, `gantry get runs` and
 * `gantry describe run` ask, and what the web console will: runs with filters and paging, one run with
 * its executions and placements, the lineage graph around a run or an artifact, cost by any grouping
 * over a window with a step, budgets with this month's spend, and the ingest status.
 *
 * Every answer is JSON; a bad parameter is a 400 `{ ok: false, error: { code, message, field } }`.
 * Times are epoch milliseconds or ISO dates.
 */
import { Hono } from 'hono';
import { type Dimension, DIMENSIONS } from '../broker/index.ts';
import type { Platform } from '../policies/index.ts';
import type { LpBackends } from '../solver/index.ts';
import { listArtifacts } from './artifacts.ts';
import { sqlCostReport } from './cost.ts';
import type { Db } from './db.ts';
import { HistoryQueryError, HistoryUnavailableError } from './errors.ts';
import { sqlLineage } from './lineage.ts';
import { monthOf } from './ingest-usage.ts';
import { SCHEMA_VERSION } from './migrations.ts';
import { describeRun, listRuns } from './runs.ts';

/** What the API answers from. */
export interface ApiOptions {
  db: Db;
  /** Runs before each query (embedded: ingest what the local logs have that the store does not). */
  catchUp?: () => Promise<void>;
  /** On-demand prices and the greedy comparison of cost reports. */
  platform?: Platform;
  onDemand?: Map<string, number>;
  backends?: LpBackends;
}

const STATUSES = ['running', 'succeeded', 'failed', 'cancelled'] as const;

/** A time parameter: epoch milliseconds, a date, or a duration back from `now` (`7d`, `12h`). */
function time(name: string, v: string | undefined, now = Date.now()): number | undefined {
  if (v === undefined || v === '') return undefined;
  const d = /^(\d+(?:\.\d+)?)([smhdw])$/.exec(v);
  if (d) return now - Number(d[1]) * { s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7, w: 6.048e8 }[d[2] as 's'];
  const n = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isFinite(n))
    throw new HistoryQueryError(
      `${name} must be epoch milliseconds, a date or a duration back from now (7d), not '${v}'`,
      name,
    );
  return n;
}

function int(name: string, v: string | undefined): number | undefined {
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0)
    throw new HistoryQueryError(`${name} must be a whole number, not '${v}'`, name);
  return n;
}

/**
 * The API as a Hono app: serve it with {@link serveHistoryApi}, or call `app.request(path)` in-process.
 *
 * @example
 * const app = historyApi({ db });
 * const runs = await (await app.request('/v1/runs?team=research')).json();
 */
export function historyApi(opts: ApiOptions): Hono {
  const { db } = opts;
  const app = new Hono();
  app.onError((err, c) => {
    if (err instanceof HistoryQueryError)
      return c.json({ ok: false, error: { code: 'bad-query', message: err.message, field: err.field } }, 400);
    if (err instanceof HistoryUnavailableError)
      return c.json({ ok: false, error: { code: 'unavailable', message: err.message } }, 503);
    return c.json({ ok: false, error: { code: 'internal', message: err.message } }, 500);
  });
  app.use('/v1/*', async (_c, next) => {
    await opts.catchUp?.();
    await next();
  });
  app.get('/healthz', (c) => c.json({ ok: true }));
  app.get('/v1/status', async (c) => {
    const offsets = await db.query(
      'select source, seq, records, updated_at as "updatedAt" from ingest_offsets order by source',
    );
    const [rejects] = await db.query<{ n: number }>('select count(*)::int as n from ingest_rejects');
    return c.json({
      ok: true,
      backend: db.kind,
      schemaVersion: SCHEMA_VERSION,
      offsets,
      rejected: rejects?.n ?? 0,
    });
  });
  app.get('/v1/runs', async (c) => {
    const q = c.req.query();
    if (q.status && !(STATUSES as readonly string[]).includes(q.status))
      throw new HistoryQueryError(
        `status must be one of ${STATUSES.join(', ')}, not '${q.status}'`,
        'status',
      );
    const page = await listRuns(db, {
      ...(q.team ? { team: q.team } : {}),
      ...(q.workflow ? { workflow: q.workflow } : {}),
      ...(q.status ? { status: q.status as (typeof STATUSES)[number] } : {}),
      ...optional('since', time('since', q.since)),
      ...optional('until', time('until', q.until)),
      ...optional('limit', int('limit', q.limit)),
      ...(q.cursor ? { cursor: q.cursor } : {}),
    });
    return c.json({ ok: true, ...page });
  });
  app.get('/v1/runs/:id', async (c) => {
    const run = await describeRun(db, c.req.param('id'));
    if (!run)
      return c.json(
        { ok: false, error: { code: 'not-found', message: `no run '${c.req.param('id')}' in the history` } },
        404,
      );
    return c.json({ ok: true, ...run });
  });
  app.get('/v1/lineage', async (c) => {
    const q = c.req.query();
    if (!q.target)
      throw new HistoryQueryError('target is required: a run id or an artifact hash (or a prefix)', 'target');
    const depth = int('depth', q.depth);
    const graph = await sqlLineage(db, q.target, {
      downstream: q.direction === 'downstream',
      ...(depth !== undefined ? { depth } : {}),
    });
    if (!graph)
      return c.json(
        {
          ok: false,
          error: { code: 'not-found', message: `no run or artifact '${q.target}' in the lineage` },
        },
        404,
      );
    return c.json({ ok: true, graph });
  });
  app.get('/v1/cost', async (c) => {
    const q = c.req.query();
    const by = (q.by ?? 'team').split(',').filter(Boolean);
    for (const d of by)
      if (!(DIMENSIONS as readonly string[]).includes(d))
        throw new HistoryQueryError(`by: ${d} must be one of ${DIMENSIONS.join(', ')}`, 'by');
    const { now, timeScale } = await clockOf(db);
    // Never past now: the wall clock's, or the simulated clock's for a simulated ledger.
    const until = Math.min(time('until', q.until, now) ?? now, now);
    const since = time('since', q.since ?? '30d', now)!;
    const step = int('step', q.step);
    const report = await sqlCostReport(db, {
      by: by as Dimension[],
      since,
      until,
      ...(step !== undefined ? { stepMs: step } : {}),
      ...(opts.onDemand ? { onDemand: opts.onDemand } : {}),
      ...(opts.platform && q.compare !== 'false' ? { platform: opts.platform } : {}),
      ...(opts.backends ? { backends: opts.backends } : {}),
    });
    return c.json({ ok: true, report: { ...report, ...optional('timeScale', timeScale) } });
  });
  app.get('/v1/artifacts', async (c) => {
    const q = c.req.query();
    const limit = int('limit', q.limit);
    const unusedSince = time('unusedFor', q.unusedFor);
    const artifacts = await listArtifacts(db, {
      ...(unusedSince !== undefined ? { unusedSince } : {}),
      ...(limit !== undefined ? { limit: Math.min(limit, 10_000) } : {}),
    });
    return c.json({ ok: true, artifacts });
  });
  app.get('/v1/budgets', async (c) => {
    const at = time('at', c.req.query('at')) ?? (await clockOf(db)).now;
    const month = monthOf(at);
    // The month's spend from its rollup (a usage counted in the month it ended, as the budget gate does).
    const budgets = await db.query(
      `select distinct on (b.team) b.team, b.policy, b.per_hour as "perHour", b.per_month as "perMonth",
         b.alert_at as "alertAt", coalesce(s.cost, 0) as spent
       from budgets b left join spend_monthly s on s.team = b.team and s.month = $1
       where b.valid_from <= $2 order by b.team, b.valid_from desc`,
      [month, at],
    );
    return c.json({ ok: true, month, budgets });
  });
  return app;
}

const optional = <K extends string, V>(k: K, v: V | undefined): { [P in K]?: V } =>
  (v === undefined ? {} : { [k]: v }) as { [P in K]?: V };

/**
 * "Now" on the ledger's clock. Real time: the wall clock. A ledger that holds simulated usage (embedded
 * brokers on simulated clouds run their ledger ahead of the clock): the simulated clock's latest time,
 * if later, with the time scale so that reports can say so.
 */
async function clockOf(db: Db): Promise<{ now: number; timeScale?: number }> {
  const [row] = await db.query<{ scale: number | null; t: number | string | null }>(
    'select max(scale) as scale, max(latest_at) as t from ledger_time_scales',
  );
  const wall = Date.now();
  if (!row?.scale) return { now: wall };
  return { now: Math.max(wall, Number(row.t)), timeScale: Number(row.scale) };
}
