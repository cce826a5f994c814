import { describe, expect, it } from 'vitest';
import { loadPlatform } from '../policies/index.ts';
import {
  createMemoryTransport,
  encodeJson,
  type LeaseMsg,
  subjects,
  type Transport,
} from '../protocol/index.ts';
import { createAgent } from './agent.ts';
import type { Executor, ExecutorReport } from './executor.ts';
import type { NodeProvisioner } from './provisioner.ts';

const { platform } = loadPlatform(['test/fixtures/platform']);
const cluster = platform.clusters.find((c) => c.name === 'sim-aws')!;
const pool = cluster.pools[0]!;

/** One ready node, never changing. */
const provisioner: NodeProvisioner = {
  kind: 'fixed',
  list: () => [{ name: 'n1', pool: pool.name, ready: true, capacityType: pool.capacityType, createdAt: 0 }],
  add: async () => undefined,
  remove: async () => undefined,
  onEvent: () => undefined,
  close: async () => undefined,
};

/**
 * Runs leases until closed. `close()` ends one lease at once (reported before it resolves) and the
 * others a little later, as processes killed by the local executor do.
 */
function killingExecutor(lateMs: number): Executor {
  const running = new Map<string, ExecutorReport>();
  return {
    kind: 'killing',
    start(lease: LeaseMsg, _node: string, report: ExecutorReport) {
      running.set(lease.leaseId, report);
      report('running');
    },
    stop: () => undefined,
    async close() {
      const [first, ...rest] = [...running.values()];
      first?.('failed', { reason: 'killed by SIGTERM' });
      setTimeout(() => rest.forEach((r) => r('failed', { reason: 'killed by SIGTERM' })), lateMs);
    },
  };
}

function lease(i: number): LeaseMsg {
  return {
    leaseId: `l-${i}`,
    requestId: `r-${i}`,
    cluster: cluster.name,
    pool: pool.name,
    node: 'n1',
    pricePerHour: 1,
    cpuMilli: 100,
    memoryMiB: 100,
    gpuMilli: 0,
    gpuModel: null,
    capacityType: pool.capacityType,
    expiresAt: Date.now() + 60_000,
    attempt: 0,
    why: 'test',
    work: { kind: 'sim', durationMs: 60_000, outcome: 'succeeded' },
  };
}

/** Records every publish on `inner`, and the ones refused because it was closed. */
function recording(inner: Transport) {
  const sent: { subject: string; body: unknown }[] = [];
  const refused: string[] = [];
  const t: Transport = {
    kind: inner.kind,
    publish(subject, data) {
      try {
        inner.publish(subject, data);
      } catch (err) {
        refused.push(subject);
        throw err;
      }
      sent.push({ subject, body: JSON.parse(new TextDecoder().decode(data)) });
    },
    subscribe: (subject, handler, options) => inner.subscribe(subject, handler, options),
    request: (subject, data, options) => inner.request(subject, data, options),
    respond: (msg, data) => inner.respond(msg, data),
    flush: () => inner.flush(),
    onEvent: (listener) => inner.onEvent(listener),
    close: () => inner.close(),
  };
  return { t, sent, refused };
}

describe('agent stop', () => {
  it.each([
    ['the transport stays open', false],
    ['the transport is closed right after', true],
  ])(
    'sends the ends its executor reports while closing, and publishes nothing after (%s)',
    async (_, closeAfter) => {
      const inner = createMemoryTransport();
      inner.subscribe(subjects.register(cluster.name), (msg) =>
        inner.respond(msg, encodeJson({ ok: true, heartbeatMs: 60_000, brokerId: 'b' })),
      );
      const { t, sent, refused } = recording(inner);
      const agent = createAgent({ transport: t, cluster, executor: killingExecutor(20), provisioner });
      await agent.start();
      await inner.request(
        subjects.launch(cluster.name),
        encodeJson({ leases: [lease(1), lease(2), lease(3)] }),
        { timeoutMs: 1000 },
      );
      expect(agent.active().sort()).toEqual(['l-1', 'l-2', 'l-3']);
      await agent.stop();
      if (closeAfter) await inner.close();
      const countAtStop = sent.length;
      await new Promise((r) => setTimeout(r, 60));
      // The late ends were dropped: nothing published after stop, nothing refused by a closed transport.
      expect(sent.length).toBe(countAtStop);
      expect(refused).toEqual([]);
      const events = sent
        .filter((s) => s.subject === subjects.events(cluster.name))
        .flatMap((s) => (s.body as { events: { leaseId: string; state: string }[] }).events)
        .filter((e) => e.state === 'failed');
      expect(events.map((e) => e.leaseId)).toEqual(['l-1']);
      if (!closeAfter) await inner.close();
    },
  );

  it('a transport closed before stop loses the last events without throwing', async () => {
    const inner = createMemoryTransport();
    inner.subscribe(subjects.register(cluster.name), (msg) =>
      inner.respond(msg, encodeJson({ ok: true, heartbeatMs: 60_000, brokerId: 'b' })),
    );
    const { t, sent, refused } = recording(inner);
    const agent = createAgent({ transport: t, cluster, executor: killingExecutor(1), provisioner });
    await agent.start();
    await inner.request(subjects.launch(cluster.name), encodeJson({ leases: [lease(1)] }), {
      timeoutMs: 1000,
    });
    await inner.close();
    await agent.stop();
    expect(refused).toEqual([subjects.events(cluster.name)]);
    expect(
      sent.some(
        (s) => s.subject === subjects.events(cluster.name) && JSON.stringify(s.body).includes('"failed"'),
      ),
    ).toBe(false);
  });
});
