/**
 * Team budgets from ResourcePolicies. The $/hour cap is a constraint of the plan (the solver keeps a
 * team's running spend rate under it). The monthly cap is checked here before each plan: a team whose
 * spend this month (from the ledger) plus what its running work has committed (price × its declared
 * duration) has reached the cap gets its requests held, with a reason that names the
 * budget, until spend drops out of the month or the cap is raised; so is a request whose least possible
 * cost would cross the cap. Crossing an alert threshold (80%,
 * 100%) is logged once and shown as a metric.
 */
import type { Platform, Policy } from '../policies/index.ts';
import { type TaskUsage, usageCost } from './ledger.ts';
import type { LeaseRecord, RequestRecord } from './records.ts';

/** A team's budget as `gantry get budgets` shows it. */
export interface BudgetStatus {
  team: string;
  policy: string;
  perHour?: { cap: number; usedPerHour: number };
  perMonth?: { cap: number; month: string; spent: number; committed: number; remaining: number };
  /** Why the team's requests are held, when they are. */
  held?: string;
}

const HOUR = 3_600_000;
const monthOf = (t: number) => new Date(t).toISOString().slice(0, 7);

/** Keeps each team's spend this month and says when a team's requests must wait. */
export class Budgets {
  /** Dollars spent per `team|YYYY-MM`. */
  readonly #spent = new Map<string, number>();
  /** Alert thresholds already crossed, per `team|month|threshold`. */
  readonly #alerted = new Set<string>();

  /**
   * @param timeScale simulated seconds per second (embedded mode), as the ledger's times run.
   * @param ledgerTime the broker clock's time on the ledger's clock (the month spend is counted in).
   */
  constructor(
    private platform: Platform,
    private readonly timeScale = 1,
    private readonly ledgerTime: (t: number) => number = (t) => t,
  ) {}

  /** Takes over the spend another instance counted (read from the ledger at start). */
  replaceSpent(from: Budgets): void {
    this.#spent.clear();
    for (const [k, v] of from.#spent) this.#spent.set(k, v);
  }

  /** Uses another platform (policies changed). */
  update(platform: Platform): void {
    this.platform = platform;
  }

  /** Counts a finished task's cost (its share of the node for as long as it ran). */
  record(u: TaskUsage): void {
    const key = `${u.team}|${monthOf(u.end)}`;
    this.#spent.set(key, (this.#spent.get(key) ?? 0) + usageCost(u));
  }

  /** Spent this month; `now` is the broker's clock. */
  spent(team: string, now: number): number {
    return this.#spent.get(`${team}|${monthOf(this.ledgerTime(now))}`) ?? 0;
  }

  /** What a team's active leases cost, at their price, for their declared durations (or longer, if running longer). */
  committed(
    team: string,
    active: Iterable<LeaseRecord>,
    requests: ReadonlyMap<string, RequestRecord>,
    now: number,
  ): number {
    let sum = 0;
    for (const l of active) {
      const r = requests.get(l.requestId);
      if (!r || r.team !== team) continue;
      // A running lease commits its price for its declared duration (or for as long as it has run,
      // if longer): its spend moves from committed to spent when it ends. Lease times are the
      // broker's clock; declared durations are in (simulated) seconds.
      const start = l.startedAt ?? l.placedAt;
      const end = Math.max(start + (r.resources.durationSeconds * 1000) / this.timeScale, now);
      sum += (l.pricePerHour * (end - start) * this.timeScale) / HOUR;
    }
    return sum;
  }

  /** Each team with a budget: its caps, spend and what is left. */
  status(
    active: readonly LeaseRecord[],
    requests: ReadonlyMap<string, RequestRecord>,
    now: number,
  ): BudgetStatus[] {
    const out: BudgetStatus[] = [];
    for (const policy of this.platform.policies) {
      const budget = policy.budget;
      if (!budget) continue;
      for (const team of policy.teams) {
        const s: BudgetStatus = { team, policy: policy.name };
        if (budget.perHour !== undefined) {
          const rate = active
            .filter((l) => requests.get(l.requestId)?.team === team)
            .reduce((a, l) => a + l.pricePerHour, 0);
          s.perHour = { cap: budget.perHour, usedPerHour: rate };
        }
        if (budget.perMonth !== undefined) {
          const spent = this.spent(team, now);
          const committed = this.committed(team, active, requests, now);
          s.perMonth = {
            cap: budget.perMonth,
            month: monthOf(this.ledgerTime(now)),
            spent,
            committed,
            remaining: budget.perMonth - spent - committed,
          };
          const held = this.#heldReason(team, policy, spent, committed);
          if (held) s.held = held;
        }
        out.push(s);
      }
    }
    return out;
  }

  /**
   * Why `team`'s requests must wait (its monthly budget is used), or undefined. Also returns alerts
   * newly crossed, for the caller to log.
   */
  check(
    team: string,
    active: Iterable<LeaseRecord>,
    requests: ReadonlyMap<string, RequestRecord>,
    now: number,
  ): { held?: string; alerts: { threshold: number; ratio: number; policy: string }[] } {
    const policy = this.platform.policies.find((p) => p.teams.includes(team));
    const cap = policy?.budget?.perMonth;
    if (!policy || cap === undefined) return { alerts: [] };
    const spent = this.spent(team, now);
    const committed = this.committed(team, active, requests, now);
    const ratio = cap > 0 ? (spent + committed) / cap : Infinity;
    const alerts = [];
    for (const threshold of policy.budget?.alertAt ?? [0.8, 1]) {
      const key = `${team}|${monthOf(this.ledgerTime(now))}|${threshold}`;
      if (ratio >= threshold && !this.#alerted.has(key)) {
        this.#alerted.add(key);
        alerts.push({ threshold, ratio, policy: policy.name });
      }
    }
    const held = this.#heldReason(team, policy, spent, committed);
    return { ...(held ? { held } : {}), alerts };
  }

  /**
   * The least a request can cost: its dominant share of the cheapest pool it fits, for its declared
   * duration. A request whose least cost would cross the team's monthly cap is held.
   */
  leastCost(r: RequestRecord): number {
    const res = r.resources;
    const policy = this.platform.policies.find((p) => p.teams.includes(r.team));
    const spot = res.spot ?? policy?.spot;
    const clusters = policy?.allowed?.clusters;
    let best = Infinity;
    for (const p of this.platform.pools) {
      if (spot === 'never' && p.capacityType === 'spot') continue;
      if (spot === 'required' && p.capacityType !== 'spot') continue;
      if (clusters && !clusters.includes(p.cluster)) continue;
      let gpuShare = 0;
      if (res.gpu.length > 0) {
        const opt = res.gpu.find((g) => (g.model === '*' ? p.gpuCount > 0 : g.model === p.gpuModel));
        if (!opt || p.gpuCount < opt.count) continue;
        gpuShare = opt.count / p.gpuCount;
      }
      const share = Math.max(res.cpuMilli / p.cpuMilli, res.memoryMiB / p.memoryMiB, gpuShare);
      if (share > 1) continue;
      best = Math.min(best, share * p.price);
    }
    return Number.isFinite(best) ? (best * res.durationSeconds) / 3600 : 0;
  }

  /** The ratio of a team's monthly budget used (spent + committed), for the metric. */
  usedRatio(
    team: string,
    active: Iterable<LeaseRecord>,
    requests: ReadonlyMap<string, RequestRecord>,
    now: number,
  ): number | undefined {
    const cap = this.platform.policies.find((p) => p.teams.includes(team))?.budget?.perMonth;
    if (cap === undefined || cap <= 0) return undefined;
    return (this.spent(team, now) + this.committed(team, active, requests, now)) / cap;
  }

  /** The monthly cap and what is left of it for a team, if it has one. */
  headroom(
    team: string,
    active: Iterable<LeaseRecord>,
    requests: ReadonlyMap<string, RequestRecord>,
    now: number,
  ): { left: number; cap: number; policy: string } | undefined {
    const policy = this.platform.policies.find((p) => p.teams.includes(team));
    const cap = policy?.budget?.perMonth;
    if (!policy || cap === undefined) return undefined;
    return {
      left: cap - this.spent(team, now) - this.committed(team, active, requests, now),
      cap,
      policy: policy.name,
    };
  }

  #heldReason(team: string, policy: Policy, spent: number, committed: number): string | undefined {
    const cap = policy.budget?.perMonth;
    if (cap === undefined || spent + committed < cap) return undefined;
    return `budget: team ${team} has used its monthly budget of $${cap.toFixed(2)} (policy ${policy.name}): $${spent.toFixed(2)} spent and $${committed.toFixed(2)} committed this month`;
  }
}
