/**
 * `gantry report cost`: spend from the ledger, grouped, as a table, CSV, JSON or an HTML page with charts.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Command, Option } from 'commander';
import { type CostReport, costReport, DIMENSIONS, type Dimension } from '../../broker/cost-report.ts';
import type { LedgerEntry } from '../../broker/ledger.ts';
import { readLifecycle } from '../../broker/records.ts';
import { loadPlatform, type Platform } from '../../policies/index.ts';
import { openLocalStore, type Store } from '../../protocol/index.ts';
import { defaultBackends } from '../../solver/index.ts';
import { BROKER_BUCKET, BROKER_STREAM } from '../credentials.ts';
import { connectCli, openStoreCli } from '../connect.ts';
import { ConsoleError, reportChartsScript } from '../../console/index.ts';
import { OperationalError, UsageError } from '../errors.ts';
import { checkWindow, OUTPUTS, serialize } from '../options.ts';
import { type HistoryFlags, historyOptions, withHistory } from './history.ts';

/** What `gantry report cost -o` prints: the shared formats, CSV and an HTML page. */
const REPORT_OUTPUTS = [...OUTPUTS, 'csv', 'html'];
import { table } from '../table.ts';

interface ReportFlags extends HistoryFlags {
  by: string[];
  since: string;
  until?: string;
  output: string;
  out?: string;
  file?: string[];
  state: string;
  nats?: string;
  creds?: string;
}

/** Every ledger entry in a broker store. */
export async function readLedger(store: Store): Promise<LedgerEntry[]> {
  const out: LedgerEntry[] = [];
  for await (const e of readLifecycle(store)) {
    if (e.kind === 'usage' || e.kind === 'node-start' || e.kind === 'node-end') out.push(e as LedgerEntry);
  }
  return out;
}

const usd = (v: number) => `$${v.toFixed(2)}`;

/** The report as an aligned table; `wide` adds executions per row. `priced`: on-demand prices were known. */
export function reportTable(
  r: CostReport & { timeScale?: number },
  opts: { wide?: boolean; priced?: boolean } = {},
): string {
  const priced = opts.priced ?? true;
  const onDemand = (v: number) => (priced ? usd(v) : '-');
  const rows = r.rows.map((row) => [
    ...r.by.map((d) => row.key[d] ?? ''),
    usd(row.costUsd),
    row.idleUsd > 0 ? usd(row.idleUsd) : '',
    onDemand(row.onDemandUsd),
    row.gpuHours > 0 ? row.gpuHours.toFixed(1) : '',
    ...(opts.wide ? [String(row.executions)] : []),
  ]);
  const t = r.totals;
  rows.push([
    ...r.by.map((_, i) => (i === 0 ? 'total' : '')),
    usd(t.costUsd),
    usd(t.idleUsd),
    onDemand(t.onDemandUsd),
    '',
    ...(opts.wide ? [String(t.executions)] : []),
  ]);
  const head = table(
    [
      ...r.by.map((d) => d.toUpperCase()),
      'SPEND',
      'OF WHICH IDLE',
      'ALL ON-DEMAND',
      'GPU-HOURS',
      ...(opts.wide ? ['EXECUTIONS'] : []),
    ],
    rows,
  );
  const lines = [
    `${new Date(r.since).toISOString().slice(0, 16)}Z – ${new Date(r.until).toISOString().slice(0, 16)}Z${simulated(r)}: ${t.executions} task executions on ${t.nodes} nodes`,
    '',
    head,
    `Actual spend ${usd(t.costUsd)}: ${usd(t.taskUsd)} for tasks, ${usd(t.idleUsd)} for nodes while no task used them.`,
    ...savingsLines(r, priced),
    ...replanLines(r),
  ];
  return `${lines.join('\n')}\n`;
}

/** The window's label when the ledger is in simulated time: ` (simulated time, 600×)`. */
function simulated(r: CostReport & { timeScale?: number }): string {
  return r.timeScale !== undefined ? ` (simulated time, ${r.timeScale}×)` : '';
}

/** What on-demand prices say about the spend, or why they cannot say it. */
function savingsLines(r: CostReport, priced: boolean): string[] {
  const t = r.totals;
  if (!priced)
    return [
      'All on-demand: not priced — the ledger names instance types, not the regions whose on-demand prices they',
      'would have paid; pass -f <dir> with the platform YAML to price the same work on-demand.',
    ];
  const lines = [
    `All on-demand, the same work (idle time included) would have cost ${usd(t.onDemandUsd)}: spot and reserved capacity saved ${usd(t.spotSavingsUsd)}.`,
  ];
  if (t.unpricedUsd >= 0.005)
    lines.push(
      `(${usd(t.unpricedUsd)} of spot and reserved spend is on instance types with no on-demand price in the platform, such as owned servers: it counts at its own price.)`,
    );
  return lines;
}

/** Gantry's plan and a greedy one of the same tasks, said as what they are: a replan, not the bill. */
function replanLines(r: CostReport): string[] {
  const t = r.totals;
  if (t.greedyUsd === undefined || t.plannedUsd === undefined) return [];
  const less = t.greedyUsd > 0 ? 100 * (1 - t.plannedUsd / t.greedyUsd) : 0;
  const verdict =
    Math.abs(less) < 0.05
      ? 'the same'
      : less > 0
        ? `${less.toFixed(1)}% less`
        : `${(-less).toFixed(1)}% more`;
  return [
    `Replanned: the same ${t.executions} tasks placed again on an empty fleet, task time only (no idle, launch or preempted time):`,
    `Gantry's plan ${usd(t.plannedUsd)}, a cheapest-first greedy ${usd(t.greedyUsd)} (${verdict}). Compare these two with each other, not with the actual spend.`,
  ];
}

/** The report as CSV: one line per row, money in dollars with cents; on-demand empty when not priced. */
export function reportCsv(r: CostReport, opts: { priced?: boolean } = {}): string {
  const priced = opts.priced ?? true;
  const q = (s: string) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  const lines = [[...r.by, 'spend_usd', 'idle_usd', 'on_demand_usd', 'gpu_hours'].join(',')];
  for (const row of r.rows)
    lines.push(
      [
        ...r.by.map((d) => q(row.key[d] ?? '')),
        row.costUsd.toFixed(2),
        row.idleUsd.toFixed(2),
        priced ? row.onDemandUsd.toFixed(2) : '',
        row.gpuHours.toFixed(3),
      ].join(','),
    );
  return `${lines.join('\n')}\n`;
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The charts' script, or one line saying how to build it. */
function chartsScript(): string {
  try {
    return reportChartsScript();
  } catch (err) {
    if (err instanceof ConsoleError)
      throw new OperationalError(`-o html needs the report's charts: ${err.message}`);
    throw err;
  }
}

/**
 * A self-contained HTML page: totals, spend per day stacked by the first grouping, spend by GPU,
 * spend against on-demand and the replanned comparison, drawn by the console's charts (inlined with
 * the report's data, so the file opens offline), and the rows.
 */
export function reportHtml(r: CostReport & { timeScale?: number }, opts: { priced?: boolean } = {}): string {
  const priced = opts.priced ?? true;
  const t = r.totals;
  const first = r.by[0] ?? 'team';
  const replanned = t.plannedUsd !== undefined && t.greedyUsd !== undefined;
  const rows = r.rows
    .map(
      (row) =>
        `<tr>${r.by.map((d) => `<td>${esc(row.key[d] ?? '')}</td>`).join('')}<td class="n" data-cost>${usd(row.costUsd)}</td><td class="n">${row.idleUsd > 0 ? usd(row.idleUsd) : ''}</td><td class="n">${priced ? usd(row.onDemandUsd) : '-'}</td></tr>`,
    )
    .join('');
  const data = JSON.stringify({ ...r, priced }).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Gantry cost report</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:820px;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:2em}
.cards{display:flex;gap:1em}.card{flex:1;border:1px solid #ddd;border-radius:6px;padding:.8em}
.card b{display:block;font-size:1.5em}table{border-collapse:collapse;width:100%}
td,th{padding:.3em .6em;border-bottom:1px solid #eee;text-align:left}.n{text-align:right;font-variant-numeric:tabular-nums}
.recharts-text{font-size:12px}
</style></head><body>
<h1>Cost report</h1>
<p>${esc(new Date(r.since).toISOString().slice(0, 10))} to ${esc(new Date(r.until).toISOString().slice(0, 10))}${esc(simulated(r))} · ${t.executions} task executions on ${t.nodes} nodes · grouped by ${esc(r.by.join(', '))}</p>
<div class="cards">
<div class="card">Spend<b id="total">${usd(t.costUsd)}</b></div>
<div class="card">Of which idle<b id="idle">${usd(t.idleUsd)}</b></div>
<div class="card">Saved against on-demand<b id="savings">${priced ? usd(t.spotSavingsUsd) : 'not priced'}</b></div>
</div>
<noscript><p>The charts need JavaScript; the totals and rows are below.</p></noscript>
<h2>Spend per day by ${esc(first)}</h2>
<div id="per-day" role="img" aria-label="spend per day"></div>
<h2>Spend by GPU model</h2>
<div id="by-gpu" role="img" aria-label="spend by GPU model"></div>
<h2>Spend against on-demand</h2>
<div id="savings-chart" role="img" aria-label="spend compared"></div>
${priced ? '' : '<p>On-demand prices need the platform: run the report with <code>-f &lt;dir&gt;</code>.</p>'}
${
  replanned
    ? `<h2>The same tasks replanned</h2>
<p>The period's ${t.executions} tasks placed again on an empty fleet, task time only (no idle, launch or preempted time): compare these with each other, not with the actual spend.</p>
<div id="replan-chart" role="img" aria-label="replanned"></div>`
    : ''
}
<h2>By ${esc(r.by.join(', '))}</h2>
<table id="rows"><thead><tr>${r.by.map((d) => `<th>${esc(d)}</th>`).join('')}<th class="n">Spend</th><th class="n">Idle</th><th class="n">All on-demand</th></tr></thead>
<tbody>${rows}</tbody></table>
<script type="application/json" id="report-data">${data}</script>
<script>${chartsScript()}</script>
</body></html>
`;
}

/** Adds `gantry report cost`. */
export function registerReportCommand(program: Command): void {
  const report = program.command('report').description('Reports from the ledger');
  const cost = report
    .command('cost')
    .description(
      'Spend by team, workflow, run, cluster, pool, GPU or capacity type, with idle cost and savings',
    )
    .option('--by <dims...>', `group by (${DIMENSIONS.join(', ')}); several make nested groups`, ['team'])
    .option('--since <when>', 'start: a duration back from now (7d, 12h) or a date', '30d')
    .option('--until <when>', 'end: a duration back from now or a date (default: now)')
    .addOption(
      new Option('-o, --output <format>', `output format: ${REPORT_OUTPUTS.join(', ')}`)
        .choices(REPORT_OUTPUTS)
        .default('table'),
    )
    .option('--out <file>', 'write to this file instead of standard output')
    .option('-f, --file <path...>', 'the platform YAML (on-demand prices and the greedy comparison)')
    .option('--state <dir>', 'state directory of an embedded broker', '.gantry/state')
    .option('--nats <url>', 'catch up with the ledger in JetStream first')
    .option('--creds <file>', 'NATS credentials');
  historyOptions(cost).action(async (flags: ReportFlags) => {
    const by = flags.by.flatMap((b) => b.split(',')).filter(Boolean) as Dimension[];
    for (const d of by)
      if (!DIMENSIONS.includes(d)) throw new UsageError(`--by ${d}: must be one of ${DIMENSIONS.join(', ')}`);
    // Checked here for a clear message; the history resolves durations against the ledger's clock.
    checkWindow(flags.since, flags.until);
    const r = await withHistory(flags, (h) =>
      h.cost({ by: by.join(','), since: flags.since, until: flags.until }),
    );
    // Over a running history API, its platform prices on-demand; here, -f does.
    const priced = flags.file !== undefined || r.totals.onDemandUsd !== r.totals.costUsd;
    const text =
      flags.output === 'json' || flags.output === 'yaml'
        ? serialize(flags.output, r)
        : flags.output === 'csv'
          ? reportCsv(r, { priced })
          : flags.output === 'html'
            ? reportHtml(r, { priced })
            : reportTable(r, { wide: flags.output === 'wide', priced });
    if (flags.out) {
      writeFileSync(flags.out, text);
      process.stdout.write(`wrote ${flags.out}\n`);
    } else process.stdout.write(text);
  });
}
