/** Records for the broker's unit tests. */
import type { RequestRecord } from './records.ts';

/** A pending request of 1 CPU and 1 GiB of `team`, declared to run `durationSeconds`. */
export function requestRecord(id: string, team: string, durationSeconds: number): RequestRecord {
  return {
    requestId: id,
    team,
    resources: {
      cpuMilli: 1000,
      memoryMiB: 1024,
      gpu: [],
      spot: undefined,
      durationSeconds,
      profile: undefined,
    },
    override: false,
    work: { kind: 'sim', durationMs: 1, outcome: 'succeeded' },
    state: 'pending',
    attempt: 0,
    createdAt: 0,
    updatedAt: 0,
  };
}
