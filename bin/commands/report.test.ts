import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { LedgerEntry } from '../../broker/ledger.ts';
import { encodeJson, openLocalStore } from '../../protocol/index.ts';
import { runGantry } from '../../test/cli.ts';
import { reportChartsScript } from '../../console/index.ts';
import { readLedger } from './report.ts';

const H = 3_600_000;
const T0 = Date.UTC(2026, 10, 2);
const ref = {
  cluster: 'aws-use1',
  pool: 'cpu-spot',
  node: 'n1',
  instanceType: 'm7i.2xlarge',
  capacityType: 'spot',
  gpuModel: null,
};

/** A broker state directory whose log holds a small ledger: one node for 10 h, two tasks on it. */
async function ledgerDir(): Promise<string> {
  const state = mkdtempSync(join(tmpdir(), 'gantry-report-'));
  const store = await openLocalStore(join(state, 'broker'));
  const task = (team: string, start: number, end: number) => ({
    kind: 'usage',
    at: end,
    lease: `l-${team}`,
    request: `r-${team}`,
    ...ref,
    gpus: 0,
    cpuMilli: 4000,
    memoryMiB: 16384,
    share: 0.5,
    nodePricePerHour: 0.4,
    team,
    workflow: 'nightly',
    run: `run-${team}`,
    task: 'prep',
    attempt: 0,
    start,
    end,
    ended: 'succeeded',
  });
  const entries: LedgerEntry[] = [
    { kind: 'node-start', at: T0, ...ref, gpuCount: 0, pricePerHour: 0.4 },
    task('research', T0, T0 + 4 * H) as LedgerEntry,
    task('product', T0 + 2 * H, T0 + 3 * H) as LedgerEntry,
    { kind: 'node-end', at: T0 + 10 * H, ...ref, gpuCount: 0, pricePerHour: 0.4, ended: 'gone' },
  ];
  await store.appendMany([encodeJson(entries)]);
  await store.close();
  return state;
}

const window = ['--since', '2026-11-01', '--until', '2026-11-03'];

describe('gantry report cost', () => {
  it('prints spend by team with idle apart, and the same numbers as CSV, JSON and HTML', async () => {
    const state = await ledgerDir();
    const table = await runGantry('report', 'cost', '--state', state, ...window, '-f', 'examples');
    expect(table.code).toBe(0);
    // Node $4.00: research 0.2 × 4 h = $0.80, product 0.2 × 1 h = $0.20, idle $3.00.
    expect(table.out).toMatch(/^\(idle\) +\$3\.00 +\$3\.00 /m);
    expect(table.out).toMatch(/^research +\$0\.80 /m);
    expect(table.out).toMatch(/^product +\$0\.20 /m);
    expect(table.out).toMatch(/^total +\$4\.00 +\$3\.00 /m);
    expect(table.out).toContain('2 task executions on 1 nodes');
    // m7i.2xlarge on-demand is $0.4032/h in us-east-1 (the example pool's price): spot at $0.40 saved ~$0.03.
    expect(table.out).toContain(
      'Actual spend $4.00: $1.00 for tasks, $3.00 for nodes while no task used them.',
    );
    expect(table.out).toMatch(
      /^All on-demand, the same work \(idle time included\) would have cost \$4\.03: spot and reserved capacity saved \$0\.03\.$/m,
    );
    expect(table.out).toMatch(/^Replanned: the same 2 tasks placed again on an empty fleet, task time only/m);
    expect(table.out).toMatch(/Compare these two with each other, not with the actual spend\.$/m);

    // Without the platform the report does not pretend spot was on-demand.
    const bare = await runGantry('report', 'cost', '--state', state, ...window, '-o', 'wide');
    expect(bare.out).toMatch(/^total +\$4\.00 +\$3\.00 +- +2$/m);
    expect(bare.out).toMatch(/^All on-demand: not priced — /m);
    expect(bare.out).toContain('pass -f <dir> with the platform YAML');
    expect(bare.out).not.toContain('saved');
    expect(bare.out).not.toContain('Replanned');
    const yaml = await runGantry('report', 'cost', '--state', state, ...window, '-o', 'yaml');
    expect(yaml.out).toMatch(/^ {2}unpricedUsd: 4$/m);

    const csv = await runGantry(
      'report',
      'cost',
      '--state',
      state,
      ...window,
      '--by',
      'team',
      'pool',
      '-o',
      'csv',
    );
    // No platform, no on-demand price: the column is empty rather than the spot spend again.
    expect(csv.out.split('\n').slice(0, 4)).toEqual([
      'team,pool,spend_usd,idle_usd,on_demand_usd,gpu_hours',
      '(idle),cpu-spot,3.00,3.00,,0.000',
      'research,cpu-spot,0.80,0.00,,0.000',
      'product,cpu-spot,0.20,0.00,,0.000',
    ]);
    const pricedCsv = await runGantry(
      'report',
      'cost',
      '--state',
      state,
      ...window,
      '-f',
      'examples',
      '-o',
      'csv',
    );
    expect(pricedCsv.out.split('\n')[1]).toMatch(/^\(idle\),3\.00,3\.00,3\.02,0\.000$/);
    const json = JSON.parse(
      (await runGantry('report', 'cost', '--state', state, ...window, '-o', 'json')).out,
    );
    expect(json.totals).toMatchObject({ executions: 2, nodes: 1 });
    expect(json.totals.costUsd).toBeCloseTo(4, 9);

    const out = join(state, 'cost.html');
    const html = await runGantry('report', 'cost', '--state', state, ...window, '-o', 'html', '--out', out);
    expect(html.out).toBe(`wrote ${out}\n`);
    expect(readFileSync(out, 'utf8')).toContain('<b id="total">$4.00</b>');
  });

  it("writes -o html as one file: the report -o json prints and the console's charts, inlined", async () => {
    const state = await ledgerDir();
    const args = ['report', 'cost', '--state', state, ...window, '-f', 'examples'];
    const json = JSON.parse((await runGantry(...args, '-o', 'json')).out) as object;
    const html = (await runGantry(...args, '-o', 'html')).out;
    const data = /<script type="application\/json" id="report-data">(.*?)<\/script>/s.exec(html)![1]!;
    expect(JSON.parse(data)).toEqual({ ...json, priced: true });
    // The chart script is the built one, whole; nothing is loaded from anywhere else.
    const script = /<script>(.*)<\/script>\n<\/body>/s.exec(html)![1]!;
    expect(script).toBe(reportChartsScript());
    expect(script).toContain('recharts');
    expect(html.replace(script, '')).not.toMatch(/\b(src|href)=|@import|url\(/);
    for (const id of ['per-day', 'by-gpu', 'savings-chart', 'replan-chart'])
      expect(html).toContain(`<div id="${id}"`);
  });

  it('says how to build the charts when they are not built', () => {
    expect(() => reportChartsScript('/nonexistent/dist')).toThrow(
      "the console's pages are not built in /nonexistent/dist: run npm run console:build (npm ci builds them)",
    );
  });

  it('refuses an unknown -o with the formats it knows', async () => {
    const state = await ledgerDir();
    const r = await runGantry('report', 'cost', '--state', state, '-o', 'pdf');
    expect(r.code).toBe(2);
    expect(r.err).toContain(
      "gantry: option '-o, --output <format>' argument 'pdf' is invalid. Allowed choices are table, wide, json, yaml, csv, html.",
    );
  });

  it.each([
    [
      ['--by', 'colour'],
      '--by colour: must be one of team, workflow, run, task, cluster, pool, gpu, capacity-type',
    ],
    [
      ['--since', 'last week'],
      "--since must be a duration back from now (30m, 12h, 7d, 2w), a date (2026-11-01) or epoch milliseconds, not 'last week'",
    ],
    [['--since', '2026-11-03', '--until', '2026-11-02'], '--until must be after --since'],
  ])('refuses %j with one line', async (flags, message) => {
    const state = await ledgerDir();
    const r = await runGantry('report', 'cost', '--state', state, ...flags);
    expect(r).toMatchObject({ code: 2, err: `gantry: ${message}\n` });
  });

  it('never ends a real-time window after now, and does not call it simulated', async () => {
    const state = await ledgerDir();
    const before = Date.now();
    const r = await runGantry(
      'report',
      'cost',
      '--state',
      state,
      '--since',
      '2026-11-01',
      '--until',
      '2099-01-01',
    );
    expect(r.code, r.err).toBe(0);
    const json = JSON.parse(
      (
        await runGantry(
          'report',
          'cost',
          '--state',
          state,
          '--since',
          '2026-11-01',
          '--until',
          '2099-01-01',
          '-o',
          'json',
        )
      ).out,
    ) as { until: number; timeScale?: number };
    expect(json.until).toBeGreaterThanOrEqual(before);
    expect(json.until).toBeLessThanOrEqual(Date.now());
    expect(json.timeScale).toBeUndefined();
    expect(r.out.split('\n')[0]).toMatch(/^2026-11-01T00:00Z – \S+Z: 2 task executions on 1 nodes$/);
  });

  it('labels the window of a simulated run as simulated time and ends it at the simulated clock', async () => {
    const state = mkdtempSync(join(tmpdir(), 'gantry-report-sim-'));
    const run = await runGantry(
      ...['run', 'examples/workflows/train.ts', '--team', 'research'],
      ...['--input', '{"source":"s3://bucket/clicks","rows":1000,"epochs":1}'],
      ...['--state', state, '--speedup', '600', '-q'],
    );
    expect(run.code, run.err).toBe(0);
    const store = await openLocalStore(join(state, 'broker'));
    const usages = (await readLedger(store)).filter((e) => e.kind === 'usage');
    await store.close();
    expect(usages.length).toBeGreaterThan(0);
    const lastEnd = Math.max(...usages.map((u) => u.end));
    // The simulated ledger runs ahead of the clock: that is why the label matters.
    expect(lastEnd).toBeGreaterThan(Date.now());

    const table = await runGantry('report', 'cost', '--state', state, '-f', 'examples');
    expect(table.code, table.err).toBe(0);
    const until = new Date(lastEnd).toISOString().slice(0, 16);
    expect(table.out.split('\n')[0]).toMatch(
      new RegExp(`^\\S+Z – ${until}Z \\(simulated time, 600×\\): \\d+ task executions on \\d+ nodes$`),
    );
    const json = JSON.parse(
      (await runGantry('report', 'cost', '--state', state, '--until', '2099-01-01', '-o', 'json')).out,
    ) as { until: number; timeScale?: number; totals: { costUsd: number } };
    expect(json).toMatchObject({ until: lastEnd, timeScale: 600 });
    expect(json.totals.costUsd).toBeGreaterThan(0);
    expect((await runGantry('report', 'cost', '--state', state, '-o', 'html')).out).toContain(
      '(simulated time, 600×)',
    );
  }, 60_000);

  it('says where it looked when there is no ledger', async () => {
    const r = await runGantry('report', 'cost', '--state', '/nonexistent/state');
    expect(r).toMatchObject({
      code: 2,
      err: 'gantry: no Gantry state in /nonexistent/state: pass --state <dir>, --history <url> of a running history, --postgres <url>, or --nats\n',
    });
  });
});
