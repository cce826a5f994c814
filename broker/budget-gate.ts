/**
 * The budget gate in front of each cycle: requests of teams whose monthly budget is used, or that would
 * cross it, are held (with the reason), and alerts are logged and counted.
 */
import type { BrokerContext } from './context.ts';
import type { MonthlyRoom } from './budget-fit.ts';
import type { Monthly } from './budgets.ts';
import type { RequestRecord } from './records.ts';

/** Dollars, with four decimals under $1 (so small amounts that differ look different). */
const usd = (v: number) => `$${v.toFixed(v < 1 ? 4 : 2)}`;

/** What the gate lets through, and what each team with a monthly budget has left for it. */
export interface GateResult {
  batch: RequestRecord[];
  room: Map<string, MonthlyRoom>;
}

/**
 * A function that holds the requests over budget and returns the rest, in order, with each team's room
 * (what the cycle's placements may commit: see budget-fit.ts).
 */
export function createBudgetGate(ctx: BrokerContext): (batch: RequestRecord[]) => GateResult {
  const { budgets, state, metrics, log, clock } = ctx;

  /**
   * Holds the requests of teams whose monthly budget is used, or that would cross it; logs alerts.
   * Returns the rest.
   */
  function withinBudgets(batch: RequestRecord[]): GateResult {
    const room = new Map<string, MonthlyRoom>();
    const teams = new Set(batch.map((r) => r.team));
    if (!budgets.anyMonthly(teams)) return { batch, room };
    const now = clock();
    const committed = budgets.committedByTeam(state.active(), state.requests, now);
    const standing = new Map<string, Monthly | undefined>();
    for (const team of teams) {
      const m = budgets.monthly(team, committed.get(team) ?? 0, now);
      standing.set(team, m);
      if (!m) continue;
      room.set(team, { left: m.left, cap: m.cap, policy: m.policy });
      metrics.budgetUsed.set({ team, policy: m.policy }, m.ratio);
      for (const threshold of budgets.newAlerts(team, m, now)) {
        log.warn({ team, policy: m.policy, threshold, used: Number(m.ratio.toFixed(3)) }, 'budget alert');
        metrics.budgetAlerts.inc({ team, policy: m.policy, threshold: String(threshold) });
      }
    }
    // Within what is left, requests go in order while their least possible cost fits.
    const admitted = batch.filter((r) => {
      const m = standing.get(r.team);
      if (!m) return true;
      if (m.held) {
        state.hold(r, { kind: 'budget', detail: m.held });
        return false;
      }
      const cost = budgets.leastCost(r);
      if (cost > m.left) {
        state.hold(r, {
          kind: 'budget',
          detail: `this request (at least ${usd(cost)}) would cross team ${r.team}'s monthly budget of $${m.cap.toFixed(2)} (policy ${m.policy}): ${usd(Math.max(0, m.left))} left`,
        });
        return false;
      }
      m.left -= cost;
      return true;
    });
    return { batch: admitted, room };
  }
  return withinBudgets;
}
