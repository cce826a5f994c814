/**
 * Artifacts in the history: the values that went by reference to an artifact store, when each was
 * last used (read or written by an execution, or a run's input or output), and which were collected.
 * `gantry artifacts gc` asks this before it deletes anything from a store.
 */
import type { Queryable } from './db.ts';

/** What the history knows of a value. */
export interface ArtifactUse {
  hash: string;
  /** The last time an execution or a run read or wrote it (epoch ms); null when nothing did. */
  lastUsed: number | null;
  /** Executions that read or wrote it. */
  refs: number;
}

/**
 * When each of `hashes` was last used, by what the history holds (a run still going counts as using
 * its input now).
 *
 * @example
 * const use = await artifactUse(db, ['sha256:3fa9…'], Date.now());
 */
export async function artifactUse(
  db: Queryable,
  hashes: readonly string[],
  now: number,
): Promise<Map<string, ArtifactUse>> {
  const rows = await db.query<{ hash: string; last_used: number | null; refs: number }>(
    `select h.hash,
       greatest(
         (select max(e.ended_at) from lineage_refs r join executions e on e.execution = r.execution
          where r.hash = h.hash),
         (select max(coalesce(ended_at, $2)) from runs where input = h.hash or output = h.hash)) as last_used,
       (select count(*) from lineage_refs r where r.hash = h.hash)::int as refs
     from (select unnest($1::text[]) collate "C" as hash) h`,
    [hashes, now],
  );
  return new Map(rows.map((r) => [r.hash, { hash: r.hash, lastUsed: r.last_used, refs: r.refs }]));
}

/** Records that these values were deleted from the store at `at`. */
export async function markCollected(
  db: Queryable,
  values: readonly { ref: string; bytes: number; storedAt: number }[],
  at: number,
): Promise<void> {
  if (values.length === 0) return;
  await db.query(
    `insert into artifacts (hash, bytes, first_seen, last_seen, deleted_at)
     select h, b, s, s, $4 from unnest($1::text[], $2::bigint[], $3::bigint[]) as v(h, b, s)
     on conflict (hash) do update set deleted_at = excluded.deleted_at`,
    [values.map((v) => v.ref), values.map((v) => v.bytes), values.map((v) => Math.round(v.storedAt)), at],
  );
}

/** A stored value as the API lists it. */
export interface ArtifactRow {
  hash: string;
  bytes: number;
  firstSeen: number;
  lastSeen: number;
  lastUsed: number | null;
  refs: number;
  deletedAt: number | null;
}

/**
 * Values stored by reference, newest first; with `unusedSince`, only those not used since then and not
 * collected (what a gc with that retention would delete).
 */
export async function listArtifacts(
  db: Queryable,
  opts: { unusedSince?: number; limit?: number } = {},
): Promise<ArtifactRow[]> {
  return db.query<ArtifactRow>(
    `select * from (
       select a.hash, a.bytes, a.first_seen as "firstSeen", a.last_seen as "lastSeen", a.deleted_at as "deletedAt",
         (select max(e.ended_at) from lineage_refs r join executions e on e.execution = r.execution
          where r.hash = a.hash) as "lastUsed",
         (select count(*) from lineage_refs r where r.hash = a.hash)::int as refs
       from artifacts a) x
     where $1::bigint is null or (x."deletedAt" is null and coalesce(x."lastUsed", x."lastSeen") < $1)
     order by x."lastSeen" desc limit $2`,
    [opts.unusedSince ?? null, opts.limit ?? 100],
  );
}
