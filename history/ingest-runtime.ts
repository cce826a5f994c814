/**
 * The runtime's records into the history: run summaries (the batch's last one of each run wins),
 * executions (every attempt), their data-flow refs (every artifact an input or output holds, and
 * whether it is the whole value) and the values stored apart.
 *
 * As with the ledger (ingest-usage.ts), a batch's rows are worked out without the database
 * ({@link prepareRuntime}, while the batch before is written) as binary COPY data. Executions and
 * refs none of which is in the table yet (the common case: each is written once, and the offset keeps
 * a batch from being applied twice) are copied straight in; otherwise, and for runs and artifacts,
 * the transaction stages a table's rows in a temporary table and merges them with one statement.
 */
import type { ExecutionStartRecord, LineageRecord, RunRecord, RuntimeLogRecord } from '../protocol/index.ts';
import { BinaryCopy, copyNew, stage } from './copy-binary.ts';
import type { Queryable } from './db.ts';

/** A batch's runtime records as COPY data per table (`null`: no rows). */
export interface PreparedRuntime {
  runs: Buffer | null;
  /** Ends whose start is not in the batch first: the rows most likely in the table already. */
  executions: Buffer | null;
  /** Refs of executions whose first attempt is in the batch: new unless the batch was read before. */
  firstRefs: Buffer | null;
  /** Refs of executions seen only at later attempts: their first attempt's refs may be there. */
  refs: Buffer | null;
  artifacts: Buffer | null;
}

const RUN_COLUMNS = [
  'run_id',
  'workflow',
  'module',
  'team',
  'status',
  'started_at',
  'ended_at',
  'input',
  'output',
  'error',
  'cost_usd',
  'executions',
] as const;

const EXECUTION_COLUMNS = [
  'execution',
  'attempt',
  'run_id',
  'parent',
  'task',
  'code_hash',
  'request_id',
  'input',
  'output',
  'error_name',
  'error_message',
  'asked',
  'override',
  'cluster',
  'pool',
  'node',
  'capacity_type',
  'price_per_hour',
  'cpu_milli',
  'memory_mib',
  'gpu_milli',
  'gpu_model',
  'preemptions',
  'started_at',
  'ended_at',
  'cost_usd',
  'cached',
  'warm',
] as const;

const ARTIFACT_COLUMNS = ['hash', 'bytes', 'first_seen', 'last_seen'] as const;

/** A run summary's row. */
function writeRun(b: BinaryCopy, r: RunRecord): void {
  b.row(RUN_COLUMNS.length).text(r.run).text(r.workflow).text(r.module).text(r.team).text(r.status);
  b.int8(r.startedAt).int8OrNull(r.endedAt).text(r.input).textOrNull(r.output).textOrNull(r.error);
  b.float8(r.costUsd).int4(r.executions);
}

/** An attempt's row: ended (its lineage record), or started (no end, output or cost yet). */
function writeExecution(b: BinaryCopy, r: LineageRecord | ExecutionStartRecord): void {
  const end = 'kind' in r ? undefined : r;
  const p = r.placement;
  b.row(EXECUTION_COLUMNS.length).text(r.execution).int4(r.attempt).text(r.run).textOrNull(r.parent);
  b.text(r.task)
    .text(r.codeHash)
    .text(r.attempt === 0 ? r.execution : `${r.execution}-a${r.attempt}`);
  b.text(r.input).textOrNull(end?.output).textOrNull(end?.error?.name).textOrNull(end?.error?.message);
  b.jsonb(JSON.stringify(r.asked)).bool(r.override);
  b.textOrNull(p?.cluster).textOrNull(p?.pool).textOrNull(p?.node).textOrNull(p?.capacityType);
  b.float8OrNull(p?.pricePerHour).float8OrNull(p?.cpuMilli).float8OrNull(p?.memoryMiB);
  b.float8OrNull(p?.gpuMilli).textOrNull(p?.gpuModel);
  b.int4(end?.preemptions ?? 0)
    .int8(r.startedAt)
    .int8OrNull(end?.endedAt)
    .float8(end?.costUsd ?? 0);
  b.bool(end?.cached ?? false).bool(end?.warm ?? false);
}

/** An artifact an execution read (`i`) or wrote (`o`): whole when any record says so. */
function addRef(own: Map<string, boolean>, role: 'i' | 'o', hash: string, whole: boolean): void {
  if (hash === 'none' || hash === '') return;
  const key = role + hash;
  if (whole) own.set(key, true);
  else if (!own.has(key)) own.set(key, false);
}

/**
 * Works out a batch's rows: the last summary of each run; the last record of each attempt (a batch
 * written again holds it twice), an end superseding the start of the same attempt; each execution's
 * refs once, whole when any of them says so; each stored value's first and last sighting.
 */
export function prepareRuntime(records: readonly RuntimeLogRecord[]): PreparedRuntime {
  const runs = new Map<string, RunRecord>();
  const ends = new Map<string, LineageRecord>();
  const starts = new Map<string, ExecutionStartRecord>();
  /** Each execution's refs, by role and hash (`i<hash>`, `o<hash>`) → whole. */
  const refs = new Map<string, Map<string, boolean>>();
  /** Executions with their first attempt in the batch. */
  const first = new Set<string>();
  const stored = new Map<string, { bytes: number; first: number; last: number }>();
  for (const r of records) {
    if ('kind' in r) {
      if (r.kind === 'start') starts.set(`${r.execution}\u0000${r.attempt}`, r);
      else runs.set(r.run, r);
      continue;
    }
    ends.set(`${r.execution}\u0000${r.attempt}`, r);
    if (r.attempt === 0) first.add(r.execution);
    let own = refs.get(r.execution);
    if (!own) refs.set(r.execution, (own = new Map()));
    addRef(own, 'i', r.input, true);
    if (r.output) addRef(own, 'o', r.output, true);
    for (const h of r.refs?.input ?? []) addRef(own, 'i', h, false);
    for (const h of r.refs?.output ?? []) addRef(own, 'o', h, false);
    for (const s of r.stored ?? []) {
      const a = stored.get(s.hash);
      stored.set(s.hash, {
        bytes: s.bytes,
        first: Math.min(a?.first ?? r.startedAt, r.startedAt),
        last: Math.max(a?.last ?? r.endedAt, r.endedAt),
      });
    }
  }
  const out: PreparedRuntime = { runs: null, executions: null, firstRefs: null, refs: null, artifacts: null };
  if (runs.size > 0) {
    const b = new BinaryCopy(runs.size * 200).header();
    for (const r of runs.values()) writeRun(b, r);
    out.runs = b.end();
  }
  if (ends.size + starts.size > 0) {
    const b = new BinaryCopy((ends.size + starts.size) * 600).header();
    for (const [k, r] of ends) if (!starts.has(k)) writeExecution(b, r);
    for (const [k, r] of ends) if (starts.has(k)) writeExecution(b, r);
    for (const [k, r] of starts) if (!ends.has(k)) writeExecution(b, r);
    out.executions = b.end();
  }
  if (refs.size > 0) {
    const firsts = new BinaryCopy(first.size * 360).header();
    const later = new BinaryCopy((refs.size - first.size) * 360).header();
    for (const [execution, own] of refs) {
      const b = first.has(execution) ? firsts : later;
      for (const [ref, whole] of own) b.row(4).text(ref.slice(1)).char(ref[0]!).text(execution).bool(whole);
    }
    if (first.size > 0) out.firstRefs = firsts.end();
    if (refs.size > first.size) out.refs = later.end();
  }
  if (stored.size > 0) {
    const b = new BinaryCopy(stored.size * 120).header();
    for (const [hash, s] of stored) b.row(4).text(hash).int8(s.bytes).int8(s.first).int8(s.last);
    out.artifacts = b.end();
  }
  return out;
}

/** In an update of `runs` by a driver's summary: the column as the broker's end left it, if it did. */
const KEEP_END = (col: string) =>
  `case when excluded.status = 'running' and runs.status <> 'running' then runs.${col} else excluded.${col} end`;

/** Stages prepared rows (COPY into `ingest_<table>`) and merges them into their tables. */
export async function applyRuntime(tx: Queryable, p: PreparedRuntime): Promise<void> {
  if (p.runs) {
    await stage(tx, 'ingest_runs', 'like runs', p.runs, RUN_COLUMNS);
    await tx.query(
      `insert into runs (${RUN_COLUMNS.join(', ')}) select ${RUN_COLUMNS.join(', ')} from ingest_runs
       on conflict (run_id) do update set workflow = excluded.workflow, module = excluded.module,
         team = excluded.team, started_at = excluded.started_at, input = excluded.input,
         output = excluded.output, cost_usd = excluded.cost_usd, executions = excluded.executions,
         -- A run the broker ended (its driver died) stays ended when its start is read after its end.
         status = ${KEEP_END('status')},
         ended_at = ${KEEP_END('ended_at')},
         error = ${KEEP_END('error')}`,
    );
  }
  // Rows none of which is there yet are copied straight in; else staged and merged.
  if (p.executions && !(await copyNew(tx, `executions (${EXECUTION_COLUMNS.join(', ')})`, p.executions))) {
    await stage(tx, 'ingest_executions', 'like executions', p.executions, EXECUTION_COLUMNS);
    // An end replaces what is there (its start, or itself written again); a start read after its end
    // (or again) changes nothing: an end is never undone.
    await tx.query(
      `insert into executions (${EXECUTION_COLUMNS.join(', ')})
       select ${EXECUTION_COLUMNS.join(', ')} from ingest_executions
       on conflict (execution, attempt) do update set ${EXECUTION_COLUMNS.slice(2)
         .map((c) => `${c} = excluded.${c}`)
         .join(', ')}
       where excluded.ended_at is not null`,
    );
  }
  if (p.firstRefs && !(await copyNew(tx, 'lineage_refs', p.firstRefs))) await mergeRefs(tx, p.firstRefs);
  if (p.refs) await mergeRefs(tx, p.refs);
  if (p.artifacts) {
    await stage(tx, 'ingest_artifacts', 'like artifacts', p.artifacts, ARTIFACT_COLUMNS);
    await tx.query(
      `insert into artifacts (${ARTIFACT_COLUMNS.join(', ')}) select ${ARTIFACT_COLUMNS.join(', ')}
       from ingest_artifacts
       on conflict (hash) do update set first_seen = least(artifacts.first_seen, excluded.first_seen),
         last_seen = greatest(artifacts.last_seen, excluded.last_seen), deleted_at = null`,
    );
  }
}

/** Refs merged: those there already stay as they are. */
async function mergeRefs(tx: Queryable, refs: Buffer): Promise<void> {
  await stage(tx, 'ingest_lineage_refs', 'like lineage_refs', refs);
  await tx.query('insert into lineage_refs select * from ingest_lineage_refs on conflict do nothing');
}
