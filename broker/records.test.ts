import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeJson, encodeJson, openLocalStore, type Store, StoreConflictError } from '../protocol/index.ts';
import { Compactor, POSITION_KEY, readPosition } from './compaction.ts';
import {
  type LifecycleEvent,
  loadRecords,
  readLifecycle,
  type RequestRecord,
  type StoredRequest,
} from './records.ts';
import { BrokerState } from './state.ts';

const open = () => openLocalStore(mkdtempSync(join(tmpdir(), 'gantry-records-')));

/** A pending request whose work carries `pad` characters (a record of about that size). */
function req(id: string, pad = 0): RequestRecord {
  const resources = { cpuMilli: 1000, memoryMiB: 1024, gpu: [], spot: undefined, durationSeconds: 60 };
  return {
    ...{ requestId: id, team: 'ml', override: false, state: 'pending', attempt: 0 },
    resources: { ...resources, profile: undefined },
    work: { kind: 'process', command: 'echo', args: ['x'.repeat(pad)], env: {} },
    createdAt: 0,
    updatedAt: 0,
  };
}

/** Places `r` on node n1 of c1/p1 as lease `l-<id>`. */
function placeOn(state: BrokerState, r: RequestRecord): void {
  state.place(r, {
    ...{ leaseId: `l-${r.requestId}`, requestId: r.requestId, cluster: 'c1', pool: 'p1', node: 'n1' },
    ...{ pricePerHour: 1, cpuMilli: 1000, memoryMiB: 1024, gpuMilli: 0, gpuModel: null },
    ...{ capacityType: 'on-demand', expiresAt: 1e12, attempt: 0, why: 'cheapest', work: r.work },
  });
}

/** A fresh broker's first claim, then request `id` placed and flushed to the journal. */
async function placedAndFlushed(state: BrokerState, id: string): Promise<void> {
  await state.writer.compactor.claim({ seq: 0, revision: 0 }, new Map(), 0);
  const r = req(id);
  state.addRequest(r);
  placeOn(state, r);
  await state.writer.flush();
}

/** `inner` with some of its members replaced (a store that fails as a test says). */
function replacing(inner: Store, members: Partial<Store>): Store {
  return new Proxy(inner, {
    get: (target, key: keyof Store) => {
      if (key in members) return members[key];
      const v = target[key];
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

async function journal(store: Store) {
  const out: { seq: number; records: StoredRequest[]; bytes: number }[] = [];
  for await (const e of store.journal.read())
    out.push({ seq: e.seq, records: decodeJson(e.data) as StoredRequest[], bytes: e.data.length });
  return out;
}

const summary = async (store: Store) =>
  (await loadRecords(store)).requests.map((r) => [r.requestId, r.state, r.leaseId]).sort();

describe('records: journal first, the KV view compacted from it', () => {
  it('a cycle of 3,000 placements is a few journal entries under 1 MiB each, and nothing in the KV view yet', async () => {
    const store = await open();
    const state = new BrokerState(store, () => 5);
    for (let i = 0; i < 3000; i++) {
      const r = req(`r${i}`, 400);
      state.addRequest(r);
      placeOn(state, r);
    }
    await state.writer.flush();
    const entries = await journal(store);
    expect(entries.flatMap((e) => e.records).length).toBe(3000);
    // Records of about 1.5 KB: well over a hundred in every entry but the last, each under NATS's limit.
    for (const e of entries.slice(0, -1)) expect(e.records.length).toBeGreaterThan(100);
    for (const e of entries) expect(e.bytes).toBeLessThan(1024 * 1024);
    expect(await store.list('req')).toEqual([]);
    // The events of the cycle went to the event log, not the journal.
    let events = 0;
    for await (const e of readLifecycle(store))
      if (e.kind === 'lease' && (e as LifecycleEvent).state === 'placed') events++;
    expect(events).toBe(3000);
    const loaded = await loadRecords(store);
    expect(loaded.requests.length).toBe(3000);
    expect(loaded.leases.map((l) => l.leaseId).sort()).toEqual(
      Array.from({ length: 3000 }, (_, i) => `l-r${i}`).sort(),
    );
    expect(loaded.journal.lastSeq).toBe(entries.at(-1)!.seq);
  });

  it('a lease is stored without the work its request holds, and loads with it', async () => {
    const store = await open();
    const state = new BrokerState(store, () => 5);
    const r = req('w', 300);
    state.addRequest(r);
    placeOn(state, r);
    await state.writer.flush();
    const [entry] = await journal(store);
    const [stored] = entry!.records;
    expect(stored!.lease?.leaseId).toBe('l-w');
    expect(stored!.lease?.work).toBeUndefined();
    // The work's 300 characters once in the entry, not twice.
    const text: string[] = [];
    for await (const e of store.journal.read()) text.push(new TextDecoder().decode(e.data));
    expect(text.join('').split('x'.repeat(300)).length - 1).toBe(1);
    // The record in memory keeps its work.
    expect(state.leases.get('l-w')?.work).toEqual(r.work);
    const loaded = await loadRecords(store);
    expect(loaded.leases[0]!.work).toEqual(r.work);
  });

  it('a record written with the work in its lease too loads with that work', async () => {
    const store = await open();
    const r = req('old');
    const work = { kind: 'sim' as const, durationMs: 5 };
    const lease = { leaseId: 'l-old', requestId: 'old', state: 'placed', work };
    await store.journal.append([encodeJson([{ ...r, state: 'placed', leaseId: 'l-old', lease }])]);
    const loaded = await loadRecords(store);
    expect(loaded.leases.map((l) => [l.leaseId, l.work])).toEqual([['l-old', work]]);
  });

  it('compaction writes each request once, moves the position, trims the journal; later changes replay over it', async () => {
    const store = await open();
    const state = new BrokerState(store, () => 5);
    const [a, b] = [req('a'), req('b')];
    for (const r of [a, b]) state.addRequest(r);
    placeOn(state, a);
    state.refuse(b, 'policy: no pool');
    await state.writer.flush();
    state.transition('l-a', 'succeeded', {});
    await state.writer.flush();
    const { journal: replay } = await loadRecords(store);
    await state.writer.compactor.claim(replay.position, replay.replayed, replay.lastSeq);
    await state.writer.compactor.compact();
    const kv = (await store.list('req')).map((e) => decodeJson(e.value) as StoredRequest);
    expect(kv.map((r) => [r.requestId, r.state, r.lease?.state])).toEqual([
      ['a', 'succeeded', 'succeeded'],
      ['b', 'failed', undefined],
    ]);
    expect((await readPosition(store)).seq).toBe(2);
    expect(await journal(store)).toEqual([]);
    // A request placed after the compaction is in the journal only, and loads with the rest.
    const c = req('c');
    state.addRequest(c);
    placeOn(state, c);
    await state.writer.flush();
    expect((await journal(store)).map((e) => e.seq)).toEqual([3]);
    expect(await summary(store)).toEqual([
      ['a', 'succeeded', 'l-a'],
      ['b', 'failed', undefined],
      ['c', 'placed', 'l-c'],
    ]);
  });

  it('what a load replays is written by the next compaction: nothing is lost when the journal is trimmed', async () => {
    const store = await open();
    const first = new BrokerState(store, () => 5);
    const a = req('a');
    first.addRequest(a);
    placeOn(first, a);
    await first.writer.flush();
    // A broker taking over: it loads, claims, and compacts what it replayed.
    const next = new BrokerState(store, () => 6);
    const loaded = await loadRecords(store);
    next.load(loaded.requests, loaded.leases);
    await next.writer.compactor.claim(loaded.journal.position, loaded.journal.replayed, 1);
    await next.writer.compactor.compact();
    expect(await journal(store)).toEqual([]);
    expect(await summary(store)).toEqual([['a', 'placed', 'l-a']]);
  });

  it('requests forgotten are deleted from the KV view at the next compaction', async () => {
    const store = await open();
    const clock = { now: 1000 };
    const state = new BrokerState(store, () => clock.now);
    await state.writer.compactor.claim({ seq: 0, revision: 0 }, new Map(), 0);
    const a = req('a');
    state.addRequest(a);
    placeOn(state, a);
    clock.now = 2000;
    state.transition('l-a', 'succeeded', {});
    await state.writer.flush();
    await state.writer.compactor.compact();
    expect((await store.list('req')).map((e) => e.key)).toEqual(['req.a']);
    state.writer.compactor.forget(state.prune(2500));
    await state.writer.compactor.compact();
    expect(await store.list('req')).toEqual([]);
    expect(await summary(store)).toEqual([]);
  });

  it('a broker whose position was claimed by another compacts no more and trims nothing', async () => {
    const store = await open();
    const old = new BrokerState(store, () => 5);
    await placedAndFlushed(old, 'a');
    // The new leader loads and claims before the old one compacts.
    const loaded = await loadRecords(store);
    const taker = new Compactor(store);
    await taker.claim(loaded.journal.position, loaded.journal.replayed, loaded.journal.lastSeq);
    const err = await old.writer.compactor.compact().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreConflictError);
    expect(err).toMatchObject({ key: POSITION_KEY });
    expect((await journal(store)).map((e) => e.records.map((r) => r.requestId))).toEqual([['a']]);
    await taker.compact();
    expect(await summary(store)).toEqual([['a', 'placed', 'l-a']]);
  });

  it('a load waits for the compaction this broker began before, then claims the position it moved', async () => {
    const store = await open();
    const state = new BrokerState(store, () => 5);
    await placedAndFlushed(state, 'a');
    const running = state.writer.compactor.compact();
    await state.writer.compactor.settled();
    const loaded = await loadRecords(store);
    expect(loaded.journal.position.seq).toBe(1);
    await state.writer.compactor.claim(
      loaded.journal.position,
      loaded.journal.replayed,
      loaded.journal.lastSeq,
    );
    await running;
    expect(await summary(store)).toEqual([['a', 'placed', 'l-a']]);
  });

  it('a failed journal append keeps its records for the next flush without writing the events twice', async () => {
    const inner = await open();
    let failJournal = true;
    const journal = {
      ...inner.journal,
      append: (entries: readonly Uint8Array[]) =>
        failJournal ? Promise.reject(new Error('no JetStream leader')) : inner.journal.append(entries),
    };
    const store = replacing(inner, { journal });
    const state = new BrokerState(store, () => 5);
    const a = req('a');
    state.addRequest(a);
    placeOn(state, a);
    await expect(state.writer.flush()).rejects.toThrow('no JetStream leader');
    expect(state.writer.unwritten('a')).toBe(true);
    failJournal = false;
    await state.writer.flush();
    expect(state.writer.unwritten('a')).toBe(false);
    expect(await summary(inner)).toEqual([['a', 'placed', 'l-a']]);
    const kinds: string[] = [];
    for await (const e of readLifecycle(inner)) kinds.push(`${e.kind} ${(e as LifecycleEvent).state}`);
    expect(kinds).toEqual(['request pending', 'lease placed']);
  });

  it('events stored though their acknowledgement was lost are not stored twice by the retry', async () => {
    const inner = await open();
    let loseAck = true;
    const store = replacing(inner, {
      appendMany: async (events: readonly Uint8Array[], ids?: readonly string[]) => {
        await inner.appendMany(events, ids);
        if (loseAck) throw new Error('no acknowledgement from JetStream within 10000 ms');
      },
    });
    const state = new BrokerState(store, () => 5);
    const a = req('a');
    state.addRequest(a);
    placeOn(state, a);
    await expect(state.writer.flush()).rejects.toThrow('no acknowledgement');
    loseAck = false;
    const b = req('b');
    state.addRequest(b);
    await state.writer.flush();
    const kinds: string[] = [];
    for await (const e of readLifecycle(inner))
      kinds.push(`${e.kind} ${(e as LifecycleEvent).id} ${(e as LifecycleEvent).state}`);
    expect(kinds).toEqual(['request a pending', 'lease l-a placed', 'request b pending']);
  });

  it('written: settles as the write holding each request does, buffered or in flight', async () => {
    const inner = await open();
    let fail = false;
    const held: (() => void)[] = [];
    const journal = {
      ...inner.journal,
      append: async (entries: readonly Uint8Array[]) => {
        await new Promise<void>((r) => held.push(r));
        if (fail) throw new Error('no JetStream leader');
        return inner.journal.append(entries);
      },
    };
    const state = new BrokerState(replacing(inner, { journal }), () => 5);
    const settled = (p: Promise<void>) => {
      const out = { state: 'waiting' };
      p.then(
        () => (out.state = 'written'),
        () => (out.state = 'failed'),
      );
      return out;
    };
    const tick = () => new Promise((r) => setTimeout(r, 10));
    state.addRequest(req('a'));
    // Buffered: waits for the next flush, which takes it.
    const a = settled(state.writer.written(['a']));
    const first = state.writer.flush();
    state.addRequest(req('b'));
    // a in flight, b buffered: both writes.
    const ab = settled(state.writer.written(['a', 'b']));
    await tick();
    expect([a.state, ab.state]).toEqual(['waiting', 'waiting']);
    held.shift()!();
    await first;
    await tick();
    expect([a.state, ab.state]).toEqual(['written', 'waiting']);
    fail = true;
    const second = state.writer.flush().catch(() => undefined);
    await tick();
    held.shift()!();
    await second;
    await tick();
    expect(ab.state).toBe('failed');
    // Written already: at once, without a write. b, put back, waits for the next flush.
    await expect(state.writer.written(['a'])).resolves.toBeUndefined();
    expect(held).toEqual([]);
    fail = false;
    const b = settled(state.writer.written(['b']));
    const third = state.writer.flush();
    await tick();
    held.shift()!();
    await third;
    await tick();
    expect(b.state).toBe('written');
  });
});
