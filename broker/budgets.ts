/**
 * Team budgets from ResourcePolicies. The $/hour cap is a constraint of the plan (the solver keeps a
 * team's running spend rate under it). The monthly cap is checked here before each plan, against the
 * team's spend this month (from the ledger) plus what its running work has committed (price × its
 * declared duration, extended while it overruns): a request whose least possible cost would cross the cap is held, and once the
 * cap is reached all the team's requests are, with a reason that names the budget, until spend drops
 * out of the month or the cap is raised. Crossing an alert threshold (80%, 100%) is logged once and
 * counted in a metric.
 */
import type { Platform, Policy } from '../policies/index.ts';
import { commitmentEnd } from './commitments.ts';
import { shareOf } from './feasible.ts';
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

/** Where a team stands against its monthly cap. */
export interface Monthly {
  policy: string;
  cap: number;
  spent: number;
  committed: number;
  /** The cap minus spent and committed (negative when over). */
  left: number;
  /** Spent and committed over the cap. */
  ratio: number;
  /** Why its requests wait, when the cap is reached. */
  held?: string;
}

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
    private readonly platform: Platform,
    private readonly timeScale = 1,
    private readonly ledgerTime: (t: number) => number = (t) => t,
  ) {}

  /** Takes over the spend another instance counted (read from the ledger at start). */
  replaceSpent(from: Budgets): void {
    this.#spent.clear();
    for (const [k, v] of from.#spent) this.#spent.set(k, v);
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

  /** Whether any of these teams has a monthly budget (most cycles can skip the rest). */
  anyMonthly(teams: Iterable<string>): boolean {
    for (const team of teams) if (this.#policy(team)?.budget?.perMonth !== undefined) return true;
    return false;
  }

  /**
   * What each team's active leases commit, in one pass: a running lease commits its price for its
   * declared duration (or for as long as it has run, if longer), until it ends and its actual cost
   * moves to spent. Lease times are the broker's clock; declared durations are (simulated) seconds.
   */
  committedByTeam(
    active: Iterable<LeaseRecord>,
    requests: ReadonlyMap<string, RequestRecord>,
    now: number,
  ): Map<string, number> {
    const out = new Map<string, number>();
    for (const l of active) {
      const r = requests.get(l.requestId);
      if (!r) continue;
      const end = Math.max(this.committedUntil(l, r), now);
      const start = l.startedAt ?? l.placedAt;
      out.set(r.team, (out.get(r.team) ?? 0) + (l.pricePerHour * (end - start) * this.timeScale) / HOUR);
    }
    return out;
  }

  /**
   * Until when (broker clock) a lease's cost is committed: its declared duration from its start, or
   * later once the broker extended it (see `enforceOverruns`).
   */
  committedUntil(l: LeaseRecord, r: RequestRecord): number {
    return commitmentEnd(l, r, this.timeScale, l.startedAt);
  }

  /** The team's policy, when it has a monthly budget. */
  monthlyPolicy(team: string): Policy | undefined {
    const p = this.#policy(team);
    return p?.budget?.perMonth === undefined ? undefined : p;
  }

  /** Where a team stands against its monthly cap, given what its running work commits; undefined without one. */
  monthly(team: string, committed: number, now: number): Monthly | undefined {
    const policy = this.#policy(team);
    const cap = policy?.budget?.perMonth;
    if (!policy || cap === undefined) return undefined;
    const spent = this.spent(team, now);
    const used = spent + committed;
    return {
      policy: policy.name,
      cap,
      spent,
      committed,
      left: cap - used,
      ratio: cap > 0 ? used / cap : Infinity,
      ...(used >= cap
        ? {
            held: `team ${team} has used its monthly budget of $${cap.toFixed(2)} (policy ${policy.name}): $${spent.toFixed(2)} spent and $${committed.toFixed(2)} committed this month`,
          }
        : {}),
    };
  }

  /** Alert thresholds the team has crossed this month and not yet been alerted of (each once). */
  newAlerts(team: string, m: Monthly, now: number): number[] {
    const out: number[] = [];
    for (const threshold of this.#policy(team)?.budget?.alertAt ?? [0.8, 1]) {
      const key = `${team}|${monthOf(this.ledgerTime(now))}|${threshold}`;
      if (m.ratio >= threshold && !this.#alerted.has(key)) {
        this.#alerted.add(key);
        out.push(threshold);
      }
    }
    return out;
  }

  /**
   * Why `team`'s requests must wait (its monthly budget is used), or undefined, and the alerts newly
   * crossed.
   */
  check(
    team: string,
    active: Iterable<LeaseRecord>,
    requests: ReadonlyMap<string, RequestRecord>,
    now: number,
  ): { held?: string; alerts: { threshold: number; ratio: number; policy: string }[] } {
    const m = this.monthly(team, this.committedByTeam(active, requests, now).get(team) ?? 0, now);
    if (!m) return { alerts: [] };
    const alerts = this.newAlerts(team, m, now).map((threshold) => ({
      threshold,
      ratio: m.ratio,
      policy: m.policy,
    }));
    return { ...(m.held ? { held: m.held } : {}), alerts };
  }

  /**
   * Each team with a budget: its caps, spend and what is left. `committed`: what each team's active
   * leases commit (dollars; asked only if a team has a monthly budget); `rates`: what they cost per hour.
   */
  status(
    committed: () => ReadonlyMap<string, number>,
    rates: ReadonlyMap<string, number>,
    now: number,
  ): BudgetStatus[] {
    let commitments: ReadonlyMap<string, number> | undefined;
    const out: BudgetStatus[] = [];
    for (const policy of this.platform.policies) {
      const budget = policy.budget;
      if (!budget) continue;
      for (const team of policy.teams) {
        const s: BudgetStatus = { team, policy: policy.name };
        if (budget.perHour !== undefined)
          s.perHour = { cap: budget.perHour, usedPerHour: rates.get(team) ?? 0 };
        const m =
          this.monthlyPolicy(team) && this.monthly(team, (commitments ??= committed()).get(team) ?? 0, now);
        if (m) {
          s.perMonth = {
            cap: m.cap,
            month: monthOf(this.ledgerTime(now)),
            spent: m.spent,
            committed: m.committed,
            remaining: m.left,
          };
          if (m.held) s.held = m.held;
        }
        out.push(s);
      }
    }
    return out;
  }

  /**
   * The least a request can cost: its dominant share of the cheapest pool it fits, for its declared
   * duration. A request whose least cost would cross the team's monthly cap is held.
   */
  leastCost(r: RequestRecord): number {
    const policy = this.#policy(r.team);
    let best = Infinity;
    for (const p of this.platform.pools) {
      const share = shareOf(r.resources, p, policy);
      if (share !== undefined) best = Math.min(best, share * p.price);
    }
    return Number.isFinite(best) ? (best * r.resources.durationSeconds) / 3600 : 0;
  }

  #policy(team: string): Policy | undefined {
    return this.platform.policies.find((p) => p.teams.includes(team));
  }
}
