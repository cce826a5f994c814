/**
 * Faults through what users run: nats-server restarted (SIGTERM and SIGKILL, about 2 s down, same
 * store) while `gantry run` maps many short tasks on `gantry broker` and `gantry agent` processes.
 * Every task runs exactly once (counted by the tasks themselves) and the run finishes with the right
 * answer. Recovery times are printed.
 */
import { describe, expect, it } from 'vitest';
import { describeRecovery, runFault } from './fault-scenarios.ts';

describe('nats-server restarted in the middle of gantry run', () => {
  it.each(['nats-sigterm', 'nats-sigkill'] as const)(
    '%s, 2 s down: no task lost, none run twice, the run finishes',
    async (kind) => {
      const r = await runFault(kind);
      console.log([describeRecovery(r), ...r.timeline].join('\n  '));
      expect(r.code, r.output).toBe(0);
      expect({ lost: r.lost, twice: r.twice }).toEqual({ lost: [], twice: [] });
      expect(r.answer).toBe(r.n * (r.n - 1));
    },
    180_000,
  );
});
