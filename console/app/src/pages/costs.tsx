/**
 * Costs: spend grouped by any of the report's dimensions over a window with a step, the same report
 * `gantry report cost` prints; budget against actual with a month-end forecast; idle share; CSV.
 */
import { useState } from 'react';
import { useApi } from '../api.ts';
import { MonthBudgets } from '../budgets.tsx';
import { Bars, StackedSpend } from '../charts.tsx';
import { money } from '../format.ts';
import type { CostReport, LiveBudget } from '../types.ts';
import { Figure, Frame, Table } from '../ui.tsx';

const DIMENSIONS = ['team', 'workflow', 'run', 'task', 'cluster', 'pool', 'gpu', 'capacity-type'] as const;
const HOUR = 3_600_000;

/** The rows as CSV, with the same columns as `gantry report cost -o csv`. */
function csv(report: CostReport): string {
  const cell = (v: string | number) =>
    /[",\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v);
  const head = [...report.by, 'cost_usd', 'idle_usd', 'on_demand_usd', 'executions', 'gpu_hours'];
  const lines = report.rows.map((r) =>
    [...report.by.map((d) => r.key[d] ?? ''), r.costUsd, r.idleUsd, r.onDemandUsd, r.executions, r.gpuHours]
      .map(cell)
      .join(','),
  );
  return `${[head.join(','), ...lines].join('\n')}\n`;
}

function download(name: string, text: string) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
  a.download = name;
  a.click();
  URL.revokeObjectURL(a.href);
}

export function CostsPage() {
  const [by, setBy] = useState<string[]>(['team']);
  const [since, setSince] = useState('30d');
  const [step, setStep] = useState(String(24 * HOUR));
  const report = useApi<{ report: CostReport }>(`/v1/cost?by=${by.join(',')}&since=${since}&step=${step}`);
  const live = useApi<{ budgets: LiveBudget[] }>('/v1/live/overview');
  const toggle = (d: string) =>
    setBy((b) => (b.includes(d) ? (b.length > 1 ? b.filter((x) => x !== d) : b) : [...b, d]));
  return (
    <>
      <h1>Costs</h1>
      <form className="filters" onSubmit={(e) => e.preventDefault()}>
        <span>group by</span>
        {DIMENSIONS.map((d) => (
          <label key={d}>
            <input type="checkbox" name={`by-${d}`} checked={by.includes(d)} onChange={() => toggle(d)} /> {d}
          </label>
        ))}
        <label>
          range{' '}
          <select name="since" value={since} onChange={(e) => setSince(e.target.value)}>
            <option value="1d">1 day</option>
            <option value="7d">7 days</option>
            <option value="30d">30 days</option>
            <option value="90d">90 days</option>
            <option value="365d">a year</option>
          </select>
        </label>
        <label>
          step{' '}
          <select name="step" value={step} onChange={(e) => setStep(e.target.value)}>
            <option value={String(HOUR)}>hour</option>
            <option value={String(6 * HOUR)}>6 hours</option>
            <option value={String(24 * HOUR)}>day</option>
            <option value={String(7 * 24 * HOUR)}>week</option>
          </select>
        </label>
      </form>
      <Frame loaded={report}>
        {({ report: r }) => {
          const series = [...new Set(r.buckets.flatMap((b) => Object.keys(b.values)))].sort();
          const stepLabel = (t: number) =>
            new Date(t)
              .toISOString()
              .slice(0, r.stepMs < 24 * HOUR ? 13 : 10)
              .replace('T', ' ');
          return (
            <>
              <section className="figures">
                <Figure
                  testId="total-cost"
                  label="actual spend"
                  value={<span data-usd={r.totals.costUsd}>{money(r.totals.costUsd)}</span>}
                  note={`${r.totals.executions} executions on ${r.totals.nodes} nodes`}
                />
                <Figure
                  testId="idle-share"
                  label="idle share"
                  value={
                    r.totals.costUsd > 0
                      ? `${((100 * r.totals.idleUsd) / r.totals.costUsd).toFixed(1)}%`
                      : '–'
                  }
                  note={`${money(r.totals.idleUsd)} of nodes up with no task`}
                />
                <Figure
                  testId="on-demand"
                  label="all on-demand"
                  value={<span data-usd={r.totals.onDemandUsd}>{money(r.totals.onDemandUsd)}</span>}
                  note={`saved ${money(r.totals.spotSavingsUsd)}`}
                />
                {r.totals.greedyUsd !== undefined ? (
                  <Figure
                    label="replanned: Gantry vs greedy"
                    value={`${money(r.totals.plannedUsd)} vs ${money(r.totals.greedyUsd)}`}
                    note="task time only, on a fresh fleet"
                  />
                ) : null}
              </section>
              <h2>
                Spend per {stepLabel.length ? (r.stepMs >= 24 * HOUR ? 'day' : 'hour') : ''} by {r.by[0]}
              </h2>
              <StackedSpend
                buckets={r.buckets.map((b) => ({ label: stepLabel(b.start), values: b.values }))}
                series={series}
              />
              <h2>
                Allocation{' '}
                <button data-testid="csv" onClick={() => download(`gantry-cost-${by.join('-')}.csv`, csv(r))}>
                  CSV
                </button>
              </h2>
              <Table
                testId="cost-rows"
                head={[...r.by, 'cost', 'idle', 'on-demand', 'executions', 'GPU hours']}
                rows={[
                  ...r.rows.map((row, i) => ({
                    key: String(i),
                    cells: [
                      ...r.by.map((d) => row.key[d] ?? ''),
                      money(row.costUsd),
                      money(row.idleUsd),
                      money(row.onDemandUsd),
                      row.executions,
                      row.gpuHours.toFixed(2),
                    ],
                  })),
                  {
                    key: 'total',
                    cells: [
                      ...r.by.map((_, i) => (i === 0 ? <b>total</b> : '')),
                      <b>{money(r.totals.costUsd)}</b>,
                      money(r.totals.idleUsd),
                      money(r.totals.onDemandUsd),
                      r.totals.executions,
                      '',
                    ],
                  },
                ]}
              />
              <h2>Spend by GPU model</h2>
              <Bars
                data={Object.entries(r.byGpu).map(([label, spend]) => ({ label, spend }))}
                keys={[{ key: 'spend', name: 'spend' }]}
              />
            </>
          );
        }}
      </Frame>
      <h2>Budgets this month</h2>
      <MonthBudgets budgets={live.data?.budgets} />
    </>
  );
}
