/**
 * Aggregation and compatibility: identical requests become one group, and each group learns which pools
 * may take it, how many of its tasks fit on one node there, and what a task costs there.
 *
 * Model size therefore grows with distinct shapes and pools, not with tasks: 250K identical tasks are one
 * group.
 */
import type { Policy, SpotPreference } from '../policies/index.ts';
import type { GpuAsk, NodeState, PoolState, TaskRequest } from './types.ts';

/**
 * Planned durations, in seconds. A task is planned for the smallest bucket that holds its expected run
 * time, and a node bought for a bucket is priced for the bucket's length: tasks of similar length then
 * share nodes, and a node is not kept for a long task's sake while short ones idle on it.
 */
export const DURATION_BUCKETS = [
  60, 300, 900, 1800, 3600, 7200, 14_400, 28_800, 57_600, 86_400, 172_800, 604_800,
];

/** The planned duration of a task expected to run `seconds`. */
export function durationBucket(seconds: number): number {
  return DURATION_BUCKETS.find((b) => b >= seconds) ?? Math.ceil(seconds / 86_400) * 86_400;
}

/** Identical tasks: same team, shape, spot preference, planned duration and priority. */
export interface Group {
  index: number;
  key: string;
  team: string;
  policy: Policy | undefined;
  cpuMilli: number;
  memoryMiB: number;
  gpu: readonly GpuAsk[];
  spot: SpotPreference;
  /** Planned duration (a bucket), seconds. */
  durationSeconds: number;
  priority: number;
  taskIds: string[];
}

/** A pool that may take a group's tasks, and what they cost there. */
export interface Option {
  group: number;
  pool: number;
  /** GPU thousandths one task takes on this pool (0 for CPU tasks). */
  gpuMilli: number;
  /**
   * GPU thousandths the LP charges per task: a shared-GPU task that fits k times on one device is charged
   * 1/k of a device, since the rest of that device is of no use to other tasks of other sizes.
   */
  lpGpuMilli: number;
  /** Tasks of the group that fit on one empty node. */
  perNode: number;
  /** The task's dominant share of one node (cpu, memory or GPU). */
  share: number;
  /** Spot rework: chance of an interruption during the task × half its run × its share of the price. */
  risk: number;
  /** Non-dollar preference terms: spot preference and fallback order. */
  preference: number;
  /** Expected $ of one task on a new node, its share of the node's price for the planned duration. */
  costPerTask: number;
  /** 0 for the first matching fallback entry (or no fallbacks), 1 for the next, … */
  rank: number;
}

/** On-demand capacity for a `spot: preferred` task costs this much more in the objective. */
export const SPOT_PREFERRED_PENALTY = 0.1;
/** Each step down a policy's fallback list costs this much more in the objective. */
export const FALLBACK_STEP_PENALTY = 0.05;

/**
 * Groups requests. Tasks with the same key keep their order inside the group.
 *
 * @example
 * const groups = groupRequests(requests, (team) => policies.get(team));
 */
export function groupRequests(
  requests: readonly TaskRequest[],
  policyFor: (team: string) => Policy | undefined,
): Group[] {
  const byKey = new Map<string, Group>();
  for (const r of requests) {
    const policy = policyFor(r.team);
    const spot = r.spot ?? policy?.spot ?? 'allowed';
    const priority = r.priority ?? policy?.priority ?? 0;
    const durationSeconds = durationBucket(r.durationSeconds);
    const gpu = (r.gpu ?? []).filter((g) => g.count > 0);
    const gpuKey = gpu.map((g) => `${g.model}:${g.count}`).join('|');
    const key = `${r.team}/${r.cpuMilli}/${r.memoryMiB}/${gpuKey}/${spot}/${durationSeconds}/${priority}`;
    let group = byKey.get(key);
    if (!group) {
      group = {
        index: byKey.size,
        key,
        team: r.team,
        policy,
        cpuMilli: r.cpuMilli,
        memoryMiB: r.memoryMiB,
        gpu,
        spot,
        durationSeconds,
        priority,
        taskIds: [],
      };
      byKey.set(key, group);
    }
    group.taskIds.push(r.id);
  }
  return [...byKey.values()];
}

/** The GPU alternative a pool satisfies, if any: model matches and one node has enough devices. */
export function gpuAskFor(
  group: Pick<Group, 'gpu'>,
  pool: Pick<PoolState, 'gpuModel' | 'gpuCount'>,
): GpuAsk | undefined {
  return group.gpu.find((g) => (g.model === '*' || g.model === pool.gpuModel) && g.count <= pool.gpuCount);
}

/** How many tasks needing (cpu, memory, per-task GPU ask) fit in the given free capacity of one node. */
export function tasksThatFit(
  free: { cpuMilli: number; memoryMiB: number; gpuMilli: readonly number[] },
  cpuMilli: number,
  memoryMiB: number,
  gpuCount: number,
): number {
  let n = Math.min(
    cpuMilli > 0 ? Math.floor(free.cpuMilli / cpuMilli + 1e-9) : Infinity,
    memoryMiB > 0 ? Math.floor(free.memoryMiB / memoryMiB + 1e-9) : Infinity,
  );
  if (gpuCount > 0) n = Math.min(n, gpuSlots(free.gpuMilli, gpuCount));
  return Number.isFinite(n) ? Math.max(0, n) : 0;
}

/** Tasks of `count` GPUs each that fit on devices with these free thousandths. */
export function gpuSlots(freeGpuMilli: readonly number[], count: number): number {
  let n = 0;
  if (count >= 1) {
    for (const f of freeGpuMilli) if (f >= 1000) n++;
    return Math.floor(n / count);
  }
  const need = Math.round(count * 1000);
  for (const f of freeGpuMilli) n += Math.floor(f / need);
  return n;
}

/** An empty node of the pool, as free capacity. */
export function emptyNode(pool: PoolState): { cpuMilli: number; memoryMiB: number; gpuMilli: number[] } {
  return {
    cpuMilli: pool.cpuMilli,
    memoryMiB: pool.memoryMiB,
    gpuMilli: Array<number>(pool.gpuCount).fill(1000),
  };
}

/** Why a pool cannot take a group, or undefined when it can. Reasons name the policy that forbids it. */
export function incompatibility(group: Group, pool: PoolState, clusterHealthy = true): string | undefined {
  if (!clusterHealthy) return `cluster ${pool.cluster} is unhealthy or draining`;
  const policy = group.policy;
  const pname = policy ? `policy ${policy.name}` : 'policy';
  const ask = group.gpu.length > 0 ? gpuAskFor(group, pool) : undefined;
  if (group.gpu.length > 0 && !ask)
    return `no pool offers ${group.gpu.map((g) => `${g.model}:${g.count}`).join(' or ')}`;
  const allowed = policy?.allowed;
  if (allowed?.clusters && !allowed.clusters.includes(pool.cluster))
    return `${pname} allows clusters ${allowed.clusters.join(', ')}`;
  if (allowed?.regions && !allowed.regions.includes(pool.region))
    return `${pname} allows regions ${allowed.regions.join(', ')}`;
  if (
    ask &&
    allowed?.gpuModels &&
    pool.gpuModel &&
    !(allowed.gpuModels as string[]).includes(pool.gpuModel)
  ) {
    return `${pname} allows GPU models ${allowed.gpuModels.join(', ')}`;
  }
  if (allowed?.capacityTypes && !allowed.capacityTypes.includes(pool.capacityType)) {
    return `${pname} allows capacity types ${allowed.capacityTypes.join(', ')}`;
  }
  if (group.spot === 'never' && pool.capacityType === 'spot') return `spot is not allowed (spot: never)`;
  if (group.spot === 'required' && pool.capacityType !== 'spot') return `spot is required (spot: required)`;
  if (ask && policy && policy.fallbacks.length > 0 && fallbackRank(policy, pool) < 0) {
    return `${pname} fallbacks do not include ${pool.gpuModel} ${pool.capacityType}`;
  }
  for (const t of pool.taints ?? []) {
    if (t.effect !== 'PreferNoSchedule' && !tolerates(group, t.key))
      return `pool ${pool.id} is tainted ${t.key}`;
  }
  const limits = policy?.limits;
  const gpus = ask?.count ?? 0;
  if (limits?.cpu !== undefined && group.cpuMilli > limits.cpu)
    return `${pname} limits a task to ${limits.cpu / 1000} cpu`;
  if (limits?.memory !== undefined && group.memoryMiB > limits.memory)
    return `${pname} limits a task's memory`;
  if (limits?.gpus !== undefined && gpus > limits.gpus)
    return `${pname} limits a task to ${limits.gpus} GPUs`;
  if (group.cpuMilli > pool.cpuMilli || group.memoryMiB > pool.memoryMiB)
    return `a task does not fit on one ${pool.instanceType} node`;
  const max = policy?.maxPricePerTaskHour;
  if (max !== undefined && share(group, pool, ask) * pool.price > max + 1e-9) {
    return `${pname} caps a task at $${max}/hour; on ${pool.id} it costs $${(share(group, pool, ask) * pool.price).toFixed(2)}`;
  }
  return undefined;
}

// Gantry adds tolerations for the taints it puts on GPU and spot pools, and only for tasks that use them.
function tolerates(group: Group, key: string): boolean {
  if (/gpu/i.test(key)) return group.gpu.length > 0;
  if (/spot|preemptible|capacity-type/i.test(key)) return group.spot !== 'never';
  return false;
}

/** Index of the first fallback entry the pool matches, -1 when none does. */
export function fallbackRank(policy: Policy, pool: PoolState): number {
  return policy.fallbacks.findIndex(
    (f) =>
      (f.gpu === undefined || f.gpu === pool.gpuModel) &&
      (f.capacityType === undefined || f.capacityType === pool.capacityType) &&
      (f.cluster === undefined || f.cluster === pool.cluster),
  );
}

/** The task's dominant share of one node of the pool. */
export function share(
  group: Pick<Group, 'cpuMilli' | 'memoryMiB'>,
  pool: PoolState,
  ask: GpuAsk | undefined,
): number {
  return Math.max(
    pool.cpuMilli > 0 ? group.cpuMilli / pool.cpuMilli : 0,
    pool.memoryMiB > 0 ? group.memoryMiB / pool.memoryMiB : 0,
    ask && pool.gpuCount > 0 ? ask.count / pool.gpuCount : 0,
  );
}

/** Builds the option for a compatible (group, pool) pair. */
export function makeOption(group: Group, pool: PoolState, poolIndex: number): Option {
  const ask = group.gpu.length > 0 ? gpuAskFor(group, pool) : undefined;
  const gpuCount = ask?.count ?? 0;
  const perNode = tasksThatFit(emptyNode(pool), group.cpuMilli, group.memoryMiB, gpuCount);
  const s = share(group, pool, ask);
  const hours = group.durationSeconds / 3600;
  const taskHourPrice = s * pool.price;
  const pInterrupt = pool.capacityType === 'spot' ? 1 - Math.exp(-pool.interruptionRate * hours) : 0;
  const risk = pInterrupt * (hours / 2) * taskHourPrice;
  const rank =
    group.policy && group.gpu.length > 0 && group.policy.fallbacks.length > 0
      ? fallbackRank(group.policy, pool)
      : 0;
  const base = taskHourPrice * hours;
  let preference = rank * FALLBACK_STEP_PENALTY * base;
  if (group.spot === 'preferred' && pool.capacityType !== 'spot') preference += SPOT_PREFERRED_PENALTY * base;
  const launchHours = pool.launchDelaySeconds / 3600;
  const gpuMilli = Math.round(gpuCount * 1000);
  return {
    group: group.index,
    pool: poolIndex,
    gpuMilli,
    lpGpuMilli: gpuMilli > 0 && gpuMilli < 1000 ? 1000 / Math.floor(1000 / gpuMilli) : gpuMilli,
    perNode,
    share: s,
    risk,
    preference,
    costPerTask: taskHourPrice * (hours + launchHours) + risk,
    rank,
  };
}

/** Existing nodes of one pool with identical free capacity. */
export interface NodeClass {
  pool: number;
  nodes: NodeState[];
  free: { cpuMilli: number; memoryMiB: number; gpuMilli: number[] };
  /** Longest planned duration these nodes may take (nodes being added are bought for a bucket). */
  maxDuration: number;
}

/**
 * Groups a pool's running nodes by identical free capacity, dropping full ones.
 *
 * @param durationOf for nodes bought for a duration bucket, that bucket (default: no limit).
 */
export function nodeClasses(
  pool: PoolState,
  poolIndex: number,
  durationOf?: (node: NodeState) => number,
): NodeClass[] {
  const classes = new Map<string, NodeClass>();
  for (const node of pool.nodes) {
    const gpuMilli = [...node.freeGpuMilli].sort((a, b) => b - a);
    if (node.freeCpuMilli <= 0 || node.freeMemoryMiB <= 0) continue;
    const maxDuration = durationOf?.(node) ?? Infinity;
    const key = `${node.freeCpuMilli}/${node.freeMemoryMiB}/${gpuMilli.join(',')}/${maxDuration}`;
    let c = classes.get(key);
    if (!c) {
      c = {
        pool: poolIndex,
        nodes: [],
        free: { cpuMilli: node.freeCpuMilli, memoryMiB: node.freeMemoryMiB, gpuMilli },
        maxDuration,
      };
      classes.set(key, c);
    }
    c.nodes.push(node);
  }
  return [...classes.values()];
}
