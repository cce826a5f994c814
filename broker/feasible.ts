/**
 * Whether a pool could ever take a request, by its declared shape and the team's policy (model and
 * number of GPUs, CPU, memory, spot, allowed clusters) — not by what is free now.
 */
import type { Platform, Policy, ResolvedResources } from '../policies/index.ts';
import type { Inventory } from './inventory.ts';
import type { RequestRecord } from './records.ts';

type Pool = Platform['pools'][number];

/** The share of one node of `pool` a request takes (0–1), or undefined when the pool cannot take it. */
export function shareOf(res: ResolvedResources, pool: Pool, policy: Policy | undefined): number | undefined {
  const spot = res.spot ?? policy?.spot;
  if (spot === 'never' && pool.capacityType === 'spot') return undefined;
  if (spot === 'required' && pool.capacityType !== 'spot') return undefined;
  const clusters = policy?.allowed?.clusters;
  if (clusters && !clusters.includes(pool.cluster)) return undefined;
  let gpuShare = 0;
  if (res.gpu.length > 0) {
    const opt = res.gpu.find((g) => (g.model === '*' ? pool.gpuCount > 0 : g.model === pool.gpuModel));
    if (!opt || pool.gpuCount < opt.count) return undefined;
    gpuShare = opt.count / pool.gpuCount;
  }
  const share = Math.max(res.cpuMilli / pool.cpuMilli, res.memoryMiB / pool.memoryMiB, gpuShare);
  return share > 1 ? undefined : share;
}

/**
 * Whether a pool of a cluster the plan left out (unhealthy or draining) could take the request once
 * that cluster is back: if none could, a request no pool in the plan fits is refused, not held forever.
 */
export function couldFitOutsidePlan(r: RequestRecord, inventory: Inventory, platform: Platform): boolean {
  const policy = platform.policyFor(r.team);
  for (const c of inventory.clusters.values()) {
    if (c.healthy && !c.draining) continue;
    for (const p of platform.pools)
      if (p.cluster === c.name && shareOf(r.resources, p, policy) !== undefined) return true;
  }
  return false;
}
