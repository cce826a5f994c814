/**
 * A batch's acknowledgement means its requests are durable: the broker replies once the intake write
 * that holds them has landed, so that a broker taking over has every request a runtime was told was
 * taken. A write that fails is not acknowledged; the runtime sends the batch again, and each request is
 * taken and placed once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Broker, createBroker } from '../broker/index.ts';
import { loadPlatform } from '../policies/index.ts';
import { defaultBackends } from '../solver/index.ts';
import {
  batchSubjects,
  decodeJson,
  encodeJson,
  type Msg,
  type RequestBatchReply,
  type Store,
  type Transport,
} from '../protocol/index.ts';
import { RequestBatcher } from '../runtime/index.ts';
import { eventually, startSystem, type TestSystem } from './system.ts';

/** The journal's appends: held until released, or failing, as a test says. */
interface Gate {
  mode: 'open' | 'hold' | 'fail';
  held: (() => void)[];
  /** Appends that reached the store. */
  landed: number;
}

function gated(store: Store, gate: Gate): Store {
  const journal = new Proxy(store.journal, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target) as unknown;
      if (typeof v !== 'function') return v;
      const f = (v as (...a: unknown[]) => Promise<unknown>).bind(target);
      if (prop !== 'append') return f;
      return async (...a: unknown[]) => {
        if (gate.mode === 'fail') throw new Error('no JetStream leader');
        if (gate.mode === 'hold') await new Promise<void>((r) => gate.held.push(r));
        const out = await f(...a);
        gate.landed++;
        return out;
      };
    },
  }) as Store['journal'];
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'journal') return journal;
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/** `inner` recording the broker's replies to batches: the reply, and the journal writes landed by then. */
function recordingReplies(inner: Transport, replies: { accepted: number; landed: number }[]): Transport {
  return new Proxy(inner, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target) as unknown;
      if (typeof v !== 'function') return v;
      const f = (v as (...a: unknown[]) => unknown).bind(target);
      if (prop !== 'respond') return f;
      return (msg: Msg, data: Uint8Array) => {
        if (msg.subject === batchSubjects.requests('ml'))
          replies.push({
            accepted: (decodeJson(data) as RequestBatchReply).accepted ?? 0,
            landed: gate.landed,
          });
        f(msg, data);
      };
    },
  });
}

let system: TestSystem;
let broker: Broker;
const gate: Gate = { mode: 'open', held: [], landed: 0 };
const replies: { accepted: number; landed: number }[] = [];

beforeAll(async () => {
  system = await startSystem('embedded', { speedup: 100 });
  await eventually(() => system.broker.isLeader(), 10_000, 'the broker leads');
  // The same system with a broker whose journal writes the tests hold or fail.
  await system.broker.stop();
  broker = createBroker({
    transport: recordingReplies(system.transport, replies),
    store: gated(system.brokerStore, gate),
    platform: loadPlatform(['test/fixtures/platform']).platform,
    backends: await defaultBackends(),
    heartbeatMs: 100,
    ledgerTimeScale: 100,
  });
  await broker.start();
  await eventually(() => broker.readiness().detail.startsWith('leading'), 10_000, 'the new broker serves');
}, 30_000);
afterAll(async () => {
  await broker?.stop();
  await system?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const body = (requestId: string) => ({
  requestId,
  team: 'ml',
  resources: { cpu: 1, memory: '1Gi' },
  work: { kind: 'sim', durationMs: 1000 },
});

/** Messages on `subject` from now on. */
function record(subject: string): Msg[] {
  const seen: Msg[] = [];
  system.transport.subscribe(subject, (m) => seen.push(m));
  return seen;
}

describe('batch acknowledgements', () => {
  it('go only once the intake write holding the requests has landed', async () => {
    gate.mode = 'hold';
    const landedBefore = gate.landed;
    let landedAtReply: number | undefined;
    const asked = system.transport
      .request(
        batchSubjects.requests('ml'),
        encodeJson({ batch: 'held', requests: ['h1', 'h2', 'h3'].map(body) }),
        { timeoutMs: 10_000 },
      )
      .then((m) => {
        landedAtReply = gate.landed;
        return decodeJson(m.data) as RequestBatchReply;
      });
    await eventually(() => gate.held.length > 0, 5000, 'the intake write is held');
    await sleep(300);
    expect(landedAtReply).toBeUndefined();
    gate.mode = 'open';
    for (const release of gate.held.splice(0)) release();
    const reply = await asked;
    expect(reply).toEqual({ results: [], accepted: 3 });
    expect(landedAtReply).toBeGreaterThan(landedBefore);
  });

  it('are not sent when the write fails: the runtime sends again, and each request is placed once', async () => {
    const batches = record(batchSubjects.requests('ml'));
    const answers = record(batchSubjects.answers('ml', '*'));
    replies.length = 0;
    gate.mode = 'fail';
    const batcher = new RequestBatcher(system.transport);
    const ids = ['f1', 'f2', 'f3'];
    const leases = Promise.all(ids.map((id) => batcher.ask(body(id), id)));
    await eventually(() => broker.state.requests.has('f1'), 5000, 'the broker took the batch');
    // Failing past the runtime's wait for an acknowledgement (5 s): it sends the batch again.
    await eventually(() => batches.length === 2, 10_000, 'the batch is sent again');
    expect(replies).toEqual([]);
    const landed = gate.landed;
    gate.mode = 'open';
    const got = await leases;
    batcher.close();
    expect(got.map((l) => l.requestId)).toEqual(ids);
    // Each request taken once, placed once, answered once; an acknowledgement, if the answers did not
    // come first, only once the write landed (one the runtime no longer waits for may never come).
    await sleep(300);
    expect(replies.length).toBeLessThanOrEqual(1);
    for (const r of replies) expect(r).toEqual({ accepted: 3, landed: expect.any(Number) });
    for (const r of replies) expect(r.landed).toBeGreaterThan(landed);
    expect(batches.length).toBe(2);
    const placed = [...broker.state.leases.values()].filter((l) => ids.includes(l.requestId));
    expect(placed.map((l) => l.requestId).sort()).toEqual(ids);
    const answered = answers.flatMap((m) => (decodeJson(m.data) as RequestBatchReply).results);
    // (the first test's requests are placed meanwhile, answered on their own batch's subject)
    expect(
      answered
        .map((a) => a.requestId)
        .filter((id) => id.startsWith('f'))
        .sort(),
    ).toEqual(ids);
  }, 30_000);
});
