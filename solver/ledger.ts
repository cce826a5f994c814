/**
 * Quota and budget headroom while tasks are packed one decision at a time: the LP respects quotas in
 * aggregate, but rounding and repair must not cross them either.
 */
import type { Policy } from '../policies/index.ts';
import type { Group, Option } from './groups.ts';
import { describeQuota, quotaAmount, quotaUsed, sumUsage } from './model.ts';
import type { PoolState, TeamUsage } from './types.ts';

/** Why a take was refused. */
export interface Refusal {
  kind: 'quota' | 'budget';
  detail: string;
}

/** Remaining quota and $/hour budget per policy. */
export class Ledger {
  private readonly quotaLeft = new Map<Policy, number[]>();
  private readonly budgetLeft = new Map<Policy, number>();

  constructor(
    groups: readonly Group[],
    private readonly pools: readonly PoolState[],
    usage: Readonly<Record<string, TeamUsage>>,
  ) {
    for (const g of groups) {
      const p = g.policy;
      if (!p || this.quotaLeft.has(p)) continue;
      const used = sumUsage(p.teams.map((t) => usage[t]));
      this.quotaLeft.set(
        p,
        p.quotas.map((q) => q.nominal + (q.borrowingLimit ?? 0) - quotaUsed(q, used)),
      );
      if (p.budget?.perHour !== undefined) this.budgetLeft.set(p, p.budget.perHour - used.spendPerHour);
    }
  }

  /** How many of `k` tasks of the option may be taken without crossing a quota or budget. */
  allowance(g: Group, o: Option, k: number): { n: number; refusal?: Refusal } {
    const p = g.policy;
    if (!p) return { n: k };
    const pool = this.pools[o.pool]!;
    let n = k;
    let refusal: Refusal | undefined;
    const left = this.quotaLeft.get(p) ?? [];
    p.quotas.forEach((q, i) => {
      const amount = quotaAmount(q, g, o, pool);
      if (amount <= 0) return;
      const fit = Math.floor((left[i]! + 1e-9) / amount);
      if (fit < n) {
        n = Math.max(0, fit);
        refusal = { kind: 'quota', detail: `policy ${p.name}: ${describeQuota(q)} is used up` };
      }
    });
    const budget = this.budgetLeft.get(p);
    const rate = o.share * pool.price;
    if (budget !== undefined && rate > 0) {
      const fit = Math.floor((budget + 1e-9) / rate);
      if (fit < n) {
        n = Math.max(0, fit);
        refusal = {
          kind: 'budget',
          detail: `policy ${p.name}: budget $${p.budget?.perHour}/hour is reached`,
        };
      }
    }
    return refusal ? { n, refusal } : { n };
  }

  /** Gives back what `take` recorded for `k` tasks of the option (they were moved off it). */
  give(g: Group, o: Option, k: number): void {
    this.take(g, o, -k);
  }

  /** Records `k` tasks of the option as placed. */
  take(g: Group, o: Option, k: number): void {
    const p = g.policy;
    if (!p) return;
    const pool = this.pools[o.pool]!;
    const left = this.quotaLeft.get(p);
    p.quotas.forEach((q, i) => {
      if (left) left[i] = left[i]! - quotaAmount(q, g, o, pool) * k;
    });
    const budget = this.budgetLeft.get(p);
    if (budget !== undefined) this.budgetLeft.set(p, budget - o.share * pool.price * k);
  }
}
