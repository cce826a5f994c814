/**
 * Ledgers and lineage as a busy platform writes them, for the history tests and benchmark: node
 * lifetimes in a few pools with tasks packed onto them (some overlapping beyond the node, some longer
 * than an hour, some on nodes the ledger never saw start), and lineage chains across runs.
 */
import type { LedgerEntry, NodeLife, TaskUsage } from '../broker/index.ts';
import type { LineageRecord } from '../protocol/index.ts';
import { mulberry32 } from './random.ts';

const H = 3_600_000;

/** The pools of the generated ledgers. */
export const POOLS = [
  {
    cluster: 'aws',
    pool: 'cpu-spot',
    instanceType: 'm7i.2xlarge',
    capacityType: 'spot',
    gpuModel: null,
    gpuCount: 0,
    price: 0.12,
  },
  {
    cluster: 'aws',
    pool: 'h100',
    instanceType: 'p5.48xlarge',
    capacityType: 'on-demand',
    gpuModel: 'H100',
    gpuCount: 8,
    price: 98.32,
  },
  {
    cluster: 'gcp',
    pool: 'l4',
    instanceType: 'g2-standard-8',
    capacityType: 'spot',
    gpuModel: 'L4',
    gpuCount: 1,
    price: 0.85,
  },
] as const;
const TEAMS = ['research', 'product', 'ml'];
const WORKFLOWS = ['nightly', 'train', 'eval'];

/**
 * A ledger in log order: `nodes` lifetimes from `t0`, each with tasks on it; shares sometimes add up past
 * the node, a task now and then runs for hours, and a few run on nodes without a lifetime.
 */
export function randomLedger(seed: number, nodes: number, t0: number): LedgerEntry[] {
  const rand = mulberry32(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
  const timed: LedgerEntry[] = [];
  for (let n = 0; n < nodes; n++) {
    const p = pick(POOLS);
    const start = t0 + Math.floor(rand() * 30 * H);
    const life = Math.floor((0.2 + rand() * 6) * H);
    const name = `${p.pool}-${n % Math.max(1, Math.floor(nodes * 0.8))}`;
    const ref = {
      cluster: p.cluster,
      pool: p.pool,
      node: name,
      instanceType: p.instanceType,
      capacityType: p.capacityType,
      gpuModel: p.gpuModel,
    };
    const open = rand() < 0.05;
    const startEntry: NodeLife = {
      kind: 'node-start',
      at: start,
      ...ref,
      gpuCount: p.gpuCount,
      pricePerHour: p.price,
    };
    timed.push(startEntry);
    if (!open)
      timed.push({
        ...startEntry,
        kind: 'node-end',
        at: start + life,
        ended: rand() < 0.2 ? 'preempted' : 'gone',
      });
    const tasks = 1 + Math.floor(rand() * 8);
    for (let t = 0; t < tasks; t++) {
      const long = rand() < 0.1;
      const a = start + Math.floor(rand() * life * 0.9);
      const len = long ? Math.floor((1 + rand() * 3) * H) : Math.floor(rand() * 50 * 60_000);
      const b = Math.min(open ? a + len : start + life, a + len);
      timed.push(
        usage(
          rand,
          ref,
          p.price,
          p.gpuCount,
          a,
          b,
          pick(TEAMS),
          pick(WORKFLOWS),
          `run-${n % 17}`,
          `t${t % 4}`,
        ),
      );
    }
  }
  // Tasks on nodes the ledger never saw (an agent's node the broker had not heard of).
  for (let i = 0; i < Math.max(1, nodes / 20); i++) {
    const p = pick(POOLS);
    const a = t0 + Math.floor(rand() * 30 * H);
    const ref = {
      cluster: p.cluster,
      pool: p.pool,
      node: `ghost-${i}`,
      instanceType: p.instanceType,
      capacityType: p.capacityType,
      gpuModel: p.gpuModel,
    };
    timed.push(
      usage(
        rand,
        ref,
        p.price,
        p.gpuCount,
        a,
        a + Math.floor(rand() * 40 * 60_000),
        pick(TEAMS),
        undefined,
        undefined,
        undefined,
      ),
    );
  }
  // The broker writes node starts and ends as it sees them, and usages when the task ends.
  return timed.sort((x, y) => x.at - y.at || (x.kind === 'node-start' ? -1 : 0));
}

function usage(
  rand: () => number,
  ref: Pick<TaskUsage, 'cluster' | 'pool' | 'node' | 'instanceType' | 'capacityType' | 'gpuModel'>,
  price: number,
  gpuCount: number,
  start: number,
  end: number,
  team: string,
  workflow: string | undefined,
  run: string | undefined,
  task: string | undefined,
): TaskUsage {
  const gpus = gpuCount > 0 ? Math.ceil(rand() * gpuCount) : 0;
  const share = Math.min(1, Math.max(gpuCount > 0 ? gpus / gpuCount : 0, 0.1 + rand() * 0.6));
  const lease = `l-${Math.floor(rand() * 1e12).toString(36)}`;
  return {
    kind: 'usage',
    at: end,
    lease,
    request: `r-${lease}`,
    ...ref,
    gpus,
    cpuMilli: 1000 + Math.floor(rand() * 8) * 500,
    memoryMiB: 2048 * (1 + Math.floor(rand() * 8)),
    share,
    nodePricePerHour: price,
    team,
    workflow,
    run,
    task,
    attempt: 0,
    start,
    end,
    ended: 'succeeded',
  };
}

/** Log entries of records: JSON arrays of up to `per` records, as the broker and the runtime write them. */
export function asLog(
  records: readonly unknown[],
  per = 100,
  firstSeq = 1,
): { seq: number; data: Uint8Array }[] {
  const out: { seq: number; data: Uint8Array }[] = [];
  const enc = new TextEncoder();
  for (let i = 0; i < records.length; i += per)
    out.push({ seq: firstSeq + out.length, data: enc.encode(JSON.stringify(records.slice(i, i + per))) });
  return out;
}

/** A lineage record with defaults. */
export function lineage(
  over: Partial<LineageRecord> & Pick<LineageRecord, 'execution' | 'input'>,
): LineageRecord {
  return {
    run: 'r1',
    task: 't',
    codeHash: 'c',
    attempt: 0,
    asked: {},
    override: false,
    preemptions: 0,
    startedAt: 0,
    endedAt: 1,
    costUsd: 0,
    cached: false,
    warm: false,
    ...over,
  };
}

/**
 * Lineage of `runs` runs, each a chain of `hops` tasks where each step reads the last one's output
 * inside a bigger input (`{ data, lr }`), and the next run starts from the previous run's result.
 */
export function lineageChains(runs: number, hops: number): LineageRecord[] {
  const out: LineageRecord[] = [];
  const h = (s: string) => `sha256:${Buffer.from(s).toString('hex').padEnd(64, '0').slice(0, 64)}`;
  let carried = h('source');
  for (let r = 0; r < runs; r++) {
    const run = `run-${r}`;
    out.push(
      lineage({
        run,
        execution: `${run}-w`,
        task: 'pipeline',
        input: h(`${run}-args`),
        refs: { input: [carried] },
        output: h(`${run}-result`),
        startedAt: r * 100,
      }),
    );
    let prev = carried;
    for (let k = 0; k < hops; k++) {
      const output = h(`${run}-out-${k}`);
      out.push(
        lineage({
          run,
          execution: `${run}-${k}`,
          parent: `${run}-w`,
          task: `step${k}`,
          input: h(`${run}-in-${k}`),
          refs: { input: [prev] },
          output,
          startedAt: r * 100 + k + 1,
        }),
      );
      prev = output;
    }
    carried = prev;
  }
  return out;
}
