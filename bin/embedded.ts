/**
 * Wiring of Gantry's processes: a broker and one agent per cluster, either all in this process over the
 * in-process transport (embedded mode, the default) or as separate processes over NATS.
 */
import {
  type Agent,
  type AgentMetrics,
  createAgent,
  createAgentMetrics,
  createLocalExecutor,
  createSimExecutor,
  createSimProvisioner,
  type SimProvisioner,
  withTaskHost,
} from '../agents/index.ts';
import {
  type Broker,
  collectProcessMetrics,
  createBroker,
  type Readiness,
  serveMetrics,
} from '../broker/index.ts';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { type ArtifactStore, openLocalArtifacts } from '../runtime/artifacts.ts';
import { createTaskHost, type HostServices } from '../runtime/host.ts';
import { createProcessHost } from '../runtime/process-host.ts';
import type { Cluster, Platform } from '../policies/index.ts';
import { createMemoryTransport, openLocalStore, type Store, type Transport } from '../protocol/index.ts';
import { defaultBackends } from '../solver/index.ts';

/** Options of {@link startEmbedded}. */
export interface EmbeddedOptions {
  platform: Platform;
  /** Directory for durable state. */
  stateDir: string;
  /** Time scale of the simulated clouds and work (launch delays, idle TTLs, spot rates). Default 1. */
  speedup?: number;
  heartbeatMs?: number;
  transport?: Transport;
  /** Copy worker processes' stderr to this process's. Default true. */
  forwardStderr?: boolean;
}

/** Everything running in this process. */
export interface Embedded {
  transport: Transport;
  store: Store;
  broker: Broker;
  agents: Agent[];
  clouds: Map<string, SimProvisioner>;
  /** Large task values (`<stateDir>/artifacts`). */
  artifacts: ArtifactStore;
  /** Lineage and run summaries (`<stateDir>/runtime`). */
  runtimeStore: Store;
  /**
   * Restarts a cluster's agent: a new agent over the same simulated cloud finds the nodes the last one
   * bought (its running work ends with it, as a process's would, and the broker places it again).
   */
  restartAgent(cluster: string): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts a broker and an agent for every cluster of the platform in this process. Clusters run on the
 * simulated cloud, priced from the catalog; `local` clusters run `process` work as child processes.
 *
 * @example
 * const gantry = await startEmbedded({ platform, stateDir: '.gantry' });
 */
export async function startEmbedded(opts: EmbeddedOptions): Promise<Embedded> {
  const transport = opts.transport ?? createMemoryTransport();
  const store = await openLocalStore(join(opts.stateDir, 'broker'));
  const runtimeStore = await openLocalStore(join(opts.stateDir, 'runtime'));
  const artifacts = await openLocalArtifacts(join(opts.stateDir, 'artifacts'));
  const heartbeatMs = opts.heartbeatMs ?? 1000;
  const broker = createBroker({
    transport,
    store,
    platform: opts.platform,
    backends: await defaultBackends(),
    heartbeatMs,
    ledgerTimeScale: opts.speedup ?? 1,
    nodesStopWithBroker: true,
  });
  await broker.start();
  const clouds = new Map<string, SimProvisioner>();
  // The agents' metrics beside the broker's: one registry serves them all.
  const metrics = createAgentMetrics(broker.metrics.registry);
  const services = {
    transport,
    artifacts,
    timeScale: opts.speedup ?? 1,
    forwardStderr: opts.forwardStderr ?? true,
  };
  const agents = opts.platform.clusters.map((cluster) => {
    const { agent, cloud } = simAgent(transport, cluster, opts.speedup ?? 1, heartbeatMs, services, metrics);
    clouds.set(cluster.name, cloud);
    return agent;
  });
  await Promise.all(agents.map((a) => a.start()));
  return {
    transport,
    store,
    broker,
    agents,
    clouds,
    artifacts,
    runtimeStore,
    async restartAgent(name) {
      const i = opts.platform.clusters.findIndex((c) => c.name === name);
      const cluster = opts.platform.clusters[i];
      if (!cluster) throw new Error(`no cluster ${name} in this Gantry`);
      // The new provisioner attaches before the old one closes: the cloud runs on between the two.
      const { agent, cloud } = simAgent(
        transport,
        cluster,
        opts.speedup ?? 1,
        heartbeatMs,
        services,
        metrics,
        clouds.get(name),
      );
      await agents[i]!.stop();
      agents[i] = agent;
      clouds.set(name, cloud);
      await agent.start();
    },
    async stop() {
      await Promise.all(agents.map((a) => a.stop()));
      await broker.stop();
      await store.close();
      await runtimeStore.close();
      await transport.close();
    },
  };
}

/**
 * An agent for a cluster on the simulated cloud (or local processes for `local` clusters). With
 * `services`, it runs workflow code: in this process on simulated clusters, in worker processes on
 * local ones. With `cloudOf`, it takes over that agent's simulated cloud (a restart).
 */
export function simAgent(
  transport: Transport,
  cluster: Cluster,
  speedup: number,
  heartbeatMs: number,
  services?: HostServices & { forwardStderr?: boolean },
  metrics?: AgentMetrics,
  /** The cloud of the agent this one replaces: its nodes stay. */
  cloudOf?: SimProvisioner,
): { agent: Agent; cloud: SimProvisioner } {
  const cloud = cloudOf?.reattach() ?? createSimProvisioner(cluster, { speedup });
  const executor = cluster.provider === 'local' ? createLocalExecutor() : createSimExecutor({ speedup });
  const hosted = services
    ? withTaskHost(
        executor,
        cluster.provider === 'local'
          ? createProcessHost({ ...services, cluster: cluster.name })
          : createTaskHost({ ...services, cluster: cluster.name }),
      )
    : executor;
  return {
    agent: createAgent({
      transport,
      cluster,
      executor: hosted,
      provisioner: cloud,
      heartbeatMs,
      speedup,
      ...(metrics ? { metrics } : {}),
    }),
    cloud,
  };
}

/**
 * Serves an embedded Gantry's metrics (the broker's and the agents', with the process's) on
 * `http://<host>:<port>/metrics`, with `/healthz` and `/readyz`: ready when the broker and every agent
 * are. What `gantry up --metrics-port` runs.
 *
 * @example
 * const server = await serveEmbeddedMetrics(gantry, 9464);
 */
export async function serveEmbeddedMetrics(
  embedded: Pick<Embedded, 'broker' | 'agents'>,
  port: number,
  host?: string,
): Promise<Server> {
  const { broker, agents } = embedded;
  const server = await serveMetrics(broker.metrics.registry, port, host, {
    ready: async (): Promise<Readiness> => {
      const all = [broker.readiness(), ...(await Promise.all(agents.map((a) => a.readiness())))];
      const waiting = all.filter((r) => !r.ready);
      return waiting.length > 0
        ? { ready: false, detail: waiting.map((r) => r.detail).join('; ') }
        : { ready: true, detail: all.map((r) => r.detail).join('; ') };
    },
    refresh: () => broker.refreshGauges(),
  });
  collectProcessMetrics(broker.metrics.registry);
  return server;
}
