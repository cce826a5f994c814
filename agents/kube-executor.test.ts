import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { loadPlatform } from '../policies/index.ts';
import type { LeaseMsg, TaskState } from '../protocol/index.ts';
import { type FakeKube, type ContainerRun, type RunOutcome, startFakeKube } from '../test/fakes/kube.ts';
import { eventually } from '../test/system.ts';
import { createKubeExecutor, type KubeExecutor, leasePod, podName } from './kube-executor.ts';

const { platform } = loadPlatform(['test/fixtures/kube-platform']);
const cluster = platform.clusters[0]!;
const SPOT_LABELS = {
  'eks.amazonaws.com/capacityType': 'SPOT',
  'node.kubernetes.io/instance-type': 'm7i.xlarge',
};

function kubeConfig(url: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: url, skipTLSVerify: true }],
    users: [{ name: 'agent', token: 'test' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'agent' }],
    currentContext: 'fake',
  });
  return kc;
}

function lease(id: string, over: Partial<LeaseMsg> = {}, outcome = 'ok'): LeaseMsg {
  return {
    leaseId: id,
    requestId: `r-${id}`,
    cluster: 'eks',
    pool: 'cpu-spot',
    node: 'ip-10-0-0-1',
    pricePerHour: 0.05,
    cpuMilli: 1500,
    memoryMiB: 2048,
    gpuMilli: 0,
    gpuModel: null,
    capacityType: 'spot',
    expiresAt: Date.now() + 3_600_000,
    attempt: 0,
    why: 'cheapest',
    work: { kind: 'process', command: 'train', args: ['--fast'], env: { OUTCOME: outcome } },
    ...over,
  };
}

/** Containers end as their OUTCOME variable says; `hang` runs until the pod goes away. */
const runner = async ({ pod, container, signal }: ContainerRun): Promise<RunOutcome> => {
  const env = (name: string, c = container) => c.env?.find((e) => e.name === name)?.value;
  // A container task's init container ends as its main container's INPUTS variable says.
  if (container.name === 'gantry-inputs')
    return env('INPUTS', pod.spec!.containers[0]) === 'bad'
      ? { exitCode: 1, message: 'ValidationError: epochs: expected int' }
      : { exitCode: 0 };
  const outcome = env('OUTCOME');
  await new Promise((r) => setTimeout(r, 20));
  if (outcome === 'hang') await new Promise((r) => signal.addEventListener('abort', r));
  if (outcome === 'oom') return { exitCode: 137, reason: 'OOMKilled' };
  if (outcome === 'fail') return { exitCode: 3, message: 'loss is NaN' };
  return { exitCode: 0 };
};

let kube: FakeKube;
let executors: KubeExecutor[] = [];
afterEach(async () => {
  for (const e of executors) await e.close();
  executors = [];
  await kube?.close();
});

async function setup(opts: { unschedulableAfterMs?: number } = {}) {
  kube = await startFakeKube({ runner });
  kube.addNode('ip-10-0-0-1', SPOT_LABELS, { cpu: '4', memory: '16Gi' });
  const executor = createKubeExecutor({
    kubeConfig: kubeConfig(kube.url),
    cluster,
    image: 'gantry:test',
    ...opts,
  });
  await executor.watch();
  executors.push(executor);
  return executor;
}

function follow(executor: KubeExecutor, l: LeaseMsg) {
  const states: { state: TaskState; exitCode?: number; reason?: string }[] = [];
  executor.start(l, l.node, (state, info) => states.push({ state, ...info }));
  return states;
}
const ended = (s: { state: string }[]) =>
  s.some((x) => ['succeeded', 'failed', 'preempted'].includes(x.state));

/** A container task's lease: `python:3.12` runs `python -c … {{inputs.epochs}}`. */
function containerLease(
  id: string,
  env: Record<string, string>,
  over: { input?: { ref: string; bytes: number } } = {},
) {
  return lease(id, {
    work: {
      kind: 'task',
      module: '/app/flows.ts',
      task: 'fit',
      execution: `x-${id}`,
      run: 'run-1',
      team: 'ml',
      input: { inline: { epochs: 3 }, hash: 'h' },
      attempt: 2,
      program: { image: 'python:3.12', command: 'python', args: ['-c', 'fit()', '{{inputs.epochs}}'], env },
      ...over,
    },
  });
}

describe('Kubernetes executor', () => {
  it('runs a lease as a pod on its node with its resources, selector, tolerations and labels', async () => {
    const executor = await setup();
    const states = follow(
      executor,
      lease('l-1', { pool: 'gpu', gpuMilli: 1000, gpuModel: 'L4', node: 'ip-10-0-0-1' }),
    );
    const pod = await (async () => {
      await eventually(() => kube.pods('gantry-tasks').length === 1, 5000, 'pod created');
      return kube.pods('gantry-tasks')[0]!;
    })();
    expect(pod.metadata!.name).toBe(podName('l-1'));
    expect(pod.metadata!.labels).toMatchObject({
      'app.kubernetes.io/managed-by': 'gantry',
      'gantry.dev/cluster': 'eks',
      'gantry.dev/lease': 'l-1',
      'gantry.dev/pool': 'gpu',
    });
    const c = pod.spec!.containers[0]!;
    expect(c.resources).toEqual({
      requests: { cpu: '1500m', memory: '2048Mi', 'nvidia.com/gpu': '1' },
      limits: { cpu: '1500m', memory: '2048Mi', 'nvidia.com/gpu': '1' },
    });
    expect(c.command).toEqual(['train', '--fast']);
    expect(pod.spec!.nodeSelector).toEqual({
      'node.kubernetes.io/instance-type': 'g6.xlarge',
      'kubernetes.io/hostname': 'ip-10-0-0-1',
    });
    expect(pod.spec!.tolerations).toEqual([
      { key: 'nvidia.com/gpu', operator: 'Equal', value: 'true', effect: 'NoSchedule' },
    ]);
    // The node is not a g6: the pod stays Pending (no node fits) until the executor gives up on it.
    expect(states).toEqual([]);
  });

  it('reports running then succeeded, and the exit code and message of a failure', async () => {
    const executor = await setup();
    const ok = follow(executor, lease('l-ok'));
    const bad = follow(executor, lease('l-bad', {}, 'fail'));
    await eventually(() => ended(ok) && ended(bad), 5000, 'pods done');
    expect(ok.map((s) => s.state)).toEqual(['running', 'succeeded']);
    expect(bad.at(-1)).toEqual({ state: 'failed', exitCode: 3, reason: 'Error: exit code 3 (loss is NaN)' });
  });

  it('reports OOMKilled as an out-of-memory failure', async () => {
    const executor = await setup();
    const s = follow(executor, lease('l-oom', {}, 'oom'));
    await eventually(() => ended(s), 5000, 'pod done');
    expect(s.at(-1)).toEqual({ state: 'failed', exitCode: 137, reason: 'OOMKilled' });
  });

  it('fails clearly on an image that cannot be pulled, and removes the pod', async () => {
    const executor = await setup();
    kube.badImage('gantry:test');
    const s = follow(executor, lease('l-img'));
    await eventually(() => ended(s), 5000, 'pull failure');
    expect(s.at(-1)!.reason).toBe('ErrImagePull: failed to pull image "gantry:test": not found');
    await eventually(() => kube.pods('gantry-tasks').length === 0, 5000, 'pod removed');
  });

  it('fails a pod that no node can take, after the grace period, saying why', async () => {
    const executor = await setup({ unschedulableAfterMs: 150 });
    const s = follow(executor, lease('l-nowhere', { node: 'ip-10-9-9-9' }));
    await eventually(() => ended(s), 10_000, 'unschedulable');
    expect(s.at(-1)!.reason).toMatch(/^Unschedulable: 0\/1 nodes are available/);
  });

  it('reports a pod lost with its node as preempted', async () => {
    const executor = await setup();
    const s = follow(executor, lease('l-node', {}, 'hang'));
    await eventually(() => s.some((x) => x.state === 'running'), 5000, 'running');
    kube.deleteNode('ip-10-0-0-1');
    await eventually(() => ended(s), 5000, 'preempted');
    expect(s.at(-1)!.state).toBe('preempted');
    expect(s.at(-1)!.reason).toMatch(/ip-10-0-0-1/);
  });

  it('adopts a pod that already exists (409) after an agent restart', async () => {
    const first = await setup();
    follow(first, lease('l-again', {}, 'hang'));
    await eventually(() => kube.pods('gantry-tasks')[0]?.status?.phase === 'Running', 5000, 'running');
    const second = createKubeExecutor({ kubeConfig: kubeConfig(kube.url), cluster, image: 'gantry:test' });
    await second.watch();
    executors.push(second);
    const s = follow(second, lease('l-again', {}, 'hang'));
    await eventually(() => s.some((x) => x.state === 'running'), 5000, 'adopted');
    expect(kube.pods('gantry-tasks')).toHaveLength(1);
    expect(kube.requests.filter((r) => r === 'POST /api/v1/namespaces/gantry-tasks/pods')).toHaveLength(2);
  });

  it('lists again after 410 Gone and still sees every outcome', async () => {
    const executor = await setup();
    const s = follow(executor, lease('l-410', {}, 'hang'));
    await eventually(() => s.some((x) => x.state === 'running'), 5000, 'running');
    kube.compact();
    kube.dropWatches();
    kube.deleteNode('ip-10-0-0-1');
    await eventually(() => ended(s), 10_000, 'outcome after relist');
    expect(s.at(-1)!.state).toBe('preempted');
    const lists = kube.requests.filter((r) => r === 'GET /api/v1/namespaces/gantry-tasks/pods');
    expect(lists.length).toBeGreaterThanOrEqual(3); // list, watch, then list again after 410
  });

  it('reports what is free on each node: allocatable minus other workloads', async () => {
    const executor = await setup();
    kube.addForeignPod('default', 'postgres', 'ip-10-0-0-1', { cpu: '500m', memory: '1Gi' });
    await eventually(() => executor.capacity('ip-10-0-0-1')?.cpuMilli === 3500, 5000, 'capacity');
    expect(executor.capacity('ip-10-0-0-1')).toEqual({
      cpuMilli: 3500,
      memoryMiB: 15 * 1024,
      gpuCount: 0,
      ready: true,
    });
    expect(executor.kubeNodes()).toEqual([
      {
        name: 'ip-10-0-0-1',
        pool: 'cpu-spot',
        capacityType: 'spot',
        cpuMilli: 3500,
        memoryMiB: 15 * 1024,
        gpuCount: 0,
        ready: true,
      },
    ]);
    expect(executor.capacity('ip-10-0-0-99')).toBeUndefined();
  });

  it("runs a container task's image and command between the Gantry image's inputs and outputs containers", async () => {
    const executor = await setup();
    const s = follow(executor, containerLease('l-ct', { OUTCOME: 'ok' }));
    await eventually(() => ended(s), 5000, 'pod done');
    expect(s.map((x) => x.state)).toEqual(['running', 'succeeded']);
    const spec = kube.pods('gantry-tasks')[0]!.spec!;
    expect(spec.initContainers!.map((c) => [c.name, c.image, c.command, c.args])).toEqual([
      ['gantry-inputs', 'gantry:test', undefined, ['worker', '--phase', 'inputs']],
    ]);
    expect(spec.containers.map((c) => [c.name, c.image, c.command, c.args])).toEqual([
      ['task', 'python:3.12', ['python'], ['-c', 'fit()', '3']],
      ['gantry-outputs', 'gantry:test', undefined, ['worker', '--phase', 'outputs']],
    ]);
    const [main, outputs] = spec.containers;
    expect(main!.resources!.limits).toEqual({ cpu: '1500m', memory: '2048Mi' });
    expect(outputs!.resources).toBeUndefined();
    expect(main!.env).toEqual([
      { name: 'OUTCOME', value: 'ok' },
      { name: 'GANTRY_INPUTS', value: '/gantry/inputs' },
      { name: 'GANTRY_OUTPUTS', value: '/gantry/outputs' },
      { name: 'GANTRY_RUN_ID', value: 'run-1' },
      { name: 'GANTRY_EXECUTION', value: 'x-l-ct' },
      { name: 'GANTRY_ATTEMPT', value: '2' },
    ]);
    const outEnv = Object.fromEntries(outputs!.env!.map((e) => [e.name, e.value]));
    expect(outEnv).toMatchObject({ GANTRY_POD: podName('l-ct'), GANTRY_POD_NAMESPACE: 'gantry-tasks' });
    expect(JSON.parse(outEnv.GANTRY_LEASE!)).toMatchObject({ leaseId: 'l-ct' });
    expect(spec.activeDeadlineSeconds).toBeUndefined();
  });

  it("stops a container task's pod a minute after the task's timeout", () => {
    const l = containerLease('l-t', {});
    const timed = { ...l, work: { ...l.work, timeoutMs: 90_500 } } as LeaseMsg;
    const pool = cluster.pools.find((p) => p.name === 'cpu-spot')!;
    const pod = leasePod(timed, 'ip-10-0-0-1', pool, {
      kubeConfig: kubeConfig('http://x'),
      cluster,
      image: 'g:1',
    });
    expect(pod.spec!.activeDeadlineSeconds).toBe(91 + 60);
  });

  it.each([
    ['OOMKilled in the main container', { OUTCOME: 'oom' }, { exitCode: 137, reason: 'OOMKilled' }],
    [
      'an exit code of the main container',
      { OUTCOME: 'fail' },
      { exitCode: 3, reason: 'Error: exit code 3 (loss is NaN)' },
    ],
    [
      'the inputs init container failing',
      { INPUTS: 'bad' },
      {
        exitCode: 1,
        reason: 'container gantry-inputs: Error: exit code 1 (ValidationError: epochs: expected int)',
      },
    ],
  ])('reports %s as the failure', async (_, env, end) => {
    const executor = await setup();
    const s = follow(executor, containerLease('l-f', env));
    await eventually(() => ended(s), 5000, 'pod done');
    expect(s.at(-1)).toEqual({ state: 'failed', ...end });
  });

  it("names the task's image when it cannot be pulled", async () => {
    const executor = await setup();
    kube.badImage('python:3.12');
    const s = follow(executor, containerLease('l-pull', {}));
    await eventually(() => ended(s), 5000, 'pull failure');
    expect(s.at(-1)!.reason).toBe('ErrImagePull: failed to pull image "python:3.12": not found');
  });

  it('refuses a container task whose arguments need an input that is passed by reference', async () => {
    const executor = await setup();
    const ref = { ref: `sha256:${'0'.repeat(64)}`, bytes: 2_000_000 };
    const s = follow(executor, containerLease('l-ref', {}, { input: ref }));
    await eventually(() => ended(s), 5000, 'refused');
    expect(s).toEqual([
      {
        state: 'failed',
        exitCode: 1,
        reason:
          'the input of fit is too large to expand {{inputs.<field>}} in its arguments: read $GANTRY_INPUTS/<field> instead',
      },
    ]);
    expect(kube.pods('gantry-tasks')).toEqual([]);
  });
});
