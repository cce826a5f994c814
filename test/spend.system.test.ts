/**
 * The spend audit (agents/bench/spend.ts) over a seeded simulated half day: the clouds launch exactly
 * the nodes the broker planned (both clouds get work: H100 spot is GCP's alone), spot reclaims on both
 * and a cluster removed with --force included, every task ends, no team spends past its budget, the
 * removed cluster leaves no instance running, and the work of a killed driver ends once its grace
 * period is over.
 */
import { describe, expect, it } from 'vitest';
import { runSpendAudit } from '../agents/bench/spend.ts';

describe('spend audit', () => {
  it('launches no instance the broker did not plan, over 12 simulated hours', async () => {
    const audit = await runSpendAudit({ hours: 12, seed: 7 });
    expect(audit.tasks.notSucceeded).toEqual([]);
    expect(audit.tasks.succeeded).toBe(audit.tasks.sent);
    for (const c of audit.clouds) expect(c.planned, c.cluster).toBeGreaterThan(0);
    for (const c of audit.clouds) {
      expect(c.extra).toBe(0);
      expect(c.launched).toBeLessThanOrEqual(c.planned);
      // Spot instances were reclaimed on both clouds, and their work placed again (every task ended).
      expect(c.reclaimed, c.cluster).toBeGreaterThan(0);
    }
    // The removed cluster left nothing running that Gantry bought.
    const removed = audit.removedCluster;
    expect(removed.error).toBeUndefined();
    expect(removed.leftRunning).toBe(0);
    expect(removed.terminated).toBeGreaterThan(0);
    for (const b of audit.budgets)
      if (b.perMonth !== undefined) expect(b.spent).toBeLessThanOrEqual(b.perMonth);
    const k = audit.killedDriver;
    expect(k.leases).toBe(3);
    expect(k.orphanedLeaseSeconds).toBe(0);
  }, 60_000);
});
