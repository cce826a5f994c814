/**
 * The broker's lease events into the history: one row per lease in `placements` (where, at what
 * price, why, and the state it reached), the batch's events of each lease merged first.
 */
import type { Queryable } from './db.ts';
import type { LifecycleRecord } from './records.ts';

/** Lease events become placements: where, at what price, why, and the state they reached. */
export async function applyLeases(tx: Queryable, events: readonly LifecycleRecord[]): Promise<void> {
  if (events.length === 0) return;
  const merged = new Map<string, Record<string, unknown>>();
  for (const e of events) {
    const m = merged.get(e.id) ?? { lease_id: e.id, placed_at: e.at };
    if (e.state === 'placed') Object.assign(m, { placed_at: e.at });
    for (const [col, v] of [
      ['request_id', e.request],
      ['team', e.team],
      ['cluster', e.cluster],
      ['pool', e.pool],
      ['node', e.node],
      ['price_per_hour', e.pricePerHour],
      ['why', e.why],
      ['reason', e.reason],
    ] as const)
      if (v !== undefined && v !== null) m[col] = v;
    m.state = e.state;
    m.state_at = e.at;
    merged.set(e.id, m);
  }
  const ms = [...merged.values()];
  const col = (c: string) => ms.map((m) => m[c] ?? null);
  await tx.query(
    `insert into placements (lease_id, request_id, team, cluster, pool, node, price_per_hour, why, placed_at, state, state_at, reason)
     select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::float8[],
       $8::text[], $9::bigint[], $10::text[], $11::bigint[], $12::text[])
     on conflict (lease_id) do update set
       request_id = coalesce(excluded.request_id, placements.request_id),
       team = coalesce(excluded.team, placements.team),
       node = coalesce(excluded.node, placements.node),
       price_per_hour = coalesce(excluded.price_per_hour, placements.price_per_hour),
       why = coalesce(excluded.why, placements.why),
       reason = coalesce(excluded.reason, placements.reason),
       state = excluded.state, state_at = excluded.state_at`,
    [
      col('lease_id'),
      col('request_id'),
      col('team'),
      ms.map((m) => m.cluster ?? ''),
      ms.map((m) => m.pool ?? ''),
      col('node'),
      col('price_per_hour'),
      col('why'),
      col('placed_at'),
      col('state'),
      col('state_at'),
      col('reason'),
    ],
  );
}
