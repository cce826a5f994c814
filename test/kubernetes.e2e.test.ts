/**
 * End to end on real backends' APIs: a workflow through the broker and an agent whose executor is
 * Kubernetes and whose node provisioner is EC2 — both the real SDK clients, against the fake API
 * servers — over a real nats-server. The EC2 provisioner buys the nodes the plan needs; each node
 * joins the fake Kubernetes cluster when its instance runs; each task runs as a pod whose container
 * (`gantry worker`) is a real process that connects to NATS, runs the task and publishes its result.
 */
import { EC2Client } from '@aws-sdk/client-ec2';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEc2Provisioner, EC2_TAGS } from '../agents/cloud-index.ts';
import { readLineage, runWorkflow } from '../runtime/index.ts';
import { type FakeEc2, startFakeEc2 } from './fakes/ec2.ts';
import { type FakeKube, startFakeKube } from './fakes/kube.ts';
import * as suite from './fixtures/workflows/suite.ts';
import { type KubeStack, kubeCluster as cluster, startKubeStack } from './kube-stack.ts';
import { eventually } from './system.ts';

const MODULE = fileURLToPath(new URL('./fixtures/workflows/suite.ts', import.meta.url));

let ec2: FakeEc2;
let kube: FakeKube;
let stack: KubeStack;

beforeAll(async () => {
  ec2 = await startFakeEc2({ launchDelayMs: 50 });
  kube = await startFakeKube({ gantryImage: 'gantry:test' });
  // The kubelet of a new instance registers its node, labelled as the pool's launch template says.
  ec2.onInstanceRunning((instance) => {
    const pool = cluster.pools.find((p) => p.name === instance.tags[EC2_TAGS.pool]);
    if (!pool) return;
    kube.addNode(
      instance.privateDnsName,
      { ...pool.nodeLabels, 'node.kubernetes.io/instance-type': pool.instanceType },
      { cpu: String(pool.cpuMilli / 1000), memory: `${pool.memoryMiB}Mi` },
      pool.taints.map((t) => ({ key: t.key, value: t.value, effect: t.effect })),
    );
  });
  stack = await startKubeStack(kube, () =>
    createEc2Provisioner(cluster, {
      client: new EC2Client({
        region: 'us-east-1',
        endpoint: ec2.url,
        credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      }),
      launchTemplate: 'gantry-nodes',
      pollMs: 50,
    }),
  );
}, 60_000);

afterAll(async () => {
  await stack?.close();
  await kube?.close();
  await ec2?.close();
});

/** The run's pods, once they have all ended. */
async function podsOf(runId: string) {
  const mine = () => kube.pods('gantry-tasks').filter((p) => p.metadata!.labels!['gantry.dev/run'] === runId);
  await eventually(
    () => mine().every((p) => p.status!.phase === 'Succeeded' || p.status!.phase === 'Failed'),
    10_000,
    'pods ended',
  );
  return mine();
}

describe('a workflow on Kubernetes pods, on EC2 nodes Gantry added', () => {
  it('runs each task as a pod on a node the EC2 provisioner bought, passing values through NATS', async () => {
    const r = await runWorkflow(
      suite.bigPipeline,
      { n: 2000 },
      { runtime: stack.runtime, team: 'ml', module: MODULE, store: stack.runtimeStore },
    );
    expect(r.error).toBeUndefined();
    expect(r.output).toEqual({ count: 2000, first: `row-0-${'x'.repeat(40)}` });
    // Gantry bought the node: an instance tagged with the cluster and pool, now a Kubernetes node.
    const instances = ec2.instances().filter((i) => i.state === 'running');
    expect(instances.length).toBeGreaterThan(0);
    expect(instances[0]!.tags).toMatchObject({
      [EC2_TAGS.cluster]: 'eks',
      [EC2_TAGS.pool]: expect.stringMatching(/^cpu-/),
    });
    expect(kube.nodes().map((n) => n.metadata!.name)).toContain(instances[0]!.privateDnsName);
    // Each task ran as a pod labelled with its run and task, and succeeded (the result comes before the
    // process exits).
    const pods = await podsOf(r.runId);
    expect(pods.map((p) => p.metadata!.labels!['gantry.dev/task']).sort()).toEqual([
      'count-rows',
      'make-big',
    ]);
    expect(pods.every((p) => p.status!.phase === 'Succeeded')).toBe(true);
    const { records } = await readLineage(stack.runtimeStore);
    const made = records.find((x) => x.run === r.runId && x.task === 'make-big')!;
    expect(made.placement!.node).toBe(
      pods.find((p) => p.metadata!.labels!['gantry.dev/task'] === 'make-big')!.spec!.nodeName,
    );
    // One delete cleans up the run: its ConfigMap owns its pods.
    const owner = pods[0]!.metadata!.ownerReferences![0]!;
    expect(owner).toMatchObject({ kind: 'ConfigMap', name: expect.stringMatching(/^gantry-run-/) });
    expect(new Set(pods.map((p) => p.metadata!.ownerReferences![0]!.uid))).toEqual(new Set([owner.uid]));
    await kube.deleteConfigMap('gantry-tasks', owner.name);
    expect(
      kube.pods('gantry-tasks').filter((p) => p.metadata!.labels!['gantry.dev/run'] === r.runId),
    ).toEqual([]);
  }, 90_000);

  it('a pod OOMKilled at its memory limit is retried with twice the memory until it fits', async () => {
    const r = await runWorkflow(
      suite.oomPipeline,
      { mib: 600 },
      { runtime: stack.runtime, team: 'ml', module: MODULE, store: stack.runtimeStore },
    );
    expect(r.error).toBeUndefined();
    expect(r.output).toEqual({ mib: 600, heapLimitMiB: 1024 });
    const pods = await podsOf(r.runId);
    const byMemory = pods
      .map((p) => [
        p.spec!.containers[0]!.resources!.limits!.memory,
        p.status!.containerStatuses![0]!.state!.terminated!.reason,
      ])
      .sort();
    expect(byMemory).toEqual([
      ['1024Mi', 'Completed'],
      ['256Mi', 'OOMKilled'],
      ['512Mi', 'OOMKilled'],
    ]);
  }, 90_000);
});
