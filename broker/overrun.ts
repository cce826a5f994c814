/**
 * Monthly budgets on actual spend. A lease commits its price for its declared duration; a lease that
 * runs longer would spend what nobody committed. Each health tick this looks ahead one tick: a lease
 * whose commitment ends before the next tick either has it extended (policy `budget.onOverrun: extend`,
 * the default), as far as the team's budget has room, or is stopped once its commitment is used
 * (`onOverrun: stop`, or `extend` with no room left). So actual spend stays within the cap but for at most
 * one tick of the team's running leases.
 */
import type { Budgets } from './budgets.ts';
import type { LeaseRecord, RequestRecord } from './records.ts';

const HOUR = 3_600_000;

/** What to do with one overrunning lease. */
export type OverrunAction =
  | { kind: 'extend'; lease: LeaseRecord; until: number; usd: number }
  | { kind: 'stop'; lease: LeaseRecord; request: RequestRecord; detail: string };

/** Inputs of {@link overrunActions}. */
export interface OverrunInput {
  /**
   * The active leases whose commitment ends by `now + lookaheadMs`; others may be among them (they are
   * passed over).
   */
  due: Iterable<LeaseRecord>;
  /** What each team's active leases commit now, in dollars (asked only when some lease is due). */
  committed(): ReadonlyMap<string, number>;
  requests: ReadonlyMap<string, RequestRecord>;
  budgets: Budgets;
  /** Broker clock, ms. */
  now: number;
  /** How far ahead to commit: the time until the next check (broker clock, ms). */
  lookaheadMs: number;
  /** Simulated seconds per second: a lease's price runs this much faster than the broker's clock. */
  timeScale: number;
}

/**
 * Decides which overrunning leases get more of their team's monthly budget and which stop. Pure: the
 * broker applies the actions (sets `committedUntil`, or fails the lease and cancels it on its agent).
 *
 * @example
 * const input = { due, committed, requests, budgets, now, lookaheadMs: 500, timeScale: 1 };
 * for (const a of overrunActions(input)) …
 */
export function overrunActions(input: OverrunInput): OverrunAction[] {
  const { requests, budgets, now, lookaheadMs, timeScale } = input;
  const due: { lease: LeaseRecord; request: RequestRecord; until: number }[] = [];
  const teams = new Set<string>();
  for (const l of input.due) {
    // The declared duration counts from the start of the work, not from the node's launch.
    if (l.state !== 'running') continue;
    const r = requests.get(l.requestId);
    if (!r || !budgets.monthlyPolicy(r.team)) continue;
    const until = budgets.committedUntil(l, r);
    if (until > now + lookaheadMs) continue;
    due.push({ lease: l, request: r, until });
    teams.add(r.team);
  }
  if (due.length === 0) return [];
  const committed = input.committed();
  const left = new Map<string, number>();
  for (const team of teams) left.set(team, budgets.monthly(team, committed.get(team) ?? 0, now)?.left ?? 0);
  const out: OverrunAction[] = [];
  // Oldest commitments first: the lease closest to its end gets the room.
  due.sort((a, b) => a.until - b.until);
  for (const { lease, request, until } of due) {
    const policy = budgets.monthlyPolicy(request.team)!;
    const perMs = (lease.pricePerHour * timeScale) / HOUR;
    const declaredMs = (request.resources.durationSeconds * 1000) / timeScale;
    const cap = policy.budget!.perMonth!;
    const team = request.team;
    if (policy.budget!.onOverrun === 'extend') {
      // Another declared duration (at least two ticks), or what the budget has room for.
      const want = Math.max(declaredMs, 2 * lookaheadMs);
      const room = left.get(team) ?? 0;
      const ms = perMs > 0 ? Math.min(want, room / perMs) : want;
      if (ms > 0) {
        left.set(team, room - ms * perMs);
        out.push({ kind: 'extend', lease, until: Math.max(until, now) + ms, usd: ms * perMs });
        continue;
      }
    }
    // Its commitment is used up: stopped.
    if (until > now) continue;
    const declared = `ran past its declared duration of ${seconds(request.resources.durationSeconds)}`;
    out.push({
      kind: 'stop',
      lease,
      request,
      detail:
        policy.budget!.onOverrun === 'extend'
          ? `${declared} and team ${team}'s monthly budget of $${cap.toFixed(2)} (policy ${policy.name}) has no room to let it run on`
          : `${declared}; policy ${policy.name} stops overrunning work (budget.onOverrun: stop)`,
    });
  }
  return out;
}

function seconds(s: number): string {
  if (s >= 3600 && s % 3600 === 0) return `${s / 3600}h`;
  if (s >= 60 && s % 60 === 0) return `${s / 60}m`;
  return `${s}s`;
}
