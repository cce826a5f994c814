/**
 * Lineage: every execution's task and code hash, input and output content hashes, resources asked and
 * granted, placement, attempt, cost and parent. Records go to the runtime store's log in batches (one
 * log entry holds up to `BATCH` records); `gantry lineage` reads them back into a provenance graph.
 */
import { randomUUID } from 'node:crypto';
import {
  type ExecutionStartRecord,
  type LineageRecord,
  lineageRecord,
  type RunRecord,
  runRecord,
  runtimeLogRecord,
  type RuntimeLogRecord,
  type Store,
} from '../protocol/index.ts';
import { formatUsd } from './cost.ts';

export { lineageRecord, runRecord };
export type { LineageRecord, RunRecord };

const BATCH = 512;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Buffers lineage records and appends them in batches; `flush` makes what was recorded durable. */
export class LineageWriter {
  #buffer: RuntimeLogRecord[] = [];
  #writing: Promise<void> = Promise.resolve();
  /** Encoded batches whose write failed, written first by the next flush, under the same ids. */
  #failed: { data: Uint8Array; id: string }[] = [];
  /** Ids of the batches: this writer's own, then a count. */
  readonly #idPrefix = randomUUID();
  #entries = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: Store,
    private readonly delayMs = 50,
  ) {}

  /** The last write that failed, if any (records are kept and written again by the next flush). */
  lastError: Error | undefined;

  record(rec: LineageRecord): void {
    this.#push(rec);
  }

  /** An execution's start (placed), in the same log: history shows it running until its record. */
  start(rec: Omit<ExecutionStartRecord, 'kind'>): void {
    this.#push({ kind: 'start', ...rec });
  }

  /** A run's summary, in the same log (history reads runs from it). */
  run(summary: RunRecord): void {
    this.#push({ kind: 'run', ...summary });
  }

  #push(rec: RuntimeLogRecord): void {
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
    const events: { data: Uint8Array; id: string }[] = [];
    if (records.length > 0) {
      for (let i = 0; i < records.length; i += BATCH)
        events.push({
          data: encoder.encode(JSON.stringify(records.slice(i, i + BATCH))),
          id: `${this.#idPrefix}-${++this.#entries}`,
        });
    }
    if (events.length > 0 || this.#failed.length > 0) {
      // One failed write must not stop the ones after it: its batches are written with the next flush.
      this.#writing = this.#writing
        .catch(() => undefined)
        .then(() => {
          const batch = [...this.#failed, ...events];
          this.#failed = [];
          // Under their ids: a batch stored though its acknowledgement was lost is not stored twice.
          return this.store
            .appendMany(
              batch.map((b) => b.data),
              batch.map((b) => b.id),
            )
            .then(
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

/**
 * Every lineage record in the store, oldest first, and the runs' summaries (the last one written for
 * each run); entries that are not schema-checked records are skipped and counted.
 */
export async function readLineage(
  store: Store,
): Promise<{ records: LineageRecord[]; runs: RunRecord[]; skipped: number }> {
  const records: LineageRecord[] = [];
  const runs = new Map<string, RunRecord>();
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
      const r = runtimeLogRecord.safeParse(raw);
      if (!r.success) skipped++;
      else if ('kind' in r.data && r.data.kind === 'start') continue;
      else if ('kind' in r.data) {
        const { kind: _kind, ...run } = r.data;
        runs.set(run.run, run);
      } else records.push(r.data);
    }
  }
  return { records, runs: [...runs.values()], skipped };
}

/** An edge of the provenance graph. */
export interface LineageEdge {
  from: string;
  to: string;
  /**
   * `input`: artifact → execution that read it; `output`: execution → artifact it wrote; `call`:
   * parent execution → the task call it made.
   */
  kind: 'input' | 'output' | 'call';
  /** For input and output edges: false when the artifact is inside the value, not the whole of it. */
  whole?: boolean;
}

/** The provenance graph around a run or an artifact. */
export interface LineageGraph {
  /** What was asked for: a run id or an artifact hash. */
  root: string;
  executions: LineageRecord[];
  edges: LineageEdge[];
}

/** The artifacts an execution read: its whole input, and the artifacts found inside it. */
export function inputsOf(r: LineageRecord): string[] {
  return r.input === 'none' ? [...(r.refs?.input ?? [])] : [r.input, ...(r.refs?.input ?? [])];
}

/** The artifacts an execution wrote: its whole output, and the artifacts found inside it. */
export function outputsOf(r: LineageRecord): string[] {
  return r.output ? [r.output, ...(r.refs?.output ?? [])] : [...(r.refs?.output ?? [])];
}

/**
 * Builds the graph for `target` from lineage records (the replay that the history store's recursive
 * queries answer without reading every record): a run id (its executions, and upstream of their
 * inputs), or an artifact hash (what produced it, and what produced their inputs, across runs). Data
 * flows through every artifact referenced anywhere inside an input or output. With `downstream`,
 * follows consumers instead; `depth` stops after that many executions along a path.
 */
export function lineageGraph(
  records: readonly LineageRecord[],
  target: string,
  opts: { downstream?: boolean; depth?: number } = {},
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
    for (const h of new Set(outputsOf(r))) push(producers, h, r);
    for (const h of new Set(inputsOf(r))) push(consumers, h, r);
  }
  const down = opts.downstream ?? false;
  const maxDepth = opts.depth ?? Infinity;
  const picked = new Map<string, LineageRecord>();
  // Breadth-first, so that `depth` counts the shortest path to each execution.
  let frontier: string[] = [];
  const seen = new Set<string>();
  const runExecs = all.filter((r) => r.run === target);
  if (runExecs.length > 0) {
    for (const r of runExecs) picked.set(r.execution, r);
    frontier = runExecs.flatMap((r) => (down ? outputsOf(r) : inputsOf(r)));
  } else if (producers.has(target) || consumers.has(target)) frontier = [target];
  else return undefined;
  for (let depth = 0; frontier.length > 0 && depth < maxDepth; depth++) {
    const next: string[] = [];
    for (const artifact of frontier) {
      if (seen.has(artifact)) continue;
      seen.add(artifact);
      for (const r of (down ? consumers : producers).get(artifact) ?? []) {
        if (picked.has(r.execution)) continue;
        picked.set(r.execution, r);
        next.push(...(down ? outputsOf(r) : inputsOf(r)));
      }
    }
    frontier = next;
  }
  const executions = [...picked.values()].sort(
    (a, b) => a.startedAt - b.startedAt || a.execution.localeCompare(b.execution),
  );
  return { root: target, executions, edges: edgesOf(executions) };
}

/** Data-flow edges of these executions, and call edges between those of them that called each other. */
export function edgesOf(executions: readonly LineageRecord[]): LineageEdge[] {
  const ids = new Set(executions.map((r) => r.execution));
  const edges: LineageEdge[] = [];
  for (const r of executions) {
    if (r.parent && ids.has(r.parent)) edges.push({ from: r.parent, to: r.execution, kind: 'call' });
    for (const h of new Set(inputsOf(r)))
      edges.push({ from: h, to: r.execution, kind: 'input', whole: h === r.input });
    for (const h of new Set(outputsOf(r)))
      edges.push({ from: r.execution, to: h, kind: 'output', whole: h === r.output });
  }
  return edges;
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
      `${'  '.repeat(depth)}${r.task} [${r.execution}] ${outcome}  in ${short(r.input)} → out ${r.output ? short(r.output) : '-'}  ${where}${r.attempt > 0 ? `  attempt ${r.attempt + 1}` : ''}${r.preemptions > 0 ? `  preempted ×${r.preemptions}` : ''}  ${formatUsd(r.costUsd)}  run ${r.run}`,
    );
    for (const c of children.get(r.execution) ?? []) line(c, depth + 1);
  };
  for (const r of roots) line(r, 0);
  return lines.join('\n');
}

/**
 * The graph in Graphviz DOT: executions as boxes, artifacts as ellipses, data flow as solid edges
 * (dotted for an artifact inside a value), parent → child calls as dashed edges.
 */
export function lineageDot(graph: LineageGraph): string {
  const q = (s: string) => JSON.stringify(s);
  const out = ['digraph lineage {', '  rankdir=LR;'];
  const artifacts = new Set<string>();
  for (const r of graph.executions)
    out.push(
      `  ${q(r.execution)} [shape=box,label=${q(`${r.task}\n${r.execution}${r.error ? '\nFAILED' : ''}`)}];`,
    );
  for (const e of graph.edges) {
    if (e.kind === 'input') artifacts.add(e.from);
    if (e.kind === 'output') artifacts.add(e.to);
  }
  for (const a of artifacts) out.push(`  ${q(a)} [shape=ellipse,label=${q(short(a))}];`);
  for (const e of graph.edges) {
    const style =
      e.kind === 'call' ? ' [style=dashed,label="calls"]' : e.whole === false ? ' [style=dotted]' : '';
    out.push(`  ${q(e.from)} -> ${q(e.to)}${style};`);
  }
  out.push('}');
  return out.join('\n');
}
