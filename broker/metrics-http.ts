/**
 * The metrics port: `/metrics` for Prometheus, `/healthz` (the process is alive: its event loop answers)
 * and `/readyz` (it can do its job now) for Kubernetes' probes.
 */
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

/** Whether a process can do its job now, and what it is doing or waiting for, in a few words. */
export interface Readiness {
  ready: boolean;
  detail: string;
}

/** Options of {@link serveMetrics}. */
export interface ServeMetricsOptions {
  /** What `/readyz` answers; without it, ready whenever the process answers. */
  ready?: () => Readiness | Promise<Readiness>;
  /** Called before each scrape, to bring gauges up to date. */
  refresh?: () => void;
}

/**
 * Serves the registry on `http://<host>:<port>/metrics`, with `/healthz` and `/readyz`. `/readyz` is 200
 * with the detail when ready, else 503 with what it waits for. Resolves with the server once it listens.
 *
 * @example
 * const server = await serveMetrics(broker.metrics.registry, 9464, '0.0.0.0', { ready: () => broker.readiness() });
 */
export function serveMetrics(
  registry: Registry,
  port: number,
  host = '127.0.0.1',
  opts: ServeMetricsOptions = {},
): Promise<Server> {
  const text = (res: import('node:http').ServerResponse, status: number, body: string) =>
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(`${body}\n`);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return text(res, 405, 'GET only');
    if (path === '/healthz') return text(res, 200, 'ok');
    if (path === '/readyz') {
      Promise.resolve(opts.ready?.() ?? { ready: true, detail: 'ok' })
        .then((r) => text(res, r.ready ? 200 : 503, r.detail))
        .catch((err: Error) => text(res, 503, `readiness check failed: ${err.message}`));
      return;
    }
    if (path !== '/metrics') return text(res, 404, 'see /metrics, /healthz or /readyz');
    try {
      opts.refresh?.();
    } catch (err) {
      return text(res, 500, `could not compute the metrics: ${(err as Error).message}`);
    }
    registry
      .metrics()
      .then((body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body))
      .catch((err: Error) => text(res, 500, err.message));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
