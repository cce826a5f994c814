/**
 * Batched requests on the embedded system (test/fixtures/spend-platform): many requests in one
 * message, their leases many at a time; refusals, forbidden requests, holds, a cancelled run's
 * withdrawn requests (never placed after, answered again with the same typed error when asked
 * again) and budget holds keep the meaning they have for single requests.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  batchSubjects,
  decodeJson,
  encodeJson,
  type Msg,
  type RequestBatchReply,
  subjects,
  type TaskStateMsg,
  type TaskStatesMsg,
} from '../protocol/index.ts';
import {
  cancelRun,
  NonRetriableError,
  PolicyRefusedError,
  RequestBatcher,
  RunCancelledError,
} from '../runtime/index.ts';
import { eventually, startSystem, type TestSystem } from './system.ts';

let system: TestSystem;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  // 10× simulated time: the impatient team's maxQueueTime (2 min) is 12 s, past every test here.
  system = await startSystem('embedded', { platformDir: 'test/fixtures/spend-platform', speedup: 10 });
  await eventually(() => system.broker.isLeader(), 10_000, 'the broker leads');
}, 30_000);
afterAll(() => system?.stop());

/** Messages on `subject` from now on. */
function record(subject: string): Msg[] {
  const seen: Msg[] = [];
  system.transport.subscribe(subject, (m) => seen.push(m));
  return seen;
}

/** Task states of a team's requests from now on, per request. */
function followStates(team: string): Map<string, TaskStateMsg[]> {
  const states = new Map<string, TaskStateMsg[]>();
  system.transport.subscribe(subjects.taskStates(team, '*'), (m) => {
    for (const s of (decodeJson(m.data) as TaskStatesMsg).states)
      states.set(s.requestId, [...(states.get(s.requestId) ?? []), s]);
  });
  return states;
}

const sim = (ms = 20) => ({ kind: 'sim', durationMs: ms });

describe('batched requests', () => {
  it('sends 300 calls of one turn as one message and hands each its own lease', async () => {
    const batches = record(batchSubjects.requests('impatient'));
    const answers = record(batchSubjects.answers('impatient', '*'));
    const batcher = new RequestBatcher(system.transport);
    const leases = await Promise.all(
      Array.from({ length: 300 }, (_, i) =>
        batcher.ask(
          { requestId: `many-${i}`, team: 'impatient', resources: { cpu: 1, memory: '1Gi' }, work: sim() },
          'many',
        ),
      ),
    );
    expect(leases.map((l) => l.requestId)).toEqual(Array.from({ length: 300 }, (_, i) => `many-${i}`));
    expect(new Set(leases.map((l) => l.leaseId)).size).toBe(300);
    for (const l of leases) expect(system.broker.state.requests.get(l.requestId)?.leaseId).toBe(l.leaseId);
    expect(batches).toHaveLength(1);
    // Leases come many at a time: one message per cycle that placed some, not one per request.
    expect(answers.length).toBeGreaterThan(0);
    expect(answers.length).toBeLessThan(30);
    expect(batcher.pending).toBe(0);
    batcher.close();
  }, 30_000);

  it('answers a refusal in a batch with its typed error, and places the rest', async () => {
    const batcher = new RequestBatcher(system.transport);
    const [ok, never] = await Promise.allSettled([
      batcher.ask({ requestId: 'fits', team: 'impatient', resources: { cpu: 1 }, work: sim() }, 'fits'),
      batcher.ask(
        { requestId: 'no-h200', team: 'impatient', resources: { gpu: 'H200:1' }, work: sim() },
        'no-h200',
      ),
    ]);
    expect(ok).toMatchObject({ status: 'fulfilled', value: { requestId: 'fits' } });
    expect(never.status).toBe('rejected');
    const err = (never as PromiseRejectedResult).reason as Error;
    expect(err).toBeInstanceOf(PolicyRefusedError);
    expect(err.message).toMatch(/^no-h200: /);
    batcher.close();
  }, 30_000);

  it('refuses, item by item, a request of another team than the subject names', async () => {
    const reply = await system.transport.request(
      batchSubjects.requests('impatient'),
      encodeJson({
        batch: 'forged',
        requests: [
          { requestId: 'as-gpu', team: 'gpu', work: sim() },
          { requestId: 'as-self', team: 'impatient', work: sim() },
        ],
      }),
    );
    const body = decodeJson(reply.data) as RequestBatchReply;
    expect(body.accepted).toBe(1);
    expect(body.results).toEqual([
      {
        requestId: 'as-gpu',
        ok: false,
        error: {
          code: 'forbidden',
          message: "a runtime of team 'impatient' cannot ask as team 'gpu'",
          field: 'team',
        },
      },
    ]);
    expect(system.broker.state.requests.has('as-gpu')).toBe(false);
    // A bad batch is refused whole, naming the field.
    const bad = await system.transport.request(
      batchSubjects.requests('impatient'),
      encodeJson({ batch: 'bad', requests: [{ requestId: 'x', team: 'impatient', work: { kind: 'nope' } }] }),
    );
    expect(decodeJson(bad.data)).toMatchObject({
      ok: false,
      error: { code: 'bad-message', field: 'requests.0.work.kind' },
    });
  }, 30_000);

  it('withdraws a held request of a cancelled run with its typed error; it is never placed after', async () => {
    const states = followStates('impatient');
    const batcher = new RequestBatcher(system.transport);
    const ask = (id: string) =>
      batcher.ask(
        {
          requestId: id,
          team: 'impatient',
          runId: 'run-held',
          resources: { gpu: 'H100:8', cpu: 96, memory: '1Ti', duration: '1h' },
          work: sim(3_600_000),
        },
        'train',
      );
    // The team's GPU quota is 8: one of the two is placed, the other held for the quota.
    const first = ask('held-a');
    const second = ask('held-b').catch((e: unknown) => e);
    const placed = await first;
    expect(placed.requestId).toBe('held-a');
    await eventually(
      () => states.get('held-b')?.some((s) => s.hold?.kind === 'quota') === true,
      10_000,
      'held',
    );
    const cancelled = await cancelRun(system.transport, 'impatient', 'run-held', '--fail-on-held');
    expect(cancelled.withdrawn.map((w) => w.requestId)).toEqual(['held-b']);
    expect(cancelled.stopped.map((s) => s.requestId)).toEqual(['held-a']);
    const err = (await second) as Error;
    expect(err).toBeInstanceOf(RunCancelledError);
    expect(err.message).toBe('train: run run-held was cancelled (--fail-on-held)');
    // Asked again (a retry after a lost reply): the same typed answer, not a placement.
    const again = await ask('held-b').catch((e: unknown) => e);
    expect(again).toBeInstanceOf(RunCancelledError);
    // The quota is free again now; still nothing places the withdrawn request.
    await sleep(1000);
    const r = system.broker.state.requests.get('held-b')!;
    expect(r).toMatchObject({ state: 'failed', failure: { kind: 'run-cancelled' } });
    expect(r.leaseId).toBeUndefined();
    expect((states.get('held-b') ?? []).map((s) => s.state)).not.toContain('placed');
    expect([...system.broker.state.leases.values()].filter((l) => l.requestId === 'held-b')).toEqual([]);
    batcher.close();
  }, 30_000);

  it('holds a batched request over its team’s budget, saying why, until it is withdrawn', async () => {
    const states = followStates('gpu');
    const batcher = new RequestBatcher(system.transport);
    // At least $98 for an hour of 8 H100s: over the team's $1 a month.
    const asked = batcher
      .ask(
        {
          requestId: 'over-budget',
          team: 'gpu',
          runId: 'run-budget',
          resources: { gpu: 'H100:8', cpu: 96, memory: '1Ti', duration: '1h' },
          work: sim(),
        },
        'big',
      )
      .catch((e: unknown) => e);
    await eventually(
      () => states.get('over-budget')?.some((s) => s.hold?.kind === 'budget') === true,
      10_000,
      'held for the budget',
    );
    const hold = states.get('over-budget')!.find((s) => s.hold)!.hold!;
    expect(hold.detail).toMatch(/would cross team gpu's monthly budget of \$1\.00 \(policy gpu-budget\)/);
    expect(system.broker.state.requests.get('over-budget')).toMatchObject({ state: 'pending' });
    await cancelRun(system.transport, 'gpu', 'run-budget');
    const err = (await asked) as Error;
    expect(err).toBeInstanceOf(RunCancelledError);
    expect(err).toBeInstanceOf(NonRetriableError);
    expect(system.broker.state.requests.get('over-budget')?.leaseId).toBeUndefined();
    batcher.close();
  }, 30_000);
});
