import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { executionClock } from './clock.ts';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('an execution clock', () => {
  it('sleeps the simulated time in a speedup-th of the wall clock, and counts the simulated time', async () => {
    const clock = executionClock(60, new AbortController().signal);
    let done = false;
    const slept = clock.sleep(90_000).then(() => (done = true));
    await vi.advanceTimersByTimeAsync(1499);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await slept;
    expect(clock.elapsed()).toBe(90_000);
    // Work outside sleeps takes real time: 20 ms of wall clock is 20 ms, not 1.2 s.
    vi.advanceTimersByTime(20);
    expect(clock.elapsed()).toBe(90_020);
  });

  it.each([60, 600, 6000])('counts the same at %i×, even when its timer fires late', async (speedup) => {
    let late = 0;
    const clock = executionClock(speedup, new AbortController().signal, () => Date.now() + late);
    vi.advanceTimersByTime(5);
    const slept = clock.sleep(24_000);
    await vi.advanceTimersByTimeAsync(24_000 / speedup - 1);
    late = 30; // the process was busy: the timer fires 30 ms after it was due
    await vi.advanceTimersByTimeAsync(1);
    await slept;
    expect(clock.elapsed()).toBe(24_005);
  });

  it('ends overlapping sleeps where the longest ends, not at their sum', async () => {
    const clock = executionClock(10, new AbortController().signal);
    const both = Promise.all([clock.sleep(10_000), clock.sleep(4_000)]);
    await vi.advanceTimersByTimeAsync(1000);
    await both;
    expect(clock.elapsed()).toBe(10_000);
  });

  it('rejects a sleep with the reason its signal aborts with, at once, and leaves no timer', async () => {
    const ac = new AbortController();
    const clock = executionClock(1, ac.signal);
    const slept = clock.sleep(3_600_000);
    const reason = new Error('lease stopped');
    ac.abort(reason);
    await expect(slept).rejects.toBe(reason);
    expect(vi.getTimerCount()).toBe(0);
    await expect(clock.sleep(1)).rejects.toBe(reason);
  });
});
