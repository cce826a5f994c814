/**
 * Charge keys: what a usage is charged to (team, workflow, run, task, cluster, pool, GPU, capacity
 * type, instance type, node price), one row per distinct combination in `charge_keys`, and its group
 * without run and task in `group_keys`. A key is found by its group's id and its run and task (one
 * index of an int and two short texts); the ids of the keys and groups a recent batch committed are
 * kept in memory, a bounded number of them.
 */
import { LRUCache } from 'lru-cache';
import { BinaryCopy, stage } from './copy-binary.ts';
import type { Queryable } from './db.ts';
import type { UsageRecord } from './records.ts';

/** A charge key's id and its group's. */
export interface KeyId {
  id: number;
  group: number;
}

/** Ids a batch made or found, not yet committed: only a committed batch's may serve the next. */
export type FreshKeys = Map<string, KeyId>;

const GROUP_COLS = [
  'team',
  'workflow',
  'cluster',
  'pool',
  'gpu_model',
  'capacity_type',
  'instance_type',
  'node_price',
] as const;

const SEP = '\u0000';

/** A usage's group as a cache key (the columns of {@link GROUP_COLS}, in order). */
export const groupName = (u: UsageRecord): string =>
  `${u.team}${SEP}${u.workflow ?? ''}${SEP}${u.cluster}${SEP}${u.pool}${SEP}${u.gpuModel ?? ''}${SEP}` +
  `${u.capacityType}${SEP}${u.instanceType}${SEP}${u.nodePricePerHour}`;

const keyName = (group: number, run: string, task: string) => `${group}${SEP}${run}${SEP}${task}`;

/** The ids of charge keys and their groups, inserting the new ones. */
export class ChargeKeys {
  /** Key (`<group id>\0<run>\0<task>`) or group (`g\0<group name>`) → ids, for committed ones. */
  readonly #ids = new LRUCache<string, KeyId>({ max: 200_000 });

  /** Keeps the ids of a committed batch. */
  commit(fresh: FreshKeys): void {
    for (const [k, v] of fresh) this.#ids.set(k, v);
  }

  /**
   * The key ids of `usages`, in order, given each usage's group name ({@link groupName}); new groups
   * and keys are inserted (and kept in `fresh`).
   */
  async resolve(
    tx: Queryable,
    usages: readonly UsageRecord[],
    groups: readonly string[],
    fresh: FreshKeys,
  ): Promise<KeyId[]> {
    const groupIds = await this.#groups(tx, usages, groups, fresh);
    const out = new Array<KeyId>(usages.length);
    const missing: { i: number; name: string }[] = [];
    const seen = new Set<string>();
    for (let i = 0; i < usages.length; i++) {
      const u = usages[i]!;
      const name = keyName(groupIds[i]!, u.run ?? '', u.task ?? '');
      const known = this.#ids.get(name) ?? fresh.get(name);
      if (known) out[i] = known;
      else if (!seen.has(name)) {
        seen.add(name);
        missing.push({ i, name });
      }
    }
    if (missing.length > 0) {
      const rows = new BinaryCopy(missing.length * 120).header();
      for (const m of missing) {
        const u = usages[m.i]!;
        rows
          .row(11)
          .text(u.team)
          .text(u.workflow ?? '')
          .text(u.run ?? '')
          .text(u.task ?? '');
        rows
          .text(u.cluster)
          .text(u.pool)
          .text(u.gpuModel ?? '')
          .text(u.capacityType)
          .text(u.instanceType);
        rows.float8(u.nodePricePerHour).int4(groupIds[m.i]!);
      }
      await stage(
        tx,
        'ingest_charge_keys',
        `team text, workflow text, run_id text, task text, cluster text, pool text, gpu_model text,
         capacity_type text, instance_type text, node_price float8, group_id int`,
        rows.end(),
      );
      // One statement: new keys inserted, known ones (the cache had let them go) returned too.
      const found = await tx.query<{ id: number; group_id: number; run_id: string; task: string }>(
        `insert into charge_keys (team, workflow, run_id, task, cluster, pool, gpu_model, capacity_type,
           instance_type, node_price, group_id)
         select * from ingest_charge_keys
         on conflict (group_id, run_id, task) do update set group_id = excluded.group_id
         returning id, group_id, run_id, task`,
      );
      for (const f of found)
        fresh.set(keyName(f.group_id, f.run_id, f.task), { id: f.id, group: f.group_id });
      for (let i = 0; i < usages.length; i++) {
        if (out[i]) continue;
        const u = usages[i]!;
        out[i] = fresh.get(keyName(groupIds[i]!, u.run ?? '', u.task ?? ''))!;
      }
    }
    return out;
  }

  /** The group ids of `usages`, in order, inserting the new groups. */
  async #groups(
    tx: Queryable,
    usages: readonly UsageRecord[],
    groups: readonly string[],
    fresh: FreshKeys,
  ): Promise<number[]> {
    const out = new Array<number>(usages.length);
    const missing = new Map<string, UsageRecord>();
    for (let i = 0; i < usages.length; i++) {
      const name = `g${SEP}${groups[i]!}`;
      const known = this.#ids.get(name) ?? fresh.get(name);
      if (known) out[i] = known.id;
      else missing.set(name, usages[i]!);
    }
    if (missing.size === 0) return out;
    const gs = [...missing.values()];
    const found = await tx.query<{ id: number } & Record<(typeof GROUP_COLS)[number], string | number>>(
      `insert into group_keys (${GROUP_COLS.join(', ')})
       select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
         $8::float8[])
       on conflict (${GROUP_COLS.join(', ')}) do update set team = excluded.team
       returning *`,
      [
        gs.map((u) => u.team),
        gs.map((u) => u.workflow ?? ''),
        gs.map((u) => u.cluster),
        gs.map((u) => u.pool),
        gs.map((u) => u.gpuModel ?? ''),
        gs.map((u) => u.capacityType),
        gs.map((u) => u.instanceType),
        gs.map((u) => u.nodePricePerHour),
      ],
    );
    for (const f of found)
      fresh.set(`g${SEP}${GROUP_COLS.map((c) => f[c]).join(SEP)}`, { id: f.id, group: f.id });
    for (let i = 0; i < usages.length; i++)
      if (out[i] === undefined) out[i] = fresh.get(`g${SEP}${groups[i]!}`)!.id;
    return out;
  }
}
