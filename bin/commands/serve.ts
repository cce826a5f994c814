/**
 * `gantry broker` and `gantry agent`: the long-running processes (`gantry up`, both at once, is in up.ts).
 */
import { mkdirSync } from 'node:fs';
import type { Server } from 'node:http';
import type { Command } from 'commander';
import { type Logger, pino } from 'pino';
import type { Registry } from 'prom-client';
import {
  createAgent,
  createLocalExecutor,
  createSimExecutor,
  createProvisioner,
  type Executor,
  type NodeProvisioner,
  type ProvisionerKind,
  resolveProvisionerKind,
  withTaskHost,
} from '../../agents/index.ts';
import type { KubeExecutor } from '../../agents/cloud-index.ts';
import {
  collectProcessMetrics,
  createBroker,
  serveMetrics,
  type ServeMetricsOptions,
} from '../../broker/index.ts';
import { type Cluster, loadPlatform } from '../../policies/index.ts';
import { type NatsTransport, openJetStreamKeys } from '../../protocol/nats-index.ts';
import { createTaskHost } from '../../runtime/host.ts';
import { openJetStreamArtifacts } from '../../runtime/nats-artifacts.ts';
import { resultPublisher } from '../../runtime/nats-results.ts';
import { createProcessHost } from '../../runtime/process-host.ts';
import { defaultBackends } from '../../solver/index.ts';
import { serveEmbeddedMetrics, startEmbedded } from '../embedded.ts';
import { BROKER_BUCKET, BROKER_STREAM, LEADER_BUCKET } from '../credentials.ts';
import { connectCli, openStoreCli, overNats, untilJetStream } from '../connect.ts';
import { listenProblem, UsageError } from '../errors.ts';
import { type ConsoleFlags, consoleOptions, startConsole } from '../console.ts';
import { LINEAGE_STREAM, RUNTIME_BUCKET } from '../credentials.ts';

interface AgentFlags extends ServeFlags {
  cluster: string;
  executor: string;
  provisioner?: string;
  kubeconfig?: string;
  namespace: string;
  image?: string;
  taskNats?: string;
  taskCredsSecret?: string;
  taskServiceAccount?: string;
  launchTemplate?: string;
  project?: string;
  zone?: string;
}

/** The agent's executor and node provisioner, as its flags ask. */
async function backends(
  flags: AgentFlags,
  cluster: Cluster,
  transport: NatsTransport,
  speedup: number,
  image: string | undefined,
  provisionerKind: Exclude<ProvisionerKind, 'cloud'>,
  logger: Logger,
): Promise<{ executor: Executor; provisioner: NodeProvisioner }> {
  // Workflow tasks that run in this process read and write large values in the JetStream object store.
  const replicas = number('--replicas', flags.replicas, 1);
  const target = { nats: flags.nats!, creds: flags.creds };
  const services = {
    transport,
    // Waits for JetStream to answer (a NATS cluster electing its meta leader), saying so in one line.
    artifacts: await overNats(target, () =>
      untilJetStream(transport, target, () =>
        openJetStreamArtifacts(transport.connection, undefined, replicas),
      ),
    ),
    timeScale: speedup,
    cluster: cluster.name,
    // Results are kept in their team's stream before the end is reported (runtime/nats-results.ts).
    publishResult: resultPublisher(transport.connection),
  };
  if (flags.executor !== 'kubernetes') {
    const executor =
      flags.executor === 'local'
        ? withTaskHost(createLocalExecutor(), createProcessHost(services))
        : withTaskHost(createSimExecutor({ speedup }), createTaskHost(services));
    return {
      executor,
      provisioner: await cloudProvisioner(flags, cluster, provisionerKind, speedup, logger),
    };
  }
  const cloud = await import('../../agents/cloud-index.ts');
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kubeConfig = new KubeConfig();
  if (flags.kubeconfig) kubeConfig.loadFromFile(flags.kubeconfig);
  else kubeConfig.loadFromDefault();
  const executor = cloud.createKubeExecutor({
    kubeConfig,
    cluster,
    namespace: flags.namespace,
    image: image!,
    ...(flags.taskServiceAccount ? { taskServiceAccount: flags.taskServiceAccount } : {}),
    nats: {
      url: flags.taskNats ?? flags.nats!,
      ...(flags.taskCredsSecret ? { credsSecret: flags.taskCredsSecret } : {}),
    },
    logger,
  });
  await executor.watch();
  return {
    executor,
    provisioner: await cloudProvisioner(flags, cluster, provisionerKind, speedup, logger, executor),
  };
}

/** The cluster's provisioner, through the one registry (agents/provisioner-registry.ts). */
function cloudProvisioner(
  flags: AgentFlags,
  cluster: Cluster,
  kind: Exclude<ProvisionerKind, 'cloud'>,
  speedup: number,
  logger: Logger,
  kubeExecutor?: KubeExecutor,
): Promise<NodeProvisioner> {
  return createProvisioner(cluster, kind, {
    speedup,
    logger,
    ec2: flags.launchTemplate ? { launchTemplate: flags.launchTemplate } : {},
    gce: {
      ...(flags.project ? { project: flags.project } : {}),
      ...(flags.zone ? { zone: flags.zone } : {}),
    },
    ...(kubeExecutor ? { kubeExecutor } : {}),
  });
}

/** Flags of the long-running commands. */
export interface ServeFlags extends ConsoleFlags {
  file: string[];
  nats?: string;
  creds?: string;
  state: string;
  metricsPort?: string;
  metricsHost?: string;
  replicas: string;
  speedup: string;
  heartbeat: string;
  /** Seconds a run's driver may be silent before its work is stopped. */
  runGrace?: string;
}

/** `--run-grace <seconds>` as the broker's option (milliseconds), when given. */
export function runGraceOf(flags: { runGrace?: string }): { runGraceMs?: number } {
  return flags.runGrace === undefined ? {} : { runGraceMs: number('--run-grace', flags.runGrace, 1) * 1000 };
}

/** The `--run-grace` option of commands that start a broker. */
export const RUN_GRACE_OPTION = [
  '--run-grace <seconds>',
  "seconds a run's driver may stop sending heartbeats before its pending requests are withdrawn and its leases stopped",
  '15',
] as const;

export function number(flag: string, value: string, min = 0): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < min)
    throw new UsageError(`${flag} must be a number of at least ${min}, not '${value}'`);
  return n;
}

async function connect(flags: ServeFlags, name: string): Promise<NatsTransport> {
  if (!flags.nats) throw new UsageError('--nats <url> is required here');
  return connectCli({ nats: flags.nats, creds: flags.creds }, name);
}

/**
 * Serves metrics, `/healthz` and `/readyz` on `--metrics-port` (with the process's own metrics), or says
 * in one line why it cannot.
 */
export async function metricsServer(
  registry: Registry,
  flags: ServeFlags,
  probes: ServeMetricsOptions,
): Promise<Server | undefined> {
  return listening(flags, async (port, host) => {
    const server = await serveMetrics(registry, port, host, probes);
    collectProcessMetrics(registry);
    return server;
  });
}

/** Runs `serve` on `--metrics-port` and `--metrics-host`, turning a port in use into one line. */
export async function listening(
  flags: ServeFlags,
  serve: (port: number, host: string) => Promise<Server>,
): Promise<Server | undefined> {
  if (!flags.metricsPort) return undefined;
  const port = number('--metrics-port', flags.metricsPort, 1);
  const host = flags.metricsHost ?? '127.0.0.1';
  try {
    return await serve(port, host);
  } catch (err) {
    throw listenProblem(err, '--metrics-port', host, port) ?? err;
  }
}

/** Runs until SIGINT or SIGTERM, then stops cleanly. */
export function untilSignal(stop: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      void stop().then(resolve);
    };
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
}

/** Adds `gantry broker` and `gantry agent`. */
export function registerServeCommands(program: Command): void {
  consoleOptions(
    program
      .command('broker')
      .description(
        'Run a broker: over NATS with JetStream state (--nats), or embedded with a local state directory',
      )
      .requiredOption(
        '-f, --file <path...>',
        'Cluster, ResourcePolicy, ResourceProfile and PriceCatalog YAML',
      )
      .option('--nats <url>', 'NATS server, e.g. nats://127.0.0.1:4222')
      .option('--creds <file>', 'NATS credentials file')
      .option('--state <dir>', 'state directory (embedded mode)', '.gantry/state')
      .option('--metrics-port <n>', 'serve Prometheus metrics on this port')
      .option(
        '--metrics-host <host>',
        'address the metrics server listens on (0.0.0.0 in a pod)',
        '127.0.0.1',
      )
      .option('--replicas <n>', 'JetStream replicas of the broker state (3 on a 3-server NATS cluster)', '1')
      .option('--heartbeat <ms>', 'agents heartbeat interval', '1000')
      .option('--speedup <n>', 'time scale of simulated clouds (embedded mode)', '1')
      .option(...RUN_GRACE_OPTION),
  ).action(async (flags: ServeFlags) => {
    const heartbeatMs = number('--heartbeat', flags.heartbeat, 50);
    if (!flags.nats) return runEmbedded(flags, heartbeatMs);
    const { platform } = loadPlatform(flags.file);
    const logger = pino({ level: process.env.GANTRY_LOG ?? 'info' });
    const target = { nats: flags.nats, creds: flags.creds };
    const replicas = number('--replicas', flags.replicas, 1);
    const transport = await connectCli(target, 'gantry-broker');
    const store = await openStoreCli(
      transport,
      target,
      { bucket: BROKER_BUCKET, stream: BROKER_STREAM, replicas },
      true,
    );
    // Leadership on a connection and a bucket of its own: a renewal never waits behind state writes.
    const leaderLink = await connectCli(target, 'gantry-broker-leader');
    const leaderStore = await overNats(target, () =>
      untilJetStream(leaderLink, target, () =>
        openJetStreamKeys(leaderLink.connection, { bucket: LEADER_BUCKET, replicas, timeoutMs: 1000 }),
      ),
    ).catch(async (err: unknown) => {
      await leaderLink.close();
      await store.close();
      await transport.close();
      throw err;
    });
    const broker = createBroker({
      transport,
      store,
      leaderStore,
      platform,
      backends: await defaultBackends(),
      logger,
      heartbeatMs,
    });
    // Before start, so /healthz answers while the broker campaigns and loads its state.
    const server = await metricsServer(broker.metrics.registry, flags, {
      ready: () => broker.readiness(),
      refresh: () => broker.refreshGauges(),
    }).catch(async (err: unknown) => {
      await store.close();
      await leaderLink.close();
      await transport.close();
      throw err;
    });
    await broker.start();
    const runtimeLogs = flags.consolePort
      ? await openStoreCli(transport, target, { bucket: RUNTIME_BUCKET, stream: LINEAGE_STREAM })
      : undefined;
    const web = await startConsole(flags, {
      broker,
      transport,
      platform,
      logs: [
        ['broker', store],
        ...(runtimeLogs ? [['runtime', runtimeLogs] as ['runtime', typeof runtimeLogs]] : []),
      ],
      state: flags.state,
    });
    logger.info({ brokerId: broker.id, leader: broker.isLeader(), console: web?.url }, 'broker started');
    if (web) process.stdout.write(`console on ${web.url}\n`);
    await untilSignal(async () => {
      server?.close();
      await web?.close();
      await runtimeLogs?.close();
      await broker.stop();
      await store.close();
      await leaderLink.close();
      await transport.close();
    });
  });

  program
    .command('agent')
    .description("Run a cluster's agent against a broker over NATS")
    .requiredOption('-f, --file <path...>', 'the Cluster YAML (and the rest of the platform)')
    .requiredOption('--cluster <name>', 'which cluster this agent serves')
    .option('--nats <url>', 'NATS server, e.g. nats://127.0.0.1:4222')
    .option('--creds <file>', 'NATS credentials file made by `gantry cluster onboard`')
    .option(
      '--replicas <n>',
      'JetStream replicas of the artifact store when it creates it (3 on a 3-server NATS cluster)',
      '1',
    )
    .option('--executor <kind>', 'sim, local or kubernetes', 'sim')
    .option(
      '--provisioner <kind>',
      "sim, ec2, gce, cloud (the cluster provider's: aws → ec2, gcp → gce) or kubernetes (nodes managed outside Gantry); default: kubernetes with --executor kubernetes, else sim",
    )
    .option('--kubeconfig <file>', 'kubeconfig (default: in-cluster, then $KUBECONFIG, then ~/.kube/config)')
    .option('--namespace <ns>', 'namespace of task pods', 'gantry-tasks')
    .option('--image <image>', 'the Gantry image task pods run (default: $GANTRY_IMAGE)')
    .option('--task-nats <url>', 'NATS URL task pods connect to (default: --nats)')
    .option('--task-creds-secret <name>', "Secret holding the task pods' NATS seed (key creds.nk)")
    .option(
      '--task-service-account <name>',
      'service account of container task pods (their outputs sidecar reads its own pod)',
    )
    .option(
      '--launch-template <name>',
      'EC2 launch template of pools without a gantry.dev/launch-template label',
    )
    .option('--project <id>', 'GCP project (default: $GOOGLE_CLOUD_PROJECT)')
    .option('--zone <zone>', 'GCE zone of pools that name none')
    .option('--speedup <n>', 'time scale of the simulated cloud', '1')
    .option('--heartbeat <ms>', 'heartbeat interval until the broker says otherwise', '1000')
    .option('--metrics-port <n>', 'serve Prometheus metrics, /healthz and /readyz on this port')
    .option('--metrics-host <host>', 'address the metrics server listens on (0.0.0.0 in a pod)', '127.0.0.1')
    .action(async (flags: AgentFlags) => {
      const { platform } = loadPlatform(flags.file);
      const cluster = platform.clusters.find((c) => c.name === flags.cluster);
      if (!cluster)
        throw new UsageError(
          `no Cluster '${flags.cluster}' in ${flags.file.join(', ')}; found: ${platform.clusters.map((c) => c.name).join(', ')}`,
        );
      if (!['sim', 'local', 'kubernetes'].includes(flags.executor))
        throw new UsageError(`--executor must be sim, local or kubernetes, not '${flags.executor}'`);
      const resolved = resolveProvisionerKind(
        cluster,
        flags.provisioner ?? (flags.executor === 'kubernetes' ? 'kubernetes' : 'sim'),
      );
      if (!resolved.ok) throw new UsageError(resolved.message);
      const provisionerKind = resolved.kind;
      if (provisionerKind === 'kubernetes' && flags.executor !== 'kubernetes')
        throw new UsageError('--provisioner kubernetes goes with --executor kubernetes');
      const image = flags.image ?? process.env.GANTRY_IMAGE;
      if (flags.executor === 'kubernetes' && !image)
        throw new UsageError(
          '--image (or GANTRY_IMAGE) is required with --executor kubernetes: the image task pods run',
        );
      const speedup = number('--speedup', flags.speedup, 0.001);
      const transport = await connect(flags, `gantry-agent-${cluster.name}`);
      const logger = pino({ level: process.env.GANTRY_LOG ?? 'info' });
      const { executor, provisioner } = await backends(
        flags,
        cluster,
        transport,
        speedup,
        image,
        provisionerKind,
        logger,
      );
      const agent = createAgent({
        transport,
        cluster,
        executor,
        provisioner,
        heartbeatMs: number('--heartbeat', flags.heartbeat, 50),
        logger,
        speedup,
        // `gantry cluster remove`: the nodes are terminated and the agent stopped; the process ends.
        onRemoved: () => {
          server?.close();
          void transport.close().then(() => process.exit(0));
        },
      });
      // Before start, which waits for the broker to accept the registration: /readyz says so meanwhile.
      const server = await metricsServer(agent.metrics.registry, flags, {
        ready: () => agent.readiness(),
      }).catch(async (err: unknown) => {
        await executor.close();
        await provisioner.close();
        await transport.close();
        throw err;
      });
      await agent.start();
      logger.info(
        { cluster: cluster.name, agentId: agent.id, executor: executor.kind, provisioner: provisioner.kind },
        'agent started',
      );
      await untilSignal(async () => {
        server?.close();
        await agent.stop();
        await transport.close();
      });
    });
}

/**
 * `gantry up`, and `gantry broker` without `--nats`: a broker and an agent per cluster in this process,
 * until SIGINT or SIGTERM.
 */
export async function runEmbedded(flags: ServeFlags, heartbeatMs: number): Promise<void> {
  const { platform } = loadPlatform(flags.file);
  mkdirSync(flags.state, { recursive: true });
  const embedded = await startEmbedded({
    platform,
    stateDir: flags.state,
    speedup: number('--speedup', flags.speedup, 0.001),
    heartbeatMs,
  });
  let web: Awaited<ReturnType<typeof startConsole>>;
  const server = await listening(flags, (port, host) => serveEmbeddedMetrics(embedded, port, host))
    .then(async (s) => {
      web = await startConsole(flags, {
        broker: embedded.broker,
        transport: embedded.transport,
        platform,
        logs: [
          ['broker', embedded.store],
          ['runtime', embedded.runtimeStore],
        ],
        state: flags.state,
      }).catch((err: unknown) => {
        s?.close();
        throw err;
      });
      return s;
    })
    .catch(async (err: unknown) => {
      await embedded.stop();
      throw err;
    });
  process.stdout.write(
    `Gantry is up: broker ${embedded.broker.id}, agents for ${platform.clusters.map((c) => c.name).join(', ')}; state in ${flags.state}` +
      `${server ? `; metrics on http://127.0.0.1:${flags.metricsPort}/metrics` : ''}` +
      `. Ctrl-C stops it.\n${web ? `Console: ${web.url}/\n` : ''}`,
  );
  await untilSignal(async () => {
    server?.close();
    await web?.close();
    await embedded.stop();
  });
}
