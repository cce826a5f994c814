/**
 * The cost ledger over a seeded, simulated week of mixed work across the three example clusters, with
 * spot preemptions: the report's numbers match an independent computation from the ledger, for every
 * grouping, before and after a broker restart; its HTML page renders in Chromium with the same totals;
 * and a team at its monthly cap has its next request held with the budget's name.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reportHtml, readLedger } from '../bin/commands/report.ts';
import { type CostReport, costReport, DIMENSIONS } from '../broker/cost-report.ts';
import type { LedgerEntry, NodeLife, TaskUsage } from '../broker/ledger.ts';
import { createBroker } from '../broker/index.ts';
import { loadPlatform } from '../policies/index.ts';
import { decodeJson, encodeJson, subjects } from '../protocol/index.ts';
import { defaultBackends } from '../solver/index.ts';
import { mulberry32 } from './random.ts';
import { money } from '../console/app/src/format.ts';
import { CHROMIUM, locate, notFound } from './requirements.ts';
import { eventually, startSystem, TestClient, type TestSystem } from './system.ts';

const SPEEDUP = 50_000; // a simulated day in 1.7 s
const DAY_MS = 86_400_000 / SPEEDUP;
const cents = (v: number) => Math.round(v * 100);
/** Equal to the cent: the difference is under half a cent (sums in another order differ in the last bits). */
const sameCents = (a: number, b: number, what = '') => expect(Math.abs(a - b), what).toBeLessThan(0.005);
const { platform } = loadPlatform(['examples']);
const chromiumBinary = () => locate(CHROMIUM) ?? expect.fail(notFound([CHROMIUM]));

describe('a simulated week of work, and its cost report', () => {
  let system: TestSystem;
  let entries: LedgerEntry[];
  let since: number;
  let until: number;

  beforeAll(async () => {
    system = await startSystem('embedded', { platformDir: 'examples', speedup: SPEEDUP, heartbeatMs: 100 });
    const client = new TestClient(system.transport);
    const random = mulberry32(7);
    const shapes = [
      { team: 'research', workflow: 'train', resources: { cpu: 2, memory: '8Gi' } },
      { team: 'research', workflow: 'train', resources: { gpu: 'L4:1', cpu: 3, memory: '12Gi' } },
      { team: 'product', workflow: 'eval', resources: { cpu: 4, memory: '16Gi' } },
      { team: 'product', workflow: 'eval', resources: { gpu: 'L4:1', cpu: 3, memory: '12Gi' } },
    ];
    for (let day = 0; day < 7; day++) {
      const ids: string[] = [];
      const wave = Array.from({ length: 24 }, (_, i) => {
        const s = shapes[Math.floor(random() * shapes.length)]!;
        const id = `d${day}-${i}`;
        ids.push(id);
        return client.request(id, {
          team: s.team,
          workflow: s.workflow,
          runId: `${s.workflow}-d${day}`,
          taskId: s.resources.gpu ? 'gpu-step' : 'cpu-step',
          resources: { ...s.resources, duration: '4h' },
          work: { kind: 'sim', durationMs: Math.round((0.5 + random() * 5.5) * 3_600_000) },
        });
      });
      await Promise.all(wave);
      if (day % 2 === 1) {
        await new Promise((r) => setTimeout(r, 40));
        system.clouds.get('aws-use1')!.interrupt(0.5);
      }
      await client.finished(ids, 30_000);
      await new Promise((r) => setTimeout(r, DAY_MS)); // the rest of the day: nodes go idle and are removed
    }
    await system.broker.state.writer.flush();
    entries = await readLedger(system.brokerStore);
    since = Math.min(...entries.map((e) => ('start' in e ? e.start : e.at)));
    until = Math.max(...entries.map((e) => e.at));
  }, 120_000);
  afterAll(() => system?.stop());

  /**
   * Node lifetimes paired by hand (open ones end at `until`), each widened to cover the tasks that ran
   * on it, as the report defines a node's time.
   */
  function nodeCost(): number {
    const open = new Map<string, NodeLife>();
    const lives: { cluster: string; node: string; start: number; end: number; price: number }[] = [];
    for (const e of entries) {
      if (e.kind === 'usage') continue;
      const key = `${e.cluster}/${e.node}`;
      if (e.kind === 'node-start') {
        if (!open.has(key)) open.set(key, e);
      } else if (open.has(key)) {
        const s = open.get(key)!;
        lives.push({ cluster: s.cluster, node: s.node, start: s.at, end: e.at, price: s.pricePerHour });
        open.delete(key);
      }
    }
    for (const s of open.values())
      lives.push({ cluster: s.cluster, node: s.node, start: s.at, end: until, price: s.pricePerHour });
    for (const u of usages()) {
      const mine = lives.filter((l) => l.cluster === u.cluster && l.node === u.node);
      if (mine.length === 0) continue;
      const gap = (l: (typeof lives)[number]) => Math.max(0, l.start - u.end, u.start - l.end);
      const life = mine.sort((a, b) => gap(a) - gap(b))[0]!;
      life.start = Math.min(life.start, u.start);
      life.end = Math.max(life.end, u.end);
    }
    return lives.reduce(
      (a, l) => a + (l.price * (Math.min(l.end, until) - Math.max(l.start, since))) / 3_600_000,
      0,
    );
  }
  const usages = () => entries.filter((e): e is TaskUsage => e.kind === 'usage');
  const raw = (u: TaskUsage) => (u.nodePricePerHour * u.share * (u.end - u.start)) / 3_600_000;

  it('recorded a week of tasks and node lifetimes, preemptions included', () => {
    expect(until - since).toBeGreaterThan(6 * 86_400_000);
    expect(usages().length).toBeGreaterThanOrEqual(168);
    expect(usages().some((u) => u.ended === 'preempted')).toBe(true);
    expect(entries.some((e) => e.kind === 'node-end' && e.ended === 'preempted')).toBe(true);
    expect(new Set(usages().map((u) => u.cluster)).size).toBeGreaterThanOrEqual(2);
  });

  it('matches an independent computation from the ledger, to the cent, for every grouping', () => {
    const byTeam = costReport(entries, { by: ['team'], since, until });
    // All spend is node time: tasks' shares plus idle.
    sameCents(byTeam.totals.costUsd, nodeCost());
    for (const team of ['research', 'product']) {
      const mine = usages()
        .filter((u) => u.team === team)
        .reduce((a, u) => a + raw(u), 0);
      sameCents(byTeam.rows.find((r) => r.key.team === team)!.costUsd, mine, team);
    }
    sameCents(byTeam.totals.idleUsd, nodeCost() - usages().reduce((a, u) => a + raw(u), 0));
    for (const d of DIMENSIONS) {
      const r = costReport(entries, { by: [d], since, until });
      sameCents(
        r.rows.reduce((a, x) => a + x.costUsd, 0),
        byTeam.totals.costUsd,
        d,
      );
    }
    const nested = costReport(entries, { by: ['team', 'gpu', 'capacity-type'], since, until });
    sameCents(
      nested.rows.reduce((a, x) => a + x.costUsd, 0),
      byTeam.totals.costUsd,
    );
    const days = byTeam.days.reduce((a, d) => a + Object.values(d.values).reduce((x, y) => x + y, 0), 0);
    sameCents(days, byTeam.totals.costUsd);
  });

  it('reports the same after a broker restart', async () => {
    const before = costReport(entries, { by: ['team', 'pool'], since, until });
    await system.broker.stop();
    const second = createBroker({
      transport: system.transport,
      store: system.brokerStore,
      platform: loadPlatform(['examples']).platform,
      backends: await defaultBackends(),
      heartbeatMs: 100,
      ledgerTimeScale: SPEEDUP,
    });
    await second.start();
    await eventually(() => second.isLeader(), 5000, 'the new broker leads');
    await new Promise((r) => setTimeout(r, 500));
    await second.state.writer.flush();
    const after = costReport(await readLedger(system.brokerStore), { by: ['team', 'pool'], since, until });
    await second.stop();
    expect(after.rows.map((r) => [r.key, cents(r.costUsd)])).toEqual(
      before.rows.map((r) => [r.key, cents(r.costUsd)]),
    );
    expect(cents(after.totals.costUsd)).toBe(cents(before.totals.costUsd));
  });

  it("renders the HTML page in Chromium, offline, with the console's charts and the totals of the JSON", async () => {
    const report: CostReport = costReport(entries, { by: ['team'], since, until, platform });
    const dir = 'test-artifacts';
    mkdirSync(dir, { recursive: true });
    const file = join(process.cwd(), dir, 'cost-report.html');
    writeFileSync(file, reportHtml(report));
    const browser = await chromium.launch({ executablePath: chromiumBinary(), args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage({ viewport: { width: 900, height: 1200 } });
      const problems: string[] = [];
      const requests: string[] = [];
      page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
      page.on('pageerror', (e) => problems.push(e.message));
      page.on('request', (r) => requests.push(r.url()));
      await page.goto(`file://${file}`);
      expect(await page.textContent('#total')).toBe(`$${report.totals.costUsd.toFixed(2)}`);
      expect(await page.textContent('#idle')).toBe(`$${report.totals.idleUsd.toFixed(2)}`);
      expect(await page.textContent('#savings')).toBe(`$${report.totals.spotSavingsUsd.toFixed(2)}`);
      const rowCosts = await page.$$eval('#rows td[data-cost]', (tds) => tds.map((td) => td.textContent));
      expect(rowCosts).toEqual(report.rows.map((r) => `$${r.costUsd.toFixed(2)}`));

      // Spend per day, drawn by recharts: a day per x tick, dollars on the y axis, a legend entry and
      // a bar segment per day and team that spent.
      await page.waitForSelector('#per-day .recharts-bar-rectangle');
      const ticks = (chart: string, axis: string) =>
        page.$$eval(`${chart} .recharts-${axis}-tick-labels .recharts-cartesian-axis-tick-value`, (ts) =>
          ts.map((t) => t.textContent),
        );
      expect(await ticks('#per-day', 'xAxis')).toEqual(report.days.map((d) => d.day.slice(5)));
      const yTicks = await ticks('#per-day', 'yAxis');
      expect(yTicks.length).toBeGreaterThan(2);
      for (const t of yTicks) expect(t).toMatch(/^\$\d+(\.\d+)?$/);
      const teams = [...new Set(report.days.flatMap((d) => Object.keys(d.values)))];
      expect(
        (
          await page.$$eval('#per-day .recharts-legend-item-text', (ls) => ls.map((l) => l.textContent!))
        ).sort(),
      ).toEqual(teams.sort());
      const segments = await page.$$eval(
        '#per-day .recharts-bar-rectangle',
        (rects) => rects.filter((r) => r.getBoundingClientRect().height > 0).length,
      );
      expect(segments).toBe(
        report.days.reduce((a, d) => a + Object.values(d.values).filter((v) => v > 0).length, 0),
      );

      // Spend by GPU model, against on-demand and replanned: a bar per category, each that is not zero
      // labelled with its amount.
      const gpus = Object.entries(report.byGpu).sort((a, b) => b[1] - a[1]);
      expect(await ticks('#by-gpu', 'xAxis')).toEqual(gpus.map(([g]) => g));
      const labels = (chart: string) =>
        page.$$eval(`${chart} .recharts-label-list text`, (ts) => ts.map((t) => t.textContent));
      expect(await labels('#by-gpu')).toEqual(gpus.filter(([, v]) => v > 0).map(([, v]) => money(v)));
      expect(await ticks('#savings-chart', 'xAxis')).toEqual([
        'Actual spend (incl. idle)',
        'The same work all on-demand',
      ]);
      expect(await labels('#savings-chart')).toEqual([
        money(report.totals.costUsd),
        money(report.totals.onDemandUsd),
      ]);
      expect(await ticks('#replan-chart', 'xAxis')).toEqual(["Gantry's plan", 'Cheapest-first greedy']);
      expect(await labels('#replan-chart')).toEqual([
        money(report.totals.plannedUsd!),
        money(report.totals.greedyUsd!),
      ]);
      // One file, nothing fetched.
      expect(requests).toEqual([`file://${file}`]);
      expect(problems).toEqual([]);
      await page.screenshot({ path: join(dir, 'cost-report.png'), fullPage: true });
    } finally {
      await browser.close();
    }
  }, 60_000);
});

describe('monthly budgets', () => {
  let system: TestSystem;
  afterAll(() => system?.stop());

  it("holds the request that would cross a team's monthly cap, naming the budget, and alerts on the way", async () => {
    system = await startSystem('embedded', { platformDir: 'test/fixtures/budget-platform', speedup: 1000 });
    const client = new TestClient(system.transport);
    // An hour of a quarter of a $0.40/h on-demand node is at least $0.10: four fit in $0.50.
    const hour = {
      resources: { cpu: 2, memory: '8Gi', duration: '1h' },
      work: { kind: 'sim', durationMs: 3_600_000 },
    };
    const first = await Promise.all(Array.from({ length: 4 }, (_, i) => client.request(`b-${i}`, hour)));
    expect(first.every((r) => r.ok)).toBe(true);
    void client.request('b-over', hour, 60_000);
    const reason = () => system.broker.state.requests.get('b-over')?.reason ?? '';
    await eventually(() => reason().startsWith('budget:'), 5000, 'held');
    expect(reason()).toMatch(
      /^budget: this request \(at least \$0\.\d{4}\) would cross team ml's monthly budget of \$0\.50 \(policy ml-budget\): \$0\.\d{4} left$/,
    );
    expect(system.broker.state.requests.get('b-over')!.state).toBe('pending');
    const reply = decodeJson(
      (await system.transport.request(subjects.admin('budgets'), encodeJson({}))).data,
    ) as {
      budgets: {
        team: string;
        policy: string;
        perMonth: { cap: number; committed: number; remaining: number };
      }[];
    };
    const ml = reply.budgets.find((b) => b.team === 'ml')!;
    expect(ml).toMatchObject({ policy: 'ml-budget', perMonth: { cap: 0.5 } });
    expect(ml.perMonth.committed).toBeGreaterThan(0.39);
    expect(ml.perMonth.remaining).toBeLessThan(0.11);
    // 80% committed: the 50% alert fired once, the 100% one not.
    const metrics = await system.broker.metrics.registry.metrics();
    expect(metrics).toMatch(/gantry_budget_alerts_total\{team="ml",policy="ml-budget",threshold="0.5"\} 1/);
    // Every threshold's counter is there from the start, at 0 until crossed.
    expect(metrics).toMatch(/gantry_budget_alerts_total\{team="ml",policy="ml-budget",threshold="1"\} 0$/m);
    expect(metrics).toMatch(/gantry_budget_used_ratio\{team="ml",policy="ml-budget"\} 0\.[78]/);
  }, 30_000);
});
