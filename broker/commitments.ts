/**
 * What the active leases commit against monthly budgets, kept as leases start, move and end instead of
 * summed over every active lease by each cycle's budget gate and each health tick's overrun check (at a
 * million active leases, a scan of all of them several times a second).
 *
 * A lease commits its price from its start (or its placement, until it starts) to `until` — its declared
 * duration from its start, or later once extended (`committedUntil`) — and past `until` for as long as
 * it runs on: `price × (max(until, now) − start)`. Kept per team: Σ price × (until − start), exact at
 * any time; and the leases whose `until` has come or comes soon, taken from a heap ordered by `until`
 * as time reaches them, for the part past `until` and for the overrun check. Built on first use: a
 * platform without monthly budgets keeps no heap.
 */
import type { LeaseRecord, RequestRecord } from './records.ts';

const HOUR = 3_600_000;

/**
 * Until when (broker clock) a lease's cost is committed: its declared duration from its start
 * (`startedAt`, its placement until it starts), or later once the broker extended it (`committedUntil`).
 */
export function commitmentEnd(
  l: LeaseRecord,
  r: RequestRecord,
  timeScale: number,
  startedAt: number | undefined,
): number {
  return l.committedUntil ?? (startedAt ?? l.placedAt) + (r.resources.durationSeconds * 1000) / timeScale;
}

/** Per-team commitments of the active leases; see the module comment. */
export class Commitments {
  /** Per team: Σ $/hour × (until − start) in ms, of the leases counted. */
  readonly #base = new Map<string, number>();
  /** Min-heap on `until` of the counted leases not yet {@link #due}; entries go stale when a lease moves. */
  #untils: number[] = [];
  #leases: LeaseRecord[] = [];
  /** Counted leases whose `until` is at most {@link #horizon}, with that `until`. */
  readonly #due = new Map<LeaseRecord, number>();
  #horizon = -Infinity;
  #enabled = false;

  /**
   * @param timeScale simulated seconds per second: declared durations (simulated seconds) run this much
   *   faster than the broker's clock, and so does a lease's price.
   * @param request the request of a lease (its team and declared duration).
   * @param active every active lease (to build from on first use, and to drop stale heap entries).
   * @param isActive whether a lease is counted now (active).
   * @param activeCount how many leases are active.
   */
  constructor(
    private readonly timeScale: number,
    private readonly request: (l: LeaseRecord) => RequestRecord | undefined,
    private readonly active: () => Iterable<LeaseRecord>,
    private readonly isActive: (l: LeaseRecord) => boolean,
    private readonly activeCount: () => number,
  ) {}

  /**
   * Counts (`sign` 1) or uncounts (-1) an active lease as it was counted: from `startedAt`, with its
   * `committedUntil` as it is (the broker's state changes it only by uncounting, setting, counting again).
   */
  account(l: LeaseRecord, startedAt: number | undefined, sign: 1 | -1): void {
    if (!this.#enabled) return;
    const r = this.request(l);
    if (!r) return;
    const until = commitmentEnd(l, r, this.timeScale, startedAt);
    const start = startedAt ?? l.placedAt;
    this.#base.set(r.team, (this.#base.get(r.team) ?? 0) + sign * l.pricePerHour * (until - start));
    if (sign < 0) this.#due.delete(l);
    else if (until <= this.#horizon) this.#due.set(l, until);
    else this.#push(until, l);
  }

  /** Forgets everything (a load starts again from the store). */
  clear(): void {
    this.#enabled = false;
    this.#base.clear();
    this.#due.clear();
    this.#untils = [];
    this.#leases = [];
    this.#horizon = -Infinity;
  }

  /** What each team's active leases commit at `now`, in dollars. */
  byTeam(now: number): Map<string, number> {
    this.#advance(now);
    const sum = new Map(this.#base);
    for (const [l, until] of this.#due) {
      if (until >= now) continue;
      const team = this.request(l)?.team;
      if (team !== undefined) sum.set(team, (sum.get(team) ?? 0) + l.pricePerHour * (now - until));
    }
    const k = this.timeScale / HOUR;
    for (const [team, v] of sum) sum.set(team, v * k);
    return sum;
  }

  /** The active leases whose commitment ends by `t` (and may end later: a superset is fine for callers). */
  dueBy(t: number): Iterable<LeaseRecord> {
    this.#advance(t);
    return this.#due.keys();
  }

  /** Takes the leases whose `until` is at most `t` off the heap. */
  #advance(t: number): void {
    if (!this.#enabled) this.#build();
    if (t <= this.#horizon) return;
    this.#horizon = t;
    while (this.#untils.length > 0 && this.#untils[0]! <= t) {
      const [until, l] = this.#pop();
      // A stale entry: the lease ended, moved (and was pushed again), or is due already.
      if (this.#due.has(l) || !this.isActive(l)) continue;
      const r = this.request(l);
      if (r && commitmentEnd(l, r, this.timeScale, l.startedAt) === until) this.#due.set(l, until);
    }
    // Stale entries outnumber the live ones: built again from the active leases.
    const live = Math.max(0, this.activeCount() - this.#due.size);
    if (this.#untils.length > 1024 && this.#untils.length > 2 * live) this.#build();
  }

  #build(): void {
    const horizon = this.#horizon;
    this.clear();
    this.#enabled = true;
    this.#horizon = horizon;
    for (const l of this.active()) this.account(l, l.startedAt, 1);
  }

  #push(until: number, l: LeaseRecord): void {
    const u = this.#untils;
    const ls = this.#leases;
    let i = u.length;
    u.push(until);
    ls.push(l);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (u[parent]! <= until) break;
      u[i] = u[parent]!;
      ls[i] = ls[parent]!;
      i = parent;
    }
    u[i] = until;
    ls[i] = l;
  }

  #pop(): [number, LeaseRecord] {
    const u = this.#untils;
    const ls = this.#leases;
    const top: [number, LeaseRecord] = [u[0]!, ls[0]!];
    const lastU = u.pop()!;
    const lastL = ls.pop()!;
    const n = u.length;
    if (n === 0) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && u[right]! < u[left]! ? right : left;
      if (u[child]! >= lastU) break;
      u[i] = u[child]!;
      ls[i] = ls[child]!;
      i = child;
    }
    u[i] = lastU;
    ls[i] = lastL;
    return top;
  }
}
