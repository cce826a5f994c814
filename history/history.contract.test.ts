/**
 * One contract suite for both history backends: the embedded PGlite and a real PostgreSQL server give
 * the same answers to the same SQL, and those answers are the ones the replay of the logs gives.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  costReport,
  type CostReport,
  type Dimension,
  type LedgerEntry,
  type TaskUsage,
  usageCost,
} from '../broker/index.ts';
import type { Platform } from '../policies/index.ts';
import type { RunRecord } from '../protocol/index.ts';
import { lineageGraph } from '../runtime/index.ts';
import { asLog, lineage, lineageChains, randomLedger } from '../test/history-data.ts';
import { createTestDatabase } from '../test/postgres.ts';
import {
  DAY,
  describeRun,
  historyApi,
  type History,
  HistoryQueryError,
  HOUR,
  IngestGapError,
  listRuns,
  migrate,
  openHistory,
  recordBudgets,
  SCHEMA_VERSION,
  sqlCostReport,
  sqlLineage,
} from './index.ts';

const T0 = Date.UTC(2026, 10, 2, 0, 0, 0);

const backends: [string, () => Promise<{ history: History; dispose(): Promise<void> }>][] = [
  [
    'PGlite',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'gantry-history-'));
      const history = await openHistory({ dir });
      return { history, dispose: async () => rmSync(dir, { recursive: true, force: true }) };
    },
  ],
  [
    'PostgreSQL',
    async () => {
      const db = await createTestDatabase();
      const history = await openHistory({ dir: '', postgres: db.url });
      return { history, dispose: () => db.drop() };
    },
  ],
];

/** The report's numbers, rounded, keyed for comparison. */
function digest(r: CostReport) {
  const round = (v: number) => Math.round(v * 1e4) / 1e4;
  const rows = Object.fromEntries(
    r.rows
      .filter((row) => Math.abs(row.costUsd) > 1e-9 || row.executions > 0)
      .map((row) => [
        JSON.stringify(r.by.map((d) => row.key[d])),
        [round(row.costUsd), round(row.idleUsd), round(row.onDemandUsd), row.executions, round(row.gpuHours)],
      ]),
  );
  const t = r.totals;
  return {
    rows,
    totals: [round(t.costUsd), round(t.idleUsd), round(t.onDemandUsd), t.executions, t.nodes],
    byGpu: Object.fromEntries(
      Object.entries(r.byGpu)
        .filter(([, v]) => Math.abs(v) > 1e-9)
        .map(([k, v]) => [k, round(v)]),
    ),
    perDay: r.days.map((d) => round(Object.values(d.values).reduce((a, b) => a + b, 0))),
  };
}

describe.each(backends)('history on %s', (_name, open) => {
  let history: History;
  let dispose: () => Promise<void>;
  const ledger: LedgerEntry[] = randomLedger(7, 400, T0);
  const onDemand = new Map([
    ['m7i.2xlarge', 0.4032],
    ['g2-standard-8', 0.85],
  ]);

  beforeAll(async () => {
    ({ history, dispose } = await open());
    const log = asLog(ledger, 50);
    // Ingested in uneven batches, one of them twice, the first two handed over at once (the second
    // written after the first commits): exactly once all the same.
    const first = history.ingester.apply('broker', log.slice(0, 3));
    await history.ingester.apply('broker', log.slice(0, 7));
    await first;
    await history.ingester.apply('broker', log.slice(7));
  }, 120_000);
  afterAll(async () => {
    await history?.close();
    await dispose?.();
  });

  it('migrates once, to the version this code knows', async () => {
    expect(await migrate(history.db)).toEqual([]);
    const rows = await history.db.query<{ v: number }>('select max(version) as v from schema_migrations');
    expect(rows[0]!.v).toBe(SCHEMA_VERSION);
  });

  it('keeps each team’s budget as declared, a row again only when it changes', async () => {
    const platform = (budget: { perMonth: number }) =>
      ({
        policies: [{ name: 'research', teams: ['research', 'ml'], budget: { ...budget, alertAt: [0.8, 1] } }],
      }) as unknown as Platform;
    expect(await recordBudgets(history.db, platform({ perMonth: 1000 }), T0)).toBe(2);
    expect(await recordBudgets(history.db, platform({ perMonth: 1000 }), T0 + HOUR)).toBe(0);
    expect(await recordBudgets(history.db, platform({ perMonth: 2500 }), T0 + 2 * HOUR)).toBe(2);
    const app = historyApi({ db: history.db });
    const at = async (t: number) =>
      (
        (await (await app.request(`/v1/budgets?at=${t}`)).json()) as {
          budgets: { team: string; perMonth: number }[];
        }
      ).budgets;
    expect((await at(T0 + HOUR)).map((b) => [b.team, b.perMonth])).toEqual([
      ['ml', 1000],
      ['research', 1000],
    ]);
    expect((await at(T0 + 3 * HOUR)).map((b) => [b.team, b.perMonth])).toEqual([
      ['ml', 2500],
      ['research', 2500],
    ]);
  });

  it('ingests every record once, whatever the batches', async () => {
    const [row] = await history.db.query<{ n: number }>('select count(*)::int as n from usage');
    const n = row!.n;
    expect(n).toBe(ledger.filter((e) => e.kind === 'usage').length);
    expect(await history.ingester.offset('broker')).toBe(asLog(ledger, 50).length);
    const again = await history.ingester.apply('broker', asLog(ledger, 50));
    expect(again.entries).toBe(0);
  });

  const windows: [string, number, number][] = [
    ['everything', T0 - DAY, T0 + 3 * DAY],
    ['cut mid-hour at both ends', T0 + 5 * HOUR + 1234, T0 + 27 * HOUR + 777_000],
    ['whole hours', T0 + 2 * HOUR, T0 + 20 * HOUR],
    ['within one hour', T0 + 10 * HOUR + 60_000, T0 + 10 * HOUR + 1_800_000],
    ['across an hour boundary only', T0 + 10 * HOUR - 600_000, T0 + 10 * HOUR + 600_000],
  ];
  const groupings: Dimension[][] = [
    ['team', 'pool'],
    ['gpu', 'capacity-type'],
    ['run', 'task'],
    ['workflow', 'cluster'],
  ];

  it.each(windows)('the cost report equals the replay of the ledger: %s', async (_w, since, until) => {
    for (const by of groupings) {
      const replay = costReport(ledger, { by, since, until });
      const sql = await sqlCostReport(history.db, { by, since, until });
      expect(digest(sql)).toEqual(digest(replay));
      // The all-on-demand comparison uses the same prices.
      const withPrices = await sqlCostReport(history.db, { by, since, until, onDemand });
      expect(withPrices.totals.onDemandUsd).toBeGreaterThan(sql.totals.onDemandUsd);
    }
  });

  it('buckets spend by any whole number of hours', async () => {
    const r = await sqlCostReport(history.db, { by: ['team'], since: T0, until: T0 + DAY, stepMs: 6 * HOUR });
    expect(r.buckets.map((b) => b.start)).toEqual([0, 1, 2, 3].map((i) => T0 + i * 6 * HOUR));
    const sum = r.buckets.reduce((s, b) => s + Object.values(b.values).reduce((a, c) => a + c, 0), 0);
    expect(sum).toBeCloseTo(r.totals.costUsd, 6);
    await expect(
      sqlCostReport(history.db, { by: ['team'], since: T0, until: T0 + DAY, stepMs: 90_000 }),
    ).rejects.toThrow(HistoryQueryError);
  });

  describe('lineage and runs', () => {
    const chains = lineageChains(6, 5);
    const runs: (RunRecord & { kind: 'run' })[] = Array.from({ length: 6 }, (_, r) => ({
      kind: 'run',
      run: `run-${r}`,
      workflow: r % 2 === 0 ? 'pipeline' : 'other',
      module: '/w.ts',
      team: r < 3 ? 'research' : 'product',
      status: r === 4 ? 'failed' : 'succeeded',
      startedAt: T0 + r * 1000,
      endedAt: T0 + r * 1000 + 500,
      input: 'sha256:x',
      costUsd: r,
      executions: 6,
    }));
    beforeAll(async () => {
      await history.ingester.apply('runtime', asLog([...runs, ...chains, { not: 'a record' }], 7));
    });

    it.each([
      ['downstream of the source', chains[1]!.refs!.input![0]!, { downstream: true }],
      ['downstream, 5 hops', chains[1]!.refs!.input![0]!, { downstream: true, depth: 5 }],
      ['upstream of the last output', chains.at(-1)!.output!, {}],
      ['upstream, 3 hops', chains.at(-1)!.output!, { depth: 3 }],
      ['a run, upstream', 'run-3', {}],
      ['a run, downstream', 'run-2', { downstream: true }],
    ] as const)('%s equals the replay', async (_what, target, opts) => {
      const sql = await sqlLineage(history.db, target, opts);
      const replay = lineageGraph(chains, target, opts)!;
      expect(sql!.executions.map((e) => e.execution)).toEqual(replay.executions.map((e) => e.execution));
      expect(new Set(sql!.edges.map((e) => JSON.stringify(e)))).toEqual(
        new Set(replay.edges.map((e) => JSON.stringify(e))),
      );
    });

    it('takes hash prefixes, and says when one is ambiguous', async () => {
      const out = chains[3]!.output!;
      const g = await sqlLineage(history.db, out.slice(7, 40), { downstream: true, depth: 1 });
      expect(g?.root).toBe(out);
      await expect(sqlLineage(history.db, 'sha256:72756e')).rejects.toThrow(/matches more than 10/);
      expect(await sqlLineage(history.db, 'sha256:ffff')).toBeUndefined();
    });

    it('lists runs by team, workflow, status and time, a page at a time', async () => {
      const page1 = await listRuns(history.db, { team: 'research', limit: 2 });
      expect(page1.runs.map((r) => r.run)).toEqual(['run-2', 'run-1']);
      const page2 = await listRuns(history.db, { team: 'research', limit: 2, cursor: page1.next! });
      expect(page2.runs.map((r) => r.run)).toEqual(['run-0']);
      expect(page2.next).toBeUndefined();
      expect((await listRuns(history.db, { status: 'failed' })).runs.map((r) => r.run)).toEqual(['run-4']);
      expect(
        (await listRuns(history.db, { workflow: 'other', since: T0 + 2000 })).runs.map((r) => r.run),
      ).toEqual(['run-5', 'run-3']);
    });

    it('describes a run with its executions', async () => {
      const d = (await describeRun(history.db, 'run-1'))!;
      expect(d.run.team).toBe('research');
      expect(d.executions.map((e) => e.task)).toEqual([
        'pipeline',
        'step0',
        'step1',
        'step2',
        'step3',
        'step4',
      ]);
      expect(await describeRun(history.db, 'run-404')).toBeUndefined();
    });

    it('keeps records that are not schema-checked apart, with the reason', async () => {
      const rows = await history.db.query<{ error: string }>(
        "select error from ingest_rejects where source = 'runtime'",
      );
      expect(rows).toHaveLength(1);
      expect(rows[0]!.error).toMatch(/^run: /);
    });

    it('shows a run the broker ended as ended, whichever log is read first', async () => {
      const start = (run: string): RunRecord & { kind: 'run' } => ({
        kind: 'run',
        run,
        workflow: 'drv',
        module: '/drv.ts',
        team: 'ops',
        status: 'running',
        startedAt: T0 + 60_000,
        input: 'sha256:y',
        costUsd: 0,
        executions: 0,
      });
      const ended = (id: string, state: string) => ({
        at: T0 + 120_000,
        kind: 'run',
        id,
        state,
        team: 'ops',
        reason: `run ${id}'s driver sent no heartbeat for 16 s (grace 15 s): its work was stopped`,
        request: 'drv',
      });
      await history.ingester.apply('runtime', asLog([start('run-late')], 1, 10_000));
      await history.ingester.apply(
        'broker',
        asLog(
          [ended('run-gone', 'abandoned'), ended('run-late', 'abandoned'), ended('run-0', 'cancelled')],
          3,
          10_000,
        ),
      );
      // The start of a run the broker already ended, read after its end.
      await history.ingester.apply('runtime', asLog([start('run-gone')], 1, 10_001));
      const ops = (await listRuns(history.db, { team: 'ops' })).runs;
      expect(ops.map((r) => [r.run, r.status, r.workflow, r.startedAt, r.endedAt])).toEqual([
        ['run-late', 'abandoned', 'drv', T0 + 60_000, T0 + 120_000],
        ['run-gone', 'abandoned', 'drv', T0 + 60_000, T0 + 120_000],
      ]);
      expect(ops[0]!.error).toMatch(/no heartbeat/);
      expect((await listRuns(history.db, { status: 'abandoned' })).runs).toHaveLength(2);
      // A run its driver ended stays as the driver said.
      expect((await describeRun(history.db, 'run-0'))!.run.status).toBe('succeeded');
    });

    it('shows an execution from its start, completed by its end, whichever is read first', async () => {
      const placement = {
        cluster: 'aws',
        pool: 'spot-a',
        node: 'n-1',
        capacityType: 'spot',
        pricePerHour: 1.5,
        cpuMilli: 1000,
        memoryMiB: 512,
        gpuMilli: 0,
        gpuModel: null,
      };
      const started = (execution: string) => ({
        kind: 'start' as const,
        run: 'run-live',
        execution,
        task: 'train',
        codeHash: 'c',
        attempt: 0,
        input: 'sha256:in',
        asked: {},
        override: false,
        placement,
        startedAt: T0 + 1000,
      });
      const ended = (execution: string) => {
        const { kind: _kind, ...rest } = started(execution);
        return { ...rest, preemptions: 0, endedAt: T0 + 9000, costUsd: 0.25, cached: false, warm: false };
      };
      await history.ingester.apply('runtime', asLog([started('ex-a'), ended('ex-b')], 2, 20_000));
      const rows = async () =>
        (await describeRun(history.db, 'run-live'))!.executions.map((e) => [
          e.execution,
          e.placement?.pool,
          e.costUsd,
          e.running,
        ]);
      expect(await rows()).toEqual([
        ['ex-a', 'spot-a', 0, true],
        ['ex-b', 'spot-a', 0.25, false],
      ]);
      const ends = await history.db.query<{ execution: string; ended_at: number | null }>(
        `select execution, ended_at::float8 as ended_at from executions where run_id = 'run-live' order by 1`,
      );
      expect(ends.map((r) => r.ended_at)).toEqual([null, T0 + 9000]);
      // ex-a ends; ex-b's start is read after its end and changes nothing.
      await history.ingester.apply('runtime', asLog([ended('ex-a'), started('ex-b')], 2, 20_001));
      expect(await rows()).toEqual([
        ['ex-a', 'spot-a', 0.25, false],
        ['ex-b', 'spot-a', 0.25, false],
      ]);
    });

    it('keeps each ref once when records come again in a later entry, and a retry in a later batch', async () => {
      const first = lineage({
        run: 'run-again',
        execution: 'ex-again',
        input: 'sha256:again-in',
        refs: { input: ['sha256:again-inner'] },
        output: 'sha256:again-out',
      });
      const other = lineage({ run: 'run-again', execution: 'ex-other', input: 'sha256:again-out' });
      await history.ingester.apply('runtime', asLog([first], 1, 30_000));
      // The same record again in a later entry (written again after its acknowledgement was lost),
      // beside an execution that is new: the batch is merged, not copied straight in.
      await history.ingester.apply('runtime', asLog([first, other], 1, 30_001));
      // A second attempt of the same call, reading the same input.
      await history.ingester.apply('runtime', asLog([{ ...first, attempt: 1 }], 1, 30_003));
      const refs = await history.db.query<{ hash: string; role: string; execution: string }>(
        `select hash, role::text as role, execution from lineage_refs where execution in ('ex-again', 'ex-other')
         order by 3, 2, 1`,
      );
      expect(refs.map((r) => `${r.execution} ${r.role} ${r.hash}`)).toEqual([
        'ex-again i sha256:again-in',
        'ex-again i sha256:again-inner',
        'ex-again o sha256:again-out',
        'ex-other i sha256:again-out',
      ]);
      const attempts = await history.db.query<{ execution: string; attempt: number }>(
        `select execution, attempt from executions where run_id = 'run-again' order by 1, 2`,
      );
      expect(attempts).toEqual([
        { execution: 'ex-again', attempt: 0 },
        { execution: 'ex-again', attempt: 1 },
        { execution: 'ex-other', attempt: 0 },
      ]);
    });
  });
});

void lineage;

describe.each(backends)('monthly spend on %s', (_name, open) => {
  let history: History;
  let dispose: () => Promise<void>;
  const DEC = Date.UTC(2026, 11, 1);
  // Across a month's end, with a usage ending on it exactly (it counts in December, as the gate counts it).
  const base = randomLedger(11, 150, DEC - 18 * HOUR);
  const edge = base.find((e): e is TaskUsage => e.kind === 'usage')!;
  const ledger: LedgerEntry[] = [...base, { ...edge, lease: 'edge', start: DEC - HOUR, end: DEC }];
  const usages = ledger.filter((e): e is TaskUsage => e.kind === 'usage');
  const teams = [...new Set(usages.map((u) => u.team))].sort();

  beforeAll(async () => {
    ({ history, dispose } = await open());
    await history.ingester.apply('broker', asLog(ledger, 30).slice(0, 5));
    await history.ingester.apply('broker', asLog(ledger, 30));
    const platform = {
      policies: [{ name: 'all', teams, budget: { perMonth: 1e6, alertAt: [1] } }],
    } as unknown as Platform;
    await recordBudgets(history.db, platform, DEC - DAY);
  }, 120_000);
  afterAll(async () => {
    await history?.close();
    await dispose?.();
  });

  it.each([
    ['2026-11', DEC - HOUR],
    ['2026-12', DEC + HOUR],
  ])(
    '/v1/budgets for %s reads the rollup and equals the usage rows and the budget gate',
    async (month, at) => {
      const from = Date.parse(`${month}-01T00:00:00Z`);
      const to = month === '2026-11' ? DEC : Date.UTC(2027, 0, 1);
      const body = (await (await historyApi({ db: history.db }).request(`/v1/budgets?at=${at}`)).json()) as {
        month: string;
        budgets: { team: string; spent: number }[];
      };
      expect(body.month).toBe(month);
      // The answer /v1/budgets gave before the rollup: the month's usage rows summed.
      const rows = await history.db.query<{ team: string; spent: number }>(
        `select k.team, sum(u.cost) as spent from usage u join charge_keys k on k.id = u.key_id
       where u.end_at >= $1 and u.end_at < $2 group by k.team`,
        [from, to],
      );
      const old = new Map(rows.map((r) => [r.team, r.spent]));
      const gate = new Map<string, number>();
      for (const u of usages)
        if (new Date(u.end).toISOString().slice(0, 7) === month)
          gate.set(u.team, (gate.get(u.team) ?? 0) + usageCost(u));
      expect(body.budgets.map((b) => b.team)).toEqual(teams);
      expect([...gate.values()].reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
      for (const b of body.budgets) {
        expect(b.spent).toBeCloseTo(old.get(b.team) ?? 0, 6);
        expect(b.spent).toBeCloseTo(gate.get(b.team) ?? 0, 6);
      }
    },
  );

  it('writes nothing of a batch handed over behind one that failed', async () => {
    const offset = await history.ingester.offset('broker');
    const empty = new TextEncoder().encode('[]');
    // A gap (the entry after the offset is missing) fails the first; the second would continue it.
    const gap = history.ingester.apply('broker', [{ seq: offset + 2, data: empty }], '', {
      gapless: { logStart: 1 },
    });
    const behind = history.ingester.apply('broker', [{ seq: offset + 1, data: empty }]);
    await expect(gap).rejects.toBeInstanceOf(IngestGapError);
    await expect(behind).rejects.toBeInstanceOf(IngestGapError);
    expect(await history.ingester.offset('broker')).toBe(offset);
    // Handed over once those settled, a batch is written again.
    const r = await history.ingester.apply('broker', [{ seq: offset + 1, data: empty }]);
    expect(r.offset).toBe(offset + 1);
  });
});
