/** The `/metrics` endpoint for Prometheus. */
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

/**
 * Serves the registry on `http://<host>:<port>/metrics`. Resolves with the server once it listens.
 *
 * @example
 * const server = await serveMetrics(broker.metrics.registry, 9464);
 */
export function serveMetrics(registry: Registry, port: number, host = '127.0.0.1'): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end('see /metrics\n');
      return;
    }
    registry
      .metrics()
      .then((text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text))
      .catch((err: Error) => res.writeHead(500).end(err.message));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
