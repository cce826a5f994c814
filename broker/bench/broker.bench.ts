/**
 * `npm run bench:broker [embedded|nats|r3 …] [requests …] [rate=<n>]`: lease decisions per second and
 * request→lease latency of the broker, for 10K and 100K requests by default (1M when asked). Prints
 * figures; asserts nothing.
 *
 * - `nats`: one nats-server with JetStream; the broker (`gantry broker`) and each agent run as their own
 *   processes, as in production; the client is this process.
 * - `r3`: the same on a 3-server NATS cluster, the broker's state replicated three times.
 * - `embedded`: broker, agents and client in this process, over the in-process transport and a local
 *   state directory.
 *
 * The client asks through the runtime's batched requests (runtime/request-batcher.ts), keeping a window of
 * requests in flight as a busy runtime does (or, with `rate=<n>`, asking at that rate: the latency at a
 * given load); a request's latency is from asking to hearing its lease.
 * Beside each NATS row, the nats.js request/reply ceiling on the same servers: one responder, 1,000
 * requests in flight. Messages and bytes per decision are the broker connection's, in and out, as
 * nats-server counts them; broker CPU per decision and memory are its process's, from /proc.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { createAgent, createSimExecutor, createSimProvisioner } from '../../agents/index.ts';
import { loadPlatform } from '../../policies/index.ts';
import { createMemoryTransport, openLocalStore, type Transport } from '../../protocol/index.ts';
import { connectNats } from '../../protocol/nats-index.ts';
import { RequestBatcher } from '../../runtime/index.ts';
import { defaultBackends } from '../../solver/index.ts';
import { freePort, type NatsServer, startNatsCluster, startNatsServer } from '../../test/nats/server.ts';
import { createBroker } from '../index.ts';
import { spawnNode, stopChild, trafficOf, usage } from './processes.ts';

type Mode = 'embedded' | 'nats' | 'r3';
/** Requests in flight from the client. */
const WINDOW = 10_000;
const args = process.argv.slice(2);
const sizes = args.filter((a) => /^\d+$/.test(a)).map(Number);
const modes = args.filter((a): a is Mode => a === 'embedded' || a === 'nats' || a === 'r3');
/** `rate=<n>`: ask at this many requests per second (open loop) instead of keeping a window full. */
const rate = Number(args.find((a) => a.startsWith('rate='))?.slice(5) ?? 0);
const env = { ...process.env, GANTRY_LOG: 'warn' };

/** Requests per second of nats.js request/reply on `urls`: one echo responder, 1,000 in flight. */
async function ceiling(urls: string[]): Promise<number> {
  const responder = await connectNats({ servers: urls, name: 'bench-echo' });
  const client = await connectNats({ servers: urls, name: 'bench-ceiling' });
  responder.subscribe('bench.echo', (m) => responder.respond(m, m.data));
  await responder.flush();
  // About the size of a request and of a lease.
  const payload = new Uint8Array(300);
  const n = 60_000;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: 1000 }, async () => {
      while (next < n) {
        next++;
        await client.request('bench.echo', payload, { timeoutMs: 30_000 });
      }
    }),
  );
  const rate = n / ((performance.now() - t0) / 1000);
  await client.close();
  await responder.close();
  return rate;
}

/** Asks for `n` leases with `WINDOW` in flight; the latency of each, and how many were refused. */
async function load(t: Transport, n: number) {
  const batcher = new RequestBatcher(t, { replyTimeoutMs: 300_000 });
  const latencies = new Float64Array(n);
  let next = 0;
  let failed = 0;
  let done = 0;
  const progress = setInterval(() => process.stderr.write(`  ${done} of ${n} leased\n`), 10_000);
  const t0 = performance.now();
  const lane = async () => {
    while (next < n) await one(next++);
  };
  const one = async (i: number) => {
    const sent = performance.now();
    try {
      await batcher.ask(
        { requestId: `b-${i}`, team: 'bench', work: { kind: 'sim', durationMs: 3_600_000 } },
        'bench',
      );
    } catch {
      failed++;
    }
    latencies[i] = performance.now() - sent;
    done++;
  };
  if (rate > 0) {
    // Every 10 ms, as many as are due by now.
    const asked: Promise<void>[] = [];
    while (next < n) {
      const due = Math.min(n, Math.floor(((performance.now() - t0) / 1000) * rate));
      while (next < due) asked.push(one(next++));
      await new Promise((r) => setTimeout(r, 10));
    }
    await Promise.all(asked);
  } else await Promise.all(Array.from({ length: Math.min(n, WINDOW) }, lane));
  const seconds = (performance.now() - t0) / 1000;
  clearInterval(progress);
  batcher.close();
  latencies.sort();
  const q = (p: number) => latencies[Math.min(n - 1, Math.floor(p * n))]!;
  return { seconds, failed, p50: q(0.5), p99: q(0.99) };
}

/** A Prometheus sample's value in `text`. */
const metric = (text: string, name: string) =>
  Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);

async function overNats(mode: 'nats' | 'r3', n: number): Promise<string[]> {
  const monitor = await Promise.all(Array.from({ length: mode === 'r3' ? 3 : 1 }, () => freePort()));
  const servers: NatsServer[] =
    mode === 'r3'
      ? await startNatsCluster(3, (i) => `http_port: ${monitor[i]}`)
      : [await startNatsServer({ config: `http_port: ${monitor[0]}` })];
  const urls = servers.map((s) => s.url);
  const top = await ceiling(urls);
  const metricsPort = await freePort();
  const broker = await spawnNode(
    [
      // e.g. BENCH_BROKER_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' for a profile of the broker.
      ...(process.env.BENCH_BROKER_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
      'bin/gantry.js',
      'broker',
      '-f',
      'test/fixtures/bench',
      '--nats',
      urls.join(','),
      '--replicas',
      mode === 'r3' ? '3' : '1',
      '--heartbeat',
      '500',
      '--metrics-port',
      String(metricsPort),
    ],
    env,
    false,
  );
  const metricsText = async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  // Ready: it leads and has loaded its state (the metrics port answers before that).
  for (let i = 0; i < 600; i++) {
    const ready = await fetch(`http://127.0.0.1:${metricsPort}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const { platform } = loadPlatform(['test/fixtures/bench']);
  const agents = await Promise.all(
    platform.clusters.map((c) =>
      spawnNode(['--import', 'tsx', 'broker/bench/agent-process.ts', urls.join(','), c.name], env, true),
    ),
  );
  const client = await connectNats({ servers: urls, name: 'bench-client' });
  const cpu0 = usage(broker.pid!).cpuSeconds;
  const agentCpu0 = agents.map((a) => usage(a.pid!).cpuSeconds);
  const traffic0 = await trafficOf(monitor, 'gantry-broker');
  const cycles0 = metric(await metricsText(), 'gantry_cycles_total');
  const r = await load(client, n);
  const traffic = await trafficOf(monitor, 'gantry-broker');
  const b = usage(broker.pid!);
  const agentCores = agents.reduce((s, a, i) => s + usage(a.pid!).cpuSeconds - agentCpu0[i]!, 0) / r.seconds;
  const cycles = metric(await metricsText(), 'gantry_cycles_total') - cycles0;
  await client.close();
  await Promise.all(agents.map(stopChild));
  await stopChild(broker);
  for (const s of servers) await s.stop();
  return row(mode, n, r, top, cycles, {
    msgs: (traffic.msgs - traffic0.msgs) / n,
    bytes: (traffic.bytes - traffic0.bytes) / n,
    cpuUs: ((b.cpuSeconds - cpu0) * 1e6) / n,
    rss: `${Math.round(b.rssMiB)} / ${Math.round(b.peakMiB)}`,
    agentCores,
  });
}

async function embedded(n: number): Promise<string[]> {
  const { platform } = loadPlatform(['test/fixtures/bench']);
  const transport = createMemoryTransport();
  const store = await openLocalStore(mkdtempSync(join(tmpdir(), 'gantry-bench-')));
  const broker = createBroker({
    transport,
    store,
    platform,
    backends: await defaultBackends(),
    heartbeatMs: 500,
    // Its warnings (leadership lost on a starved machine, writes retried) on stderr, as over NATS.
    logger: pino({ level: 'warn' }, pino.destination(2)),
  });
  await broker.start();
  const agents = platform.clusters.map((cluster) =>
    createAgent({
      transport,
      cluster,
      executor: createSimExecutor({ speedup: 1 }),
      provisioner: createSimProvisioner(cluster, { speedup: 1000 }),
      heartbeatMs: 500,
    }),
  );
  for (const a of agents) await a.start();
  const cpu0 = process.cpuUsage();
  const cycles0 = metric(await broker.metrics.registry.metrics(), 'gantry_cycles_total');
  const r = await load(transport, n);
  const cpu = process.cpuUsage(cpu0);
  const cycles = metric(await broker.metrics.registry.metrics(), 'gantry_cycles_total') - cycles0;
  const mem = usage(process.pid);
  for (const a of agents) await a.stop();
  await broker.stop();
  await store.close();
  return row('embedded', n, r, undefined, cycles, {
    cpuUs: (cpu.user + cpu.system) / n,
    rss: `${Math.round(mem.rssMiB)} / ${Math.round(mem.peakMiB)} (whole process)`,
  });
}

function row(
  mode: string,
  n: number,
  r: Awaited<ReturnType<typeof load>>,
  top: number | undefined,
  cycles: number,
  m: { msgs?: number; bytes?: number; cpuUs: number; rss: string; agentCores?: number },
): string[] {
  const decisions = n / r.seconds;
  return [
    rate > 0 ? `${mode} at ${rate.toLocaleString('en-US')}/s` : mode,
    n.toLocaleString('en-US'),
    r.seconds.toFixed(1),
    Math.round(decisions).toLocaleString('en-US'),
    top === undefined ? '-' : `${Math.round(top).toLocaleString('en-US')} (${(decisions / top).toFixed(2)})`,
    r.p50.toFixed(0),
    r.p99.toFixed(0),
    String(cycles),
    m.msgs === undefined ? '-' : m.msgs.toFixed(2),
    m.bytes === undefined ? '-' : Math.round(m.bytes).toLocaleString('en-US'),
    Math.round(m.cpuUs).toLocaleString('en-US'),
    m.rss,
    m.agentCores === undefined ? '-' : m.agentCores.toFixed(2),
    String(r.failed),
  ];
}

console.log(
  '| mode | requests | wall s | decisions/s | nats.js req/reply ceiling/s (ratio) | p50 ms | p99 ms | cycles | broker msgs/decision | broker bytes/decision | broker CPU µs/decision | broker RSS MiB end / peak | agents CPU cores | refused |',
);
console.log('|' + ' --- |'.repeat(14));
for (const mode of modes.length ? modes : (['nats', 'embedded', 'r3'] as const)) {
  for (const n of sizes.length ? sizes : [10_000, 100_000]) {
    process.stderr.write(`${mode}, ${n} requests\n`);
    const cells = mode === 'embedded' ? await embedded(n) : await overNats(mode, n);
    console.log(`| ${cells.join(' | ')} |`);
  }
}
process.exit(0);
