/**
 * One contract for every Executor: the simulated one, local processes, and Kubernetes pods (on the
 * Kubernetes test server). Each case is written in the executor's own kind of work.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadPlatform } from '../policies/index.ts';
import type { LeaseMsg, TaskState, WorkSpec } from '../protocol/index.ts';
import { kubeTestCluster } from '../test/cloud-system.ts';
import type { ContainerRun, RunOutcome } from '../test/fakes/kube.ts';
import type { Executor } from './executor.ts';
import { createKubeExecutor } from './kube-executor.ts';
import { createLocalExecutor } from './local-executor.ts';
import { createSimExecutor } from './sim-executor.ts';

type Outcome = 'ok' | 'fail' | 'hang';

/** An executor, the node it runs on, and its work for each outcome. */
interface Subject {
  executor: Executor;
  node: string;
  work(outcome: Outcome): WorkSpec;
  close(): Promise<void>;
}

const node = (code: string): WorkSpec => ({
  kind: 'process',
  command: process.execPath,
  args: ['-e', code],
  env: {},
});

const subjects: [string, () => Promise<Subject>][] = [
  [
    'simulated',
    async () => ({
      executor: createSimExecutor({ speedup: 100 }),
      node: 'n1',
      work: (o) => ({
        kind: 'sim',
        durationMs: o === 'hang' ? 86_400_000 : 500,
        outcome: o === 'fail' ? 'failed' : 'succeeded',
      }),
      close: async () => undefined,
    }),
  ],
  [
    'local processes',
    async () => ({
      executor: createLocalExecutor(),
      node: 'localhost',
      work: (o) =>
        node(
          o === 'ok' ? 'process.exit(0)' : o === 'fail' ? 'process.exit(3)' : 'setInterval(() => {}, 1000)',
        ),
      close: async () => undefined,
    }),
  ],
  [
    'Kubernetes',
    async () => {
      const runner = async ({ container, signal }: ContainerRun): Promise<RunOutcome> => {
        const outcome = container.env?.find((e) => e.name === 'OUTCOME')?.value;
        await new Promise((r) => setTimeout(r, 20));
        if (outcome === 'hang') await new Promise((r) => signal.addEventListener('abort', r));
        return outcome === 'fail' ? { exitCode: 3, message: 'loss is NaN' } : { exitCode: 0 };
      };
      const { kube, kubeConfig } = await kubeTestCluster({ runner });
      const cluster = loadPlatform(['test/fixtures/kube-platform']).platform.clusters[0]!;
      const executor = createKubeExecutor({ kubeConfig, cluster, image: 'gantry:test' });
      await executor.watch();
      return {
        executor,
        node: 'ip-10-0-0-1',
        work: (o) => ({ kind: 'process', command: 'train', args: [], env: { OUTCOME: o } }),
        async close() {
          await executor.close();
          await kube.close();
        },
      };
    },
  ],
];

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe.each(subjects)('Executor contract: %s', (_, make) => {
  let n = 0;
  async function run(outcome: Outcome) {
    const s = await make();
    cleanups.push(() => s.close());
    const leaseId = `l-${++n}`;
    const lease: LeaseMsg = {
      leaseId,
      requestId: `r-${leaseId}`,
      cluster: 'eks',
      pool: 'cpu-spot',
      node: s.node,
      pricePerHour: 0.05,
      cpuMilli: 500,
      memoryMiB: 512,
      gpuMilli: 0,
      gpuModel: null,
      capacityType: 'spot',
      expiresAt: Date.now() + 3_600_000,
      attempt: 0,
      why: 'contract',
      work: s.work(outcome),
    };
    const states: { state: TaskState; exitCode?: number }[] = [];
    s.executor.start(lease, s.node, (state, info) => states.push({ state, ...info }));
    return { s, states, leaseId };
  }
  const names = (states: { state: TaskState }[]) => states.map((x) => x.state);
  const wait = (check: () => void) => vi.waitFor(check, { timeout: 10_000, interval: 10 });

  it('reports running, then succeeded with exit code 0, once', async () => {
    const { states } = await run('ok');
    await wait(() => expect(names(states)).toContain('succeeded'));
    expect(names(states).filter((s) => s !== 'launching')).toEqual(['running', 'succeeded']);
    expect(states.at(-1)!.exitCode).toBe(0);
  });

  it('reports work that fails as failed, with a non-zero exit code', async () => {
    const { states } = await run('fail');
    await wait(() => expect(names(states)).toContain('failed'));
    expect(names(states).filter((s) => s === 'failed')).toHaveLength(1);
    expect(states.at(-1)!.exitCode).not.toBe(0);
    expect(names(states)).not.toContain('succeeded');
  });

  it('stops work: it never succeeds after stop', async () => {
    const { s, states, leaseId } = await run('hang');
    await wait(() => expect(names(states)).toContain('running'));
    s.executor.stop(leaseId);
    await new Promise((r) => setTimeout(r, 200));
    expect(names(states)).not.toContain('succeeded');
  });
});
