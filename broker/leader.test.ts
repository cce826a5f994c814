import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openLocalStore, type Store } from '../protocol/index.ts';
import { Leadership } from './leader.ts';

const TTL = 1000;
let dir: string;
let store: Store | undefined;
afterEach(async () => {
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A clock the test moves by hand. */
const clock = { now: 0, read: () => clock.now };

/** A fresh store for this test (closed and removed after it), with the clock set back. */
async function freshStore(): Promise<Store> {
  dir = mkdtempSync(join(tmpdir(), 'gantry-leader-'));
  store = await openLocalStore(dir);
  clock.now = 1_000_000;
  return store;
}

/**
 * A store whose writes and reads fail while `down` is set (a JetStream stream without a leader), never
 * answer while `hang` is, and whose updates wait for `release()` while `slow` is.
 */
function flaky(inner: Store) {
  const held: (() => void)[] = [];
  const s = {
    down: false,
    hang: false,
    slow: false,
    release: () => held.splice(0).forEach((go) => go()),
  };
  const guard =
    <A extends unknown[], R>(f: (...a: A) => Promise<R>) =>
    (...a: A) =>
      s.hang
        ? new Promise<R>(() => undefined)
        : s.down
          ? Promise.reject(new Error('jetstream is not enabled'))
          : f(...a);
  const store = {
    ...inner,
    get: guard(inner.get.bind(inner)),
    create: guard(inner.create.bind(inner)),
    update: guard((key: string, value: Uint8Array, revision: number) =>
      s.slow
        ? new Promise<void>((go) => held.push(go)).then(() => inner.update(key, value, revision))
        : inner.update(key, value, revision),
    ),
  } as Store;
  return { s, store };
}

/**
 * A leadership of broker `id` on `on` with the test's clock, campaigning by hand (the timer's
 * interval is a third of the TTL): how it was elected each time, and how often it was deposed.
 */
function leader(id: string, on: Store) {
  const how: string[] = [];
  let deposed = 0;
  const l = new Leadership(on, id, clock.read, TTL, {
    onElected: (h) => how.push(h),
    onDeposed: () => deposed++,
  });
  const campaign = () => (l as unknown as { campaign(): Promise<void> }).campaign();
  /** Moves the clock by `ms`, then campaigns. */
  const tick = async (ms: number) => {
    clock.now += ms;
    await campaign();
  };
  return { l, how, deposed: () => deposed, campaign, tick };
}

/** Broker b1 leading on a store that fails as the test says, and the store itself. */
async function leaderOnFlakyStore() {
  const inner = await freshStore();
  const { s, store: f } = flaky(inner);
  const b1 = leader('b1', f);
  await b1.l.start();
  return { s, b1, inner };
}

describe('Leadership', () => {
  it('a leader that resigns (it could not serve) campaigns again after a TTL and leads again', async () => {
    const b1 = leader('b1', await freshStore());
    await b1.l.start();
    expect([b1.l.leading, b1.how.length]).toEqual([true, 1]);
    await b1.l.resign();
    expect(b1.l.leading).toBe(false);
    await b1.tick(TTL / 2);
    expect([b1.l.leading, b1.how.length]).toEqual([false, 1]);
    await b1.tick(TTL);
    expect([b1.l.leading, b1.how.length]).toEqual([true, 2]);
    await b1.l.stop();
  });

  it('a stopped leader never campaigns again', async () => {
    const b1 = leader('b1', await freshStore());
    await b1.l.start();
    await b1.l.stop();
    await b1.tick(10 * TTL);
    expect([b1.l.leading, b1.how.length]).toEqual([false, 1]);
  });
});

describe('Leadership when the store stops answering', () => {
  it('a leader whose store was gone past its TTL stops, and continues with its state when nobody led since', async () => {
    const { s, b1 } = await leaderOnFlakyStore();
    s.down = true;
    await b1.tick(TTL / 2);
    expect([b1.l.leading, b1.deposed()]).toEqual([true, 0]);
    await b1.tick(TTL);
    expect([b1.l.leading, b1.deposed()]).toEqual([false, 1]);
    s.down = false;
    await b1.campaign();
    expect([b1.l.leading, b1.how]).toEqual([true, ['new', 'continued']]);
    await b1.l.stop();
  });

  it('a leader that another broker replaced meanwhile loads the state again when it wins back', async () => {
    const { s, b1, inner } = await leaderOnFlakyStore();
    const b2 = leader('b2', inner);
    s.down = true; // b1 alone cannot reach the store
    await b1.tick(2 * TTL);
    await b2.l.start();
    expect([b1.l.leading, b2.l.leading, b2.how]).toEqual([false, true, ['new']]);
    await b2.l.stop(); // steps down at once
    s.down = false;
    await b1.campaign();
    expect([b1.l.leading, b1.how]).toEqual([true, ['new', 'new']]);
    await b1.l.stop();
  });

  it('a renewal that never comes back (asked while NATS was down) is given up: the leader renews again in time', async () => {
    const { s, b1 } = await leaderOnFlakyStore();
    s.hang = true;
    void b1.campaign();
    s.hang = false;
    await b1.tick(0.6 * TTL);
    await b1.tick(0.6 * TTL); // past the lease the hung renewal would have extended
    expect([b1.l.leading, b1.deposed(), b1.how]).toEqual([true, 0, ['new']]);
    await b1.l.stop();
  });

  it('a renewal given up on that lands all the same keeps the leader leading until it expires', async () => {
    const { s, b1 } = await leaderOnFlakyStore();
    s.slow = true;
    void b1.tick(0.3 * TTL);
    await new Promise((r) => setTimeout(r, 10));
    // The renewal above waits; past half a TTL another one starts, and waits too.
    void b1.tick(0.6 * TTL);
    await new Promise((r) => setTimeout(r, 10));
    s.slow = false;
    s.release();
    await new Promise((r) => setTimeout(r, 10));
    // Past the lease of the last renewal not given up, within the one that landed late.
    await b1.tick(0.2 * TTL);
    expect([b1.l.leading, b1.deposed(), b1.how]).toEqual([true, 0, ['new']]);
    await b1.l.stop();
  });
});
