/**
 * Gantry as its users run it, for fault tests: `gantry broker` and one `gantry agent` per cluster of
 * the test platform as processes over NATS, and `gantry run` of a workflow of many short tasks whose
 * executions are counted (each start appends its item to a log the agents are told of).
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type GantryProcess, startGantry } from './cli.ts';

const PLATFORM = 'test/fixtures/platform';
const WORKFLOW = 'test/fixtures/workflows/faults.ts';
/** Simulated seconds per second of the agents' clouds: nodes come up in well under a second. */
export const SPEEDUP = '100';

/** The processes of one test, stopped together. */
export interface FaultStack {
  /** Where the task executions are logged, one item per line. */
  log: string;
  brokers: GantryProcess[];
  agents: GantryProcess[];
  /** Starts another broker (a standby, or the replacement of one killed). */
  broker(): GantryProcess;
  /** Starts `gantry run` of the workflow over `n` tasks of `ms` each. */
  run(n: number, ms: number, extra?: readonly string[]): GantryProcess;
  /** How many times each item started, and the times (ms since the first) of the starts. */
  counts(): Map<number, number>;
  stop(): Promise<void>;
}

/** Starts a broker and the platform's agents on `urls` (comma-separated for a cluster). */
export async function startFaultStack(
  urls: string,
  opts: { replicas?: number; heartbeatMs?: number } = {},
): Promise<FaultStack> {
  const dir = await mkdtemp(join(tmpdir(), 'gantry-faults-'));
  const log = join(dir, 'executions.log');
  const env = { ...process.env, GANTRY_LOG: 'warn', GANTRY_FAULT_LOG: log };
  const replicas = String(opts.replicas ?? 1);
  const heartbeat = String(opts.heartbeatMs ?? 500);
  const all: GantryProcess[] = [];
  const started = (p: GantryProcess) => (all.push(p), p);
  const broker = () =>
    started(
      startGantry(
        ['broker', '-f', PLATFORM, '--nats', urls, '--replicas', replicas, '--heartbeat', heartbeat],
        { env },
      ),
    );
  const brokers = [broker()];
  const agents = ['sim-aws', 'sim-gcp'].map((cluster) =>
    started(
      startGantry(
        ['agent', '-f', PLATFORM, '--cluster', cluster, '--nats', urls, '--replicas', replicas].concat([
          '--speedup',
          SPEEDUP,
        ]),
        // 'agent started' is an info line.
        { env: { ...env, GANTRY_LOG: 'info' } },
      ),
    ),
  );
  await Promise.all(agents.map((a) => a.waitFor(/agent started/, 60_000)));
  return {
    log,
    brokers,
    agents,
    broker() {
      const b = broker();
      brokers.push(b);
      return b;
    },
    run(n, ms, extra = []) {
      const input = JSON.stringify({ n, ms });
      return started(
        startGantry(
          ['run', WORKFLOW, '--nats', urls, '--team', 'ml', '--input', input, '--replicas', replicas].concat([
            '--speedup',
            SPEEDUP,
            '--no-progress',
            '-o',
            'json',
            ...extra,
          ]),
          { env },
        ),
      );
    },
    counts() {
      const counts = new Map<number, number>();
      if (!existsSync(log)) return counts;
      for (const line of readFileSync(log, 'utf8').split('\n'))
        if (line) counts.set(Number(line), (counts.get(Number(line)) ?? 0) + 1);
      return counts;
    },
    async stop() {
      await Promise.all(all.map((p) => p.kill('SIGKILL')));
    },
  };
}

/** Items of `0..n-1` that ran other than exactly once: `{ lost, twice }`. */
export function tally(counts: ReadonlyMap<number, number>, n: number): { lost: number[]; twice: number[] } {
  const lost: number[] = [];
  const twice: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = counts.get(i) ?? 0;
    if (c === 0) lost.push(i);
    if (c > 1) twice.push(i);
  }
  return { lost, twice };
}

/**
 * Watches the execution log from now (call it just before a fault) until `stop()`: the longest time
 * with no new execution start, and how long after the start of the watch the first new one came.
 */
export function watchStalls(stack: FaultStack): {
  stop(): { longestGapMs: number; firstStartMs: number | undefined };
} {
  const from = Date.now();
  let last = from;
  let seen = [...stack.counts().values()].reduce((a, b) => a + b, 0);
  let longest = 0;
  let first: number | undefined;
  const timer = setInterval(() => {
    let total = 0;
    for (const c of stack.counts().values()) total += c;
    if (total <= seen) return;
    const now = Date.now();
    first ??= now - from;
    longest = Math.max(longest, now - last);
    seen = total;
    last = now;
  }, 50);
  return {
    stop() {
      clearInterval(timer);
      return { longestGapMs: longest, firstStartMs: first };
    },
  };
}
