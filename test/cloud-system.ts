/**
 * A broker with agents whose nodes are bought from the EC2 and GCE test servers (test/fakes) through the
 * real SDK clients: what `gantry agent --provisioner ec2|gce` runs, in one process on the in-process
 * transport. The platform is `test/fixtures/cloud-platform` unless another is given.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EC2Client } from '@aws-sdk/client-ec2';
import { InstancesClient, ZoneOperationsClient } from '@google-cloud/compute';
import { OAuth2Client } from 'google-auth-library';
import {
  type Agent,
  createAgent,
  createProvisioner,
  createSimExecutor,
  type NodeProvisioner,
  resolveProvisionerKind,
} from '../agents/index.ts';
import { type Broker, createBroker } from '../broker/index.ts';
import { type Cluster, loadPlatform, type Platform } from '../policies/index.ts';
import { createMemoryTransport, openLocalStore, type Store, type Transport } from '../protocol/index.ts';
import { defaultBackends } from '../solver/index.ts';
import { type FakeEc2, startFakeEc2 } from './fakes/ec2.ts';
import { type FakeGce, startFakeGce } from './fakes/gce.ts';
import { type FakeKube, type FakeKubeOptions, startFakeKube } from './fakes/kube.ts';
import { KubeConfig } from '@kubernetes/client-node';

/** The EC2 test server and a real EC2 client pointed at it. */
export async function ec2TestCloud(launchDelayMs = 30): Promise<{ ec2: FakeEc2; client: EC2Client }> {
  const ec2 = await startFakeEc2({ region: 'us-east-1', launchDelayMs });
  const client = new EC2Client({
    region: 'us-east-1',
    endpoint: ec2.url,
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
  return { ec2, client };
}

/** The GCE test server and real Compute clients pointed at it (a fixed token: no credentials looked up). */
export async function gceTestCloud(launchDelayMs = 30): Promise<{
  gce: FakeGce;
  clients: { instancesClient: InstancesClient; zoneOperationsClient: ZoneOperationsClient };
  close(): Promise<void>;
}> {
  const gce = await startFakeGce({ launchDelayMs });
  const { instancesClient, zoneOperationsClient } = gceClients(gce.port);
  return {
    gce,
    clients: { instancesClient, zoneOperationsClient },
    async close() {
      await instancesClient.close();
      await zoneOperationsClient.close();
      await gce.close();
    },
  };
}

/** Real Compute clients for the GCE test server on `port`, with a fixed token (no credentials looked up). */
export function gceClients(port: number): {
  instancesClient: InstancesClient;
  zoneOperationsClient: ZoneOperationsClient;
} {
  const authClient = new OAuth2Client();
  authClient.setCredentials({ access_token: 'test-token' });
  const options = { apiEndpoint: '127.0.0.1', port, protocol: 'http', fallback: 'rest' as const, authClient };
  return {
    instancesClient: new InstancesClient(options),
    zoneOperationsClient: new ZoneOperationsClient(options),
  };
}

/**
 * The Kubernetes test server with one Ready spot node (`ip-10-0-0-1`, 4 CPUs, 16 GiB) of the
 * `test/fixtures/kube-platform` cluster, and a kubeconfig for it.
 */
export async function kubeTestCluster(
  opts: FakeKubeOptions = {},
): Promise<{ kube: FakeKube; kubeConfig: KubeConfig }> {
  const kube = await startFakeKube(opts);
  kube.addNode(
    'ip-10-0-0-1',
    { 'eks.amazonaws.com/capacityType': 'SPOT', 'node.kubernetes.io/instance-type': 'm7i.xlarge' },
    { cpu: '4', memory: '16Gi' },
  );
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'fake', server: kube.url, skipTLSVerify: true }],
    users: [{ name: 'agent', token: 'test' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'agent' }],
    currentContext: 'fake',
  });
  return { kube, kubeConfig };
}

/** A running broker, its agents and the clouds behind them. */
export interface CloudSystem {
  platform: Platform;
  transport: Transport;
  broker: Broker;
  store: Store;
  agents: Map<string, Agent>;
  provisioners: Map<string, NodeProvisioner>;
  ec2: FakeEc2;
  gce: FakeGce;
  stop(): Promise<void>;
}

/**
 * Starts the broker and one agent per cluster: `aws` clusters buy from the EC2 test server, `gcp` ones
 * from the GCE test server (simulated clusters: test/system.ts).
 *
 * @example
 * const system = await startCloudSystem({ speedup: 100 });
 */
export async function startCloudSystem(
  opts: {
    platformDir?: string;
    /** Only these clusters of the platform. */
    clusters?: string[];
    speedup?: number;
    heartbeatMs?: number;
    launchDelayMs?: number;
    /** How long a run's driver may be silent before its work is stopped, wall ms (the broker's default otherwise). */
    runGraceMs?: number;
    /** Idle TTLs (seconds) in place of the platform's, for the pools of these clusters. */
    idleTtlSeconds?: Record<string, number>;
  } = {},
): Promise<CloudSystem> {
  const loaded = loadPlatform([opts.platformDir ?? 'test/fixtures/cloud-platform']).platform;
  const only = (name: string) => !opts.clusters || opts.clusters.includes(name);
  const withTtl = <P extends Platform['pools'][number]>(p: P): P => {
    const ttl = opts.idleTtlSeconds?.[p.cluster];
    return ttl === undefined ? p : { ...p, idleTtlSeconds: ttl };
  };
  const platform: Platform = {
    ...loaded,
    clusters: loaded.clusters.filter((c) => only(c.name)).map((c) => ({ ...c, pools: c.pools.map(withTtl) })),
    pools: loaded.pools.filter((p) => only(p.cluster)).map(withTtl),
  };
  const speedup = opts.speedup ?? 100;
  const heartbeatMs = opts.heartbeatMs ?? 100;
  const stateDir = mkdtempSync(join(tmpdir(), 'gantry-cloud-'));
  const transport = createMemoryTransport();
  const store = await openLocalStore(join(stateDir, 'broker'));
  const broker = createBroker({
    transport,
    store,
    platform,
    backends: await defaultBackends(),
    heartbeatMs,
    ledgerTimeScale: speedup,
    ...(opts.runGraceMs !== undefined ? { runGraceMs: opts.runGraceMs } : {}),
  });
  await broker.start();
  const aws = await ec2TestCloud(opts.launchDelayMs);
  const gcp = await gceTestCloud(opts.launchDelayMs);
  const provisioners = new Map<string, NodeProvisioner>();
  const agents = new Map<string, Agent>();
  /** What `gantry agent --provisioner cloud` makes: the registry picks the adapter from the provider. */
  const provisionerOf = async (cluster: Cluster): Promise<NodeProvisioner> => {
    const kind = resolveProvisionerKind(cluster, 'cloud');
    if (!kind.ok) throw new Error(kind.message);
    return createProvisioner(cluster, kind.kind, {
      speedup,
      // Pools that name no launch template or zone (the examples) get these, as the flags would.
      ec2: { client: aws.client, pollMs: 50, launchTemplate: 'gantry-node' },
      gce: { project: gcp.gce.project, zone: 'us-central1-a', pollMs: 50, backoffMs: 5, ...gcp.clients },
    });
  };
  for (const cluster of platform.clusters) {
    const provisioner = await provisionerOf(cluster);
    provisioners.set(cluster.name, provisioner);
    const agent = createAgent({
      transport,
      cluster,
      executor: createSimExecutor({ speedup }),
      provisioner,
      heartbeatMs,
      speedup,
    });
    agents.set(cluster.name, agent);
  }
  await Promise.all([...agents.values()].map((a) => a.start()));
  return {
    platform,
    transport,
    broker,
    store,
    agents,
    provisioners,
    ec2: aws.ec2,
    gce: gcp.gce,
    async stop() {
      await Promise.all([...agents.values()].map((a) => a.stop()));
      await broker.stop();
      await store.close();
      await transport.close();
      aws.client.destroy();
      await aws.ec2.close();
      await gcp.close();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}
