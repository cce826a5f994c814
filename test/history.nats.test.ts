/**
 * `gantry history` as its own process: following JetStream by its durable consumer into PostgreSQL,
 * killed with SIGKILL mid-ingest and started again, ends with every record once and none missing; a
 * second one against the same database stands by and takes over when the first goes; embedded, into
 * PGlite, killed with SIGKILL mid-batch of the runtime's log and started again, it ends with every
 * execution, ref and run once; and it follows the state directory's logs while another process writes
 * them.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  authorizationBlock,
  BROKER_PERMISSIONS,
  ensureUser,
  HISTORY_CONSUMER,
  HISTORY_PERMISSIONS,
} from '../bin/credentials.ts';
import { openHistory } from '../history/index.ts';
import { encodeJson, openLocalStore, type RuntimeLogRecord, type Store } from '../protocol/index.ts';
import { connectNats, type NatsTransport, openJetStreamStore } from '../protocol/nats-index.ts';
import { spawnGantry } from './cli.ts';
import { lineageChains, randomLedger } from './history-data.ts';
import { startNatsServer, type NatsServer } from './nats/server.ts';
import { createTestDatabase } from './postgres.ts';
import { sleep } from './nats/wait.ts';

const GANTRY = fileURLToPath(new URL('../bin/gantry.js', import.meta.url));
const T0 = Date.UTC(2026, 10, 2);

/**
 * The broker's ledger and the runtime's log (`runs` chains of five steps: each execution's start, then
 * its end, and each run's summary), as log entries of `per` records.
 */
function logs(per: number, runs = 300) {
  const ledger = randomLedger(11, 6000, T0);
  const lineage = lineageChains(runs, 5).flatMap((r): RuntimeLogRecord[] => {
    const start: RuntimeLogRecord = {
      kind: 'start',
      run: r.run,
      execution: r.execution,
      ...(r.parent ? { parent: r.parent } : {}),
      task: r.task,
      codeHash: r.codeHash,
      attempt: r.attempt,
      input: r.input,
      asked: r.asked,
      override: r.override,
      startedAt: r.startedAt,
    };
    if (r.task !== 'step4') return [start, r];
    const summary: RuntimeLogRecord = {
      kind: 'run',
      run: r.run,
      workflow: 'pipeline',
      module: 'pipeline.ts',
      team: 'ml',
      status: 'succeeded',
      startedAt: r.startedAt - 5,
      endedAt: r.endedAt,
      input: r.input,
      costUsd: 0,
      executions: 6,
    };
    return [start, r, summary];
  });
  const chunk = <T>(xs: readonly T[]) =>
    Array.from({ length: Math.ceil(xs.length / per) }, (_, i) =>
      encodeJson(xs.slice(i * per, (i + 1) * per)),
    );
  return {
    broker: chunk(ledger),
    runtime: chunk(lineage),
  };
}

function startHistory(args: string[]): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, [GANTRY, 'history', '--port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout!.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  process.once('exit', () => child.kill('SIGKILL'));
  return { child, output: () => text };
}

const exited = (c: ChildProcess) =>
  c.exitCode !== null || c.signalCode !== null
    ? Promise.resolve()
    : new Promise<void>((r) => c.once('exit', () => r()));

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

type Ask = (sql: string) => Promise<{ n: unknown }[]>;

/** What the history holds: offsets, rows, rows held twice, and what they sum to. */
async function tally(ask: Ask) {
  const one = async (sql: string) => Math.round(Number((await ask(sql))[0]!.n) * 1e6) / 1e6;
  return {
    broker: await one(`select coalesce(max(seq), 0) as n from ingest_offsets where source = 'broker'`),
    runtime: await one(`select coalesce(max(seq), 0) as n from ingest_offsets where source = 'runtime'`),
    usages: await one('select count(*) as n from usage'),
    doubleUsages: await one('select count(*) - count(distinct (lease, start_at)) as n from usage'),
    lives: await one('select count(*) as n from node_lives'),
    executions: await one('select count(*) as n from executions'),
    running: await one('select count(*) as n from executions where ended_at is null'),
    runs: await one(`select count(*) as n from runs where status = 'succeeded'`),
    rejected: await one('select count(*) as n from ingest_rejects'),
    cost: await one('select sum(cost) as n from usage'),
    hourly: await one('select sum(cost) as n from cost_hourly'),
    refs: await one('select count(*) as n from lineage_refs'),
  };
}

/** The same logs applied in one go, uninterrupted, in this process. */
async function reference(data: ReturnType<typeof logs>) {
  const dir = mkdtempSync(join(tmpdir(), 'gantry-history-ref-'));
  const history = await openHistory({ dir });
  try {
    const entries = (xs: Uint8Array[]) => xs.map((d, i) => ({ seq: i + 1, data: d }));
    await history.ingester.apply('broker', entries(data.broker), 'ref');
    await history.ingester.apply('runtime', entries(data.runtime), 'ref');
    return await tally((sql) => history.db.query<{ n: unknown }>(sql));
  } finally {
    await history.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('gantry history over NATS into PostgreSQL', () => {
  let server: NatsServer;
  let nats: NatsTransport;
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let db: pg.Client;
  const data = logs(5);
  let expected: Awaited<ReturnType<typeof reference>>;
  const held = () => tally(async (sql) => (await db.query<{ n: unknown }>(sql)).rows);

  beforeAll(async () => {
    server = await startNatsServer();
    nats = await connectNats({ servers: server.url, name: 'test-writer' });
    database = await createTestDatabase('gantry_history_kill');
    db = new pg.Client({ connectionString: database.url });
    await db.connect();
    const broker = await openJetStreamStore(nats.connection, {
      bucket: 'gantry-state',
      stream: 'gantry-events',
    });
    const runtime = await openJetStreamStore(nats.connection, {
      bucket: 'gantry-runtime',
      stream: 'gantry-lineage',
    });
    await broker.appendMany(data.broker);
    await runtime.appendMany(data.runtime);
    expected = await reference(data);
  }, 60_000);

  afterAll(async () => {
    await db?.end();
    await database?.drop();
    await nats?.close();
    await server?.stop();
  });

  it('killed with SIGKILL mid-ingest and restarted, ends with every record exactly once', async () => {
    const args = ['--nats', server.url, '--postgres', database.url];
    const first = startHistory(args);
    // Killed once some of the broker's log is in and much is not.
    const at = await waitFor('the first batches', async () => {
      const [row] = (
        await db
          .query<{ seq: string }>(`select seq from ingest_offsets where source = 'broker'`)
          .catch(() => ({
            rows: [],
          }))
      ).rows;
      return row && Number(row.seq) > 0 ? Number(row.seq) : undefined;
    });
    first.child.kill('SIGKILL');
    await exited(first.child);
    const killed = await held();
    expect(at).toBeLessThan(data.broker.length);
    expect(killed.broker).toBeLessThan(data.broker.length);

    // A second process on the same database: it takes the ingest over from where the first stopped.
    const second = startHistory(args);
    try {
      const done = await waitFor('every entry', async () => {
        const t = await held();
        return t.broker === data.broker.length && t.runtime === data.runtime.length ? t : undefined;
      });
      expect(done).toEqual(expected);
      expect(done.doubleUsages).toBe(0);
      expect(done.usages).toBeGreaterThan(20_000);
      // The durable consumer is acknowledged up to the last entry: nothing left for it to deliver.
      const jsm = await jetstreamManager(nats.connection);
      const ci = await waitFor('the last ack', async () => {
        const i = await jsm.consumers.info('gantry-events', HISTORY_CONSUMER);
        return i.ack_floor.stream_seq === data.broker.length ? i : undefined;
      });
      expect(ci.num_pending).toBe(0);
      expect(ci.num_ack_pending).toBe(0);
      expect(second.output()).toMatch(
        /broker log: ingesting \(stream gantry-events, consumer gantry-history\)/,
      );

      // More entries while it runs arrive too.
      const broker = await openJetStreamStore(nats.connection, {
        bucket: 'gantry-state',
        stream: 'gantry-events',
      });
      const extra = randomLedger(12, 40, T0 + 40 * 3_600_000);
      await broker.appendMany([encodeJson(extra)]);
      const after = await waitFor('the new entry', async () => {
        const t = await held();
        return t.broker === data.broker.length + 1 ? t : undefined;
      });
      expect(after.usages).toBe(expected.usages + extra.filter((e) => e.kind === 'usage').length);
      expect(after.doubleUsages).toBe(0);
    } finally {
      second.child.kill('SIGTERM');
      await exited(second.child);
    }
    expect(second.child.exitCode).toBe(0);
  }, 120_000);

  it('a second history on the same database stands by, and takes over when the first stops', async () => {
    const args = ['--nats', server.url, '--postgres', database.url];
    const a = startHistory(args);
    // a holds both logs' locks before b starts, or b may take the one a has not reached yet.
    await waitFor('a leading', async () =>
      /runtime log: ingesting/.test(a.output()) && /broker log: ingesting/.test(a.output())
        ? true
        : undefined,
    );
    const b = startHistory(args);
    try {
      await waitFor('b standing by', async () =>
        /broker log: another gantry history ingests it; standing by/.test(b.output()) ? true : undefined,
      );
      // Both answer queries.
      const url = (o: string) => /query API on (http:\/\/\S+) /.exec(o)?.[1];
      for (const p of [a, b]) {
        const status = (await (await fetch(`${url(p.output())}/v1/status`)).json()) as {
          offsets: { source: string; seq: number }[];
        };
        expect(status.offsets.find((o) => o.source === 'broker')?.seq).toBe(data.broker.length + 1);
      }
      a.child.kill('SIGKILL');
      await exited(a.child);
      await waitFor(
        'b taking over',
        async () => (/broker log: ingesting/.test(b.output()) ? true : undefined),
        30_000,
      );
    } finally {
      a.child.kill('SIGKILL');
      b.child.kill('SIGTERM');
      const stopped = await Promise.race([exited(b.child).then(() => true), sleep(20_000).then(() => false)]);
      if (!stopped) {
        b.child.kill('SIGKILL');
        throw new Error(`b did not stop within 20 s of SIGTERM; its output:\n${b.output()}`);
      }
    }
  }, 90_000);
});

describe('gantry history with its own NATS credentials', () => {
  it('ingests through its consumer, and can neither write the streams nor speak to the broker', async () => {
    const creds = mkdtempSync(join(tmpdir(), 'gantry-history-creds-'));
    const users = [
      ensureUser(creds, 'gantry-broker', BROKER_PERMISSIONS),
      ensureUser(creds, 'gantry-history', HISTORY_PERMISSIONS),
    ];
    const server = await startNatsServer({ config: authorizationBlock(users) });
    const database = await createTestDatabase('gantry_history_creds');
    const writer = await connectNats({
      servers: server.url,
      name: 'w',
      creds: join(creds, 'gantry-broker.nk'),
    });
    const reader = await connectNats({
      servers: server.url,
      name: 'r',
      creds: join(creds, 'gantry-history.nk'),
      onHandlerError: () => undefined,
    });
    const h = startHistory([
      '--nats',
      server.url,
      '--creds',
      join(creds, 'gantry-history.nk'),
      '--postgres',
      database.url,
    ]);
    try {
      const broker = await openJetStreamStore(writer.connection, {
        bucket: 'gantry-state',
        stream: 'gantry-events',
      });
      await openJetStreamStore(writer.connection, { bucket: 'gantry-runtime', stream: 'gantry-lineage' });
      const ledger = randomLedger(5, 30, T0);
      await broker.appendMany([encodeJson(ledger.slice(0, 50)), encodeJson(ledger.slice(50))]);
      const url = await waitFor('the API', async () => /query API on (http:\/\/\S+) /.exec(h.output())?.[1]);
      await waitFor('both entries', async () => {
        const s = (await (await fetch(`${url}/v1/status`)).json()) as {
          offsets: { source: string; seq: number }[];
        };
        return s.offsets.find((o) => o.source === 'broker')?.seq === 2 ? true : undefined;
      });
      const js = jetstream(reader.connection);
      await expect(js.publish('gantry-events.events', encodeJson([]), { timeout: 1000 })).rejects.toThrow();
      await expect(
        reader.connection.request('gantry.broker.request', encodeJson({}), { timeout: 1000 }),
      ).rejects.toThrow();
      const jsm = await jetstreamManager(writer.connection);
      expect((await jsm.streams.info('gantry-events')).state.last_seq).toBe(2);
      expect(h.output()).not.toMatch(/Permissions Violation/i);
    } finally {
      h.child.kill('SIGTERM');
      await exited(h.child);
      await reader.close();
      await writer.close();
      await server.stop();
      await database.drop();
      rmSync(creds, { recursive: true, force: true });
    }
  }, 90_000);
});

describe('gantry history embedded', () => {
  it('into PGlite, killed with SIGKILL mid-batch and restarted, ends with every record exactly once', async () => {
    const state = mkdtempSync(join(tmpdir(), 'gantry-history-kill-'));
    // The runtime's log in five transactions of 500 entries, so that a kill lands between two.
    const data = logs(5, 830);
    const expected = await reference(data);
    const statusOf = async (url: string) => {
      const s = (await (await fetch(`${url}/v1/status`)).json()) as {
        offsets: { source: string; seq: number }[];
      };
      return (source: string) => s.offsets.find((o) => o.source === source)?.seq ?? 0;
    };
    const tallyDir = async () => {
      const h = await openHistory({ dir: join(state, 'history') });
      try {
        return await tally((sql) => h.db.query<{ n: unknown }>(sql));
      } finally {
        await h.close();
      }
    };
    let second: ReturnType<typeof startHistory> | undefined;
    try {
      for (const [dir, entries] of [
        ['broker', data.broker],
        ['runtime', data.runtime],
      ] as const) {
        const store = await openLocalStore(join(state, dir));
        await store.appendMany(entries);
        await store.close();
      }
      expect(data.runtime.length).toBeGreaterThan(2000);
      const first = startHistory(['--state', state, '--poll', '50']);
      const url = await waitFor(
        'the API',
        async () => /query API on (http:\/\/\S+) /.exec(first.output())?.[1],
      );
      // Killed as soon as a batch of the runtime's log is in: the next one is being written.
      await waitFor('a runtime batch', async () => ((await statusOf(url))('runtime') > 0 ? true : undefined));
      first.child.kill('SIGKILL');
      await exited(first.child);
      // PGlite opens again after the kill, holding whole batches only.
      const killed = await tallyDir();
      expect(killed.runtime).toBeGreaterThan(0);
      expect(killed.runtime).toBeLessThan(data.runtime.length);
      expect(killed.runtime % 500).toBe(0);

      second = startHistory(['--state', state, '--poll', '50']);
      const url2 = await waitFor(
        'the API',
        async () => /query API on (http:\/\/\S+) /.exec(second!.output())?.[1],
      );
      await waitFor('every entry', async () => {
        const seq = await statusOf(url2);
        return seq('broker') === data.broker.length && seq('runtime') === data.runtime.length
          ? true
          : undefined;
      });
      second.child.kill('SIGTERM');
      await exited(second.child);
      expect(second.child.exitCode).toBe(0);
      const done = await tallyDir();
      expect(done).toEqual(expected);
      expect(done.executions).toBe(830 * 6);
      expect(done.running).toBe(0);
      expect(done.runs).toBe(830);
      expect(done.refs).toBe(830 * 6 * 3);
      expect(done.doubleUsages).toBe(0);
    } finally {
      second?.child.kill('SIGKILL');
      rmSync(state, { recursive: true, force: true });
    }
  }, 120_000);

  it('follows the state directory’s logs while another process writes them', async () => {
    const state = mkdtempSync(join(tmpdir(), 'gantry-history-state-'));
    let store: Store | undefined;
    const h = startHistory(['--state', state, '--poll', '50']);
    try {
      // This process owns the broker's store, as gantry up would.
      store = await openLocalStore(join(state, 'broker'));
      const ledger = randomLedger(3, 200, T0);
      const half = Math.floor(ledger.length / 2);
      await store.append(encodeJson(ledger.slice(0, half)));
      const url = await waitFor('the API', async () => /query API on (http:\/\/\S+) /.exec(h.output())?.[1]);
      const seq = async () => {
        const s = (await (await fetch(`${url}/v1/status`)).json()) as {
          offsets: { source: string; seq: number }[];
        };
        return s.offsets.find((o) => o.source === 'broker')?.seq;
      };
      await waitFor('the first entry', async () => ((await seq()) === 1 ? true : undefined), 30_000);
      await store.append(encodeJson(ledger.slice(half)));
      await waitFor('the second entry', async () => ((await seq()) === 2 ? true : undefined));
      const report = (await (
        await fetch(`${url}/v1/cost?by=team&since=0&until=${T0 + 60 * 86_400_000}`)
      ).json()) as {
        report: { totals: { executions: number } };
      };
      expect(report.report.totals.executions).toBe(ledger.filter((e) => e.kind === 'usage').length);
      // Commands on the same state directory ask the running history (it holds the database).
      const cli = await spawnGantry(['report', 'cost', '--state', state, '--since', '0', '-o', 'json']);
      expect(cli.err).toBe('');
      expect((JSON.parse(cli.out) as { totals: { executions: number } }).totals.executions).toBe(
        report.report.totals.executions,
      );
    } finally {
      await store?.close();
      h.child.kill('SIGTERM');
      await exited(h.child);
      rmSync(state, { recursive: true, force: true });
    }
  }, 90_000);
});
