/**
 * What the broker stops on its own: leases past their commitment under a monthly budget (see
 * {@link overrunActions}), requests that waited past their policy's `maxQueueTime`. A stopped lease fails with a typed reason its requester turns into an error
 * class, and its agent is told to stop the work.
 */
import { type BrokerFailureKind, encodeJson, subjects } from '../protocol/index.ts';
import type { BrokerContext } from './context.ts';
import type { Dispatch } from './dispatch.ts';
import type { RequestRecord } from './records.ts';
import { overrunActions } from './overrun.ts';

/** A typed reason the broker ends something for. */
export interface BrokerFailure {
  kind: BrokerFailureKind;
  detail: string;
}

/** The broker's own stops; see {@link createEnforcement}. */
export interface Enforcement {
  /** Fails an active lease with a typed reason and stops its work; false when it was not active. */
  stopLease(leaseId: string, failure: BrokerFailure): boolean;
  /** Fails a pending request with a typed reason, answering whoever waits for its lease. */
  withdraw(r: RequestRecord, failure: BrokerFailure): void;
  /** The periodic check (every health tick). */
  tick(): void;
}

/** How the broker tells a task's followers of its state (the dispatch's `publishState`). */
export type PublishState = Dispatch['publishState'];

/** The broker's enforcement over the context. */
export function createEnforcement(
  ctx: BrokerContext,
  deps: { schedule(): void; publishState: PublishState; answer: Dispatch['answer']; flush(): void },
): Enforcement {
  const { state, transport, log, clock, budgets, platform } = ctx;
  const tickMs = Math.max(50, ctx.heartbeatMs / 2);

  function stopLease(leaseId: string, failure: BrokerFailure): boolean {
    const lease = state.leases.get(leaseId);
    const r = lease && state.transition(leaseId, 'failed', { reason: `${failure.kind}: ${failure.detail}` });
    if (!lease || !r) return false;
    transport.publish(subjects.cancel(lease.cluster), encodeJson({ leaseId, reason: failure.detail }));
    log.warn({ leaseId, requestId: r.requestId, ...failure }, 'lease stopped');
    deps.publishState(r.requestId, leaseId, 'failed', r.reason, undefined, { failure });
    state.release();
    deps.flush();
    deps.schedule();
    return true;
  }

  function withdraw(r: RequestRecord, failure: BrokerFailure): void {
    state.refuse(r, `${failure.kind}: ${failure.detail}`, failure);
    // Single requests and batches alike hear the typed failure; the request is never placed after.
    deps.answer(r.requestId, { ok: false, error: { code: failure.kind, message: failure.detail } });
    deps.publishState(r.requestId, undefined, 'failed', r.reason, undefined, { failure });
    deps.flush();
  }

  /** Fails the pending requests that waited longer than their policy's `maxQueueTime`. */
  function checkQueueTimes(now: number): void {
    if (!platform.policies.some((p) => p.maxQueueTime !== undefined)) return;
    for (const id of state.pendingIds()) {
      const r = state.requests.get(id);
      if (!r || r.state !== 'pending') continue;
      const limit = platform.policyFor(r.team)?.maxQueueTime;
      if (limit === undefined) continue;
      const waitedMs = now - r.createdAt;
      if (waitedMs * ctx.scale < limit * 1000) continue;
      withdraw(r, {
        kind: 'max-queue-time',
        detail: `waited ${Math.round((waitedMs * ctx.scale) / 1000)} s to be placed, past the maxQueueTime of ${limit} s of policy ${platform.policyFor(r.team)!.name}${r.reason ? ` (${r.reason})` : ''}`,
      });
    }
  }

  const teams = [...new Set(platform.policies.flatMap((p) => p.teams))];
  function checkOverruns(now: number): void {
    if (!budgets.anyMonthly(teams)) return;
    const lookaheadMs = 2 * tickMs;
    const actions = overrunActions({
      due: state.commitmentsEndingBy(now + lookaheadMs),
      committed: () => state.committedByTeam(now),
      requests: state.requests,
      budgets,
      now,
      // Commit as far as the next check, and one more tick for a late timer.
      lookaheadMs,
      timeScale: ctx.scale,
    });
    for (const a of actions) {
      if (a.kind === 'extend') {
        state.extendCommitment(a.lease, a.until);
        // Written with the next flush: a broker that takes over counts what this lease was given.
        state.writer.lease(a.lease);
      } else stopLease(a.lease.leaseId, { kind: 'budget-overrun', detail: a.detail });
    }
  }

  return {
    stopLease,
    withdraw,
    tick() {
      if (!ctx.serving || !ctx.connected) return;
      try {
        checkOverruns(clock());
        checkQueueTimes(clock());
      } catch (err) {
        log.error({ err: (err as Error).message }, 'enforcement check failed');
      }
    },
  };
}
