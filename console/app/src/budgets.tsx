/**
 * Month to date per team against its monthly budget, with a month-end forecast: spend from the
 * history's cost ledger since the first of the month, caps from the broker's policies.
 */
import { useApi } from './api.ts';
import { Bars } from './charts.tsx';
import { money } from './format.ts';
import type { CostReport, LiveBudget } from './types.ts';
import { Frame, Table } from './ui.tsx';

const HOUR = 3_600_000;

/** The month's spend so far, at the same rate for the rest of the month. */
export function forecast(spent: number, from: number, at: number): number {
  const d = new Date(from);
  const to = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
  return (spent * (to - from)) / Math.max(HOUR, Math.min(at, to) - from);
}

export function MonthBudgets({ budgets }: { budgets: LiveBudget[] | undefined }) {
  const now = new Date();
  const from = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1);
  const cost = useApi<{ report: CostReport }>(
    `/v1/cost?by=team&since=${new Date(from).toISOString()}&compare=false`,
  );
  return (
    <Frame loaded={cost}>
      {({ report }) => {
        const caps = new Map((budgets ?? []).map((b) => [b.team, b]));
        const teams = [...new Set([...report.rows.map((r) => r.key.team ?? ''), ...caps.keys()])].filter(
          (t) => t && t !== '(idle)',
        );
        const rows = teams.map((team) => {
          const spent = report.rows.find((r) => r.key.team === team)?.costUsd ?? 0;
          const cap = caps.get(team)?.perMonth?.cap;
          return {
            team,
            spent,
            cap,
            forecast: forecast(spent, from, report.until),
            policy: caps.get(team)?.policy ?? '',
          };
        });
        return (
          <>
            <Bars
              data={rows.map((r) => ({
                label: r.team,
                spent: r.spent,
                forecast: r.forecast,
                budget: r.cap ?? 0,
              }))}
              keys={[
                { key: 'spent', name: 'spent this month' },
                { key: 'forecast', name: 'month-end forecast' },
                { key: 'budget', name: 'monthly budget' },
              ]}
            />
            <Table
              testId="budgets"
              head={['team', 'policy', 'spent', 'month-end forecast', 'budget', 'used', 'forecast vs budget']}
              rows={rows.map((r) => ({
                key: r.team,
                cells: [
                  r.team,
                  r.policy,
                  money(r.spent),
                  money(r.forecast),
                  r.cap ? money(r.cap) : 'none',
                  r.cap ? `${((100 * r.spent) / r.cap).toFixed(1)}%` : '',
                  r.cap ? (
                    r.forecast > r.cap ? (
                      <span className="error">over by {money(r.forecast - r.cap)}</span>
                    ) : (
                      'within'
                    )
                  ) : (
                    ''
                  ),
                ],
              }))}
            />
          </>
        );
      }}
    </Frame>
  );
}
