/**
 * The runtime's records into the history: run summaries (the batch's last one of each run wins),
 * executions (every attempt), their data-flow refs (every artifact an input or output holds, and
 * whether it is the whole value) and the values stored apart.
 */
import type { ExecutionStartRecord, LineageRecord, RunRecord, RuntimeLogRecord } from '../protocol/index.ts';
import type { Queryable } from './db.ts';

/** In an update of `runs` by a driver's summary: the column as the broker's end left it, if it did. */
const KEEP_END = (col: string) =>
  `case when excluded.status = 'running' and runs.status <> 'running' then runs.${col} else excluded.${col} end`;

/** Runtime records: runs (the last summary wins), executions, their data-flow refs, stored values. */
export async function applyRuntime(tx: Queryable, records: readonly RuntimeLogRecord[]): Promise<void> {
  const runs = new Map<string, RunRecord>();
  const execs: LineageRecord[] = [];
  const starts: ExecutionStartRecord[] = [];
  for (const r of records) {
    if (!('kind' in r)) execs.push(r);
    else if (r.kind === 'start') starts.push(r);
    else runs.set(r.run, r);
  }
  if (runs.size > 0) {
    const rs = [...runs.values()];
    await tx.query(
      `insert into runs (run_id, workflow, module, team, status, started_at, ended_at, input, output, error, cost_usd, executions)
       select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[],
         $8::text[], $9::text[], $10::text[], $11::float8[], $12::int[])
       on conflict (run_id) do update set workflow = excluded.workflow, module = excluded.module,
         team = excluded.team, started_at = excluded.started_at, input = excluded.input,
         output = excluded.output, cost_usd = excluded.cost_usd, executions = excluded.executions,
         -- A run the broker ended (its driver died) stays ended when its start is read after its end.
         status = ${KEEP_END('status')},
         ended_at = ${KEEP_END('ended_at')},
         error = ${KEEP_END('error')}`,
      [
        rs.map((r) => r.run),
        rs.map((r) => r.workflow),
        rs.map((r) => r.module),
        rs.map((r) => r.team),
        rs.map((r) => r.status),
        rs.map((r) => r.startedAt),
        rs.map((r) => r.endedAt ?? null),
        rs.map((r) => r.input),
        rs.map((r) => r.output ?? null),
        rs.map((r) => r.error ?? null),
        rs.map((r) => r.costUsd),
        rs.map((r) => r.executions),
      ],
    );
  }
  // The last record of each attempt wins (a batch written again holds it twice); an end supersedes
  // the start of the same attempt, in this batch or an earlier one, and a start read after its end is
  // dropped by the conflict: an end is never undone.
  const key = (r: { execution: string; attempt: number }) => `${r.execution}\u0000${r.attempt}`;
  const ends = new Map(execs.map((r) => [key(r), r]));
  const fresh = new Map(starts.filter((r) => !ends.has(key(r))).map((r) => [key(r), r]));
  if (fresh.size > 0)
    await insertExecutions(
      tx,
      [...fresh.values()].map((r) => ({
        ...r,
        endedAt: null,
        costUsd: 0,
        preemptions: 0,
        cached: false,
        warm: false,
      })),
      'do nothing',
    );
  if (execs.length === 0) return;
  await insertExecutions(
    tx,
    [...ends.values()],
    `(execution, attempt) do update set ${EXECUTION_COLUMNS.slice(2)
      .map((c) => `${c} = excluded.${c}`)
      .join(', ')}`,
  );
  const refs = new Map<string, { hash: string; role: string; execution: string; whole: boolean }>();
  const ref = (hash: string, role: 'i' | 'o', execution: string, whole: boolean) => {
    if (hash === 'none' || hash === '') return;
    const id = `${hash}|${role}|${execution}`;
    if (!refs.has(id) || whole) refs.set(id, { hash, role, execution, whole });
  };
  const stored = new Map<string, { bytes: number; first: number; last: number }>();
  for (const r of execs) {
    ref(r.input, 'i', r.execution, true);
    if (r.output) ref(r.output, 'o', r.execution, true);
    for (const h of r.refs?.input ?? []) ref(h, 'i', r.execution, false);
    for (const h of r.refs?.output ?? []) ref(h, 'o', r.execution, false);
    for (const s of r.stored ?? []) {
      const a = stored.get(s.hash);
      stored.set(s.hash, {
        bytes: s.bytes,
        first: Math.min(a?.first ?? r.startedAt, r.startedAt),
        last: Math.max(a?.last ?? r.endedAt, r.endedAt),
      });
    }
  }
  const rs = [...refs.values()];
  await tx.query(
    `insert into lineage_refs (hash, role, execution, whole)
     select * from unnest($1::text[], $2::"char"[], $3::text[], $4::boolean[]) on conflict do nothing`,
    [rs.map((r) => r.hash), rs.map((r) => r.role), rs.map((r) => r.execution), rs.map((r) => r.whole)],
  );
  if (stored.size > 0) {
    const ss = [...stored.entries()];
    await tx.query(
      `insert into artifacts (hash, bytes, first_seen, last_seen)
       select * from unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])
       on conflict (hash) do update set first_seen = least(artifacts.first_seen, excluded.first_seen),
         last_seen = greatest(artifacts.last_seen, excluded.last_seen), deleted_at = null`,
      [ss.map(([h]) => h), ss.map(([, s]) => s.bytes), ss.map(([, s]) => s.first), ss.map(([, s]) => s.last)],
    );
  }
}

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

/** An execution row to write: an ended attempt, or a started one (no end yet). */
type ExecutionIn = Omit<LineageRecord, 'endedAt'> & { endedAt: number | null };

/** Writes execution rows in one statement; `conflict` says what a row already there becomes. */
async function insertExecutions(tx: Queryable, execs: readonly ExecutionIn[], conflict: string) {
  const p = (r: ExecutionIn) => r.placement;
  await tx.query(
    `insert into executions (${EXECUTION_COLUMNS.join(', ')})
     select * from unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
       $8::text[], $9::text[], $10::text[], $11::text[], $12::jsonb[], $13::boolean[], $14::text[], $15::text[],
       $16::text[], $17::text[], $18::float8[], $19::float8[], $20::float8[], $21::float8[], $22::text[],
       $23::int[], $24::bigint[], $25::bigint[], $26::float8[], $27::boolean[], $28::boolean[])
     on conflict ${conflict}`,
    [
      execs.map((r) => r.execution),
      execs.map((r) => r.attempt),
      execs.map((r) => r.run),
      execs.map((r) => r.parent ?? null),
      execs.map((r) => r.task),
      execs.map((r) => r.codeHash),
      execs.map((r) => (r.attempt === 0 ? r.execution : `${r.execution}-a${r.attempt}`)),
      execs.map((r) => r.input),
      execs.map((r) => r.output ?? null),
      execs.map((r) => r.error?.name ?? null),
      execs.map((r) => r.error?.message ?? null),
      execs.map((r) => JSON.stringify(r.asked)),
      execs.map((r) => r.override),
      execs.map((r) => p(r)?.cluster ?? null),
      execs.map((r) => p(r)?.pool ?? null),
      execs.map((r) => p(r)?.node ?? null),
      execs.map((r) => p(r)?.capacityType ?? null),
      execs.map((r) => p(r)?.pricePerHour ?? null),
      execs.map((r) => p(r)?.cpuMilli ?? null),
      execs.map((r) => p(r)?.memoryMiB ?? null),
      execs.map((r) => p(r)?.gpuMilli ?? null),
      execs.map((r) => p(r)?.gpuModel ?? null),
      execs.map((r) => r.preemptions),
      execs.map((r) => r.startedAt),
      execs.map((r) => r.endedAt),
      execs.map((r) => r.costUsd),
      execs.map((r) => r.cached),
      execs.map((r) => r.warm),
    ],
  );
}
