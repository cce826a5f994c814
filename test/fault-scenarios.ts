/**
 * The faults Gantry must survive, each injected while `gantry run` maps many short tasks on `gantry
 * broker` and `gantry agent` processes (test/fault-stack.ts): nats-server restarted, the leading broker
 * killed while a standby waits, and the server leading the broker's state bucket killed in a 3-server
 * NATS cluster at R3. Each returns what happened — exit code, the longest time without a task start,
 * tasks lost and run twice, the recovery timeline — for the tests to check and the reliability
 * benchmark to print. Free of the test runner.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { BROKER_BUCKET } from '../bin/credentials.ts';
import { connectNats, openJetStreamStore } from '../protocol/nats-index.ts';
import { type FaultStack, startFaultStack, tally, watchStalls } from './fault-stack.ts';
import { type NatsServer, startNatsCluster, startNatsServer } from './nats/server.ts';
import { sleep, until } from './nats/wait.ts';

/** The faults, by name. */
export type FaultKind = 'nats-sigterm' | 'nats-sigkill' | 'broker-sigkill' | 'r3-leader-sigkill';

/** What one run through a fault came to. */
export interface Recovery {
  kind: FaultKind;
  /** What was done, for people (which server, how long it was down). */
  fault: string;
  /** `gantry run`'s exit code and output. */
  code: number | null;
  output: string;
  /** The run's answer (`sum` of the doubled items: `n·(n−1)` when every task ran). */
  answer: unknown;
  n: number;
  /** The longest time without a new task start from the fault on, and when it began (ms after it). */
  longestStallMs: number;
  stallFromMs: number;
  /** How long after the fault the first task started. */
  firstStartMs: number | undefined;
  lost: number[];
  twice: number[];
  /** What the brokers and agents logged from the fault on, with times from it. */
  timeline: string[];
  /** The standby's output (broker-sigkill). */
  standbyOutput?: string;
}

/** Options of {@link runFault}. */
export interface FaultOptions {
  /** Tasks in the run; default 600. */
  n?: number;
  /** Each task's duration, ms; default 300. */
  taskMs?: number;
}

/** Runs `gantry run` through one fault, injected once a quarter of the tasks started; cleans up. */
export async function runFault(kind: FaultKind, opts: FaultOptions = {}): Promise<Recovery> {
  const n = opts.n ?? 600;
  const taskMs = opts.taskMs ?? 300;
  let servers: NatsServer[] = [];
  let stack: FaultStack | undefined;
  try {
    servers = kind === 'r3-leader-sigkill' ? await startNatsCluster(3) : [await startNatsServer()];
    const urls = servers.map((s) => s.url).join(',');
    // A cluster's JetStream elects its meta leader shortly after the servers are up (longer on a busy
    // machine): the stack starts once an R3 stream can be made.
    if (servers.length > 1) await r3Ready(servers);
    stack = await startFaultStack(urls, { replicas: servers.length > 1 ? 3 : 1 });
    const standby = kind === 'broker-sigkill' ? (await sleep(1500), stack.broker()) : undefined;
    const run = stack.run(n, taskMs);
    const s = stack;
    await until(() => s.counts().size >= n / 4, `${n / 4} tasks started`, 90_000);
    const victim = kind === 'r3-leader-sigkill' ? await stateLeader(servers) : undefined;
    const stalls = watchStalls(stack);
    const fault = await inject(kind, stack, servers, victim);
    const code = await run.exited;
    const { longestGapMs, firstStartMs, longestFromMs } = stalls.stop();
    const { lost, twice } = tally(stack.counts(), n);
    const output = run.output();
    return {
      kind,
      fault,
      code,
      output,
      answer: answerOf(output),
      n,
      longestStallMs: longestGapMs,
      stallFromMs: longestFromMs,
      firstStartMs,
      lost,
      twice,
      timeline: stack.timeline(stalls.from),
      ...(standby ? { standbyOutput: standby.output() } : {}),
    };
  } finally {
    await stack?.stop();
    for (const s of servers) await s[Symbol.asyncDispose]();
  }
}

/** Injects the fault; says what it did. */
async function inject(
  kind: FaultKind,
  stack: FaultStack,
  servers: NatsServer[],
  victim: { index: number; name: string } | undefined,
): Promise<string> {
  if (kind === 'broker-sigkill') {
    await stack.brokers[0]!.kill('SIGKILL');
    return 'leading broker SIGKILL, standby took over';
  }
  if (kind === 'r3-leader-sigkill') {
    // Every stream whose leader dies with the server waits for its election: which ones is luck.
    const led = await streamsLedBy(servers, victim!.name);
    await servers[victim!.index]!.kill();
    return `nats server ${victim!.name} (leading ${led.join(', ')}) SIGKILL`;
  }
  const server = servers[0]!;
  const downAt = Date.now();
  await (kind === 'nats-sigterm' ? server.stop() : server.kill());
  await sleep(2000);
  await server.restart();
  return `nats-server ${kind === 'nats-sigterm' ? 'SIGTERM' : 'SIGKILL'}, down ${Date.now() - downAt} ms`;
}

/** The server leading the broker's state bucket (servers are named n<index>-<route port>). */
function stateLeader(servers: NatsServer[]): Promise<{ index: number; name: string }> {
  return leaderOf(servers, `KV_${BROKER_BUCKET}`);
}

/** The server leading a stream, by its index in `servers` and its name. */
async function leaderOf(servers: NatsServer[], stream: string): Promise<{ index: number; name: string }> {
  const probe = await connectNats({ servers: servers.map((s) => s.url) });
  try {
    const info = await (await jetstreamManager(probe.connection)).streams.info(stream);
    const name = info.cluster?.leader ?? '';
    return { index: Number(/^n(\d+)-/.exec(name)?.[1] ?? 0), name };
  } finally {
    await probe.close();
  }
}

/** The streams `server` leads (a server's name as JetStream reports it). */
async function streamsLedBy(servers: NatsServer[], server: string): Promise<string[]> {
  const probe = await connectNats({ servers: servers.map((s) => s.url) });
  try {
    const led: string[] = [];
    for await (const info of (await jetstreamManager(probe.connection)).streams.list())
      if (info.cluster?.leader === server) led.push(info.config.name);
    return led.sort();
  } finally {
    await probe.close();
  }
}

/** The `output` of `gantry run -o json`, or undefined. */
function answerOf(output: string): unknown {
  try {
    return (JSON.parse(output.slice(output.indexOf('{'))) as { output?: unknown }).output;
  } catch {
    return undefined;
  }
}

/** One line for people: the fault, the stall, what ran other than once. */
export function describeRecovery(r: Recovery): string {
  return (
    `${r.fault}: first task started ${r.firstStartMs ?? 'never'} ms after; longest stall ` +
    `${r.longestStallMs} ms (from +${r.stallFromMs} ms); lost ${r.lost.length}, run twice ${r.twice.length} of ${r.n}`
  );
}

/**
 * The floor under r3-leader-sigkill: a 3-server cluster, one R3 bucket written every 20 ms, its
 * leader's server killed. Returns how long after the kill the first write succeeded (the followers'
 * election), and which servers led before and after.
 */
export async function measureElection(): Promise<{ ms: number; leader: string; newLeader: string }> {
  const servers = await startNatsCluster(3);
  const t = await connectNats({ servers: servers.map((s) => s.url) });
  try {
    const store = await openWhenReady(() =>
      openJetStreamStore(t.connection, { bucket: 'election', stream: 'ELECTION', replicas: 3 }),
    );
    await store.put('k', new Uint8Array([0]));
    const { index, name } = await leaderOf(servers, 'KV_election');
    let lastOk = 0;
    let stop = false;
    const writing = (async () => {
      while (!stop) {
        await store.put('k', new Uint8Array([1])).then(
          () => (lastOk = Date.now()),
          () => undefined,
        );
        await sleep(20);
      }
    })();
    await sleep(500);
    const killedAt = Date.now();
    await servers[index]!.kill();
    await until(() => lastOk > killedAt, 'a write after the kill', 30_000);
    stop = true;
    await writing;
    const after = await leaderOf(
      servers.filter((_, i) => i !== index),
      'KV_election',
    );
    return { ms: lastOk - killedAt, leader: name, newLeader: after.name };
  } finally {
    await t.close();
    for (const s of servers) await s[Symbol.asyncDispose]();
  }
}

/** Opens a store once the cluster's JetStream has elected its meta leader (shortly after start). */
async function openWhenReady<T>(open: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await open();
    } catch (err) {
      if (attempt >= 60) throw err;
      await sleep(500);
    }
  }
}

/** Resolves once the cluster's JetStream takes an R3 stream (its meta leader is elected). */
async function r3Ready(servers: NatsServer[]): Promise<void> {
  const probe = await connectNats({ servers: servers.map((s) => s.url) });
  try {
    const jsm = await openWhenReady(() => jetstreamManager(probe.connection));
    await openWhenReady(() =>
      jsm.streams.add({
        name: 'ready-probe',
        subjects: ['ready-probe'],
        num_replicas: 3,
      }),
    );
    await jsm.streams.delete('ready-probe');
  } finally {
    await probe.close();
  }
}
