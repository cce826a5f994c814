import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { createMemoryTransport, type ResultMsg, subjects } from '../protocol/index.ts';
import { makeTaskLease } from '../test/builders.ts';
import { openLocalArtifacts } from './artifacts.ts';
import { createProcessHost } from './process-host.ts';
import { encodeValue } from './values.ts';

const MODULE = resolve('test/fixtures/workflows/host.ts');

describe('the process host', () => {
  it("sends a task's result through the durable publisher and reports the end once it is kept", async () => {
    const transport = createMemoryTransport();
    const artifacts = await openLocalArtifacts(mkdtempSync(join(tmpdir(), 'gantry-process-host-')));
    const kept: { subject: string; result: ResultMsg }[] = [];
    let keep!: () => void;
    const held = new Promise<void>((r) => (keep = r));
    const host = createProcessHost({
      transport,
      artifacts,
      spares: false,
      publishResult: async (subject, data) => {
        kept.push({ subject, result: JSON.parse(new TextDecoder().decode(data)) as ResultMsg });
        await held;
      },
    });
    const plain: unknown[] = [];
    const subject = subjects.result('t', 'e-1', 'local');
    transport.subscribe(subject, (m) => plain.push(m.data));
    const lease = makeTaskLease({
      leaseId: 'l-1',
      execution: 'e-1',
      task: 'host-nap',
      module: MODULE,
      input: await encodeValue({ ms: 10 }, artifacts),
      cluster: 'local',
      node: 'localhost',
      memoryMiB: 512,
    });
    const states: string[] = [];
    try {
      host.start(lease, 'localhost', (state) => states.push(state));
      await vi.waitFor(() => expect(kept).toHaveLength(1), { timeout: 30_000 });
      expect(kept[0]).toMatchObject({ subject, result: { ok: true, execution: 'e-1' } });
      // The worker has exited; its end waits for the result to be kept.
      await new Promise((r) => setTimeout(r, 300));
      expect(states).toEqual(['running']);
      keep();
      await vi.waitFor(() => expect(states).toEqual(['running', 'succeeded']), { timeout: 5000 });
      expect(plain).toEqual([]);
    } finally {
      await host.close();
    }
  }, 60_000);
});
