/**
 * End to end on real backends' APIs: a workflow through the broker and an agent whose executor is
 * Kubernetes and whose node provisioner is EC2 — both the real SDK clients, against the fake API
 * servers — over a real nats-server. The EC2 provisioner buys the nodes the plan needs; each node
 * joins the fake Kubernetes cluster when its instance runs; each task runs as a pod whose container
 * (`gantry worker`) is a real process that connects to NATS, runs the task and publishes its result.
 */
import { EC2Client } from '@aws-sdk/client-ec2';
import { KubeConfig } from '@kubernetes/client-node';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgent, type Agent } from '../agents/index.ts';
import {
  createEc2Provisioner,
  createKubeExecutor,
  EC2_TAGS,
  type KubeExecutor,
} from '../agents/cloud-index.ts';
import { type Broker, createBroker } from '../broker/index.ts';
import { loadPlatform } from '../policies/index.ts';
import type { Store } from '../protocol/index.ts';
import { connectNats, type NatsTransport, openJetStreamStore } from '../protocol/nats-index.ts';
import { readLineage, Runtime, runWorkflow } from '../runtime/index.ts';
import { openJetStreamArtifacts } from '../runtime/nats-artifacts.ts';
import { defaultBackends } from '../solver/index.ts';
import { type FakeEc2, startFakeEc2 } from './fakes/ec2.ts';
import { type FakeKube, startFakeKube } from './fakes/kube.ts';
import * as suite from './fixtures/workflows/suite.ts';
import { type NatsServer, startNatsServer } from './nats/server.ts';
import { eventually } from './system.ts';

const MODULE = fileURLToPath(new URL('./fixtures/workflows/suite.ts', import.meta.url));
const { platform } = loadPlatform(['test/fixtures/kube-platform']);
const cluster = platform.clusters[0]!;

let server: NatsServer;
let ec2: FakeEc2;
let kube: FakeKube;
let broker: Broker;
let agent: Agent;
let executor: KubeExecutor;
let runtime: Runtime;
let brokerStore: Store;
let runtimeStore: Store;
const conns: NatsTransport[] = [];

beforeAll(async () => {
  server = await startNatsServer();
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
  const connect = async (name: string) => {
    const c = await connectNats({ servers: server.url, name });
    conns.push(c);
    return c;
  };
  const brokerConn = await connect('broker');
  brokerStore = await openJetStreamStore(brokerConn.connection, {
    bucket: 'gantry-state',
    stream: 'gantry-events',
  });
  broker = createBroker({
    transport: brokerConn,
    store: brokerStore,
    platform,
    backends: await defaultBackends(),
    heartbeatMs: 200,
  });
  await broker.start();
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'eks', server: kube.url, skipTLSVerify: true }],
    users: [{ name: 'agent', token: 'test' }],
    contexts: [{ name: 'eks', cluster: 'eks', user: 'agent' }],
    currentContext: 'eks',
  });
  executor = createKubeExecutor({ kubeConfig: kc, cluster, image: 'gantry:test', nats: { url: server.url } });
  await executor.watch();
  const provisioner = createEc2Provisioner(cluster, {
    client: new EC2Client({
      region: 'us-east-1',
      endpoint: ec2.url,
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    }),
    launchTemplate: 'gantry-nodes',
    pollMs: 50,
  });
  agent = createAgent({
    transport: await connect('agent-eks'),
    cluster,
    executor,
    provisioner,
    heartbeatMs: 200,
  });
  await agent.start();
  const client = await connect('runtime');
  runtimeStore = await openJetStreamStore(client.connection, {
    bucket: 'gantry-runtime',
    stream: 'gantry-lineage',
  });
  runtime = new Runtime({
    transport: client,
    artifacts: await openJetStreamArtifacts(client.connection),
    progress: false,
  });
}, 60_000);

afterAll(async () => {
  runtime?.stopWorkers();
  await agent?.stop();
  await broker?.stop();
  await brokerStore?.close();
  await runtimeStore?.close();
  for (const c of conns) await c.close();
  await kube?.close();
  await ec2?.close();
  await server?.stop();
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
      { runtime, team: 'ml', module: MODULE, store: runtimeStore },
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
    const { records } = await readLineage(runtimeStore);
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
      { runtime, team: 'ml', module: MODULE, store: runtimeStore },
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
