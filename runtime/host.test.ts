import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ExecutorReport } from '../agents/executor.ts';
import { createMemoryTransport, type ResultMsg, subjects } from '../protocol/index.ts';
import { makeTaskLease } from '../test/builders.ts';
import { endings } from '../test/fixtures/workflows/host.ts';
import { openLocalArtifacts } from './artifacts.ts';
import { createTaskHost } from './host.ts';
import { encodeValue } from './values.ts';

const MODULE = resolve('test/fixtures/workflows/host.ts');

let n = 0;
async function start(task: string, ms: number, timeScale = 60) {
  const transport = createMemoryTransport();
  const artifacts = await openLocalArtifacts(mkdtempSync(join(tmpdir(), 'gantry-host-')));
  const host = createTaskHost({ transport, artifacts, timeScale });
  const execution = `e-${++n}`;
  const results: ResultMsg[] = [];
  transport.subscribe(subjects.result('t', execution, 'sim'), (m) =>
    results.push(JSON.parse(new TextDecoder().decode(m.data)) as ResultMsg),
  );
  const lease = makeTaskLease({
    leaseId: `l-${n}`,
    execution,
    task,
    module: MODULE,
    input: await encodeValue({ ms }, artifacts),
    cluster: 'sim',
    node: 'n1',
  });
  const states: string[] = [];
  const report: ExecutorReport = (state) => states.push(state);
  host.start(lease, 'n1', report);
  return { host, lease, execution, results, states };
}

const closes: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closes.splice(0)) await c();
});

describe('the in-process task host', () => {
  it('runs ctx.sleep at the cluster speed and charges the simulated time', async () => {
    const { host, execution, results, states } = await start('host-nap', 60_000, 600);
    closes.push(() => host.close());
    await vi.waitFor(() => expect(states).toContain('succeeded'), { timeout: 5000 });
    expect(endings.get(execution)).toBe('slept');
    // 100 ms of wall clock at 600×; the result says a minute, plus the few milliseconds of real work.
    expect(results[0]!.ranMs).toBeGreaterThanOrEqual(60_000);
    expect(results[0]!.ranMs).toBeLessThan(60_000 + 1000);
  });

  it('aborts ctx.signal when the lease stops: ctx.sleep rejects at once and nothing is reported', async () => {
    const { host, lease, execution, results, states } = await start('host-nap', 86_400_000);
    closes.push(() => host.close());
    await vi.waitFor(() => expect(states).toContain('running'));
    await new Promise((r) => setTimeout(r, 50));
    host.stop(lease.leaseId);
    await vi.waitFor(() => expect(endings.get(execution)).toBe('stopped: true AbortError'), {
      timeout: 1000,
    });
    expect(results).toEqual([]);
    expect(states).toEqual(['running']);
  });

  it('closes without waiting for work that ignores its signal', async () => {
    const { host, execution, states } = await start('host-deaf', 60_000);
    await vi.waitFor(() => expect(states).toContain('running'));
    const t0 = Date.now();
    await host.close();
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(endings.get(execution)).toBeUndefined();
    expect(states).toEqual(['running']);
  });
});
