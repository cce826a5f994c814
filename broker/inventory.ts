/**
 * The broker's view of capacity: every onboarded cluster, its agent's health, its nodes (reported by
 * heartbeats, plus nodes the broker has asked for and not yet seen) and what is free on each once the
 * broker's own active leases are taken off.
 */
import type { Cluster, Pool } from '../policies/index.ts';
import type { HeartbeatMsg, NodeMsg } from '../protocol/index.ts';
import type { PoolState } from '../solver/index.ts';

/** What the broker knows about one cluster. */
export interface ClusterState {
  name: string;
  declared: Cluster;
  agentId?: string | undefined;
  lastHeartbeat?: number | undefined;
  healthy: boolean;
  /** Stops new placements; running work finishes. */
  draining: boolean;
  /** When the agent was last seen healthy; used for the re-placement grace period. */
  unhealthySince?: number | undefined;
  nodes: Map<string, NodeMsg>;
  /** Nodes asked for and not yet reported, by planned id. */
  planned: Map<string, { pool: string; at: number }>;
  /** Pools the cloud cannot add nodes to now (no capacity, quota), until when and why. */
  exhausted: Map<string, { until: number; reason: string }>;
}

export class Inventory {
  readonly clusters = new Map<string, ClusterState>();

  constructor(clusters: readonly Cluster[]) {
    for (const c of clusters) this.add(c);
  }

  add(c: Cluster): void {
    const existing = this.clusters.get(c.name);
    this.clusters.set(c.name, {
      name: c.name,
      declared: c,
      healthy: existing?.healthy ?? false,
      draining: existing?.draining ?? false,
      lastHeartbeat: existing?.lastHeartbeat,
      agentId: existing?.agentId,
      nodes: existing?.nodes ?? new Map(),
      planned: existing?.planned ?? new Map(),
      exhausted: existing?.exhausted ?? new Map(),
    });
  }

  remove(name: string): boolean {
    return this.clusters.delete(name);
  }

  /** Records a heartbeat; the cluster is healthy from now on. Planned nodes that appeared are resolved. */
  heartbeat(hb: HeartbeatMsg, now: number): ClusterState | undefined {
    const c = this.clusters.get(hb.cluster);
    if (!c) return undefined;
    c.agentId = hb.agentId;
    c.lastHeartbeat = now;
    c.healthy = true;
    c.unhealthySince = undefined;
    c.nodes = new Map(hb.nodes.map((n) => [n.name, n]));
    for (const n of hb.nodes) if (n.plannedId) c.planned.delete(n.plannedId);
    return c;
  }

  /**
   * Marks clusters whose agent missed heartbeats as unhealthy. Returns the clusters that have been
   * unhealthy for longer than `graceMs`, whose work must be placed elsewhere.
   */
  checkHealth(now: number, unhealthyAfterMs: number, graceMs: number): ClusterState[] {
    const expired: ClusterState[] = [];
    for (const c of this.clusters.values()) {
      if (c.lastHeartbeat === undefined) continue;
      if (now - c.lastHeartbeat > unhealthyAfterMs) {
        c.healthy = false;
        c.unhealthySince ??= now;
        if (now - c.unhealthySince >= graceMs) expired.push(c);
      }
    }
    return expired;
  }

  /** Forgets nodes asked for long ago that never appeared (the request was lost, or the pool was full). */
  expirePlanned(now: number, maxAgeMs: number): void {
    for (const c of this.clusters.values())
      for (const [id, p] of c.planned) if (now - p.at > maxAgeMs) c.planned.delete(id);
  }

  /**
   * Records that the cloud cannot add nodes to a pool until `until`: its planned nodes are dropped and
   * plans add no nodes to it meanwhile (its running nodes still take work).
   */
  exhaust(cluster: string, pool: string, plannedIds: readonly string[], until: number, reason: string): void {
    const c = this.clusters.get(cluster);
    if (!c) return;
    c.exhausted.set(pool, { until, reason });
    for (const id of plannedIds) c.planned.delete(id);
  }

  /**
   * @param used what active leases use, per `cluster|node`.
   * @param now for pools that ran out of capacity: they add nodes again once their time is up.
   */
  snapshot(
    used: ReadonlyMap<string, { cpu: number; mem: number; gpu: number }>,
    now = Date.now(),
  ): PoolState[] {
    const pools: PoolState[] = [];
    for (const c of this.clusters.values()) {
      if (!c.healthy || c.draining) continue;
      for (const pool of c.declared.pools) {
        const mine = [...c.nodes.values()].filter((n) => n.pool === pool.name);
        const nodes = mine.filter((n) => n.ready);
        // Launching nodes the broker asked for are offered by their planned id (the agent starts work on
        // them once they are up): a task arriving meanwhile takes the room left on them, not a new node.
        const launching = mine.filter((n) => !n.ready && n.plannedId);
        const planned = [...c.planned].filter(([, p]) => p.pool === pool.name).map(([id]) => id);
        const notReady = mine.length - nodes.length;
        const zero = { cpu: 0, mem: 0, gpu: 0 };
        const use = (key: string) => used.get(`${c.name}|${key}`) ?? zero;
        // Work placed on a planned node is counted on its planned id until the agent names the node it runs on.
        const free = (n: { name: string; plannedId?: string | undefined }) => {
          const a = use(n.name);
          const b = n.plannedId && n.plannedId !== n.name ? use(n.plannedId) : zero;
          return { cpu: a.cpu + b.cpu, mem: a.mem + b.mem, gpu: a.gpu + b.gpu };
        };
        const states = [
          ...nodes.map((n) => nodeState(n.name, n, Math.min(n.gpuCount, pool.gpuCount), free(n))),
          ...launching.map((n) => nodeState(n.plannedId!, n, Math.min(n.gpuCount, pool.gpuCount), free(n))),
          ...planned.map((id) => nodeState(id, pool, pool.gpuCount, free({ name: id }))),
        ];
        const exhausted = c.exhausted.get(pool.name);
        if (exhausted && exhausted.until <= now) c.exhausted.delete(pool.name);
        const room =
          exhausted && exhausted.until > now ? 0 : pool.maxNodes - nodes.length - planned.length - notReady;
        pools.push(poolState(pool, states, Math.max(0, room)));
      }
    }
    return pools;
  }
}

/**
 * What is free on one node: its capacity (the pool's shape, or what the agent reported: Kubernetes
 * knows what other workloads take) minus what Gantry's active leases use.
 */
function nodeState(
  name: string,
  shape: { cpuMilli: number; memoryMiB: number },
  gpuCount: number,
  used: { cpu: number; mem: number; gpu: number },
) {
  // GPUs: whole devices first, then what a shared device has left.
  const devices = Array<number>(gpuCount).fill(1000);
  let gpu = used.gpu;
  for (let d = 0; d < devices.length && gpu > 0; d++) {
    const take = Math.min(1000, gpu);
    devices[d] = 1000 - take;
    gpu -= take;
  }
  return {
    name,
    freeCpuMilli: Math.max(0, shape.cpuMilli - used.cpu),
    freeMemoryMiB: Math.max(0, shape.memoryMiB - used.mem),
    freeGpuMilli: devices,
  };
}

function poolState(pool: Pool, nodes: PoolState['nodes'], maxNewNodes: number): PoolState {
  return {
    id: pool.id,
    cluster: pool.cluster,
    name: pool.name,
    region: pool.region,
    instanceType: pool.instanceType,
    capacityType: pool.capacityType,
    cpuMilli: pool.cpuMilli,
    memoryMiB: pool.memoryMiB,
    gpuModel: pool.gpuModel,
    gpuCount: pool.gpuCount,
    price: pool.price,
    interruptionRate: pool.interruptionRate,
    launchDelaySeconds: pool.launchDelaySeconds,
    taints: pool.taints,
    nodes,
    maxNewNodes,
  };
}
