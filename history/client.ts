/**
 * How the CLI asks the history: over HTTP from a running `gantry history` or `gantry up` (`--history
 * <url>`), or in-process from the same API app over a database it opened itself. Either way the same
 * routes answer, so what the CLI prints is what the console will show.
 */
import type { Hono } from 'hono';
import type { LineageGraph } from '../runtime/index.ts';
import type { HistoryCostReport } from './cost.ts';
import { HistoryQueryError, HistoryUnavailableError } from './errors.ts';
import type { RunDetail, RunPage } from './runs.ts';

/** The history's answers, typed. */
export interface HistoryClient {
  /** Where the answers come from, for messages. */
  readonly where: string;
  runs(query: Record<string, string | number | undefined>): Promise<RunPage>;
  run(id: string): Promise<RunDetail | undefined>;
  lineage(target: string, opts: { downstream?: boolean; depth?: number }): Promise<LineageGraph | undefined>;
  cost(query: Record<string, string | number | undefined>): Promise<HistoryCostReport>;
  status(): Promise<Record<string, unknown>>;
}

type Fetch = (path: string) => Promise<Response>;

/**
 * A client over HTTP; `token` is sent as `Authorization: Bearer` (a console that asks for tokens reads
 * with its view token).
 */
export function httpHistoryClient(baseUrl: string, token?: string): HistoryClient {
  const base = baseUrl.replace(/\/+$/, '');
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  return client(base, async (path) => {
    try {
      const res = await fetch(`${base}${path}`, { headers });
      if (res.status === 401)
        throw new HistoryUnavailableError(
          base,
          `the history API at ${base} needs a token: set GANTRY_CONSOLE_TOKEN to the console's view token`,
        );
      return res;
    } catch (err) {
      if (err instanceof HistoryUnavailableError) throw err;
      const code = (err as { cause?: { code?: string } }).cause?.code;
      throw new HistoryUnavailableError(
        base,
        `cannot reach the history API at ${base} (${code === 'ECONNREFUSED' ? 'connection refused' : (code ?? String(err))}): start gantry history (or gantry up), or pass --history <url> of a running one`,
        { cause: err },
      );
    }
  });
}

/** A client that calls the API app in this process. */
export function localHistoryClient(app: Hono, where: string): HistoryClient {
  return client(where, async (path) => app.request(path));
}

function client(where: string, get: Fetch): HistoryClient {
  const ask = async <T>(path: string, notFound = false): Promise<T | undefined> => {
    const res = await get(path);
    const body = (await res.json().catch(() => ({}))) as { error?: { message?: string; field?: string } } & T;
    if (res.status === 404 && notFound) return undefined;
    if (res.status === 400)
      throw new HistoryQueryError(body.error?.message ?? 'bad query', body.error?.field);
    if (!res.ok)
      throw new HistoryUnavailableError(
        where,
        `the history API at ${where}: ${body.error?.message ?? res.statusText}`,
      );
    return body;
  };
  const qs = (q: Record<string, string | number | boolean | undefined>) => {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== '') p.set(k, String(v));
    const s = p.toString();
    return s ? `?${s}` : '';
  };
  return {
    where,
    runs: async (q) => (await ask<RunPage>(`/v1/runs${qs(q)}`))!,
    run: (id) => ask<RunDetail>(`/v1/runs/${encodeURIComponent(id)}`, true),
    async lineage(target, opts) {
      const body = await ask<{ graph: LineageGraph }>(
        `/v1/lineage${qs({ target, direction: opts.downstream ? 'downstream' : 'upstream', depth: opts.depth })}`,
        true,
      );
      return body?.graph;
    },
    cost: async (q) => (await ask<{ report: HistoryCostReport }>(`/v1/cost${qs(q)}`))!.report,
    status: async () => (await ask<Record<string, unknown>>('/v1/status'))!,
  };
}
