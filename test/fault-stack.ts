/**
 * Gantry as its users run it, for fault tests: `gantry broker` and one `gantry agent` per cluster of
 * the test platform as processes over NATS, and `gantry run` of a workflow of many short tasks whose
 * executions are counted (each start appends its item to a log the agents are told of).
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type GantryProcess, startGantry } from './gantry-process.ts';

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
  /**
   * What the brokers and agents logged from `since` (epoch ms) on, one line each with its time from
   * `since`: how a recovery went (per-cycle lines left out).
   */
  timeline(since: number): string[];
  stop(): Promise<void>;
}

/** Starts a broker and the platform's agents on `urls` (comma-separated for a cluster). */
export async function startFaultStack(
  urls: string,
  opts: { replicas?: number; heartbeatMs?: number } = {},
): Promise<FaultStack> {
  const dir = await mkdtemp(join(tmpdir(), 'gantry-faults-'));
  const log = join(dir, 'executions.log');
  const env = { ...process.env, GANTRY_LOG: 'info', GANTRY_FAULT_LOG: log };
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
        { env },
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
    timeline(since) {
      const named = [
        ...brokers.map((p, i) => [`broker${i}`, p] as const),
        ...agents.map((p, i) => [`agent${i}`, p] as const),
      ];
      const lines: { at: number; text: string }[] = [];
      for (const [name, p] of named)
        for (const line of p.output().split('\n')) {
          const e = logLine(line);
          if (!e || e.time < since || QUIET.has(e.msg)) continue;
          const { time: _t, level: _l, pid: _p, hostname: _h, msg, ...rest } = e;
          lines.push({ at: e.time - since, text: `${name} ${msg} ${JSON.stringify(rest)}` });
        }
      return lines.sort((a, b) => a.at - b.at).map((l) => `+${l.at} ms ${l.text}`);
    },
    async stop() {
      await Promise.all(all.map((p) => p.kill('SIGKILL')));
    },
  };
}

/** Log messages left out of a timeline: one per cycle or lease. */
const QUIET = new Set(['cycle', 'placed', 'launched', 'lease ended']);

/** A pino JSON line, or undefined. */
function logLine(line: string): ({ time: number; msg: string } & Record<string, unknown>) | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const e = JSON.parse(line) as { time?: unknown; msg?: unknown } & Record<string, unknown>;
    return typeof e.time === 'number' && typeof e.msg === 'string'
      ? { ...e, time: e.time, msg: e.msg }
      : undefined;
  } catch {
    return undefined;
  }
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
 * with no new execution start (and when, from the start of the watch, it began), and how long after
 * the start of the watch the first new one came.
 */
export function watchStalls(stack: FaultStack): {
  /** When the watch started (epoch ms). */
  from: number;
  stop(): { longestGapMs: number; firstStartMs: number | undefined; longestFromMs: number };
} {
  const from = Date.now();
  let last = from;
  let seen = [...stack.counts().values()].reduce((a, b) => a + b, 0);
  let longest = 0;
  let longestFrom = 0;
  let first: number | undefined;
  const timer = setInterval(() => {
    let total = 0;
    for (const c of stack.counts().values()) total += c;
    if (total <= seen) return;
    const now = Date.now();
    first ??= now - from;
    if (now - last > longest) {
      longest = now - last;
      longestFrom = last - from;
    }
    seen = total;
    last = now;
  }, 50);
  return {
    from,
    stop() {
      clearInterval(timer);
      return { longestGapMs: longest, firstStartMs: first, longestFromMs: longestFrom };
    },
  };
}
