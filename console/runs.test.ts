/**
 * A run's executions page by keyset: walking `next` from the first page gives every attempt once, in
 * the order they started (ties on the start time broken by execution and attempt), whatever the page
 * size and filter; the first page counts them all; the last has no `next`. A cursor this API did not
 * give, and the offset paging it replaced, are refused naming the field.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Db, migrate, openPglite } from '../history/index.ts';
import { consoleApp, ExecutionQueryError, executionCursor, runExecutions } from './index.ts';

const dir = mkdtempSync(join(tmpdir(), 'gantry-console-runs-'));
let db: Db;
const T0 = Date.UTC(2026, 10, 2);
const N = 230;

beforeAll(async () => {
  db = await openPglite(join(dir, 'history'));
  await migrate(db);
  // 230 executions of two tasks, three starting in each millisecond bucket (ties), every tenth with a
  // second attempt, every seventh failed; and another run's executions interleaved in time.
  await db.query(
    `insert into executions select 'x-' || lpad(i::text, 3, '0'), a, case when i % 5 = 4 then 'other' else 'run-1' end,
       null, case when i % 2 = 0 then 'score' else 'load' end, 'code', 'req-' || i || '-' || a, 'sha256:i', null,
       case when i % 7 = 0 then 'OutOfMemoryError' end, null, '{}'::jsonb, false, 'aws', 'cpu', 'n1', 'spot',
       0.12, 1000, 2048, 0, null, 0, $1::bigint + (i / 3) * 10 + a, $1::bigint + (i / 3) * 10 + a + 5, 0.01, false, false
     from generate_series(0, $2::int - 1) i, generate_series(0, 1) a where a = 0 or i % 10 = 0`,
    [T0, N],
  );
}, 60_000);
afterAll(async () => {
  await db.close();
  rmSync(dir, { recursive: true, force: true });
});

type Row = { execution: string; attempt: number; startedAt: number; task: string; errorName: string | null };

/** Every page from the first, following `next`. */
async function walk(q: { task?: string; status?: 'failed' | 'ok'; limit: number }) {
  const pages: { total?: number; rows: Row[]; next?: string }[] = [];
  let cursor: string | undefined;
  do {
    const p = await runExecutions(db, 'run-1', { ...q, cursor });
    pages.push({
      total: p.total,
      rows: p.executions as unknown as Row[],
      ...(p.next ? { next: p.next } : {}),
    });
    cursor = p.next;
  } while (cursor);
  return pages;
}

describe("a run's executions, a page at a time", () => {
  it.each([
    [{ limit: 7 }],
    [{ limit: 1 }],
    [{ limit: 1000 }],
    [{ task: 'score', limit: 9 }],
    [{ status: 'failed' as const, limit: 4 }],
  ])('walks every attempt once, in start order, with %j', async (q) => {
    const all = (
      await db.query<Row>(
        `select execution, attempt, started_at::float8 as "startedAt", task, error_name as "errorName"
         from executions where run_id = 'run-1' order by started_at, execution, attempt`,
      )
    ).filter((r) => (!('task' in q) || r.task === q.task) && (!('status' in q) || r.errorName !== null));
    expect(all.length).toBeGreaterThan(10);
    const pages = await walk(q);
    const seen = pages.flatMap((p) => p.rows.map((r) => `${r.execution}#${r.attempt}`));
    expect(seen).toEqual(all.map((r) => `${r.execution}#${r.attempt}`));
    // The first page counts; the later ones do not count again.
    expect(pages.map((p) => p.total)).toEqual(pages.map((_, i) => (i === 0 ? all.length : undefined)));
    expect(pages.slice(0, -1).every((p) => p.rows.length === q.limit && p.next)).toBe(true);
    expect(pages.at(-1)!.next).toBeUndefined();
    expect(pages).toHaveLength(Math.max(1, Math.ceil(all.length / q.limit)));
  });

  it('starts a page after the cursor, ties on the start time included', async () => {
    const [a, b] = (await runExecutions(db, 'run-1', { limit: 2 })).executions as unknown as Row[];
    expect(a!.startedAt).toBe(b!.startedAt);
    const after = await runExecutions(db, 'run-1', {
      cursor: executionCursor(a!.startedAt, a!.execution, a!.attempt),
      limit: 1,
    });
    expect((after.executions[0] as unknown as Row).execution).toBe(b!.execution);
  });

  it('refuses a cursor it did not give, and offset paging, naming the field', async () => {
    await expect(runExecutions(db, 'run-1', { cursor: 'bm9wZQ' })).rejects.toThrow(ExecutionQueryError);
    const app = consoleApp({ db, distDir: '/nonexistent' });
    const bad = await app.request('/v1/runs/run-1/executions?cursor=bm9wZQ');
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({
      ok: false,
      error: { code: 'bad-query', field: 'cursor', message: "cursor 'bm9wZQ' is not one this API gave" },
    });
    const offset = await app.request('/v1/runs/run-1/executions?offset=100');
    expect(offset.status).toBe(400);
    expect(await offset.json()).toMatchObject({ error: { field: 'offset', message: /pages go by cursor/ } });
    const first = (await (await app.request('/v1/runs/run-1/executions?limit=5')).json()) as { next: string };
    const second = await app.request(`/v1/runs/run-1/executions?limit=5&cursor=${first.next}`);
    expect(second.status).toBe(200);
  });
});
