/**
 * Requests taken and not yet decided survive a change of leader: they are written soon after they
 * arrive (a broker taking over loads them, however long they queued), and a broker that could not
 * write them before it stopped leading queues them again when it leads again.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadPlatform } from '../policies/index.ts';
import {
  createMemoryTransport,
  encodeJson,
  type KeyStore,
  openLocalStore,
  type Store,
  subjects,
  type Transport,
} from '../protocol/index.ts';
import { type Broker, createBroker } from './broker.ts';
import { loadRecords } from './records.ts';

const TTL_MS = 300;
const brokers: Broker[] = [];
afterEach(async () => {
  for (const b of brokers.splice(0)) await b.stop();
});

/**
 * `inner` whose `methods` fail while `down` is set (its JetStream stream has no leader); `extra`
 * replaces properties.
 */
function failing<S extends object>(inner: S, methods: string[], extra: Record<string, unknown> = {}) {
  const s = { down: false };
  const store = new Proxy(inner, {
    get(target, prop) {
      if (typeof prop === 'string' && prop in extra) return extra[prop];
      const v = Reflect.get(target, prop, target) as unknown;
      if (typeof v !== 'function') return v;
      const f = (v as (...a: unknown[]) => unknown).bind(target);
      if (typeof prop === 'string' && methods.includes(prop))
        return (...a: unknown[]) => (s.down ? Promise.reject(new Error('no JetStream leader')) : f(...a));
      return f;
    },
  });
  return { s, store };
}

/** A broker on `store` whose leadership is kept in `leaderStore`; no cycle runs for a minute. */
function broker(id: string, transport: Transport, store: Store, leaderStore: KeyStore): Broker {
  const b = createBroker({
    transport,
    store,
    leaderStore,
    platform: loadPlatform(['test/fixtures/platform']).platform,
    brokerId: id,
    leaderTtlMs: TTL_MS,
    windowMs: 60_000,
    maxBatch: 1_000_000,
  });
  brokers.push(b);
  return b;
}

const ask = (t: Transport, requestId: string) =>
  void t
    .request(
      subjects.request('ml'),
      encodeJson({
        requestId,
        team: 'ml',
        resources: { cpu: 1, memory: '1Gi' },
        work: { kind: 'sim', durationMs: 1000 },
      }),
      { timeoutMs: 60_000 },
    )
    .catch(() => undefined);

async function until(what: string, ok: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out: ${what}`);
}

const pendingIn = async (store: Store) =>
  (await loadRecords(store)).requests
    .filter((r) => r.state === 'pending')
    .map((r) => r.requestId)
    .sort();

const pendingOf = (b: Broker) =>
  [...b.state.requests.values()]
    .filter((r) => r.state === 'pending')
    .map((r) => r.requestId)
    .sort();

describe('requests not yet decided when the leader changes', () => {
  it('are in the store soon after they arrive, and the broker that takes over queues them', async () => {
    const t = createMemoryTransport();
    const store = await openLocalStore(mkdtempSync(join(tmpdir(), 'gantry-takeover-')));
    const lead = failing<KeyStore>(store, ['get', 'create', 'update']);
    const a = broker('a', t, store, lead.store);
    await a.start();
    await until('a leads', () => a.readiness().detail.startsWith('leading'));
    for (const id of ['q1', 'q2', 'q3']) ask(t, id);
    // No cycle decided them (the window is a minute), yet they are durable.
    await until('the requests are written', async () => (await pendingIn(store)).length === 3);
    expect(await pendingIn(store)).toEqual(['q1', 'q2', 'q3']);
    // a can no longer renew; b takes over once a's lease has passed, from the store alone.
    lead.s.down = true;
    const b = broker('b', t, store, store);
    await b.start();
    await until('b leads', () => b.readiness().detail.startsWith('leading'));
    expect(a.isLeader()).toBe(false);
    expect(pendingOf(b)).toEqual(['q1', 'q2', 'q3']);
    expect([...b.state.pendingIds()].sort()).toEqual(['q1', 'q2', 'q3']);
  });

  it('a broker that could not write them before it stopped leading queues them again when it leads again', async () => {
    const t = createMemoryTransport();
    const inner = await openLocalStore(mkdtempSync(join(tmpdir(), 'gantry-takeover-')));
    // The state store and the leader's both without a JetStream leader: nothing a writes is durable.
    const state = failing(inner.journal, ['append']);
    const store = failing(inner, [], { journal: state.store }).store;
    const lead = failing<KeyStore>(inner, ['get', 'create', 'update']);
    const a = broker('a', t, store, lead.store);
    await a.start();
    await until('a leads', () => a.readiness().detail.startsWith('leading'));
    state.s.down = true;
    for (const id of ['q1', 'q2']) ask(t, id);
    await until('a took them', () => pendingOf(a).length === 2);
    lead.s.down = true;
    await until('a stops leading', () => !a.isLeader());
    // b leads a while, then steps down; a leads again, and loads the store, which lacks q1 and q2.
    const b = broker('b', createMemoryTransport(), inner, inner);
    await b.start();
    await until('b leads', () => b.isLeader());
    await b.stop();
    brokers.splice(brokers.indexOf(b), 1);
    state.s.down = false;
    lead.s.down = false;
    await until('a leads again', () => a.readiness().detail.startsWith('leading'));
    expect(pendingOf(a)).toEqual(['q1', 'q2']);
    expect([...a.state.pendingIds()].sort()).toEqual(['q1', 'q2']);
    await until('they are written', async () => (await pendingIn(inner)).length === 2);
  });
});
