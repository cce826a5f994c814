/**
 * `npm run bench:broker`: lease decisions per second and request→lease latency, embedded and over a
 * real nats-server (JetStream state), for 10K and 100K requests. Prints figures; asserts nothing.
 *
 * The client keeps a window of requests in flight, as a busy runtime does; the latency of a request is
 * from sending it to receiving its lease. Over NATS the broker runs as its own process (`gantry broker`)
 * and each agent as its own (broker/bench/agent-process.ts), as in production, and the run prints each
 * one's peak resident memory and average CPU: what deploy/kubernetes requests for them.
 */
import { readFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAgent, createSimExecutor, createSimProvisioner } from '../../agents/index.ts';
import { type ChildProcess, spawn } from 'node:child_process';
import { createBroker } from '../index.ts';
import { loadPlatform } from '../../policies/index.ts';
import {
  createMemoryTransport,
  encodeJson,
  openLocalStore,
  type Store,
  subjects,
  type Transport,
} from '../../protocol/index.ts';
import { connectNats } from '../../protocol/nats-index.ts';
import { defaultBackends } from '../../solver/index.ts';
import { freePort, startNatsServer } from '../../test/nats/server.ts';

const WINDOW = 4000;
/** Clock ticks per second of /proc/<pid>/stat's CPU times (USER_HZ, 100 on Linux). */
const TICKS = 100;

/** A process's peak resident memory (MiB) and the CPU seconds it has used, from /proc. */
function usage(pid: number): { peakMiB: number; cpuSeconds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const peakKiB = Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1] ?? 0);
  // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { peakMiB: peakKiB / 1024, cpuSeconds: (Number(fields[11]) + Number(fields[12])) / TICKS };
}

/** The processes this run started: killed when it exits, however it ends. */
const spawned = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of spawned) if (child.exitCode === null) child.kill('SIGKILL');
});

/** Starts a child process and resolves once it prints a line on stdout, or rejects when it exits. */
function spawnReady(args: string[], env: NodeJS.ProcessEnv): Promise<ChildProcess> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'], env });
  spawned.add(child);
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}`)));
  });
}

/** Stops a child with SIGTERM and waits for it. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
}
const args = process.argv.slice(2);
const sizes = args.filter((a) => /^\d+$/.test(a)).map(Number);
const modes = args.filter((a) => a === 'embedded' || a === 'nats');

async function run(mode: 'embedded' | 'nats', n: number): Promise<string> {
  const { platform } = loadPlatform(['test/fixtures/bench']);
  const server = mode === 'nats' ? await startNatsServer() : undefined;
  const conns: Transport[] = [];
  const connect = async (name: string): Promise<Transport> => {
    if (!server) return memory;
    const c = await connectNats({ servers: server.url, name });
    conns.push(c);
    return c;
  };
  const memory = createMemoryTransport();
  let store: Store | undefined;
  let stopBroker: () => Promise<void>;
  let metricsText: () => Promise<string>;
  /** Broker and agent processes to measure (over NATS). */
  const measured: { name: string; pid: number }[] = [];
  if (server) {
    const port = await freePort();
    const child = spawn(
      process.execPath,
      [
        ...(process.env.BENCH_BROKER_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
        'bin/gantry.js',
        'broker',
        '-f',
        'test/fixtures/bench',
        '--nats',
        server.url,
        '--heartbeat',
        '500',
        '--metrics-port',
        String(port),
      ],
      {
        stdio: ['ignore', 'ignore', 'inherit'],
        env: { ...process.env, GANTRY_LOG: 'warn' },
      },
    );
    metricsText = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    // Ready: it leads and has loaded its state (the metrics port answers before that).
    for (let i = 0; i < 300; i++) {
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ready) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    spawned.add(child);
    measured.push({ name: 'broker', pid: child.pid! });
    stopBroker = () => stopChild(child);
  } else {
    store = await openLocalStore(mkdtempSync(join(tmpdir(), 'gantry-bench-')));
    const broker = createBroker({
      transport: memory,
      store,
      platform,
      backends: await defaultBackends(),
      heartbeatMs: 500,
      windowMs: 10,
      maxBatch: 5000,
    });
    await broker.start();
    metricsText = () => broker.metrics.registry.metrics();
    stopBroker = async () => {
      await broker.stop();
      await store?.close();
    };
  }
  const agents = [];
  const agentProcesses: ChildProcess[] = [];
  for (const cluster of platform.clusters) {
    if (server) {
      const child = await spawnReady(
        ['--import', 'tsx', 'broker/bench/agent-process.ts', server.url, cluster.name],
        { ...process.env, GANTRY_LOG: 'warn' },
      );
      agentProcesses.push(child);
      measured.push({ name: `agent ${cluster.name}`, pid: child.pid! });
      continue;
    }
    const agent = createAgent({
      transport: await connect(cluster.name),
      cluster,
      executor: createSimExecutor({ speedup: 1 }),
      provisioner: createSimProvisioner(cluster, { speedup: 1000 }),
      heartbeatMs: 500,
    });
    await agent.start();
    agents.push(agent);
  }
  const client = await connect('client');
  const latencies = new Float64Array(n);
  let next = 0;
  let failed = 0;
  const cpuBefore = measured.map((p) => usage(p.pid).cpuSeconds);
  const t0 = performance.now();
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const body = encodeJson({
        requestId: `b-${i}`,
        team: 'bench',
        work: { kind: 'sim', durationMs: 600_000 },
      });
      const sent = performance.now();
      const reply = await client.request(subjects.request('bench'), body, { timeoutMs: 120_000 });
      latencies[i] = performance.now() - sent;
      if (reply.data[6] !== 116 /* 't' of "ok":true */) failed++;
    }
  };
  await Promise.all(Array.from({ length: WINDOW }, worker));
  const seconds = (performance.now() - t0) / 1000;
  const sorted = [...latencies].sort((a, b) => a - b);
  const q = (p: number) => sorted[Math.min(n - 1, Math.floor(p * n))]!;
  const rss = process.memoryUsage().rss / 2 ** 20;
  const text = await metricsText();
  const metric = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  const solveS = metric('gantry_solve_seconds_sum');
  const cycleS = metric('gantry_cycle_seconds_sum');
  const cycles = metric('gantry_cycles_total');
  // CPU while the requests ran (not the start-up's compile), and the peak memory of the whole run.
  const processes = measured.map((p, i) => {
    const u = usage(p.pid);
    return `${p.name} ${Math.round(u.peakMiB)} MiB, ${((u.cpuSeconds - cpuBefore[i]!) / seconds).toFixed(2)} cores`;
  });

  for (const a of agents) await a.stop();
  await Promise.all(agentProcesses.map(stopChild));
  await stopBroker();
  for (const c of conns) await c.close();
  await server?.stop();
  return [
    mode,
    n,
    seconds.toFixed(2),
    Math.round(n / seconds),
    q(0.5).toFixed(1),
    q(0.99).toFixed(1),
    cycles,
    Math.round(n / Math.max(1, cycles)),
    `${solveS.toFixed(2)}/${cycleS.toFixed(2)}`,
    failed,
    Math.round(rss),
    processes.join('; ') || '-',
  ].join(' | ');
}

console.log(
  'mode | requests | wall s | decisions/s | p50 ms | p99 ms | cycles | tasks/cycle | solve/cycle s | refused | RSS MiB | peak memory, CPU per process (over the run)',
);
console.log('--- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | ---');
for (const mode of modes.length ? modes : (['embedded', 'nats'] as const)) {
  for (const n of sizes.length ? sizes : [10_000, 100_000]) console.log(await run(mode, n));
}
process.exit(0);
