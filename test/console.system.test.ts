/**
 * The console in a real browser against a real embedded run: `gantry demo --console-port 0` runs the
 * example ML workflow (with its spot preemption) and serves the console; a headless Chromium opens
 * every page. The pages must load without console errors, update without a reload while the run
 * goes, and show what the CLI prints for the same run: each task's pool and price (`gantry describe
 * run`), the cost totals (`gantry report cost -o json`) and the downstream set (`gantry lineage
 * --downstream`). Drain and undrain from the Clusters page reach the broker. Screenshots of every page
 * go to test-artifacts/.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openBrowser, pageProblems } from './browser.ts';
import { type GantryProcess, spawnGantry, startGantry } from './cli.ts';

const ARTIFACTS = 'test-artifacts';
let state: string;
let demo: GantryProcess;
let url: string;
let browser: Awaited<ReturnType<typeof openBrowser>>;
let context: BrowserContext;
let runId: string;

/** The CLI's JSON for the same history, asked of the console's server. */
async function cli<T>(...args: string[]): Promise<T> {
  const r = await spawnGantry([...args, '--history', url, '-o', 'json']);
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.out) as T;
}

const pages: Page[] = [];

async function open(path: string): Promise<{ page: Page; problems: string[] }> {
  const page = await context.newPage();
  pages.push(page);
  const problems = pageProblems(page);
  await page.goto(`${url}/#/${path}`);
  return { page, problems };
}

const shot = (page: Page, name: string) =>
  page.screenshot({ path: join(ARTIFACTS, `console-${name}.png`), fullPage: true });

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  state = mkdtempSync(join(tmpdir(), 'gantry-console-'));
  // Slower than the demo's default, so that the run is still going when the browser opens.
  demo = startGantry(['demo', '--state', state, '--console-port', '0', '--speedup', '300', '-q']);
  await demo.waitFor(/console on http:\/\/127\.0\.0\.1:\d+/, 60_000);
  url = /console on (http:\/\/127\.0\.0\.1:\d+)/.exec(demo.output())![1]!;
  browser = await openBrowser();
  context = browser.context;
}, 90_000);

// Each page holds an event stream, and Chromium opens at most six connections to one server.
afterEach(async () => {
  for (const p of pages.splice(0)) await p.close();
});

afterAll(async () => {
  await browser?.close();
  expect(await demo?.stop()).toBe(0);
  rmSync(state, { recursive: true, force: true });
});

describe('the console against gantry demo', () => {
  it('shows the run appear and finish on the Runs page without a reload', async () => {
    const { page, problems } = await open('runs');
    let navigations = 0;
    page.on('framenavigated', (f) => {
      if (f === page.mainFrame()) navigations++;
    });
    await page.waitForSelector('[data-testid=runs]');
    const before = await page.textContent('[data-testid=runs] tbody');
    expect(before).not.toContain('succeeded');
    await page.waitForSelector('[data-testid=runs] tbody >> text=succeeded', { timeout: 60_000 });
    runId = (await page.textContent('[data-testid=runs] tbody tr:first-child td:first-child'))!.trim();
    expect(runId).toMatch(/^run-/);
    expect(navigations).toBe(0);
    expect(Number(await page.getAttribute('.live', 'data-changes'))).toBeGreaterThan(0);
    await demo.waitFor(/: Ctrl-C stops it\n/, 60_000);
    expect(problems).toEqual([]);
    await shot(page, 'runs');
  }, 120_000);

  it("shows each task's pool and price as gantry describe run does", async () => {
    const described = await cli<{
      executions: {
        task: string;
        placement?: { cluster: string; pool: string; capacityType: string; pricePerHour: number };
      }[];
    }>('describe', 'run', runId);
    const expected: Record<string, string[]> = {};
    for (const e of described.executions) {
      const p = e.placement;
      const where = p ? `${p.cluster}/${p.pool} ${p.capacityType} $${p.pricePerHour.toFixed(2)}` : 'driver';
      expected[e.task] = [...new Set([...(expected[e.task] ?? []), where])].sort();
    }
    const { page, problems } = await open(`runs/${runId}?task=evaluate`);
    await page.waitForSelector('[data-testid=tasks]');
    await page.waitForSelector('[data-testid=executions] tbody tr');
    const shown = await page.$$eval('[data-testid=tasks] tbody tr', (rows) =>
      Object.fromEntries(
        rows.map((r) => {
          const task = r.querySelector('[data-task]')!.getAttribute('data-task')!;
          const where = [...r.querySelectorAll('[data-where]')].map(
            (li) => `${li.getAttribute('data-where')} ${li.getAttribute('data-price')}`,
          );
          return [task, where.length ? where.sort() : ['driver']];
        }),
      ),
    );
    expect(shown).toEqual(expected);
    expect(Object.keys(shown)).toEqual(expect.arrayContaining(['preprocess', 'train', 'evaluate']));
    expect(await page.textContent('[data-testid=executions]')).toContain('8 of 8');
    expect(problems).toEqual([]);
    await shot(page, 'run');
  });

  it('shows the cost totals of gantry report cost -o json', async () => {
    const report = await cli<{ totals: { costUsd: number; onDemandUsd: number } }>(
      'report',
      'cost',
      '--by',
      'team',
      '--since',
      '30d',
    );
    expect(report.totals.costUsd).toBeGreaterThan(0);
    const { page, problems } = await open('costs');
    const total = await page.waitForSelector('[data-testid=total-cost] [data-usd]');
    expect(Number(await total.getAttribute('data-usd'))).toBeCloseTo(report.totals.costUsd, 6);
    const onDemand = await page.getAttribute('[data-testid=on-demand] [data-usd]', 'data-usd');
    expect(Number(onDemand)).toBeCloseTo(report.totals.onDemandUsd, 6);
    const download = page.waitForEvent('download');
    await page.click('[data-testid=csv]');
    const csv = await (await download).createReadStream();
    let text = '';
    for await (const chunk of csv) text += String(chunk);
    expect(text.split('\n')[0]).toBe('team,cost_usd,idle_usd,on_demand_usd,executions,gpu_hours');
    expect(problems).toEqual([]);
    await shot(page, 'costs');
  });

  it('shows the downstream set of gantry lineage --downstream, one click from the run', async () => {
    const up = await cli<{ executions: { execution: string; task: string; input: string }[] }>(
      'lineage',
      runId,
    );
    const input = up.executions.find((e) => e.task === 'train-pipeline')!.input;
    const down = await cli<{ executions: { execution: string }[] }>('lineage', input, '--downstream');
    expect(down.executions.length).toBeGreaterThan(1);
    const { page, problems } = await open(`lineage?target=${runId}`);
    await shot(page, 'lineage-run');
    await page.click(`[data-artifact="${input}"]`);
    await page.waitForSelector('[data-testid=lineage-summary] >> text=downstream of');
    const shown = await page.$$eval('[data-execution]', (gs) =>
      gs.map((g) => g.getAttribute('data-execution')!),
    );
    expect(shown.sort()).toEqual(down.executions.map((e) => e.execution).sort());
    expect(problems).toEqual([]);
    await shot(page, 'lineage');
  });

  it('drains and undrains a cluster from the Clusters page', async () => {
    const draining = async () =>
      (
        (await (await fetch(`${url}/v1/live/clusters`)).json()) as {
          clusters: { name: string; draining: boolean }[];
        }
      ).clusters.find((c) => c.name === 'aws-use1')!.draining;
    const { page, problems } = await open('clusters');
    await page.click('[data-testid=drain-aws-use1]');
    await page.waitForSelector('[data-testid=undrain-aws-use1]');
    expect(await draining()).toBe(true);
    await shot(page, 'clusters-draining');
    await page.click('[data-testid=undrain-aws-use1]');
    await page.waitForSelector('[data-testid=drain-aws-use1]');
    expect(await draining()).toBe(false);
    expect(problems).toEqual([]);
    await shot(page, 'clusters');
  });

  it.each([
    ['overview', '[data-testid=recent-runs] tbody tr'],
    ['queue', '[data-testid=queue-total]'],
    ['whatif', 'textarea'],
  ])('loads %s without console errors', async (path, selector) => {
    const { page, problems } = await open(path);
    await page.waitForSelector(selector);
    if (path === 'whatif') {
      await page.click('[data-testid=plan]');
      await page.waitForSelector('[data-testid=plan-result]');
      expect(await page.textContent('[data-testid=plan-result]')).toMatch(/\$\d[\d.]*LP lower bound/);
    }
    if (path === 'overview') expect(await page.textContent('[data-testid=recent-runs]')).toContain(runId);
    expect(problems).toEqual([]);
    await shot(page, path);
  });
});
