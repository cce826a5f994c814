/**
 * Schema 1 → 2 on a database that holds history: what the migration makes of schema 1's tables (longer
 * usages only in `usage`, no group rollup) answers cost reports as a database ingested at schema 2 does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Dimension, LedgerEntry } from '../broker/index.ts';
import { asLog, randomLedger } from '../test/history-data.ts';
import { createTestDatabase } from '../test/postgres.ts';
import {
  type Db,
  DAY,
  HOUR,
  MIGRATIONS,
  migrate,
  openPostgres,
  SCHEMA_VERSION,
  sqlCostReport,
} from './index.ts';
import { Ingester } from './ingest.ts';

const T0 = Date.UTC(2026, 10, 2);
const TABLES = ['charge_keys', 'node_lives', 'usage', 'cost_hourly', 'ingest_offsets'];

describe('migrating schema 1 to 2 with history in it', () => {
  const dbs: Awaited<ReturnType<typeof createTestDatabase>>[] = [];
  let fresh: Db;
  let migrated: Db;
  // Usages of an hour or more charged to teams of their own: schema 1's rollup is schema 2's without them.
  const ledger: LedgerEntry[] = randomLedger(5, 120, T0).map((e) =>
    e.kind === 'usage' && e.end - e.start >= HOUR ? { ...e, team: `long-${e.team}` } : e,
  );

  beforeAll(async () => {
    for (let i = 0; i < 2; i++) dbs.push(await createTestDatabase('gantry_migrate'));
    fresh = await openPostgres(dbs[0]!.url);
    migrated = await openPostgres(dbs[1]!.url);
    await migrate(fresh);
    await new Ingester(fresh).apply('broker', asLog(ledger, 40));
    // Schema 1's tables as its ingest left them.
    await migrate(migrated, MIGRATIONS.slice(0, 1));
    for (const t of TABLES) {
      const where =
        t === 'cost_hourly'
          ? `where key_id not in (select id from charge_keys where team like 'long-%')`
          : '';
      const [{ rows }] = (await fresh.query(
        `select coalesce(json_agg(t), '[]') as rows from ${t} t ${where}`,
      )) as [{ rows: unknown[] }];
      await migrated.query(`insert into ${t} select * from json_populate_recordset(null::${t}, $1)`, [
        JSON.stringify(rows),
      ]);
    }
    expect(await migrate(migrated)).toEqual([2, 3, 4, 5, 6, 7]);
  }, 60_000);
  afterAll(async () => {
    await fresh?.close();
    await migrated?.close();
    for (const d of dbs) await d.drop();
  });

  it('reaches the current version, with longer usages to move into the rollups', async () => {
    expect(ledger.filter((e) => e.kind === 'usage' && e.team.startsWith('long-')).length).toBeGreaterThan(5);
    const [row] = await migrated.query<{ v: number }>('select max(version) as v from schema_migrations');
    expect(row!.v).toBe(SCHEMA_VERSION);
  });

  it('fills each team’s monthly spend from the usages it holds, as ingest at the current schema does', async () => {
    const spend = (db: Db) =>
      db.query('select team, month, round(cost::numeric, 6)::text as cost from spend_monthly order by 1, 2');
    const a = await spend(fresh);
    expect(a.length).toBeGreaterThan(0);
    expect(await spend(migrated)).toEqual(a);
  });

  it.each([
    [['team', 'pool'], T0, T0 + 3 * DAY],
    [['run', 'task'], T0, T0 + 3 * DAY],
    [['gpu'], T0 + 5 * HOUR + 1234, T0 + 20 * HOUR - 99],
  ] as [Dimension[], number, number][])(
    'reports by %j over a window as a fresh database does',
    async (by, since, until) => {
      const round = (r: Awaited<ReturnType<typeof sqlCostReport>>) => ({
        rows: r.rows.map((x) => [JSON.stringify(x.key), Math.round(x.costUsd * 1e6), x.executions]).sort(),
        totals: [Math.round(r.totals.costUsd * 1e6), Math.round(r.totals.idleUsd * 1e6), r.totals.executions],
      });
      const a = round(await sqlCostReport(fresh, { by, since, until }));
      const b = round(await sqlCostReport(migrated, { by, since, until }));
      expect(a.totals[0]).toBeGreaterThan(0);
      expect(b).toEqual(a);
    },
  );
});
