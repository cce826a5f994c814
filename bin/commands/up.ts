/**
 * `gantry up`: a broker and an agent for every Cluster, in one process, on simulated clouds priced from
 * the catalog. Embedded (nothing but Node), or over a NATS server with `--nats`, where `gantry run
 * --nats`, `gantry get` and `gantry apply` reach it as they would a real deployment.
 */
import type { Command } from 'commander';
import { type Agent, createAgentMetrics } from '../../agents/index.ts';
import { createBroker } from '../../broker/index.ts';
import { loadPlatform } from '../../policies/index.ts';
import type { NatsTransport } from '../../protocol/nats-index.ts';
import { openJetStreamArtifacts } from '../../runtime/nats-artifacts.ts';
import { defaultBackends } from '../../solver/index.ts';
import { connectCli, openStoreCli } from '../connect.ts';
import { BROKER_BUCKET, BROKER_STREAM, LINEAGE_STREAM, RUNTIME_BUCKET } from '../credentials.ts';
import { consoleOptions, startConsole } from '../console.ts';
import { join } from 'node:path';
import { serveEmbeddedMetrics, simAgent } from '../embedded.ts';
import { gantryCommand, shippedExamples } from '../options.ts';
import {
  listening,
  number,
  RUN_GRACE_OPTION,
  runEmbedded,
  runGraceOf,
  type ServeFlags,
  untilSignal,
} from './serve.ts';

/** Simulated seconds per second unless `--speedup` says otherwise: a 90 s node launch takes 1.5 s. */
export const UP_SPEEDUP = '60';

/** Adds `gantry up`. */
export function registerUpCommand(program: Command): void {
  consoleOptions(
    program
      .command('up')
      .description(
        'Start a broker with an agent for every Cluster on simulated clouds: embedded, or over NATS with --nats',
      )
      .requiredOption('-f, --file <path...>', 'Cluster, ResourcePolicy and ResourceProfile YAML')
      .option('--nats <url>', 'run over this NATS server (JetStream enabled), reachable by gantry run --nats')
      .option('--creds <file>', 'NATS credentials (an operator’s: the broker and the agents use them)')
      .option('--state <dir>', 'state directory (embedded)', '.gantry/state')
      .option('--metrics-port <n>', 'serve Prometheus metrics, /healthz and /readyz on this port')
      .option('--speedup <n>', 'simulated seconds per second of the clouds', UP_SPEEDUP)
      .option(...RUN_GRACE_OPTION),
  ).action((flags: ServeFlags) => (flags.nats ? runUpOverNats(flags, flags.nats) : runEmbedded(flags, 1000)));
}

async function runUpOverNats(flags: ServeFlags, nats: string): Promise<void> {
  const { platform } = loadPlatform(flags.file);
  const speedup = number('--speedup', flags.speedup, 0.001);
  const target = { nats, creds: flags.creds };
  const heartbeatMs = 1000;
  const conns: NatsTransport[] = [];
  const connect = async (name: string) => {
    const c = await connectCli(target, name);
    conns.push(c);
    return c;
  };
  const closeAll = () => Promise.all(conns.map((c) => c.close()));
  const brokerConn = await connect('gantry-broker');
  const store = await openStoreCli(brokerConn, target, { bucket: BROKER_BUCKET, stream: BROKER_STREAM });
  const broker = createBroker({
    transport: brokerConn,
    store,
    platform,
    backends: await defaultBackends(),
    heartbeatMs,
    ledgerTimeScale: speedup,
    nodesStopWithBroker: true,
    ...runGraceOf(flags),
  });
  const agents: Agent[] = [];
  // The agents' metrics beside the broker's, on one port.
  const metrics = createAgentMetrics(broker.metrics.registry);
  const stop = async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await broker.stop();
    await store.close();
    await closeAll();
  };
  try {
    await broker.start();
    for (const cluster of platform.clusters) {
      const conn = await connect(`gantry-agent-${cluster.name}`);
      const services = {
        transport: conn,
        artifacts: await openJetStreamArtifacts(conn.connection),
        timeScale: speedup,
      };
      agents.push(simAgent(conn, cluster, speedup, heartbeatMs, services, metrics).agent);
    }
    await Promise.all(agents.map((a) => a.start()));
  } catch (err) {
    await stop();
    throw err;
  }
  const server = await listening(flags, (port, host) =>
    serveEmbeddedMetrics({ broker, agents }, port, host),
  ).catch(async (err: unknown) => {
    await stop();
    throw err;
  });
  const web = await (async () => {
    if (flags.consolePort === undefined) return undefined;
    const runtimeLogs = await openStoreCli(brokerConn, target, {
      bucket: RUNTIME_BUCKET,
      stream: LINEAGE_STREAM,
    });
    const started = await startConsole(flags, {
      broker,
      transport: brokerConn,
      platform,
      logs: [
        ['broker', store],
        ['runtime', runtimeLogs],
      ],
      state: flags.state,
    });
    return started && { url: started.url, close: () => started.close().then(() => runtimeLogs.close()) };
  })().catch(async (err: unknown) => {
    server?.close();
    await stop();
    throw err;
  });
  const creds = flags.creds ? ` --creds <a runtime's credentials>` : '';
  process.stdout.write(
    `Gantry is up over NATS at ${nats}: broker ${broker.id}, agents for ${platform.clusters.map((c) => c.name).join(', ')} ` +
      `on simulated clouds at ${speedup}× (a node launches in ${Math.round(90 / speedup)} s)` +
      `${server ? `; metrics on http://127.0.0.1:${flags.metricsPort}/metrics` : ''}` +
      `. Ctrl-C stops it.\n${web ? `Console: ${web.url}/\n` : ''}` +
      `Run a workflow on it:\n` +
      `  ${gantryCommand()} run ${join(shippedExamples(), 'workflows/train.ts')} --team research --nats ${nats}${creds} --speedup ${speedup} \\\n` +
      `    --input '{"source":"s3://bucket/clicks","rows":1000,"epochs":1}'\n`,
  );
  await untilSignal(async () => {
    server?.close();
    await web?.close();
    await stop();
  });
}
