/**
 * The cost ledger: what ran where, and for how long, written durably to the broker's log with the
 * lifecycle events (a JetStream stream over NATS, the state directory embedded). Two kinds of entry:
 * a task's use of a node (one per lease that ran, written when it ends) and a node's lifetime (a start
 * when the broker first sees it ready, an end when it goes). Reports (`gantry report cost`) are computed
 * from these entries alone, so they reconcile with the ledger to the cent, before and after restarts.
 */
import type { Pool } from '../policies/index.ts';
import type { NodeMsg } from '../protocol/index.ts';
import type { LeaseRecord, RequestRecord } from './records.ts';

/** Which node an entry is about, and what kind of node it is. */
export interface NodeRef {
  at: number;
  cluster: string;
  pool: string;
  node: string;
  instanceType: string;
  capacityType: string;
  gpuModel: string | null;
}

/** A task's use of a node, from when it started running to when it ended. */
export interface TaskUsage extends NodeRef {
  kind: 'usage';
  lease: string;
  request: string;
  /** GPUs the task held (fractions for shared devices). */
  gpus: number;
  cpuMilli: number;
  memoryMiB: number;
  /** Its dominant share of the node: the largest of its cpu, memory and GPU fractions. */
  share: number;
  /** The node's price. */
  nodePricePerHour: number;
  team: string;
  workflow?: string | undefined;
  run?: string | undefined;
  task?: string | undefined;
  attempt: number;
  start: number;
  end: number;
  ended: string;
  /**
   * Simulated seconds per second of the broker that wrote it (embedded mode on simulated clouds): its
   * times are simulated time, running this much faster than the clock. Absent for real time.
   */
  timeScale?: number;
}

/** A node's lifetime starts (first seen ready) or ends (gone, reclaimed). */
export interface NodeLife extends NodeRef {
  kind: 'node-start' | 'node-end';
  gpuCount: number;
  pricePerHour: number;
  /** For ends: `gone` or `preempted`. */
  ended?: string;
}

export type LedgerEntry = TaskUsage | NodeLife;

/**
 * What a task's use of its node costs between `from` and `to` (default: all of it): the node's price
 * times the task's dominant share, for that long.
 */
export function usageCost(u: TaskUsage, from = u.start, to = u.end): number {
  return (u.nodePricePerHour * u.share * Math.max(0, to - from)) / 3_600_000;
}

/** The usage entry of a lease that ran; undefined for one that never started. */
export function usageOf(
  lease: LeaseRecord,
  request: RequestRecord | undefined,
  pool: Pool | undefined,
): TaskUsage | undefined {
  if (lease.startedAt === undefined || lease.endedAt === undefined || !pool) return undefined;
  const gpus = lease.gpuMilli / 1000;
  const share = Math.min(
    1,
    Math.max(
      pool.cpuMilli > 0 ? lease.cpuMilli / pool.cpuMilli : 0,
      pool.memoryMiB > 0 ? lease.memoryMiB / pool.memoryMiB : 0,
      pool.gpuCount > 0 ? gpus / pool.gpuCount : 0,
    ),
  );
  return {
    kind: 'usage',
    at: lease.endedAt,
    lease: lease.leaseId,
    request: lease.requestId,
    cluster: lease.cluster,
    pool: lease.pool,
    node: lease.actualNode ?? lease.node,
    instanceType: pool.instanceType,
    capacityType: pool.capacityType,
    gpuModel: lease.gpuModel,
    gpus,
    cpuMilli: lease.cpuMilli,
    memoryMiB: lease.memoryMiB,
    share,
    nodePricePerHour: pool.price,
    team: request?.team ?? 'unknown',
    workflow: request?.workflow,
    run: request?.runId,
    task: request?.taskId,
    attempt: lease.attempt,
    start: lease.startedAt,
    end: lease.endedAt,
    ended: lease.state,
  };
}

/**
 * Follows node lifetimes from heartbeats and node events, and says which entries to write: a start the
 * first time a node is seen ready, an end when it is gone or reclaimed. A restarted broker writes a
 * start again for nodes it sees; reports ignore a start while the node is already open.
 */
export class NodeLedger {
  /** Open lifetimes per cluster, by node name: a heartbeat looks at its own cluster's only. */
  readonly #open = new Map<string, Map<string, NodeLife>>();
  /** When each node's last lifetime ended (per `cluster|node`): a new one never starts before it. */
  readonly #lastEnd = new Map<string, number>();

  /**
   * @param pools the declared pool of a node.
   * @param time maps an agent's timestamp to ledger time (scaled in embedded mode).
   */
  constructor(
    private readonly pools: (cluster: string, pool: string) => Pool | undefined,
    private readonly time: (t: number) => number = (t) => t,
  ) {}

  #opened(cluster: string): Map<string, NodeLife> {
    let open = this.#open.get(cluster);
    if (!open) this.#open.set(cluster, (open = new Map()));
    return open;
  }

  /** Entries for a heartbeat's nodes: starts for new ready nodes, ends for nodes no longer listed. */
  heartbeat(name: string, nodes: readonly NodeMsg[], now: number): NodeLife[] {
    const out: NodeLife[] = [];
    const open = this.#opened(name);
    const seen = new Set<string>();
    for (const n of nodes) {
      if (!n.ready) continue;
      seen.add(n.name);
      if (open.has(n.name)) continue;
      const pool = this.pools(name, n.pool);
      if (!pool) continue;
      const start: NodeLife = {
        kind: 'node-start',
        // When the agent saw it ready (its tasks start after that), else now; never before its last end.
        at: Math.max(
          n.readyAt !== undefined ? Math.min(now, this.time(n.readyAt)) : now,
          this.#lastEnd.get(`${name}|${n.name}`) ?? -Infinity,
        ),
        cluster: name,
        pool: n.pool,
        node: n.name,
        instanceType: pool.instanceType,
        capacityType: pool.capacityType,
        gpuModel: pool.gpuModel,
        gpuCount: pool.gpuCount,
        pricePerHour: pool.price,
      };
      open.set(n.name, start);
      out.push(start);
    }
    for (const node of [...open.keys()]) if (!seen.has(node)) out.push(...this.end(name, node, 'gone', now));
    return out;
  }

  /** The end entry of a node that went away, if it was open. */
  end(cluster: string, node: string, ended: string, now: number): NodeLife[] {
    const open = this.#opened(cluster);
    const life = open.get(node);
    if (!life) return [];
    open.delete(node);
    const at = Math.max(now, life.at);
    this.#lastEnd.set(`${cluster}|${node}`, at);
    return [{ ...life, kind: 'node-end', at, ended }];
  }

  /** Takes up the ledger as written before (a restarted or new leader): open nodes stay open. */
  replay(e: NodeLife): void {
    const open = this.#opened(e.cluster);
    if (e.kind === 'node-start') {
      if (!open.has(e.node)) open.set(e.node, e);
    } else if (open.delete(e.node)) this.#lastEnd.set(`${e.cluster}|${e.node}`, e.at);
  }

  /** Ends every open node of a cluster (its agent is gone, or the cluster was removed). */
  endCluster(cluster: string, ended: string, now: number): NodeLife[] {
    return [...this.#opened(cluster).keys()].flatMap((node) => this.end(cluster, node, ended, now));
  }
}
