/**
 * A container task on Kubernetes, through the real agent and Kubernetes executor against the
 * Kubernetes test server, over a real nats-server: the pod runs the task's own image (`python:3.12`,
 * Debian's python3 here) and command, an init container in the Gantry image writes its inputs as files,
 * and a sidecar reads its outputs back and publishes the typed result; an `OOMKilled` container is an
 * `OutOfMemoryError`, retried with twice the memory.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKubeNodeProvisioner } from '../agents/cloud-index.ts';
import { readLineage, runWorkflow } from '../runtime/index.ts';
import { type FakeKube, startFakeKube } from './fakes/kube.ts';
import * as container from './fixtures/workflows/container.ts';
import { type KubeStack, startKubeStack } from './kube-stack.ts';
import { eventually } from './system.ts';

const MODULE = fileURLToPath(new URL('./fixtures/workflows/container.ts', import.meta.url));

let kube: FakeKube;
let stack: KubeStack;

beforeAll(async () => {
  kube = await startFakeKube({
    gantryImage: 'gantry:test',
    // The official image's `python`; Debian's python3 here.
    images: { 'python:3.12': { python: '/usr/bin/python3' } },
  });
  kube.addNode(
    'ip-10-0-0-1',
    { 'eks.amazonaws.com/capacityType': 'ON_DEMAND', 'node.kubernetes.io/instance-type': 'm7i.xlarge' },
    { cpu: '4', memory: '16Gi' },
  );
  stack = await startKubeStack(kube, (executor) => createKubeNodeProvisioner(executor, { pollMs: 100 }));
}, 60_000);

afterAll(async () => {
  await stack?.close();
  await kube?.close();
});

/** The run's pods, once they have all ended. */
async function podsOf(runId: string): Promise<V1Pod[]> {
  const mine = () => kube.pods('gantry-tasks').filter((p) => p.metadata!.labels!['gantry.dev/run'] === runId);
  await eventually(
    () => mine().length > 0 && mine().every((p) => ['Succeeded', 'Failed'].includes(p.status!.phase!)),
    15_000,
    'pods ended',
  );
  return mine();
}

type Fit = { a: number; b: number; loss: number; summary: string };
const run = async (input: { rows: number; holdMiB: number }) => {
  const r = await runWorkflow(container.fitPipeline, input, {
    runtime: stack.runtime,
    team: 'ml',
    module: MODULE,
    store: stack.runtimeStore,
  });
  return { ...r, output: r.output as Fit | undefined };
};

describe('a container task on Kubernetes', () => {
  it("runs the task's image and command, with inputs as files and typed outputs read back", async () => {
    const r = await run({ rows: 200, holdMiB: 8 });
    expect(r.error).toBeUndefined();
    expect(r.output!.a).toBeCloseTo(2, 9);
    expect(r.output!.b).toBeCloseTo(1, 9);
    expect(r.output!.loss).toBeLessThan(1e-20);
    expect(r.output!.summary).toBe('line x3 in 8 MiB');

    const [pod, ...others] = await podsOf(r.runId);
    expect(others).toEqual([]);
    const spec = pod!.spec!;
    // The main container is the task's own image and command, with the lease's resources.
    const main = spec.containers[0]!;
    expect(main.name).toBe('task');
    expect(main.image).toBe('python:3.12');
    expect(main.command).toEqual(['python']);
    expect(main.args).toEqual(['-c', expect.stringContaining('(n * sxy - sx * sy)'), '3']);
    expect(main.resources).toEqual({
      requests: { cpu: '1000m', memory: '256Mi' },
      limits: { cpu: '1000m', memory: '256Mi' },
    });
    const env = Object.fromEntries(main.env!.map((e) => [e.name, e.value]));
    expect(env).toMatchObject({
      PYTHONUNBUFFERED: '1',
      GANTRY_INPUTS: '/gantry/inputs',
      GANTRY_OUTPUTS: '/gantry/outputs',
      GANTRY_RUN_ID: r.runId,
      GANTRY_ATTEMPT: '0',
    });
    expect(env.GANTRY_LEASE).toBeUndefined();
    expect(main.volumeMounts).toEqual([{ name: 'gantry-data', mountPath: '/gantry' }]);
    // The Gantry image only around it: inputs before, outputs beside.
    expect(spec.initContainers!.map((c) => [c.name, c.image, c.args])).toEqual([
      ['gantry-inputs', 'gantry:test', ['worker', '--phase', 'inputs']],
    ]);
    expect(spec.containers.slice(1).map((c) => [c.name, c.image, c.args])).toEqual([
      ['gantry-outputs', 'gantry:test', ['worker', '--phase', 'outputs']],
    ]);
    expect(spec.volumes!.map((v) => v.name)).toEqual(['gantry-data', 'gantry-kube-api']);
    // Only the sidecar holds a Kubernetes token (to read its own pod); the task's program has none.
    expect(spec.automountServiceAccountToken).toBe(false);
    const withToken = [...spec.initContainers!, ...spec.containers].filter((c) =>
      c.volumeMounts?.some((m) => m.name === 'gantry-kube-api'),
    );
    expect(withToken.map((c) => c.name)).toEqual(['gantry-outputs']);
    // What the API server reported, container by container.
    const st = pod!.status!;
    expect(st.phase).toBe('Succeeded');
    expect(st.initContainerStatuses!.map((c) => [c.name, c.state!.terminated!.reason])).toEqual([
      ['gantry-inputs', 'Completed'],
    ]);
    expect(st.containerStatuses!.map((c) => [c.name, c.state!.terminated!.exitCode])).toEqual([
      ['task', 0],
      ['gantry-outputs', 0],
    ]);
    // The program's log is kept with the execution, as `gantry logs` shows it.
    expect(kube.logs('gantry-tasks', pod!.metadata!.name!, 'task')).toBe(
      'line: 200 rows, 3 epochs, attempt 0\n',
    );
    const { records } = await readLineage(stack.runtimeStore);
    const rec = records.find((x) => x.run === r.runId && x.task === 'kube-fit')!;
    expect(rec.error).toBeUndefined();
    expect(rec.placement!.node).toBe(spec.nodeName);
    const log = await stack.artifacts.get(rec.logs!);
    expect(new TextDecoder().decode(log)).toBe('line: 200 rows, 3 epochs, attempt 0\n');
  }, 90_000);

  it('an OOMKilled container is an OutOfMemoryError, and the retry with twice the memory fits', async () => {
    const r = await run({ rows: 50, holdMiB: 300 });
    expect(r.error).toBeUndefined();
    expect(r.output!.summary).toBe('line x3 in 300 MiB');
    const pods = await podsOf(r.runId);
    const byMemory = pods
      .map((p) => [
        p.spec!.containers[0]!.resources!.limits!.memory,
        p.status!.phase,
        p.status!.containerStatuses![0]!.state!.terminated!.exitCode,
        p.status!.containerStatuses![0]!.state!.terminated!.reason,
      ])
      .sort();
    expect(byMemory).toEqual([
      ['256Mi', 'Failed', 137, 'OOMKilled'],
      ['512Mi', 'Succeeded', 0, 'Completed'],
    ]);
    const { records } = await readLineage(stack.runtimeStore);
    const attempts = records
      .filter((x) => x.run === r.runId && x.task === 'kube-fit')
      .sort((a, b) => a.attempt - b.attempt)
      .map((x) => [x.attempt, x.placement!.memoryMiB, x.error?.name]);
    expect(attempts).toEqual([
      [0, 256, 'OutOfMemoryError'],
      [1, 512, undefined],
    ]);
  }, 90_000);
});
