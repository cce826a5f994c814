/**
 * The budget gate in front of each cycle: requests of teams whose monthly budget is used, or that would
 * cross it, are held (with the reason), and alerts are logged and counted.
 */
import type { Placement } from '../solver/index.ts';
import type { BrokerContext } from './context.ts';
import type { Monthly } from './budgets.ts';
import type { RequestRecord } from './records.ts';

/** What a team with a monthly budget has left for this cycle's placements, before any of them. */
export interface BudgetRoom {
  left: number;
  cap: number;
  policy: string;
}

/** The requests within budget, in order, and each budgeted team's room for the cycle to check prices. */
export interface GatedBatch {
  batch: RequestRecord[];
  room: Map<string, BudgetRoom>;
}

/** Dollars, with four decimals under $1 (so small amounts that differ look different). */
const usd = (v: number) => `$${v.toFixed(v < 1 ? 4 : 2)}`;

/** A function that holds the requests over budget and returns the rest, in order. */
export function createBudgetGate(ctx: BrokerContext): (batch: RequestRecord[]) => GatedBatch {
  const { budgets, state, metrics, log, clock } = ctx;

  /**
   * Holds the requests of teams whose monthly budget is used, or that would cross it; logs alerts.
   * Returns the rest.
   */
  function withinBudgets(batch: RequestRecord[]): GatedBatch {
    const room = new Map<string, BudgetRoom>();
    const teams = new Set(batch.map((r) => r.team));
    if (!budgets.anyMonthly(teams)) return { batch, room };
    const now = clock();
    const committed = state.committedByTeam(now);
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
    const within = batch.filter((r) => {
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
    return { batch: within, room };
  }
  return withinBudgets;
}

/**
 * The gate admits requests by their least possible cost; the plan may put them on dearer pools (the cheap
 * ones full). Each placement of a team with a monthly budget commits its price for its declared duration:
 * placements are kept in the batch's order while their commitments fit the team's room, and the rest
 * (a gang as one) are taken out of the plan, with the reason they wait.
 */
export function trimToBudgets(
  placements: readonly Placement[],
  batch: readonly RequestRecord[],
  room: ReadonlyMap<string, BudgetRoom> | undefined,
): { kept: Placement[]; over: Map<string, string> } {
  const over = new Map<string, string>();
  if (!room || room.size === 0) return { kept: [...placements], over };
  const order = new Map(batch.map((r, i) => [r.requestId, i]));
  const byId = new Map(batch.map((r) => [r.requestId, r]));
  // A gang commits as one: its members' prices together, at its first member's turn.
  const units = new Map<string, { at: number; team: string; usd: number; ids: string[] }>();
  for (const p of placements) {
    const r = byId.get(p.taskId)!;
    if (!room.has(r.team)) continue;
    const key = r.gang ? `gang:${r.gang.id}` : r.requestId;
    const u = units.get(key) ?? { at: order.get(r.requestId)!, team: r.team, usd: 0, ids: [] };
    u.at = Math.min(u.at, order.get(r.requestId)!);
    u.usd += (p.pricePerHour * r.resources.durationSeconds) / 3600;
    u.ids.push(r.requestId);
    units.set(key, u);
  }
  const left = new Map([...room].map(([team, b]) => [team, b.left]));
  for (const u of [...units.values()].sort((a, b) => a.at - b.at)) {
    const l = left.get(u.team)!;
    if (u.usd <= l) {
      left.set(u.team, l - u.usd);
      continue;
    }
    const b = room.get(u.team)!;
    const detail = `at its planned price (${usd(u.usd)} for its declared duration) it would cross team ${u.team}'s monthly budget of $${b.cap.toFixed(2)} (policy ${b.policy}): ${usd(Math.max(0, l))} left`;
    for (const id of u.ids) over.set(id, detail);
  }
  return { kept: placements.filter((p) => !over.has(p.taskId)), over };
}
