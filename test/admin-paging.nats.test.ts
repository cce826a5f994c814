/**
 * Admin listings larger than NATS's payload limit are paged: `gantry get requests --limit 100000`
 * against a broker holding 30,000 requests (about 6 MB of JSON) prints every one, newest last.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pageOf } from '../broker/admin-page.ts';
import { createBroker } from '../broker/index.ts';
import { loadPlatform } from '../policies/index.ts';
import { openLocalStore } from '../protocol/index.ts';
import { connectNats } from '../protocol/nats-index.ts';
import { runGantry } from './cli.ts';
import { startNatsServer } from './nats/server.ts';

describe('admin listings page', () => {
  it('pageOf stays under its byte budget and chains to the end', () => {
    const rows = Array.from({ length: 1000 }, (_, i) => ({ i, pad: 'x'.repeat(90) }));
    const seen: number[][] = [];
    let offset = 0;
    for (;;) {
      const page = pageOf(rows, { limit: 900, offset }, 10_000);
      expect(page.json.join(',').length).toBeLessThanOrEqual(10_000);
      seen.unshift(page.json.map((j) => (JSON.parse(j) as { i: number }).i));
      if (page.next === undefined) break;
      offset = page.next;
    }
    expect(seen.flat()).toEqual(Array.from({ length: 900 }, (_, k) => k + 100));
  });

  it('gantry get requests --limit 100000 prints 30,000 requests over a 1 MiB payload limit', async () => {
    await using server = await startNatsServer();
    const nc = await connectNats({ servers: server.url });
    const { platform } = loadPlatform(['test/fixtures/platform']);
    const broker = createBroker({
      transport: nc,
      store: await openLocalStore(mkdtempSync(join(tmpdir(), 'gantry-page-'))),
      platform,
    });
    await broker.start();
    try {
      while (!broker.readiness().detail.startsWith('leading')) await new Promise((r) => setTimeout(r, 50));
      const resources = { cpuMilli: 1000, memoryMiB: 2048, gpu: [], spot: 'allowed' as const, durationS: 60 };
      for (let i = 0; i < 30_000; i++)
        broker.state.addRequest({
          requestId: `req-${String(i).padStart(6, '0')}`,
          team: 'ml',
          runId: 'run-paging',
          taskId: 'a-task-with-a-reasonably-long-name',
          resources: resources as never,
          override: false,
          work: { kind: 'sim', durationMs: 1000, outcome: 'succeeded' },
          state: 'pending',
          attempt: 0,
          createdAt: i,
          updatedAt: i,
        });
      const got = await runGantry('get', 'requests', '--limit', '100000', '-o', 'json', '--nats', server.url);
      expect(got.err).toBe('');
      expect(got.code).toBe(0);
      const answer = JSON.parse(got.out) as { total: number; requests: { requestId: string }[] };
      expect(answer.total).toBe(30_000);
      const rows = answer.requests;
      expect(rows).toHaveLength(30_000);
      expect(rows[0]!.requestId).toBe('req-000000');
      expect(rows[29_999]!.requestId).toBe('req-029999');
      const some = await runGantry('get', 'requests', '--limit', '5', '-o', 'json', '--nats', server.url);
      const five = JSON.parse(some.out) as { requests: { requestId: string }[] };
      expect(five.requests.map((r) => r.requestId)).toEqual([
        'req-029995',
        'req-029996',
        'req-029997',
        'req-029998',
        'req-029999',
      ]);
    } finally {
      await broker.stop();
      await nc.close();
    }
  }, 60_000);
});
