import type { AddressInfo } from 'node:net';
import { Registry, Counter } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { type Readiness, serveMetrics } from './metrics-http.ts';

async function serve(ready?: () => Readiness | Promise<Readiness>, refresh?: () => void) {
  const registry = new Registry();
  const counter = new Counter({ name: 'test_total', help: 'a test counter', registers: [registry] });
  const server = await serveMetrics(registry, 0, '127.0.0.1', {
    ...(ready ? { ready } : {}),
    ...(refresh ? { refresh } : {}),
  });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const get = async (path: string, method = 'GET') => {
    const res = await fetch(`${base}${path}`, { method });
    return [res.status, await res.text()] as const;
  };
  return { server, counter, get };
}

describe('the metrics port', () => {
  it('serves /metrics, /healthz, and /readyz as the process says, 503 with why when not ready', async () => {
    let state: Readiness = { ready: false, detail: 'registering' };
    const { server, counter, get } = await serve(() => state);
    try {
      counter.inc(3);
      expect(await get('/metrics')).toEqual([200, expect.stringMatching(/^test_total 3$/m)]);
      expect(await get('/healthz')).toEqual([200, 'ok\n']);
      expect(await get('/readyz')).toEqual([503, 'registering\n']);
      state = { ready: true, detail: 'leading' };
      expect(await get('/readyz?verbose')).toEqual([200, 'leading\n']);
      expect(await get('/')).toEqual([404, 'see /metrics, /healthz or /readyz\n']);
      expect((await get('/metrics', 'POST'))[0]).toBe(405);
    } finally {
      server.close();
    }
  });

  it('is not ready when the check throws, and ready without a check', async () => {
    const failing = await serve(async () => {
      throw new Error('the store is gone');
    });
    const plain = await serve();
    try {
      expect(await failing.get('/readyz')).toEqual([503, 'readiness check failed: the store is gone\n']);
      expect(await plain.get('/readyz')).toEqual([200, 'ok\n']);
    } finally {
      failing.server.close();
      plain.server.close();
    }
  });

  it('brings the gauges up to date before each scrape', async () => {
    let n = 0;
    const { server, counter, get } = await serve(undefined, () => counter.inc(++n));
    try {
      await get('/metrics');
      expect(await get('/metrics')).toEqual([200, expect.stringMatching(/^test_total 3$/m)]);
      await get('/healthz');
      expect(n).toBe(2);
    } finally {
      server.close();
    }
  });
});
