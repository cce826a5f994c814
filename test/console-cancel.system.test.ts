/**
 * Cancel from the console, in a real browser: `gantry up --nats --console-port 0` with a view token
 * and an admin token, a `gantry run --nats` of four tasks of ten simulated hours, and a headless
 * Chromium on the run page. While the run goes, `gantry describe run` and the run page show its four
 * executions running. The view token is shown no cancel button and is refused when it posts
 * the action anyway (the leases keep running); the admin token's click stops the run as `gantry run
 * cancel` does: its leases stop, its driver ends with RunCancelledError, the page shows it cancelled
 * without a reload, `gantry get runs` says cancelled and a second cancel finds nothing to stop.
 */
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBrowser, pageProblems } from './browser.ts';
import {
  type GantryProcess,
  leasesIn,
  spawnGantry,
  startGantry,
  startLongRunning,
  stopUp,
  until,
} from './cli.ts';
import { type NatsServer, startNatsServer } from './nats/server.ts';

const ARTIFACTS = 'test-artifacts';
const VIEW = 'view-token-0123456789';
const ADMIN = 'admin-token-0123456789';

let server: NatsServer;
let up: GantryProcess;
let state: string;
let url: string;
let browser: Awaited<ReturnType<typeof openBrowser>>;

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  state = mkdtempSync(join(tmpdir(), 'gantry-console-cancel-'));
  server = await startNatsServer();
  up = startGantry(
    [
      'up',
      '-f',
      'test/fixtures/spend-platform',
      '--nats',
      server.url,
      '--state',
      state,
      '--console-port',
      '0',
    ],
    { env: { ...process.env, GANTRY_CONSOLE_TOKEN: VIEW, GANTRY_CONSOLE_ADMIN_TOKEN: ADMIN } },
  );
  await up.waitFor(/^Console: http:\/\/127\.0\.0\.1:\d+\/$/m, 60_000);
  url = /^Console: (http:\/\/127\.0\.0\.1:\d+)\/$/m.exec(up.output())![1]!;
  browser = await openBrowser();
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await stopUp(up, server, state);
}, 30_000);

/** The ids of the broker's leases in `status`. */
const leases = async (status: string) => (await leasesIn(server.url, status)).map((l) => l.leaseId).sort();

describe('cancel from the console', () => {
  it('is refused to a view token and stops a running run for the admin token', async () => {
    const { run, runId, leases: running } = await startLongRunning(server.url);
    // Executions reach the history when placed: `gantry describe run` says which still run.
    const viewer = { ...process.env, GANTRY_CONSOLE_TOKEN: VIEW };
    const describe = (...args: string[]) =>
      spawnGantry(['describe', 'run', runId, '--state', state, ...args], { env: viewer });
    await until(
      'four executions of long running in the history',
      async () =>
        (
          JSON.parse((await describe('-o', 'json')).out) as {
            executions: { task: string; running: boolean }[];
          }
        ).executions.filter((e) => e.task === 'long' && e.running).length,
      (n) => n === 4,
    );
    const text = await describe();
    expect(text.err).toBe('');
    const rows = text.out.split('\n').filter((l) => /^ {2}long /.test(l));
    expect(rows).toHaveLength(4);
    for (const row of rows)
      expect(row).toMatch(
        /^ {2}long +\S+ +1 +running +sim-\S+\/\S+ +\S+ +\$\d+\.\d{2} +\$\S+ +\d+\.\ds so far$/,
      );
    expect(text.out).toMatch(/^Executions \(\d+, 4 running\):$/m);

    const page = await browser.context.newPage();
    const problems = pageProblems(page);

    // The view token reads the run page, with its tasks' running executions, is offered no cancel,
    // and is refused when it posts one.
    await page.goto(`${url}/?token=${VIEW}#/runs/${runId}?task=long`);
    await page.waitForSelector('h1 .status-running', { timeout: 30_000 });
    expect(await page.textContent('[data-testid=run-id]')).toBe(runId);
    await page.waitForSelector('[data-testid=executions] tbody tr:nth-child(4)');
    const longRow = await page.$$eval('[data-testid=tasks] tbody tr', (trs) =>
      trs
        .filter((tr) => tr.querySelector('[data-task=long]'))
        .map((tr) => [...tr.querySelectorAll('td')].slice(0, 4).map((td) => td.textContent)),
    );
    expect(longRow).toEqual([['long', '4', '4', '4']]);
    const phases = await page.$$eval('[data-testid=executions] tbody tr', (trs) =>
      trs.map((tr) => [tr.children[2]!.textContent, /so far$/.test(tr.children[7]!.textContent ?? '')]),
    );
    expect(phases).toEqual(Array(4).fill(['running', true]));
    expect(await page.$('[data-testid=cancel]')).toBeNull();
    const refused = await page.evaluate(async (run) => {
      const res = await fetch('/v1/actions/cancel', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-gantry-console': '1' },
        body: JSON.stringify({ run }),
      });
      return { status: res.status, body: (await res.json()) as { error: { message: string } } };
    }, runId);
    expect(refused.status).toBe(403);
    expect(refused.body.error.message).toBe('this token may not act: it takes the admin token');
    expect(await leases('running')).toEqual(running);
    expect(problems).toEqual([
      `HTTP 403: ${url}/v1/actions/cancel`,
      'console: Failed to load resource: the server responded with a status of 403 (Forbidden)',
    ]);
    problems.length = 0;

    // The admin token's click stops it.
    await page.goto(`${url}/?token=${ADMIN}#/runs/${runId}`);
    await page.click('[data-testid=cancel]', { timeout: 30_000 });
    const note = await page.waitForSelector('[data-testid=note] >> text=cancelled:');
    expect(await note.textContent()).toBe(
      'cancelled: 4 running lease(s) stopped, 0 pending request(s) withdrawn',
    );
    await until(
      'no lease running',
      () => leases('running'),
      (l) => l.length === 0,
    );
    const failed = await leases('failed');
    for (const id of running) expect(failed).toContain(id);
    await run.waitFor(/^run run-\S+ failed after/m, 30_000);
    expect(await run.exited).toBe(1);
    expect(run.output()).toMatch(
      new RegExp(`: RunCancelledError: long: run ${runId} was cancelled \\(from the console\\)$`, 'm'),
    );
    // The page hears the run end without a reload.
    await page.waitForSelector('h1 .status-cancelled', { timeout: 30_000 });
    expect(await page.$('[data-testid=cancel]')).toBeNull();
    await page.screenshot({ path: join(ARTIFACTS, 'console-run-cancelled.png'), fullPage: true });

    const again = await spawnGantry(['run', 'cancel', runId, '--nats', server.url]);
    expect(again.out).toBe(`run ${runId}: nothing pending or running to cancel\n`);
    // The CLI on the same state directory asks this console, with its view token.
    const get = (env: NodeJS.ProcessEnv) =>
      spawnGantry(['get', 'runs', '--state', state, '--status', 'cancelled', '-o', 'json'], { env });
    const noToken = await get({ ...process.env, GANTRY_CONSOLE_TOKEN: '' });
    expect(noToken.err).toBe(
      `gantry: the history API at ${url} needs a token: set GANTRY_CONSOLE_TOKEN to the console's view token\n`,
    );
    const runs = await get({ ...process.env, GANTRY_CONSOLE_TOKEN: VIEW });
    expect(runs.err).toBe('');
    expect(runs.code).toBe(0);
    expect(JSON.stringify(JSON.parse(runs.out))).toContain(runId);
    expect(problems).toEqual([]);
    await page.close();
  }, 150_000);
});
