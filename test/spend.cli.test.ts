/**
 * Gantry never spends what it did not plan, through `gantry run` as users run it: tasks that run past
 * their declared duration stay within their team's monthly budget (extended while it has room, or
 * stopped), overrides cannot declare their way past it, and fractional GPUs count against quotas.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readLifecycle, type TaskUsage, usageCost } from '../broker/index.ts';
import { openLocalStore } from '../protocol/index.ts';
import { runGantry } from './cli.ts';

const PLATFORM = 'test/fixtures/spend-platform';
const WORKFLOWS = 'test/fixtures/workflows/spend.ts';

/** What each team's finished leases cost, from the state directory's ledger. */
async function spentByTeam(state: string): Promise<Map<string, number>> {
  const store = await openLocalStore(join(state, 'broker'));
  const out = new Map<string, number>();
  try {
    for await (const e of readLifecycle(store)) {
      if (e.kind !== 'usage') continue;
      const u = e as TaskUsage;
      out.set(u.team, (out.get(u.team) ?? 0) + usageCost(u));
    }
  } finally {
    await store.close();
  }
  return out;
}

const run = (state: string, task: string, team: string, input: unknown, speedup = '600') =>
  runGantry(
    'run',
    WORKFLOWS,
    '--task',
    task,
    '--team',
    team,
    '--input',
    JSON.stringify(input),
    '-f',
    PLATFORM,
    '--state',
    state,
    '--speedup',
    speedup,
  );

describe('monthly budgets on actual spend', () => {
  // Four tasks of a whole $0.40/h node declaring a minute and running an hour would spend $1.60.
  it.each([
    ['ml', 'extend'],
    ['strict', 'stop'],
  ])(
    'team %s (onOverrun: %s): four tasks declaring 1m that run an hour stay within the $0.20 cap',
    async (team, mode) => {
      const state = mkdtempSync(join(tmpdir(), 'gantry-spend-'));
      const r = await run(state, 'overrun', team, { ms: 3_600_000 });
      expect(r.code).toBe(0);
      const spent = (await spentByTeam(state)).get(team) ?? 0;
      // One health tick (250 ms at 600×: 150 simulated seconds) of four $0.40/h leases is $0.067.
      expect(spent).toBeLessThanOrEqual(0.2 + 0.07);
      expect(spent).toBeGreaterThan(mode === 'extend' ? 0.15 : 0.02);
      const out = JSON.parse(/output: (.*)/.exec(r.out)![1]!) as { error?: string }[];
      // Every task was stopped with a typed error before its hour was up.
      expect(out).toHaveLength(4);
      for (const o of out) expect(o).toEqual({ error: 'BudgetExceededError' });
    },
    60_000,
  );

  it('four 8×H100 overrides declaring 1s and running 30 s each stay within a $1 cap', async () => {
    const state = mkdtempSync(join(tmpdir(), 'gantry-spend-'));
    const r = await run(state, 'h100', 'gpu', { ms: 30_000 }, '60');
    expect(r.code).toBe(0);
    const spent = (await spentByTeam(state)).get('gpu') ?? 0;
    // A tick at 60× is 15 simulated seconds: four $98/h nodes spend $1.64 in it.
    expect(spent).toBeLessThanOrEqual(1 + 1.65);
    const out = JSON.parse(/output: (.*)/.exec(r.out)![1]!) as { error?: string }[];
    expect(out.filter((o) => o.error === 'BudgetExceededError').length).toBeGreaterThan(0);
    // The leases ran: stopped on actual spend, not refused up front.
    expect(spent).toBeGreaterThan(0.5);
  }, 60_000);
});

describe('fractional GPUs', () => {
  it('refuses a GPU fraction below the smallest slice, naming the field', async () => {
    const state = mkdtempSync(join(tmpdir(), 'gantry-spend-'));
    const r = await run(state, 'fractions', 'shared', { gpu: 'L4:0.0000001', ms: 60_000 });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /PolicyRefusedError: slice: resources\.gpu: 'L4:0\.0000001' asks for 1e-7 of a GPU: a shared device is sliced in tenths/,
    );
  }, 60_000);

  it('counts each half GPU against a 2-GPU quota: at most four of twelve run at once', async () => {
    const state = mkdtempSync(join(tmpdir(), 'gantry-spend-'));
    const r = await run(state, 'fractions', 'shared', { gpu: 'L4:0.5', ms: 90_000 }, '60');
    expect(r.code).toBe(0);
    const most = Number(/output: (\d+)/.exec(r.out)![1]);
    expect(most).toBeGreaterThan(1);
    expect(most).toBeLessThanOrEqual(4);
  }, 90_000);
});

describe('holds say why and end', () => {
  it('prints each hold with its reason, and fails a task held past maxQueueTime with a typed error', async () => {
    const state = mkdtempSync(join(tmpdir(), 'gantry-spend-'));
    const r = await run(state, 'queue', 'impatient', { ms: 480_000 }, '60');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^ {2}held {7}long {11}\(quota\) policy impatient: gpu quota .+$/m);
    const out = JSON.parse(/output: (.*)/.exec(r.out)![1]!) as { ok?: number; error?: string }[];
    expect(out.map((o) => o.error ?? 'ok').sort()).toEqual(['MaxQueuedTimeExceededError', 'ok']);
  }, 60_000);

  it('--fail-on-held cancels the run at the first hold and exits 1', async () => {
    const state = mkdtempSync(join(tmpdir(), 'gantry-spend-'));
    const r = await runGantry(
      'run',
      WORKFLOWS,
      '--task',
      'queue',
      '--team',
      'impatient',
      '--input',
      '{"ms":1200000}',
      '-f',
      PLATFORM,
      '--state',
      state,
      '--fail-on-held',
    );
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^ {2}held {7}long {11}\(quota\) /m);
    expect(r.out).toMatch(
      /^run run-\S+ cancelled: 1 running lease\(s\) stopped, 1 pending request\(s\) withdrawn$/m,
    );
    expect(r.err).toMatch(
      /RunCancelledError: long: run run-\S+ was cancelled \(--fail-on-held: long held \(quota\)\)/,
    );
  }, 60_000);
});
