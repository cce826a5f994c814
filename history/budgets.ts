/**
 * Budgets in the history: each team's budget as the platform declares it, kept as a new row whenever
 * it changes (so that a month's spend can be read against the budget that held then).
 */
import type { Platform } from '../policies/index.ts';
import type { Queryable } from './db.ts';

/**
 * Records the platform's budgets as of `at`: a row for each team whose budget differs from its latest
 * one (or that has none yet). Returns how many rows were written.
 *
 * @example
 * await recordBudgets(history.db, loadPlatform(['examples']).platform, Date.now());
 */
export async function recordBudgets(db: Queryable, platform: Platform, at: number): Promise<number> {
  const rows: {
    team: string;
    policy: string;
    perHour: number | null;
    perMonth: number | null;
    alertAt: string;
  }[] = [];
  for (const p of platform.policies)
    for (const team of p.teams)
      if (p.budget)
        rows.push({
          team,
          policy: p.name,
          perHour: p.budget.perHour ?? null,
          perMonth: p.budget.perMonth ?? null,
          alertAt: JSON.stringify(p.budget.alertAt),
        });
  if (rows.length === 0) return 0;
  const written = await db.query(
    `insert into budgets (team, policy, per_hour, per_month, alert_at, valid_from)
     select v.team, v.policy, v.per_hour, v.per_month, v.alert_at, $6
     from unnest($1::text[], $2::text[], $3::float8[], $4::float8[], $5::jsonb[])
       as v(team, policy, per_hour, per_month, alert_at)
     where not exists (
       select 1 from (select distinct on (b.team) * from budgets b where b.team = v.team
                      order by b.team, b.valid_from desc) last
       where last.policy = v.policy and last.per_hour is not distinct from v.per_hour
         and last.per_month is not distinct from v.per_month and last.alert_at = v.alert_at)
     on conflict do nothing
     returning team`,
    [
      rows.map((r) => r.team),
      rows.map((r) => r.policy),
      rows.map((r) => r.perHour),
      rows.map((r) => r.perMonth),
      rows.map((r) => r.alertAt),
      at,
    ],
  );
  return written.length;
}
