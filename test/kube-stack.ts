/**
 * Gantry on Kubernetes for the end-to-end tests: a real nats-server, the broker with its JetStream store,
 * one agent whose executor is the Kubernetes executor (the real client, against the Kubernetes test
 * server) for the `test/fixtures/kube-platform` cluster, and a runtime over NATS. The node provisioner
 * is the test's: EC2 against its test server, or the nodes Kubernetes lists.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { type Agent, createAgent, type NodeProvisioner } from '../agents/index.ts';
import { createKubeExecutor, type KubeExecutor } from '../agents/cloud-index.ts';
import { type Broker, createBroker } from '../broker/index.ts';
import { loadPlatform } from '../policies/index.ts';
import type { Store } from '../protocol/index.ts';
import { connectNats, type NatsTransport, openJetStreamStore } from '../protocol/nats-index.ts';
import { Runtime } from '../runtime/index.ts';
import type { ArtifactStore } from '../runtime/artifacts.ts';
import { openJetStreamArtifacts } from '../runtime/nats-artifacts.ts';
import { defaultBackends } from '../solver/index.ts';
import type { FakeKube } from './fakes/kube.ts';
import { type NatsServer, startNatsServer } from './nats/server.ts';

const { platform } = loadPlatform(['test/fixtures/kube-platform']);
/** The cluster the stack's agent runs (`eks`). */
export const kubeCluster = platform.clusters[0]!;

/** The running stack. */
export interface KubeStack {
  broker: Broker;
  agent: Agent;
  executor: KubeExecutor;
  runtime: Runtime;
  /** The runtime's store: lineage. */
  runtimeStore: Store;
  artifacts: ArtifactStore;
  close(): Promise<void>;
}

/**
 * Starts the stack on `kube` (which the caller starts and closes).
 *
 * @example
 * const stack = await startKubeStack(kube, (executor) => createKubeNodeProvisioner(executor));
 */
export async function startKubeStack(
  kube: FakeKube,
  provisioner: (executor: KubeExecutor) => NodeProvisioner,
): Promise<KubeStack> {
  const server: NatsServer = await startNatsServer();
  const conns: NatsTransport[] = [];
  const connect = async (name: string) => {
    const c = await connectNats({ servers: server.url, name });
    conns.push(c);
    return c;
  };
  const brokerConn = await connect('broker');
  const brokerStore = await openJetStreamStore(brokerConn.connection, {
    bucket: 'gantry-state',
    stream: 'gantry-events',
  });
  const broker = createBroker({
    transport: brokerConn,
    store: brokerStore,
    platform,
    backends: await defaultBackends(),
    heartbeatMs: 200,
  });
  await broker.start();
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'eks', server: kube.url, skipTLSVerify: true }],
    users: [{ name: 'agent', token: 'test' }],
    contexts: [{ name: 'eks', cluster: 'eks', user: 'agent' }],
    currentContext: 'eks',
  });
  const executor = createKubeExecutor({
    kubeConfig,
    cluster: kubeCluster,
    image: 'gantry:test',
    nats: { url: server.url },
  });
  await executor.watch();
  const agent = createAgent({
    transport: await connect('agent-eks'),
    cluster: kubeCluster,
    executor,
    provisioner: provisioner(executor),
    heartbeatMs: 200,
  });
  await agent.start();
  const client = await connect('runtime');
  const runtimeStore = await openJetStreamStore(client.connection, {
    bucket: 'gantry-runtime',
    stream: 'gantry-lineage',
  });
  const artifacts = await openJetStreamArtifacts(client.connection);
  const runtime = new Runtime({ transport: client, artifacts, progress: false });
  return {
    broker,
    agent,
    executor,
    runtime,
    runtimeStore,
    artifacts,
    async close() {
      runtime.stopWorkers();
      await agent.stop();
      await broker.stop();
      await brokerStore.close();
      await runtimeStore.close();
      for (const c of conns) await c.close();
      await server.stop();
    },
  };
}
