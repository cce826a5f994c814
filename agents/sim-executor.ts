/**
 * The simulated executor: a lease's work is a timer; when it fires the lease ends with the outcome its
 * work spec names (`succeeded`, `failed`, or `oom`, reported as a failure with reason OOMKilled).
 */
import type { Executor, ExecutorReport } from './executor.ts';
import type { LeaseMsg } from '../protocol/index.ts';

/** Options of {@link createSimExecutor}. */
export interface SimExecutorOptions {
  /** Divides every work duration (a time scale for demos and tests). Default 1. */
  speedup?: number;
}

/**
 * Creates a simulated executor.
 *
 * @example
 * const executor = createSimExecutor({ speedup: 60 });
 */
export function createSimExecutor(opts: SimExecutorOptions = {}): Executor {
  const timers = new Map<string, NodeJS.Timeout>();
  const speedup = opts.speedup ?? 1;
  return {
    kind: 'sim',
    start(lease: LeaseMsg, _node: string, report: ExecutorReport) {
      const work = lease.work;
      if (work.kind !== 'sim') {
        report('failed', { reason: `the sim executor cannot run ${work.kind} work` });
        return;
      }
      report('running');
      timers.set(
        lease.leaseId,
        setTimeout(() => {
          timers.delete(lease.leaseId);
          // It ran its simulated duration, whatever the wall clock took to get here.
          const ranMs = work.durationMs;
          if (work.outcome === 'succeeded') report('succeeded', { exitCode: 0, ranMs });
          else if (work.outcome === 'oom') report('failed', { exitCode: 137, reason: 'OOMKilled', ranMs });
          else report('failed', { exitCode: 1, reason: 'the work failed', ranMs });
        }, work.durationMs / speedup),
      );
    },
    stop(leaseId: string) {
      clearTimeout(timers.get(leaseId));
      timers.delete(leaseId);
    },
    async close() {
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
    },
  };
}
