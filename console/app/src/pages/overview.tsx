/** Overview: spend now, month to date per team against budget, savings, clusters, queue, recent runs. */
import { useApi } from '../api.ts';
import { MonthBudgets } from '../budgets.tsx';
import { money, when } from '../format.ts';
import type { ClusterSummary, CostReport, LiveBudget, RunRecord } from '../types.ts';
import { Figure, Frame, Status, Table } from '../ui.tsx';

interface Overview {
  clusters: ClusterSummary[];
  queue: number;
  held: number;
  activeLeases: number;
  budgets: LiveBudget[];
  spend?: { perHour: number; onDemandPerHour: number; nodesPerHour: number; byTeam: Record<string, number> };
}

export function OverviewPage() {
  const live = useApi<Overview>('/v1/live/overview');
  const runs = useApi<{ runs: RunRecord[] }>('/v1/runs?limit=10');
  const month = useApi<{
    month: string;
    budgets: { team: string; perMonth: number | null; spent: number }[];
  }>('/v1/budgets');
  const cost = useApi<{ report: CostReport }>('/v1/cost?by=team&since=30d');
  return (
    <>
      <h1>Overview</h1>
      <section className="figures">
        <Frame loaded={live}>
          {(o) => (
            <>
              <Figure
                testId="spend-rate"
                label="spend now"
                value={`${money(o.spend?.perHour ?? 0)}/h`}
                note={`nodes up ${money(o.spend?.nodesPerHour ?? 0)}/h`}
              />
              <Figure
                label="saved now against on-demand"
                value={`${money(Math.max(0, (o.spend?.onDemandPerHour ?? 0) - (o.spend?.perHour ?? 0)))}/h`}
              />
              <Figure
                testId="queue-depth"
                label="queue"
                value={o.queue}
                note={`${o.held} held · ${o.activeLeases} running`}
              />
              <Figure
                testId="cluster-health"
                label="clusters healthy"
                value={`${o.clusters.filter((c) => c.healthy).length}/${o.clusters.length}`}
                note={o.clusters
                  .filter((c) => c.draining)
                  .map((c) => `${c.name} draining`)
                  .join(', ')}
              />
            </>
          )}
        </Frame>
        <Frame loaded={cost}>
          {({ report }) => (
            <Figure
              label="saved against all on-demand, 30 days"
              value={money(report.totals.spotSavingsUsd)}
              note={`spent ${money(report.totals.costUsd)} of ${money(report.totals.onDemandUsd)} on-demand`}
            />
          )}
        </Frame>
      </section>
      <h2>Month to date per team</h2>
      <MonthBudgets budgets={live.data?.budgets} />
      <h2>Recent runs</h2>
      <Frame loaded={runs}>
        {({ runs }) => (
          <Table
            testId="recent-runs"
            head={['run', 'workflow', 'team', 'status', 'started', 'cost']}
            rows={runs.map((r) => ({
              key: r.run,
              cells: [
                <a href={`#/runs/${r.run}`}>{r.run}</a>,
                r.workflow,
                r.team,
                <Status status={r.status} />,
                when(r.startedAt),
                money(r.costUsd),
              ],
            }))}
          />
        )}
      </Frame>
    </>
  );
}
