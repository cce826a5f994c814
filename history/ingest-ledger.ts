/**
 * The broker's cost ledger into the history, set-wise: a batch's node lifetimes and usages are matched
 * in memory, in log order, against the lifetimes the database holds for the nodes the batch touches,
 * and then written with one statement per table. What that gives is what applying the records one by
 * one would: a node start while its node has an open lifetime is a restarted broker's repeat and is
 * dropped; a usage goes to its node's nearest lifetime known when it was written; a new lifetime takes
 * the usages of its node that had none.
 */
import type { Queryable } from './db.ts';
import type { NodeLifeRecord, UsageRecord } from './records.ts';

/** A lifetime as the batch sees it. */
interface Life {
  id: number;
  start: number;
  end: number | null;
  ended: string | null;
  /** Made by this batch (inserted), else in the database (its end updated when it ends here). */
  fresh: boolean;
  endedHere: boolean;
}

/** A usage's lifetime by the history's rule: the nearest in time, then the earliest, then the first made. */
function nearest(lives: readonly Life[], u: UsageRecord): Life | undefined {
  let best: Life | undefined;
  let bestD = Infinity;
  for (const l of lives) {
    const d = Math.max(0, l.start - u.end, u.start - (l.end ?? u.start));
    if (
      d < bestD ||
      (d === bestD && best && (l.start < best.start || (l.start === best.start && l.id < best.id)))
    ) {
      best = l;
      bestD = d;
    }
  }
  return best;
}

const nodeKey = (cluster: string, node: string) => `${cluster}\u0000${node}`;

/**
 * Matches the batch's records; returns each usage's lifetime id (or null) in `usages` order, having
 * written the new lifetimes, the ends of the old, and the adoption of earlier batches' orphans. The
 * caller inserts the usages and widens the lifetimes by them ({@link widenLives}).
 */
export async function matchLives(
  tx: Queryable,
  records: readonly (UsageRecord | NodeLifeRecord)[],
): Promise<{ usages: UsageRecord[]; lifeOf: (number | null)[] }> {
  const touched = new Map<string, { cluster: string; node: string }>();
  for (const r of records) touched.set(nodeKey(r.cluster, r.node), { cluster: r.cluster, node: r.node });
  const nodes = [...touched.values()];
  const known = await tx.query<{ id: number; cluster: string; node: string; s: number; e: number | null }>(
    `select l.id, l.cluster, l.node, l.start_at as s, l.end_at as e
     from node_lives l join unnest($1::text[], $2::text[]) as n(cluster, node)
       on l.cluster = n.cluster and l.node = n.node`,
    [nodes.map((n) => n.cluster), nodes.map((n) => n.node)],
  );
  const lives = new Map<string, Life[]>();
  for (const k of known) {
    const list = lives.get(nodeKey(k.cluster, k.node)) ?? [];
    list.push({ id: k.id, start: k.s, end: k.e, ended: null, fresh: false, endedHere: false });
    lives.set(nodeKey(k.cluster, k.node), list);
  }
  const starts = records.filter((r) => r.kind === 'node-start').length;
  const ids = await nextIds(tx, 'node_lives', starts);
  const made: (NodeLifeRecord & { life: Life })[] = [];
  const usages: UsageRecord[] = [];
  const lifeOf: (number | null)[] = [];
  /** This batch's usages without a lifetime, per node: the next lifetime of their node takes them. */
  const orphans = new Map<string, number[]>();
  /** Nodes whose earlier batches' orphans a lifetime of this batch takes (the first one does). */
  const adopters = new Map<string, Life>();
  for (const r of records) {
    const key = nodeKey(r.cluster, r.node);
    const list = lives.get(key) ?? [];
    lives.set(key, list);
    if (r.kind === 'usage') {
      const l = nearest(list, r);
      lifeOf.push(l?.id ?? null);
      usages.push(r);
      if (!l) orphans.set(key, [...(orphans.get(key) ?? []), usages.length - 1]);
      continue;
    }
    const open = list.find((l) => l.end === null);
    if (r.kind === 'node-end') {
      if (open) Object.assign(open, { end: r.at, ended: r.ended ?? 'gone', endedHere: true });
      continue;
    }
    if (open) continue;
    const life: Life = {
      id: ids.shift()!,
      start: r.at,
      end: null,
      ended: null,
      fresh: true,
      endedHere: false,
    };
    list.push(life);
    made.push({ ...r, life });
    for (const i of orphans.get(key) ?? []) lifeOf[i] = life.id;
    orphans.delete(key);
    if (!adopters.has(key)) adopters.set(key, life);
  }
  if (made.length > 0)
    await tx.query(
      `insert into node_lives (id, cluster, node, pool, instance_type, capacity_type, gpu_model, gpu_count,
         price, start_at, end_at, ended)
       select * from unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
         $7::text[], $8::float8[], $9::float8[], $10::bigint[], $11::bigint[], $12::text[])`,
      [
        made.map((m) => m.life.id),
        made.map((m) => m.cluster),
        made.map((m) => m.node),
        made.map((m) => m.pool),
        made.map((m) => m.instanceType),
        made.map((m) => m.capacityType),
        made.map((m) => m.gpuModel ?? ''),
        made.map((m) => m.gpuCount),
        made.map((m) => m.pricePerHour),
        made.map((m) => m.at),
        made.map((m) => m.life.end),
        made.map((m) => m.life.ended),
      ],
    );
  const ended = [...lives.values()].flat().filter((l) => !l.fresh && l.endedHere);
  if (ended.length > 0)
    await tx.query(
      `update node_lives l set end_at = v.e, ended = v.why
       from unnest($1::bigint[], $2::bigint[], $3::text[]) as v(id, e, why) where l.id = v.id`,
      [ended.map((l) => l.id), ended.map((l) => l.end), ended.map((l) => l.ended)],
    );
  if (adopters.size > 0) {
    const ad = [...adopters.entries()].map(([k, l]) => ({ ...touched.get(k)!, id: l.id }));
    const adopted = await tx.query<{ id: number; s: number; e: number; c: number }>(
      `with a as (
         update usage u set life_id = v.id from unnest($1::text[], $2::text[], $3::bigint[]) as v(cluster, node, id)
         where u.cluster = v.cluster and u.node = v.node and u.life_id is null
         returning v.id, u.start_at, u.end_at, u.cost)
       select id, min(start_at) as s, max(end_at) as e, sum(cost) as c from a group by id`,
      [ad.map((a) => a.cluster), ad.map((a) => a.node), ad.map((a) => a.id)],
    );
    if (adopted.length > 0)
      await widenLives(tx, new Map(adopted.map((a) => [a.id, { s: a.s, e: a.e, c: a.c }])));
  }
  return { usages, lifeOf };
}

/** `n` new ids from the sequence of `table`'s `id` column. */
export async function nextIds(tx: Queryable, table: string, n: number): Promise<number[]> {
  if (n === 0) return [];
  const rows = await tx.query<{ id: number }>(
    `select nextval(pg_get_serial_sequence($1, 'id'))::bigint as id from generate_series(1, $2)`,
    [table, n],
  );
  return rows.map((r) => r.id);
}

/** Lifetimes widen to cover their tasks, and sum what their tasks cost. */
export async function widenLives(
  tx: Queryable,
  perLife: Map<number, { s: number; e: number; c: number }>,
): Promise<void> {
  if (perLife.size === 0) return;
  const ls = [...perLife.entries()];
  await tx.query(
    `update node_lives l set task_start = least(coalesce(l.task_start, v.s), v.s),
       task_end = greatest(coalesce(l.task_end, v.e), v.e), task_cost = l.task_cost + v.c
     from unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::float8[]) as v(id, s, e, c) where l.id = v.id`,
    [ls.map(([id]) => id), ls.map(([, a]) => a.s), ls.map(([, a]) => a.e), ls.map(([, a]) => a.c)],
  );
}
