/**
 * The clock of the cluster an execution runs on. A simulated cluster at `--speedup N` runs N simulated
 * seconds per wall-clock second: `ctx.sleep(ms)` waits `ms` of the cluster's time (`ms / N` of wall
 * clock), and the execution's time on the cluster is what its sleeps simulate plus the rest as measured
 * (real code takes real time). So the same work costs the same at any speedup: a wall-clock overhead of
 * a few milliseconds is not multiplied by N.
 */

/** An execution's clock: its sleeps and how long it has run, in the cluster's milliseconds. */
export interface ExecutionClock {
  /** Waits `ms` of the cluster's time; rejects with the signal's reason when it aborts. */
  sleep(ms: number): Promise<void>;
  /** Milliseconds on the cluster's clock since the clock was made. */
  elapsed(): number;
}

/**
 * A clock for one execution on a cluster running `timeScale` simulated seconds per wall-clock second,
 * whose sleeps end early (rejected) when `signal` aborts.
 *
 * @example
 * const clock = executionClock(60, signal);
 * await clock.sleep(90_000); // 1.5 s of wall clock
 * clock.elapsed(); // ≈ 90 000
 */
export function executionClock(
  timeScale: number,
  signal: AbortSignal,
  wall: () => number = Date.now,
): ExecutionClock {
  const start = wall();
  // The cluster's time is the wall clock plus what sleeps have simulated beyond the wall time they took.
  let ahead = 0;
  const elapsed = () => wall() - start + ahead;
  return {
    elapsed,
    sleep(ms) {
      if (signal.aborted) return Promise.reject(signal.reason);
      const until = elapsed() + Math.max(0, ms);
      return new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          clearTimeout(timer);
          reject(signal.reason);
        };
        const timer = setTimeout(
          () => {
            signal.removeEventListener('abort', onAbort);
            // Sleeps that overlap end where the longest of them does, not at their sum.
            ahead += Math.max(0, until - elapsed());
            resolve();
          },
          Math.max(0, ms) / timeScale,
        );
        signal.addEventListener('abort', onAbort, { once: true });
      });
    },
  };
}
