/**
 * Leadership under load on a 3-server NATS cluster at R3: a leader whose state bucket takes a cycle's
 * thousands of writes back to back keeps its lease when the key lives in a bucket of its own on a
 * connection of its own (how `gantry broker --nats` keeps it). The renewal times are printed, beside
 * those of a key kept in the busy state bucket, which queue behind the writes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Leadership } from '../broker/index.ts';
import type { KeyStore, Store } from '../protocol/index.ts';
import {
  connectNats,
  type NatsTransport,
  openJetStreamKeys,
  openJetStreamStore,
} from '../protocol/nats-index.ts';
import { type NatsServer, startNatsCluster } from './nats/server.ts';
import { sleep } from './nats/wait.ts';

// The broker's default.
const TTL_MS = 3000;
let servers: NatsServer[] = [];
let state: NatsTransport;
let leaderLink: NatsTransport;
let store: Store;
let keys: KeyStore;

beforeAll(async () => {
  servers = await startNatsCluster(3);
  const urls = servers.map((s) => s.url);
  state = await connectNats({ servers: urls, name: 'state' });
  leaderLink = await connectNats({ servers: urls, name: 'leader' });
  // The cluster elects its JetStream meta leader shortly after the servers are up.
  for (let attempt = 1; ; attempt++) {
    try {
      store = await openJetStreamStore(state.connection, { bucket: 'busy', stream: 'BUSY', replicas: 3 });
      keys = await openJetStreamKeys(leaderLink.connection, {
        bucket: 'busy-leader',
        replicas: 3,
        timeoutMs: 1000,
      });
      break;
    } catch (err) {
      if (attempt >= 60) throw err;
      await sleep(500);
    }
  }
}, 60_000);

afterAll(async () => {
  await store?.close();
  await state?.close();
  await leaderLink?.close();
  for (const s of servers) await s[Symbol.asyncDispose]();
});

/**
 * Leads on `on` while the state bucket takes `rounds` times three batches of 4,000 writes of 1 KB at once;
 * returns how often it was deposed and its slowest renewal (from one success to the next).
 */
async function leadUnderWrites(on: KeyStore, id: string, rounds: number) {
  let deposed = 0;
  let elected = 0;
  const renewedAt: number[] = [];
  const timed: KeyStore = {
    get: (k) => on.get(k),
    create: async (k, v) => {
      const r = await on.create(k, v);
      renewedAt.push(Date.now());
      return r;
    },
    update: async (k, v, rev) => {
      const r = await on.update(k, v, rev);
      renewedAt.push(Date.now());
      return r;
    },
  };
  const l = new Leadership(timed, id, Date.now, TTL_MS, {
    onElected: () => elected++,
    onDeposed: () => deposed++,
  });
  await l.start();
  expect(l.leading).toBe(true);
  const value = new Uint8Array(1024).fill(120);
  // Three writers at once, as a cycle's records, the compactor and the event log write together.
  for (let round = 0; round < rounds; round++)
    await Promise.all(
      [0, 1, 2].map((w) =>
        store.putMany(Array.from({ length: 4000 }, (_, i) => ({ key: `req.r${round}-${w}-${i}`, value }))),
      ),
    );
  await l.stop();
  const gaps = renewedAt.slice(1).map((t, i) => t - renewedAt[i]!);
  return { deposed, elected, slowestMs: Math.max(0, ...gaps), renewals: renewedAt.length };
}

describe('leadership while the state bucket is busy (3 servers, R3)', () => {
  it('a leader on its own bucket and connection renews throughout and is never deposed', async () => {
    const own = await leadUnderWrites(keys, 'b-own', 6);
    const shared = await leadUnderWrites(store, 'b-shared', 6);
    console.log(
      `renewals during 72,000 state writes, TTL ${TTL_MS} ms — own bucket and connection: ${own.renewals}, ` +
        `slowest ${own.slowestMs} ms, deposed ${own.deposed}; in the state bucket: ${shared.renewals}, ` +
        `slowest ${shared.slowestMs} ms, deposed ${shared.deposed}`,
    );
    expect({ deposed: own.deposed, elected: own.elected }).toEqual({ deposed: 0, elected: 1 });
    expect(own.renewals).toBeGreaterThan(1);
  }, 120_000);
});
