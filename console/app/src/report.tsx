/**
 * The charts of the static HTML cost report (`gantry report cost -o html`), drawn by the console's own
 * chart components. Built into one script (`console/dist/report.js`) that the report inlines beside
 * its data, so the file opens offline with nothing else: it reads the report from
 * `<script id="report-data">` and draws each chart into its element.
 */
import { createRoot } from 'react-dom/client';
import { Bars, StackedSpend } from './charts.tsx';

/** What the report page carries: the cost report as `-o json` prints it. */
interface ReportData {
  days: { day: string; values: Record<string, number> }[];
  byGpu: Record<string, number>;
  totals: { costUsd: number; onDemandUsd: number; plannedUsd?: number; greedyUsd?: number };
  /** Whether on-demand prices were known (the platform was given). */
  priced: boolean;
}

const WIDTH = 760;

function draw(id: string, chart: React.ReactNode) {
  const el = document.getElementById(id);
  if (el) createRoot(el).render(chart);
}

const data = JSON.parse(document.getElementById('report-data')!.textContent!) as ReportData;
const series = [...new Set(data.days.flatMap((d) => Object.keys(d.values)))];
draw(
  'per-day',
  <StackedSpend
    width={WIDTH}
    buckets={data.days.map((d) => ({ label: d.day.slice(5), values: d.values }))}
    series={series}
  />,
);
/** One labelled bar per amount. */
const amounts = (bars: { label: string; usd: number }[]) => (
  <Bars width={WIDTH} height={200} labels data={bars} keys={[{ key: 'usd', name: 'spend' }]} />
);
const gpus = Object.entries(data.byGpu).sort((a, b) => b[1] - a[1]);
draw('by-gpu', amounts(gpus.map(([gpu, usd]) => ({ label: gpu, usd }))));
draw(
  'savings-chart',
  amounts([
    { label: 'Actual spend (incl. idle)', usd: data.totals.costUsd },
    ...(data.priced ? [{ label: 'The same work all on-demand', usd: data.totals.onDemandUsd }] : []),
  ]),
);
const { plannedUsd, greedyUsd } = data.totals;
if (plannedUsd !== undefined && greedyUsd !== undefined)
  draw(
    'replan-chart',
    amounts([
      { label: "Gantry's plan", usd: plannedUsd },
      { label: 'Cheapest-first greedy', usd: greedyUsd },
    ]),
  );
