/**
 * A gang attempt: a task with `resources.nodes` > 1 runs as that many members, one per node, all in one
 * pool of one cluster. Each member is a cold attempt of its own request (`<request>-m<rank>`, gang
 * `<request>`); the broker places them together and stops them together. The call's output is rank 0's;
 * its cost is every member's.
 */
import type { Outcome } from './attempt-record.ts';
import { coldAttempt, type ColdAttempt } from './cold.ts';
import type { Runtime } from './client.ts';

/** Runs `size` members of a cold attempt as one gang; resolves with how the gang ended. */
export async function gangAttempt(rt: Runtime, a: ColdAttempt, size: number): Promise<Outcome> {
  const settled = await Promise.allSettled(
    Array.from({ length: size }, (_, rank) =>
      coldAttempt(rt, { ...a, requestId: `${a.requestId}-m${rank}`, gang: { id: a.requestId, rank } }),
    ),
  );
  const rejected = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (rejected) throw rejected.reason;
  const outcomes = settled.map((s) => (s as PromiseFulfilledResult<Outcome>).value);
  const costOf = (o: Outcome) => o.lostCostUsd + rt.costOfResult(o.lease.pricePerHour, o.result);
  // The member whose own work failed says why; the others were stopped because of it.
  const failed = outcomes
    .filter((o) => !o.result.ok)
    .sort((x, y) => Number(stoppedWithGang(x)) - Number(stoppedWithGang(y)));
  const chosen = failed[0] ?? outcomes[0]!;
  return {
    ...chosen,
    preemptions: Math.max(...outcomes.map((o) => o.preemptions)),
    lostCostUsd: chosen.lostCostUsd,
    membersCostUsd: outcomes.filter((o) => o !== chosen).reduce((s, o) => s + costOf(o), 0),
    members: outcomes.map((o) => o.lease),
  };
}

function stoppedWithGang(o: Outcome): boolean {
  return !o.result.ok && /^gang \S+: member \d+ /.test(o.result.error.message);
}
