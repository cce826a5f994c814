/**
 * Monthly budgets on what a plan actually places. The gate in front of a cycle admits requests by their
 * least possible cost (the cheapest pool they fit); the solver may then place them on dearer pools when
 * the cheap ones are full. Each placement commits its lease's price for the task's declared duration:
 * placements that would take a team past what its monthly budget has left are taken back (held, with
 * the reason), cheapest kept first, a gang as one.
 */
import type { Placement } from '../solver/index.ts';
import type { RequestRecord } from './records.ts';

/** What a team's monthly budget has left before a cycle (spent and committed counted). */
export interface MonthlyRoom {
  left: number;
  cap: number;
  policy: string;
}

/** Dollars, with four decimals under $1. */
const usd = (v: number) => `$${v.toFixed(v < 1 ? 4 : 2)}`;

/**
 * The placements of `placements` that would cross their team's monthly budget, each with why. Pure.
 *
 * @example
 * const over = placementsOverBudget(plan.placements, byId, new Map([['ml', { left: 1, cap: 20, policy: 'ml' }]]));
 */
export function placementsOverBudget(
  placements: readonly Placement[],
  requests: ReadonlyMap<string, RequestRecord>,
  room: ReadonlyMap<string, MonthlyRoom>,
): Map<string, string> {
  const out = new Map<string, string>();
  if (room.size === 0) return out;
  // A unit is a request, or a whole gang: its members go together or not at all.
  const units = new Map<string, { team: string; ids: string[]; usd: number }>();
  for (const p of placements) {
    const r = requests.get(p.taskId);
    if (!r || !room.has(r.team)) continue;
    const key = r.gang ? `gang:${r.gang.id}` : r.requestId;
    const u = units.get(key) ?? { team: r.team, ids: [], usd: 0 };
    u.ids.push(p.taskId);
    u.usd += (p.pricePerHour * r.resources.durationSeconds) / 3600;
    units.set(key, u);
  }
  const left = new Map([...room].map(([team, m]) => [team, m.left]));
  for (const u of [...units.values()].sort((a, b) => a.usd - b.usd)) {
    const has = left.get(u.team)!;
    if (u.usd <= has) {
      left.set(u.team, has - u.usd);
      continue;
    }
    const m = room.get(u.team)!;
    const detail = `placed, it would commit ${usd(u.usd)} and cross team ${u.team}'s monthly budget of $${m.cap.toFixed(2)} (policy ${m.policy}): ${usd(Math.max(0, has))} left`;
    for (const id of u.ids) out.set(id, detail);
  }
  return out;
}
