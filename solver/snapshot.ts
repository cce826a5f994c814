/**
 * Building solver inputs from the declared platform: pools as the solver sees them, and requests from
 * resolved workload tasks.
 */
import type { Pool, ResolvedResources } from '../policies/index.ts';
import type { NodeState, PoolState, TaskRequest } from './types.ts';

/**
 * Solver pools for declared pools. `nodes` gives running nodes per pool id; pools without an entry get
 * `pool.nodes` empty nodes named `<pool>-<n>` (what an on-prem pool has at onboarding).
 *
 * @example
 * const pools = poolStates(platform.pools);
 */
export function poolStates(pools: readonly Pool[], nodes?: ReadonlyMap<string, NodeState[]>): PoolState[] {
  return pools.map((p) => {
    const running =
      nodes?.get(p.id) ??
      Array.from({ length: p.nodes }, (_, i) => ({
        name: `${p.name}-${i}`,
        freeCpuMilli: p.cpuMilli,
        freeMemoryMiB: p.memoryMiB,
        freeGpuMilli: Array<number>(p.gpuCount).fill(1000),
      }));
    return {
      id: p.id,
      cluster: p.cluster,
      name: p.name,
      region: p.region,
      instanceType: p.instanceType,
      capacityType: p.capacityType,
      cpuMilli: p.cpuMilli,
      memoryMiB: p.memoryMiB,
      gpuModel: p.gpuModel,
      gpuCount: p.gpuCount,
      price: p.price,
      interruptionRate: p.interruptionRate,
      launchDelaySeconds: p.launchDelaySeconds,
      taints: p.taints,
      nodes: running,
      maxNewNodes: Math.max(0, p.maxNodes - running.length),
    };
  });
}

/** A solver request for a resolved task. */
export function taskRequest(id: string, team: string, r: ResolvedResources, priority?: number): TaskRequest {
  return {
    id,
    team,
    cpuMilli: r.cpuMilli,
    memoryMiB: r.memoryMiB,
    durationSeconds: r.durationSeconds,
    ...(r.gpu.length > 0 ? { gpu: r.gpu } : {}),
    ...(r.spot ? { spot: r.spot } : {}),
    ...(priority !== undefined ? { priority } : {}),
  };
}
