/**
 * The spend audit (agents/bench/spend.ts) over a seeded simulated half day: the clouds launch exactly
 * the nodes the broker planned, every task ends, and no team spends past its budget.
 */
import { describe, expect, it } from 'vitest';
import { runSpendAudit } from '../agents/bench/spend.ts';

describe('spend audit', () => {
  it('launches no instance the broker did not plan, over 12 simulated hours', async () => {
    const audit = await runSpendAudit({ hours: 12, seed: 7 });
    expect(audit.tasks.succeeded).toBe(audit.tasks.sent);
    const ec2 = audit.clouds.find((c) => c.cloud === 'ec2')!;
    expect(ec2.planned).toBeGreaterThan(0);
    for (const c of audit.clouds) {
      expect(c.extra).toBe(0);
      expect(c.launched).toBeLessThanOrEqual(c.planned);
    }
    for (const b of audit.budgets)
      if (b.perMonth !== undefined) expect(b.spent).toBeLessThanOrEqual(b.perMonth);
  }, 60_000);
});
