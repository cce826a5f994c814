/**
 * The Store contract: one suite, run against the local store (a temp directory per test) and the
 * JetStream store (a bucket and stream per test, on a nats-server this file starts). `reopen` crosses
 * the durability boundary: the local store is closed and opened again on its directory; for
 * JetStream the server itself is restarted and a new connection opens the store.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNatsServer, type NatsServer } from '../test/nats/server.ts';
import { BadKeyError, StoreConflictError } from './errors.ts';
import { openJetStreamStore } from './jetstream-store.ts';
import { openLocalStore } from './local-store.ts';
import { connectNats, type NatsTransport } from './nats.ts';
import type { LogEvent, Store } from './store.ts';

interface Env {
  /** A fresh, empty store. */
  open(): Promise<Store>;
  /** Closes `store`, crosses a restart, and opens the same data again. */
  reopen(store: Store): Promise<Store>;
  close(): Promise<void>;
}

async function localEnv(): Promise<Env> {
  const root = await mkdtemp(join(tmpdir(), 'gantry-store-'));
  const dirs = new Map<Store, string>();
  const all = new Set<Store>();
  let n = 0;
  const openAt = async (dir: string) => {
    const store = await openLocalStore(dir);
    dirs.set(store, dir);
    all.add(store);
    return store;
  };
  return {
    open: () => openAt(join(root, `s${n++}`)),
    reopen: async (store) => {
      await store.close();
      return openAt(dirs.get(store)!);
    },
    close: async () => {
      await Promise.all([...all].map((s) => s.close()));
      await rm(root, { recursive: true, force: true });
    },
  };
}

async function jetStreamEnv(): Promise<Env> {
  const server: NatsServer = await startNatsServer();
  let transport: NatsTransport = await connectNats({ servers: server.url, name: 'store-contract' });
  const names = new Map<Store, { bucket: string; stream: string }>();
  let n = 0;
  const openOn = async (nc: NatsConnection, bucket: string, stream: string) => {
    const store = await openJetStreamStore(nc, { bucket, stream });
    names.set(store, { bucket, stream });
    return store;
  };
  return {
    open: () => {
      n++;
      return openOn(transport.connection, `contract${n}`, `EVENTS${n}`);
    },
    reopen: async (store) => {
      const { bucket, stream } = names.get(store)!;
      await store.close();
      await transport.close();
      await server.restart();
      transport = await connectNats({ servers: server.url, name: 'store-contract' });
      return openOn(transport.connection, bucket, stream);
    },
    close: async () => {
      await transport.close();
      await server[Symbol.asyncDispose]();
    },
  };
}

const text = (s: string) => new TextEncoder().encode(s);
const str = (d: Uint8Array) => new TextDecoder().decode(d);

async function readAll(it: AsyncIterable<LogEvent>): Promise<{ seq: number; data: string }[]> {
  const out: { seq: number; data: string }[] = [];
  for await (const e of it) out.push({ seq: e.seq, data: str(e.data) });
  return out;
}

const BAD_KEYS = ['', 'a..b', '.a', 'a.', 'a b', 'a.*', 'a.>', 'lease/1', 'ü', 'a\nb'];

describe.each([
  { name: 'local', env: localEnv },
  { name: 'jetstream', env: jetStreamEnv },
])('Store contract: $name', ({ env: makeEnv }) => {
  let env: Env;
  beforeAll(async () => {
    env = await makeEnv();
  });
  afterAll(async () => {
    await env?.close();
  });

  it('gets what was put, with its revision', async () => {
    const store = await env.open();
    const rev = await store.put('lease.l-1', text('one'));
    expect(rev).toBeGreaterThan(0);
    const e = await store.get('lease.l-1');
    expect(e && { key: e.key, value: str(e.value), revision: e.revision }).toEqual({
      key: 'lease.l-1',
      value: 'one',
      revision: rev,
    });
    expect(await store.get('lease.l-2')).toBeUndefined();
  });

  it('gives every write a higher revision than the one before', async () => {
    const store = await env.open();
    const revs = [
      await store.put('a', text('1')),
      await store.put('a', text('2')),
      await store.put('b', text('3')),
      await store.create('c', text('4')),
      await store.put('a', text('5')),
    ];
    for (let i = 1; i < revs.length; i++) expect(revs[i]).toBeGreaterThan(revs[i - 1]!);
    expect((await store.get('a'))!.revision).toBe(revs[4]);
  });

  it('create conflicts on an existing key and leaves it alone', async () => {
    const store = await env.open();
    const rev = await store.create('leader', text('broker-1'));
    const err = await store.create('leader', text('broker-2')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreConflictError);
    expect(err).toMatchObject({ key: 'leader' });
    const e = await store.get('leader');
    expect([str(e!.value), e!.revision]).toEqual(['broker-1', rev]);
  });

  it('update succeeds at the current revision and conflicts at a stale one', async () => {
    const store = await env.open();
    const r1 = await store.create('leader', text('v1'));
    const r2 = await store.update('leader', text('v2'), r1);
    expect(r2).toBeGreaterThan(r1);
    const stale = await store.update('leader', text('v3'), r1).catch((e: unknown) => e);
    expect(stale).toBeInstanceOf(StoreConflictError);
    expect(stale).toMatchObject({ key: 'leader' });
    expect(str((await store.get('leader'))!.value)).toBe('v2');
    const missing = await store.update('nobody', text('x'), r2).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(StoreConflictError);
    const zero = await store.update('leader', text('x'), 0).catch((e: unknown) => e);
    expect(zero).toBeInstanceOf(StoreConflictError);
  });

  it('delete removes the key from get and list, and create works again', async () => {
    const store = await env.open();
    await store.put('lease.a', text('a'));
    await store.put('lease.b', text('b'));
    await store.delete('lease.a');
    await store.delete('lease.never-was');
    expect(await store.get('lease.a')).toBeUndefined();
    expect((await store.list('lease')).map((e) => e.key)).toEqual(['lease.b']);
    const rev = await store.create('lease.a', text('again'));
    expect(str((await store.get('lease.a'))!.value)).toBe('again');
    expect((await store.get('lease.a'))!.revision).toBe(rev);
  });

  it('lists by prefix matching whole tokens, in key order', async () => {
    const store = await env.open();
    for (const k of ['leases.x', 'lease.b.c', 'other.lease.y', 'lease', 'lease.a', 'leas.z'])
      await store.put(k, text(k));
    const keys = async (p: string) => (await store.list(p)).map((e) => e.key);
    expect(await keys('lease')).toEqual(['lease', 'lease.a', 'lease.b.c']);
    expect(await keys('lease.b')).toEqual(['lease.b.c']);
    expect(await keys('')).toEqual(['leas.z', 'lease', 'lease.a', 'lease.b.c', 'leases.x', 'other.lease.y']);
    expect(await keys('nothing')).toEqual([]);
    const [first] = await store.list('lease.a');
    expect([first!.key, str(first!.value), first!.revision]).toEqual([
      'lease.a',
      'lease.a',
      (await store.get('lease.a'))!.revision,
    ]);
  });

  it('putMany writes 5,000 entries that list returns in full', async () => {
    const store = await env.open();
    const entries = Array.from({ length: 5000 }, (_, i) => ({
      key: `bulk.k${String(i).padStart(5, '0')}`,
      value: text(`value-${i}`),
    }));
    await store.putMany(entries);
    const listed = await store.list('bulk');
    expect(listed.length).toBe(5000);
    expect(listed.map((e) => e.key)).toEqual(entries.map((e) => e.key));
    expect(listed.every((e, i) => str(e.value) === `value-${i}`)).toBe(true);
    expect(new Set(listed.map((e) => e.revision)).size).toBe(5000);
    await store.putMany([]);
    expect((await store.list('bulk')).length).toBe(5000);
  });

  it('appends events with consecutive sequence numbers and reads them back in order', async () => {
    const store = await env.open();
    expect(await readAll(store.readLog())).toEqual([]);
    expect(await store.append(text('e1'))).toBe(1);
    await store.appendMany([text('e2'), text('e3'), text('e4')]);
    expect(await store.append(text('e5'))).toBe(5);
    const expected = [1, 2, 3, 4, 5].map((seq) => ({ seq, data: `e${seq}` }));
    expect(await readAll(store.readLog())).toEqual(expected);
    expect(await readAll(store.readLog(3))).toEqual(expected.slice(2));
    expect(await readAll(store.readLog(6))).toEqual([]);
  });

  it('appendMany with ids: an event retried under an id the log took is not appended again', async () => {
    const store = await env.open();
    await store.appendMany([text('a'), text('b')], ['w-1', 'w-2']);
    // A retry of both (their acknowledgement was lost) with a new one.
    await store.appendMany([text('a'), text('b'), text('c')], ['w-1', 'w-2', 'w-3']);
    await store.appendMany([text('d')]);
    expect((await readAll(store.readLog())).map((e) => e.data)).toEqual(['a', 'b', 'c', 'd']);
  });

  it('readLog ends at the last event present when reading starts', async () => {
    const store = await env.open();
    await store.appendMany(Array.from({ length: 2500 }, (_, i) => text(`e${i + 1}`)));
    const seqs: number[] = [];
    for await (const e of store.readLog(1)) {
      if (e.seq === 1) await store.append(text('late'));
      seqs.push(e.seq);
    }
    expect(seqs).toEqual(Array.from({ length: 2500 }, (_, i) => i + 1));
    expect((await readAll(store.readLog(2500))).map((e) => e.data)).toEqual(['e2500', 'late']);
  });

  it('journal: numbers entries apart from the event log, reads from a position, trims', async () => {
    const store = await env.open();
    expect(await readAll(store.journal.read())).toEqual([]);
    expect(await store.journal.append([text('j1'), text('j2')])).toBe(2);
    expect(await store.journal.append([text('j3')])).toBe(3);
    expect(await store.journal.append([])).toBe(0);
    await store.append(text('event'));
    expect(await readAll(store.readLog())).toEqual([{ seq: 1, data: 'event' }]);
    expect(await readAll(store.journal.read(2))).toEqual([
      { seq: 2, data: 'j2' },
      { seq: 3, data: 'j3' },
    ]);
    await store.journal.trim(2);
    expect(await readAll(store.journal.read())).toEqual([{ seq: 3, data: 'j3' }]);
    await store.journal.trim(1);
    expect(await store.journal.append([text('j4')])).toBe(4);
    expect((await readAll(store.journal.read(1))).map((e) => e.seq)).toEqual([3, 4]);
    expect(await readAll(store.readLog())).toEqual([{ seq: 1, data: 'event' }]);
  });

  it('journal: 3,000 entries appended at once, trimmed while more are appended', async () => {
    const store = await env.open();
    const last = await store.journal.append(Array.from({ length: 3000 }, (_, i) => text(`e${i + 1}`)));
    expect(last).toBe(3000);
    const [, more] = await Promise.all([
      store.journal.trim(2990),
      store.journal.append([text('e3001'), text('e3002')]),
    ]);
    expect(more).toBe(3002);
    expect((await readAll(store.journal.read())).map((e) => e.data)).toEqual(
      Array.from({ length: 12 }, (_, i) => `e${i + 2991}`),
    );
  });

  it('journal: keeps what was not trimmed, and its numbering, across a close and reopen', async () => {
    let store = await env.open();
    await store.journal.append([text('a'), text('b'), text('c')]);
    await store.journal.trim(1);
    store = await env.reopen(store);
    expect(await readAll(store.journal.read())).toEqual([
      { seq: 2, data: 'b' },
      { seq: 3, data: 'c' },
    ]);
    await store.journal.trim(3);
    store = await env.reopen(store);
    expect(await readAll(store.journal.read())).toEqual([]);
    expect(await store.journal.append([text('d')])).toBe(4);
    expect(await readAll(store.journal.read())).toEqual([{ seq: 4, data: 'd' }]);
  });

  it.each(BAD_KEYS)('rejects the bad key %j with BadKeyError', async (key) => {
    const store = await env.open();
    for (const op of [
      () => store.get(key),
      () => store.put(key, text('x')),
      () => store.create(key, text('x')),
      () => store.update(key, text('x'), 1),
      () => store.delete(key),
    ]) {
      const err = await op().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BadKeyError);
      expect(err).toMatchObject({ key });
    }
    if (key !== '') expect(await store.list(key).catch((e: unknown) => e)).toBeInstanceOf(BadKeyError);
    const many = await store
      .putMany([
        { key: 'good.one', value: text('x') },
        { key, value: text('x') },
      ])
      .catch((e: unknown) => e);
    expect(many).toBeInstanceOf(BadKeyError);
    expect(await store.list('')).toEqual([]);
  });

  it('keeps keys, revisions and events across a close and reopen', async () => {
    let store = await env.open();
    await store.putMany([
      { key: 'keep.a', value: text('A') },
      { key: 'keep.b', value: text('B') },
      { key: 'gone.c', value: text('C') },
    ]);
    const rev = await store.put('keep.a', text('A2'));
    await store.delete('gone.c');
    await store.appendMany([text('x'), text('y')]);
    await store.append(text('z'));

    store = await env.reopen(store);
    const listed = await store.list('');
    expect(listed.map((e) => [e.key, str(e.value)])).toEqual([
      ['keep.a', 'A2'],
      ['keep.b', 'B'],
    ]);
    expect((await store.get('keep.a'))!.revision).toBe(rev);
    expect(await store.get('gone.c')).toBeUndefined();
    expect(await readAll(store.readLog())).toEqual([
      { seq: 1, data: 'x' },
      { seq: 2, data: 'y' },
      { seq: 3, data: 'z' },
    ]);
    expect(await store.put('keep.b', text('B2'))).toBeGreaterThan(rev);
    expect(await store.append(text('w'))).toBe(4);
    const conflict = await store.update('keep.a', text('A3'), rev - 1).catch((e: unknown) => e);
    expect(conflict).toBeInstanceOf(StoreConflictError);
  });
});
