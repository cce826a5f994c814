/**
 * `gantry lineage` in SQL: upstream and downstream across runs by recursive queries over the data-flow
 * refs (every artifact read or written, whole or found inside a value), and parent → child calls.
 * Targets are run ids or artifact hashes, or unambiguous prefixes of either.
 */
import type { LineageRecord } from '../protocol/index.ts';
import { edgesOf, type LineageGraph } from '../runtime/index.ts';
import type { Queryable } from './db.ts';
import { HistoryQueryError } from './errors.ts';

/** How far a walk goes when no depth is asked for (cycles end there too). */
export const MAX_DEPTH = 100;

/** What a target names. */
export type Target = { kind: 'run'; id: string } | { kind: 'artifact'; hash: string };

const like = (s: string) => `${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

/**
 * Resolves a target: a run id, an artifact hash (`sha256:…` or bare hex), or a prefix of either that
 * names exactly one. Undefined when nothing matches; `HistoryQueryError` when a prefix is ambiguous.
 */
export async function resolveTarget(db: Queryable, target: string): Promise<Target | undefined> {
  const runs = await db.query<{ run_id: string }>(
    `select run_id from runs where run_id = $1
     union select distinct run_id from executions where run_id = $1`,
    [target],
  );
  if (runs.length > 0) return { kind: 'run', id: target };
  const hex = /^[0-9a-f]{4,64}$/.test(target) ? `sha256:${target}` : target;
  if (/^sha256:[0-9a-f]*$/.test(hex)) {
    const hashes = await db.query<{ hash: string }>(
      `select distinct hash from lineage_refs where hash like $1 order by hash limit 11`,
      [like(hex)],
    );
    if (hashes.length === 1) return { kind: 'artifact', hash: hashes[0]!.hash };
    if (hashes.length > 1)
      throw ambiguous(
        target,
        hashes.map((h) => h.hash),
      );
  }
  const prefixed = await db.query<{ run_id: string }>(
    `select run_id from runs where run_id like $1 order by run_id limit 11`,
    [like(target)],
  );
  if (prefixed.length === 1) return { kind: 'run', id: prefixed[0]!.run_id };
  if (prefixed.length > 1)
    throw ambiguous(
      target,
      prefixed.map((r) => r.run_id),
    );
  return undefined;
}

function ambiguous(target: string, matches: string[]): HistoryQueryError {
  const shown = matches.slice(0, 10).join(', ');
  return new HistoryQueryError(
    `'${target}' matches ${matches.length > 10 ? 'more than 10' : matches.length}: ${shown}: give more of it`,
    'target',
  );
}

/**
 * The graph around `target` (see `lineageGraph` in the runtime, which replays the records): for a run,
 * its executions and what fed them (or what was made from them, `downstream`); for an artifact, what
 * produced it and from what, across runs. `depth` bounds the executions along a path.
 *
 * @example
 * const g = await sqlLineage(db, 'sha256:3fa9', { downstream: true, depth: 5 });
 */
export async function sqlLineage(
  db: Queryable,
  target: string,
  opts: { downstream?: boolean; depth?: number } = {},
): Promise<LineageGraph | undefined> {
  const t = await resolveTarget(db, target);
  if (!t) return undefined;
  const down = opts.downstream ?? false;
  const depth = Math.min(opts.depth ?? MAX_DEPTH, MAX_DEPTH);
  // Upstream: an artifact's producers ('o'), then their inputs ('i'); downstream the other way.
  const [to, from] = down ? ["'i'", "'o'"] : ["'o'", "'i'"];
  const start =
    t.kind === 'run'
      ? `select distinct r.hash, 0 as depth from executions e join lineage_refs r on r.execution = e.execution
           and r.role = ${from} where e.run_id = $1`
      : `select $1::text collate "C" as hash, 0 as depth`;
  const rows = await db.query<{ execution: string }>(
    `with recursive walk(hash, depth) as (
       ${start}
       union
       select n.hash, w.depth + 1
       from walk w
       join lineage_refs s on s.hash = w.hash and s.role = ${to}
       join lineage_refs n on n.execution = s.execution and n.role = ${from}
       where w.depth + 1 < $2
     )
     select distinct s.execution from walk w join lineage_refs s on s.hash = w.hash and s.role = ${to}
     where w.depth < $2
     ${t.kind === 'run' ? 'union select execution from executions where run_id = $1' : ''}`,
    [t.kind === 'run' ? t.id : t.hash, depth],
  );
  const executions = await records(
    db,
    rows.map((r) => r.execution),
  );
  executions.sort((a, b) => a.startedAt - b.startedAt || a.execution.localeCompare(b.execution));
  return { root: t.kind === 'run' ? t.id : t.hash, executions, edges: edgesOf(executions) };
}

/** The final attempt of each execution, as a lineage record (with its refs). */
export async function records(db: Queryable, executions: readonly string[]): Promise<LineageRecord[]> {
  if (executions.length === 0) return [];
  const rows = await db.query<ExecutionRow>(
    `select distinct on (execution) * from executions where execution = any($1::text[])
     order by execution, attempt desc`,
    [executions],
  );
  const refs = await db.query<{ execution: string; role: string; hash: string }>(
    `select execution, role::text as role, hash from lineage_refs
     where execution = any($1::text[]) and not whole order by hash`,
    [executions],
  );
  const inside = new Map<string, { input: string[]; output: string[] }>();
  for (const r of refs) {
    const e = inside.get(r.execution) ?? { input: [], output: [] };
    (r.role === 'i' ? e.input : e.output).push(r.hash);
    inside.set(r.execution, e);
  }
  return rows.map((r) => toRecord(r, inside.get(r.execution)));
}

/** A row of `executions`. */
export interface ExecutionRow {
  execution: string;
  attempt: number;
  run_id: string;
  parent: string | null;
  task: string;
  code_hash: string;
  request_id: string;
  input: string;
  output: string | null;
  error_name: string | null;
  error_message: string | null;
  asked: LineageRecord['asked'];
  override: boolean;
  cluster: string | null;
  pool: string | null;
  node: string | null;
  capacity_type: string | null;
  price_per_hour: number | null;
  cpu_milli: number | null;
  memory_mib: number | null;
  gpu_milli: number | null;
  gpu_model: string | null;
  preemptions: number;
  started_at: number;
  /** Null while it runs (written at its start, completed at its end). */
  ended_at: number | null;
  cost_usd: number;
  cached: boolean;
  warm: boolean;
}

/** An execution row as the lineage record it was ingested from. */
export function toRecord(r: ExecutionRow, refs?: { input: string[]; output: string[] }): LineageRecord {
  return {
    run: r.run_id,
    execution: r.execution,
    ...(r.parent ? { parent: r.parent } : {}),
    task: r.task,
    codeHash: r.code_hash,
    attempt: r.attempt,
    input: r.input,
    ...(r.output ? { output: r.output } : {}),
    ...(refs && (refs.input.length > 0 || refs.output.length > 0)
      ? {
          refs: {
            ...(refs.input.length > 0 ? { input: refs.input } : {}),
            ...(refs.output.length > 0 ? { output: refs.output } : {}),
          },
        }
      : {}),
    ...(r.error_name ? { error: { name: r.error_name, message: r.error_message ?? '' } } : {}),
    asked: r.asked,
    override: r.override,
    ...(r.cluster
      ? {
          placement: {
            cluster: r.cluster,
            pool: r.pool ?? '',
            node: r.node ?? '',
            capacityType: r.capacity_type ?? '',
            pricePerHour: r.price_per_hour ?? 0,
            cpuMilli: r.cpu_milli ?? 0,
            memoryMiB: r.memory_mib ?? 0,
            gpuMilli: r.gpu_milli ?? 0,
            gpuModel: r.gpu_model,
          },
        }
      : {}),
    preemptions: r.preemptions,
    startedAt: r.started_at,
    // A running execution has not ended: until it does, its end is its start.
    endedAt: r.ended_at ?? r.started_at,
    costUsd: r.cost_usd,
    cached: r.cached,
    warm: r.warm,
  };
}
