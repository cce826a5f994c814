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
