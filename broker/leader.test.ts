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

/** A leadership on a fresh store with a clock the test moves; counts elections and depositions. */
async function campaigner(id: string) {
  dir = mkdtempSync(join(tmpdir(), 'gantry-leader-'));
  store = await openLocalStore(dir);
  let now = 1_000_000;
  const seen = { elected: 0, deposed: 0 };
  const l = new Leadership(store, id, () => now, TTL, {
    onElected: () => seen.elected++,
    onDeposed: () => seen.deposed++,
  });
  // Campaign by hand: the timer's interval is a third of the TTL.
  const tick = async (ms: number) => {
    now += ms;
    await (l as unknown as { campaign(): Promise<void> }).campaign();
  };
  return { l, seen, tick, store };
}

describe('Leadership', () => {
  it('a leader that resigns (it could not serve) campaigns again after a TTL and leads again', async () => {
    const { l, seen, tick } = await campaigner('b1');
    await l.start();
    expect([l.leading, seen.elected]).toEqual([true, 1]);
    await l.resign();
    expect(l.leading).toBe(false);
    await tick(TTL / 2);
    expect([l.leading, seen.elected]).toEqual([false, 1]);
    await tick(TTL);
    expect([l.leading, seen.elected]).toEqual([true, 2]);
    await l.stop();
  });

  it('a stopped leader never campaigns again', async () => {
    const { l, seen, tick } = await campaigner('b1');
    await l.start();
    await l.stop();
    await tick(10 * TTL);
    expect([l.leading, seen.elected]).toEqual([false, 1]);
  });
});

describe('Leadership when the store stops answering', () => {
  /** A store whose writes and reads fail while `down` is set (a JetStream stream without a leader). */
  function flaky(inner: Store) {
    const s = { down: false, hang: false };
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
      update: guard(inner.update.bind(inner)),
    } as Store;
    return { s, store };
  }

  async function leader(id: string, store: Store, clock: () => number) {
    const how: string[] = [];
    let deposed = 0;
    const l = new Leadership(store, id, clock, TTL, {
      onElected: (h) => how.push(h),
      onDeposed: () => deposed++,
    });
    const campaign = () => (l as unknown as { campaign(): Promise<void> }).campaign();
    return { l, how, deposed: () => deposed, campaign };
  }

  it('a leader whose store was gone past its TTL stops, and continues with its state when nobody led since', async () => {
    dir = mkdtempSync(join(tmpdir(), 'gantry-leader-'));
    store = await openLocalStore(dir);
    let now = 1_000_000;
    const { s, store: f } = flaky(store);
    const b1 = await leader('b1', f, () => now);
    await b1.l.start();
    s.down = true;
    now += TTL / 2;
    await b1.campaign();
    expect([b1.l.leading, b1.deposed()]).toEqual([true, 0]);
    now += TTL;
    await b1.campaign();
    expect([b1.l.leading, b1.deposed()]).toEqual([false, 1]);
    s.down = false;
    await b1.campaign();
    expect([b1.l.leading, b1.how]).toEqual([true, ['new', 'continued']]);
    await b1.l.stop();
  });

  it('a leader that another broker replaced meanwhile loads the state again when it wins back', async () => {
    dir = mkdtempSync(join(tmpdir(), 'gantry-leader-'));
    store = await openLocalStore(dir);
    let now = 1_000_000;
    const { s, store: f } = flaky(store);
    const b1 = await leader('b1', f, () => now);
    const b2 = await leader('b2', store, () => now);
    await b1.l.start();
    s.down = true; // b1 alone cannot reach the store
    now += 2 * TTL;
    await b1.campaign();
    await b2.l.start();
    expect([b1.l.leading, b2.l.leading, b2.how]).toEqual([false, true, ['new']]);
    await b2.l.stop(); // steps down at once
    s.down = false;
    await b1.campaign();
    expect([b1.l.leading, b1.how]).toEqual([true, ['new', 'new']]);
    await b1.l.stop();
  });

  it('a renewal that never comes back (asked while NATS was down) is given up: the leader renews again in time', async () => {
    dir = mkdtempSync(join(tmpdir(), 'gantry-leader-'));
    store = await openLocalStore(dir);
    let now = 1_000_000;
    const { s, store: f } = flaky(store);
    const b1 = await leader('b1', f, () => now);
    await b1.l.start();
    s.hang = true;
    void b1.campaign();
    s.hang = false;
    now += 0.6 * TTL;
    await b1.campaign();
    now += 0.6 * TTL; // past the lease the hung renewal would have extended
    await b1.campaign();
    expect([b1.l.leading, b1.deposed(), b1.how]).toEqual([true, 0, ['new']]);
    await b1.l.stop();
  });
});
