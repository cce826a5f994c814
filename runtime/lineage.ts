/**
 * Lineage: every execution's task and code hash, input and output content hashes, resources asked and
 * granted, placement, attempt, cost and parent. Records go to the runtime store's log in batches (one
 * log entry holds up to `BATCH` records); `gantry lineage` reads them back into a provenance graph.
 */
import { z } from 'zod';
import { resourcesMsg, type Store } from '../protocol/index.ts';

/** One execution (one attempt of one task call). */
export const lineageRecord = z.object({
  run: z.string(),
  execution: z.string(),
  parent: z.string().optional(),
  task: z.string(),
  codeHash: z.string(),
  attempt: z.int().nonnegative(),
  input: z.string(),
  output: z.string().optional(),
  error: z.object({ name: z.string(), message: z.string() }).optional(),
  asked: resourcesMsg,
  override: z.boolean(),
  placement: z
    .object({
      cluster: z.string(),
      pool: z.string(),
      node: z.string(),
      capacityType: z.string(),
      pricePerHour: z.number(),
      cpuMilli: z.number(),
      memoryMiB: z.number(),
      gpuMilli: z.number(),
      gpuModel: z.string().nullable(),
    })
    .optional(),
  /** Times the spot node under this execution was reclaimed and the broker placed it again. */
  preemptions: z.int().nonnegative(),
  startedAt: z.number(),
  endedAt: z.number(),
  costUsd: z.number().nonnegative(),
  cached: z.boolean(),
  /** Ran on a warm worker (no solve cycle). */
  warm: z.boolean(),
});
export type LineageRecord = z.output<typeof lineageRecord>;

/** A run's summary, kept in the runtime store under `run.<id>`. */
export const runRecord = z.object({
  run: z.string(),
  workflow: z.string(),
  module: z.string(),
  team: z.string(),
  status: z.enum(['running', 'succeeded', 'failed']),
  startedAt: z.number(),
  endedAt: z.number().optional(),
  input: z.string(),
  output: z.string().optional(),
  error: z.string().optional(),
  costUsd: z.number(),
  executions: z.int().nonnegative(),
});
export type RunRecord = z.output<typeof runRecord>;

const BATCH = 512;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Buffers lineage records and appends them in batches; `flush` makes what was recorded durable. */
export class LineageWriter {
  #buffer: LineageRecord[] = [];
  #writing: Promise<void> = Promise.resolve();
  /** Encoded batches whose write failed, written first by the next flush. */
  #failed: Uint8Array[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: Store,
    private readonly delayMs = 50,
  ) {}

  /** The last write that failed, if any (records are kept and written again by the next flush). */
  lastError: Error | undefined;

  record(rec: LineageRecord): void {
    this.#buffer.push(rec);
    if (this.#buffer.length >= BATCH * 8) this.#flushLater();
    else this.#timer ??= setTimeout(this.#flushLater, this.delayMs);
  }

  /** A flush nobody waits for: its failure is kept in `lastError` and the batch written next time. */
  readonly #flushLater = () => void this.flush().catch(() => undefined);

  /** Resolves once every record so far is durable. */
  flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const records = this.#buffer;
    this.#buffer = [];
    const events: Uint8Array[] = [];
    if (records.length > 0) {
      for (let i = 0; i < records.length; i += BATCH)
        events.push(encoder.encode(JSON.stringify(records.slice(i, i + BATCH))));
    }
    if (events.length > 0 || this.#failed.length > 0) {
      // One failed write must not stop the ones after it: its batches are written with the next flush.
      this.#writing = this.#writing
        .catch(() => undefined)
        .then(() => {
          const batch = [...this.#failed, ...events];
          this.#failed = [];
          return this.store.appendMany(batch).then(
            () => {
              this.lastError = undefined;
            },
            (err: Error) => {
              this.lastError = err;
              this.#failed = [...batch, ...this.#failed];
              throw err;
            },
          );
        });
    }
    return this.#writing;
  }
}

/** Every lineage record in the store, oldest first; malformed entries are skipped and counted. */
export async function readLineage(store: Store): Promise<{ records: LineageRecord[]; skipped: number }> {
  const records: LineageRecord[] = [];
  let skipped = 0;
  for await (const ev of store.readLog()) {
    let batch: unknown;
    try {
      batch = JSON.parse(decoder.decode(ev.data));
    } catch {
      skipped++;
      continue;
    }
    for (const raw of Array.isArray(batch) ? batch : [batch]) {
      const r = lineageRecord.safeParse(raw);
      if (r.success) records.push(r.data);
      else skipped++;
    }
  }
  return { records, skipped };
}

/** The provenance graph around a run or an artifact. */
export interface LineageGraph {
  /** What was asked for: a run id or an artifact hash. */
  root: string;
  executions: LineageRecord[];
  /** Edges artifact → execution (consumed) and execution → artifact (produced). */
  edges: { from: string; to: string; kind: 'input' | 'output' }[];
}

/**
 * Builds the graph for `target`: a run id (its executions, and upstream of its inputs), or an artifact
 * hash (what produced it, and what produced their inputs, across runs). With `downstream`, follows
 * consumers instead: executions that read the artifact, what they wrote, and so on.
 */
export function lineageGraph(
  records: readonly LineageRecord[],
  target: string,
  opts: { downstream?: boolean } = {},
): LineageGraph | undefined {
  // The final attempt of each execution speaks for it; earlier attempts stay in the records.
  const finals = new Map<string, LineageRecord>();
  for (const r of records) {
    const prev = finals.get(r.execution);
    if (!prev || r.attempt >= prev.attempt) finals.set(r.execution, r);
  }
  const all = [...finals.values()];
  const producers = new Map<string, LineageRecord[]>();
  const consumers = new Map<string, LineageRecord[]>();
  for (const r of all) {
    if (r.output) push(producers, r.output, r);
    push(consumers, r.input, r);
  }
  const picked = new Map<string, LineageRecord>();
  const seenArtifacts = new Set<string>();
  const walk = (artifact: string) => {
    if (seenArtifacts.has(artifact)) return;
    seenArtifacts.add(artifact);
    const next = (opts.downstream ? consumers : producers).get(artifact) ?? [];
    for (const r of next) {
      if (picked.has(r.execution)) continue;
      picked.set(r.execution, r);
      walk(opts.downstream ? (r.output ?? '') : r.input);
    }
  };
  const runExecs = all.filter((r) => r.run === target);
  if (runExecs.length > 0) {
    for (const r of runExecs) picked.set(r.execution, r);
    for (const r of runExecs) {
      if (opts.downstream) {
        if (r.output) walk(r.output);
      } else walk(r.input);
    }
  } else if (producers.has(target) || consumers.has(target)) {
    walk(target);
  } else return undefined;
  seenArtifacts.delete('');
  const executions = [...picked.values()].sort((a, b) => a.startedAt - b.startedAt);
  const edges: LineageGraph['edges'] = [];
  for (const r of executions) {
    edges.push({ from: r.input, to: r.execution, kind: 'input' });
    if (r.output) edges.push({ from: r.execution, to: r.output, kind: 'output' });
  }
  return { root: target, executions, edges };
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

const short = (hash: string) => hash.replace(/^sha256:/, '').slice(0, 12);

/** The graph as indented text: each execution under its parent, with hashes, placement and cost. */
export function lineageText(graph: LineageGraph): string {
  const byId = new Map(graph.executions.map((r) => [r.execution, r]));
  const children = new Map<string, LineageRecord[]>();
  const roots: LineageRecord[] = [];
  for (const r of graph.executions) {
    if (r.parent && byId.has(r.parent)) push(children, r.parent, r);
    else roots.push(r);
  }
  const lines: string[] = [];
  const line = (r: LineageRecord, depth: number) => {
    const where = r.placement
      ? `${r.placement.cluster}/${r.placement.pool} ${r.placement.capacityType} $${r.placement.pricePerHour.toFixed(2)}/h`
      : 'driver';
    const outcome = r.error ? `FAILED ${r.error.name}` : r.cached ? 'cached' : 'ok';
    lines.push(
      `${'  '.repeat(depth)}${r.task} [${r.execution}] ${outcome}  in ${short(r.input)} → out ${r.output ? short(r.output) : '-'}  ${where}${r.attempt > 0 ? `  attempt ${r.attempt + 1}` : ''}${r.preemptions > 0 ? `  preempted ×${r.preemptions}` : ''}  $${r.costUsd.toFixed(4)}  run ${r.run}`,
    );
    for (const c of children.get(r.execution) ?? []) line(c, depth + 1);
  };
  for (const r of roots) line(r, 0);
  return lines.join('\n');
}

/** The graph in Graphviz DOT: executions as boxes, artifacts as ellipses. */
export function lineageDot(graph: LineageGraph): string {
  const q = (s: string) => JSON.stringify(s);
  const out = ['digraph lineage {', '  rankdir=LR;'];
  const artifacts = new Set<string>();
  for (const r of graph.executions) {
    out.push(
      `  ${q(r.execution)} [shape=box,label=${q(`${r.task}\n${r.execution}${r.error ? '\nFAILED' : ''}`)}];`,
    );
    artifacts.add(r.input);
    if (r.output) artifacts.add(r.output);
  }
  for (const a of artifacts) out.push(`  ${q(a)} [shape=ellipse,label=${q(short(a))}];`);
  for (const e of graph.edges) out.push(`  ${q(e.from)} -> ${q(e.to)};`);
  out.push('}');
  return out.join('\n');
}
