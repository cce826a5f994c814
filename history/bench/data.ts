/**
 * The benchmark's history, generated as a busy platform writes it and streamed (never all in memory): a
 * cost ledger in log order (node lifetimes churning in a few pools, tasks ending on them every minute,
 * runs of 40 executions) and lineage (each run a chain of tasks that read the last one's output inside
 * a bigger input, each run starting from the previous run's result). Tasks are packed into their
 * nodes' slots, so shares never add up past a node, as the broker places them.
 */
import type { LedgerEntry, NodeLife, TaskUsage } from '../../broker/index.ts';
import type { LineageRecord } from '../../protocol/index.ts';
import { POOLS as PLATFORM_POOLS } from '../../test/history-data.ts';
import { mulberry32 } from '../../test/random.ts';

const MIN = 60_000;
const POOLS = [
  ...PLATFORM_POOLS,
  {
    cluster: 'onprem',
    pool: 'a100',
    instanceType: 'dgx-a100',
    capacityType: 'reserved',
    gpuModel: 'A100',
    gpuCount: 8,
    price: 12,
  },
] as const;
const TEAMS = ['research', 'product', 'ml', 'search', 'ads'];
const WORKFLOWS = ['nightly', 'train', 'eval', 'etl'];

interface Node {
  life: NodeLife;
  pool: (typeof POOLS)[number];
  /** When each of its slots is free again: tasks are packed, never past the node's capacity. */
  slots: number[];
}

/** Tasks a node of the pool holds at once (each its share of it). */
const slotsOf = (p: (typeof POOLS)[number]) => (p.gpuCount > 0 ? p.gpuCount : 4);

/**
 * Yields ledger entries in log order from `t0`: `perMinute` task usages a minute on about `nodes` live
 * nodes, one node replaced every minute.
 */
export function* ledgerStream(
  seed: number,
  t0: number,
  perMinute = 100,
  nodes = 300,
): Generator<LedgerEntry> {
  const rand = mulberry32(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
  const live: Node[] = [];
  let made = 0;
  let execution = 0;
  const start = (at: number): NodeLife => {
    const pool = pick(POOLS);
    const life: NodeLife = {
      kind: 'node-start',
      at,
      cluster: pool.cluster,
      pool: pool.pool,
      node: `${pool.pool}-${(made++).toString(36)}`,
      instanceType: pool.instanceType,
      capacityType: pool.capacityType,
      gpuModel: pool.gpuModel,
      gpuCount: pool.gpuCount,
      pricePerHour: pool.price,
    };
    live.push({ life, pool, slots: new Array<number>(slotsOf(pool)).fill(at) });
    return life;
  };
  for (let i = 0; i < nodes; i++) yield start(t0 - Math.floor(rand() * 180) * MIN);
  for (let minute = 0; ; minute++) {
    const at = t0 + minute * MIN;
    const gone = live.splice(Math.floor(rand() * live.length), 1)[0]!;
    yield { ...gone.life, kind: 'node-end', at, ended: rand() < 0.2 ? 'preempted' : 'gone' };
    yield start(at);
    for (let k = 0; k < perMinute; k++) {
      const { life, pool, slots } = pick(live);
      const long = rand() < 0.05;
      const len = long ? Math.floor((1 + rand() * 2) * 60 * MIN) : Math.floor((0.5 + rand() * 40) * MIN);
      const slot = Math.floor(rand() * slots.length);
      // A slot still busy shortens the task to the time it was free (as the broker would place it).
      const begin = Math.min(at - 1000, Math.max(life.at, slots[slot]!, at - len));
      slots[slot] = at;
      const gpus = pool.gpuCount > 0 ? 1 : 0;
      const n = execution++;
      const usage: TaskUsage = {
        kind: 'usage',
        at,
        cluster: life.cluster,
        pool: life.pool,
        node: life.node,
        instanceType: life.instanceType,
        capacityType: life.capacityType,
        gpuModel: life.gpuModel,
        lease: `l-${n.toString(36)}`,
        request: `r-${n.toString(36)}`,
        gpus,
        cpuMilli: 1000 + Math.floor(rand() * 8) * 500,
        memoryMiB: 2048 * (1 + Math.floor(rand() * 8)),
        share: 1 / slots.length,
        nodePricePerHour: pool.price,
        team: TEAMS[Math.floor(n / 40) % TEAMS.length]!,
        workflow: WORKFLOWS[Math.floor(n / 40) % WORKFLOWS.length],
        run: `run-${Math.floor(n / 40).toString(36)}`,
        task: `t${n % 4}`,
        attempt: 0,
        start: begin,
        end: at,
        ended: 'succeeded',
      };
      yield usage;
    }
  }
}

const hash = (s: string) => `sha256:${Buffer.from(s).toString('hex').padEnd(64, '0').slice(0, 64)}`;

/** The output hash of step `k` of run `r` (what {@link lineageStream} writes). */
export const stepOutput = (r: number, k: number) => hash(`${r.toString(36)}.o${k}`);

/** Yields lineage records: runs of a driver and `hops` chained steps, each run reading the last run's result. */
export function* lineageStream(hops = 5): Generator<LineageRecord> {
  let carried = hash('source');
  for (let r = 0; ; r++) {
    const run = `run-${r.toString(36)}`;
    const base = {
      run,
      codeHash: 'c',
      attempt: 0,
      asked: {},
      override: false,
      preemptions: 0,
      costUsd: 0,
      cached: false,
      warm: false,
    };
    yield {
      ...base,
      execution: `${run}-w`,
      task: 'pipeline',
      input: hash(`${run}.args`),
      refs: { input: [carried] },
      output: hash(`${run}.result`),
      startedAt: r * 100,
      endedAt: r * 100 + 99,
    };
    let prev = carried;
    for (let k = 0; k < hops; k++) {
      const output = stepOutput(r, k);
      yield {
        ...base,
        execution: `${run}-${k}`,
        parent: `${run}-w`,
        task: `step${k}`,
        input: hash(`${run}.i${k}`),
        refs: { input: [prev] },
        output,
        startedAt: r * 100 + k + 1,
        endedAt: r * 100 + k + 2,
      };
      prev = output;
    }
    carried = prev;
  }
}

/** The first `n` values of a generator. */
export function* take<T>(gen: Iterator<T>, n: number): Generator<T> {
  for (let i = 0; i < n; i++) {
    const next = gen.next();
    if (next.done) return;
    yield next.value;
  }
}
