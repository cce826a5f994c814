/**
 * What the active leases cost per hour, kept up to date as leases start and end instead of summed by a
 * scan of every lease (at a million active leases a scan every few seconds was a few percent of a core).
 * Per team, cluster, pool and capacity type: the spend per hour. Per team, of the leases that started:
 * Σ price and Σ price × start, so the running cost so far at any `now` is `Σp·now − Σp·start`.
 */
import type { LeaseRecord } from './records.ts';

/** Spend per hour of the active leases, and what their running cost so far is made of. */
export interface LeaseSpend {
  /** Active leases counted. */
  readonly count: number;
  /** $/hour per `team|cluster|pool|capacityType`. */
  readonly byPool: ReadonlyMap<string, number>;
  /** Per team, of the leases that started: Σ $/hour and Σ $/hour × start (ms). */
  readonly started: ReadonlyMap<string, { perHour: number; perHourTimesStart: number }>;
}

/** The key of {@link LeaseSpend.byPool}. */
export function spendKey(team: string, l: Pick<LeaseRecord, 'cluster' | 'pool' | 'capacityType'>): string {
  return `${team}|${l.cluster}|${l.pool}|${l.capacityType}`;
}

/** A {@link LeaseSpend} kept by adding and removing leases. */
export class SpendCounter implements LeaseSpend {
  count = 0;
  readonly byPool = new Map<string, number>();
  readonly started = new Map<string, { perHour: number; perHourTimesStart: number }>();

  /**
   * Counts (`sign` 1) or uncounts (-1) a lease of `team` that started at `startedAt` (if it did); `key`:
   * its {@link spendKey}, when the caller keeps it.
   */
  add(
    team: string,
    l: LeaseRecord,
    startedAt: number | undefined,
    sign: 1 | -1,
    key = spendKey(team, l),
  ): void {
    this.count += sign;
    const v = (this.byPool.get(key) ?? 0) + sign * l.pricePerHour;
    // Sums of floating-point prices do not come back to exactly 0.
    if (Math.abs(v) < 1e-9) this.byPool.delete(key);
    else this.byPool.set(key, v);
    if (startedAt === undefined) return;
    let s = this.started.get(team);
    if (!s) this.started.set(team, (s = { perHour: 0, perHourTimesStart: 0 }));
    s.perHour += sign * l.pricePerHour;
    s.perHourTimesStart += sign * l.pricePerHour * startedAt;
    if (Math.abs(s.perHour) < 1e-9) this.started.delete(team);
  }

  clear(): void {
    this.count = 0;
    this.byPool.clear();
    this.started.clear();
  }
}

/** The spend of a list of active leases (tests, and whoever holds a list). */
export function spendOf(active: Iterable<LeaseRecord>, teamOf: (l: LeaseRecord) => string): LeaseSpend {
  const c = new SpendCounter();
  for (const l of active) c.add(teamOf(l), l, l.startedAt, 1);
  return c;
}
