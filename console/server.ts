/**
 * The console's HTTP app: the history API (`/v1/runs`, `/v1/cost`, …, as the CLI asks it), the
 * broker's live state (`/v1/live/*`), server-sent events that tell pages what changed (`/v1/events`),
 * the actions (drain, undrain, cancel: `POST /v1/actions/*`, with a token that may act), what-if
 * planning (`POST /v1/whatif`), and the built pages.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveStatic } from '@hono/node-server/serve-static';
import { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { Broker } from '../broker/index.ts';
import { type ApiOptions, historyApi } from '../history/index.ts';
import { formatProblem, loadWorkload, type Platform } from '../policies/index.ts';
import { type LpBackends, plan, poolStates, taskRequest } from '../solver/index.ts';
import { authenticate, type ConsoleTokens, requireRight, rightsOf } from './auth.ts';
import { type AskBroker, BrokerRefused, clusters, queue, spendRate } from './live.ts';
import { ExecutionQueryError, runExecutions, runRecord, runTasks } from './runs.ts';

/** What the console answers from. */
export interface ConsoleOptions extends ApiOptions {
  /** The broker's admin verbs; without it the live pages say there is no broker. */
  ask?: AskBroker;
  /** A broker in this process: its fleet gauges give the spend rate now. */
  broker?: Pick<Broker, 'metrics' | 'refreshGauges' | 'isLeader' | 'id'>;
  platform?: Platform;
  backends?: LpBackends;
  tokens?: ConsoleTokens;
  /** The built pages (`console/dist`). */
  distDir?: string;
  /** How often the event stream looks for changes. Default 1000 ms. */
  tickMs?: number;
}

/** Where `npm run console:build` puts the pages. */
export const DIST = new URL('./dist/', import.meta.url).pathname;

const posInt = (v: string | undefined) => (v && /^\d+$/.test(v) ? Number(v) : undefined);

/**
 * The console as a Hono app.
 *
 * @example
 * const app = consoleApp({ db, ask: askOver(transport), platform });
 * await serveHistoryApi(app, 8080);
 */
export function consoleApp(opts: ConsoleOptions): Hono {
  const tokens = opts.tokens ?? {};
  const app = new Hono();
  const live = opts.ask;
  const dist = opts.distDir ?? DIST;
  app.get('/healthz', (c) => c.json({ ok: true }));
  app.use('*', authenticate(tokens));
  app.onError((err, c) => {
    if (err instanceof BrokerRefused)
      return c.json({ ok: false, error: { code: err.code, message: err.message } }, 400);
    return c.json({ ok: false, error: { code: 'internal', message: err.message } }, 500);
  });

  // A broker in this process (or over its transport) cancels runs with its cancel-run verb.
  app.get('/v1/me', (c) =>
    c.json({ ok: true, rights: rightsOf(c, tokens), broker: Boolean(live), cancel: Boolean(live) }),
  );
  app.get('/v1/runs/:id/tasks', async (c) => {
    await opts.catchUp?.();
    const id = c.req.param('id');
    const [run, tasks] = await Promise.all([runRecord(opts.db, id), runTasks(opts.db, id)]);
    if (!run && tasks.length === 0)
      return c.json(
        { ok: false, error: { code: 'not-found', message: `no run '${id}' in the history` } },
        404,
      );
    return c.json({ ok: true, run, tasks });
  });
  app.get('/v1/runs/:id/executions', async (c) => {
    await opts.catchUp?.();
    const q = c.req.query();
    if (q.offset !== undefined)
      return c.json(
        {
          ok: false,
          error: {
            code: 'bad-query',
            field: 'offset',
            message: "pages go by cursor, not offset: pass the previous page's next as ?cursor=",
          },
        },
        400,
      );
    try {
      const page = await runExecutions(opts.db, c.req.param('id'), {
        task: q.task,
        status: q.status === 'failed' || q.status === 'ok' ? q.status : undefined,
        cursor: q.cursor,
        limit: posInt(q.limit),
      });
      return c.json({ ok: true, ...page });
    } catch (err) {
      if (!(err instanceof ExecutionQueryError)) throw err;
      return c.json({ ok: false, error: { code: 'bad-query', field: err.field, message: err.message } }, 400);
    }
  });
  app.route('/', historyApi(opts));

  const noBroker = (c: import('hono').Context) =>
    c.json({ ok: false, error: { code: 'no-broker', message: 'no broker in this console' } }, 503);
  app.get('/v1/live/overview', async (c) => {
    if (!live) return noBroker(c);
    const [list, stats, budgets, spend] = await Promise.all([
      live('clusters'),
      live('stats'),
      live('budgets'),
      opts.broker ? spendRate(opts.broker) : undefined,
    ]);
    return c.json({ ok: true, ...list, ...stats, ...budgets, spend, leader: opts.broker?.isLeader() });
  });
  app.get('/v1/live/clusters', async (c) =>
    live ? c.json({ ok: true, clusters: await clusters(live) }) : noBroker(c),
  );
  app.get('/v1/live/queue', async (c) => (live ? c.json({ ok: true, ...(await queue(live)) }) : noBroker(c)));

  app.post('/v1/actions/:verb', async (c) => {
    const verb = c.req.param('verb');
    if (!['drain', 'undrain', 'cancel'].includes(verb))
      return c.json({ ok: false, error: { code: 'unknown-action', message: `no action '${verb}'` } }, 404);
    // A page of another site cannot send this header without a CORS preflight, which the console refuses.
    if (c.req.header('x-gantry-console') !== '1')
      return c.json(
        { ok: false, error: { code: 'forbidden', message: 'actions need the X-Gantry-Console: 1 header' } },
        403,
      );
    const refused = requireRight(c, tokens, 'act');
    if (refused) return refused;
    if (!live) return noBroker(c);
    const body = (await c.req.json().catch(() => ({}))) as Record<string, unknown>;
    if (verb !== 'cancel') return c.json(await live(verb, body));
    // What `gantry run cancel` asks, with the console as the reason the run's driver prints.
    if (typeof body.run !== 'string' || body.run === '')
      return c.json(
        { ok: false, error: { code: 'bad-request', message: 'cancel needs the run: {"run": "run-…"}' } },
        400,
      );
    return c.json(await live('cancel-run', { run: body.run, reason: 'from the console' }));
  });

  app.post('/v1/whatif', async (c) => {
    if (!opts.platform) return noBroker(c);
    const text = await c.req.text();
    const dir = mkdtempSync(join(tmpdir(), 'gantry-whatif-'));
    try {
      const yaml = !text.trimStart().startsWith('{');
      const file = join(dir, yaml ? 'workload.yaml' : 'workload.jsonl');
      writeFileSync(file, text);
      const { tasks, problems } = loadWorkload(file, opts.platform);
      if (problems.length > 0 || tasks.length === 0)
        return c.json(
          {
            ok: false,
            error: {
              code: 'bad-workload',
              message:
                problems.length > 0
                  ? problems.map((p) => formatProblem({ ...p, file: 'workload' })).join('\n')
                  : 'no tasks to plan: paste a Workload document with spec.groups, or JSON lines',
            },
          },
          400,
        );
      const requests = tasks.map((t) => taskRequest(t.id, t.team, t.resources, t.priority));
      const result = plan({ pools: poolStates(opts.platform.pools) }, requests, opts.platform.policies, {
        ...(opts.backends ? { backends: opts.backends } : {}),
        timeBudgetMs: 5000,
      });
      return c.json({ ok: true, plan: result });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  app.get('/v1/events', (c) =>
    streamSSE(c, async (stream) => {
      let last = '';
      let id = 0;
      while (!stream.aborted) {
        const snapshot = await changeToken(opts).catch(() => last);
        if (snapshot !== last) {
          last = snapshot;
          await stream.writeSSE({ event: 'changed', data: snapshot, id: String(id++) });
        }
        await stream.sleep(opts.tickMs ?? 1000);
      }
    }),
  );

  // Read per request: a rebuild (npm run console:build) is served without a restart.
  let assets: ReturnType<typeof serveStatic> | undefined;
  app.use('/assets/*', (c, next) =>
    existsSync(dist) ? (assets ??= serveStatic({ root: dist }))(c, next) : next(),
  );
  app.get('/assets/*', (c) =>
    c.json({ ok: false, error: { code: 'not-found', message: 'no such asset' } }, 404),
  );
  app.get('*', (c) =>
    existsSync(join(dist, 'index.html'))
      ? c.html(readFileSync(join(dist, 'index.html'), 'utf8'))
      : c.text(`The console's pages are not built: run npm run console:build (npm ci builds them).\n`, 503),
  );
  return app;
}

/**
 * What the pages show changes when this does: the history's ingest offsets and the broker's counts.
 * Sent to every page, which refetches what it shows.
 */
async function changeToken(opts: ConsoleOptions): Promise<string> {
  await opts.catchUp?.();
  const offsets = await opts.db.query<{ source: string; seq: number }>(
    'select source, seq from ingest_offsets order by source',
  );
  const stats = opts.ask ? await opts.ask('stats').catch(() => ({})) : {};
  // Not the heartbeats' times, which change every second whether anything happened or not.
  const clusters = opts.ask
    ? (
        (await opts.ask('clusters').catch(() => ({ clusters: [] }))) as {
          clusters: { name: string; healthy: boolean; draining: boolean; nodes: number }[];
        }
      ).clusters.map((c) => [c.name, c.healthy, c.draining, c.nodes])
    : [];
  return JSON.stringify({ offsets, stats, clusters });
}
