/**
 * An independent check that a plan is feasible node by node, written apart from the solver's own bins:
 * every task exactly once (placed or unplaced), on a pool offering one of its GPU alternatives, no node past
 * its free cpu, memory or GPUs (whole-device asks need whole free devices), no pool past its maximum.
 */
import { expect } from 'vitest';
import type { Plan, PoolState, TaskRequest } from '../solver/index.ts';

interface Load {
  cpu: number;
  mem: number;
  wholeDevices: number;
  sharedMilli: number;
  pool: PoolState;
  existing: boolean;
}

/** Fails the test with the task, node or pool that breaks feasibility. */
export function assertFeasible(p: Plan, pools: readonly PoolState[], tasks: readonly TaskRequest[]): void {
  const byId = new Map(tasks.map((t) => [t.id, t]));
  const poolById = new Map(pools.map((q) => [q.id, q]));
  const seen = new Set<string>();
  const load = new Map<string, Load>();
  for (const x of p.placements) {
    expect(seen.has(x.taskId), `${x.taskId} placed twice`).toBe(false);
    seen.add(x.taskId);
    const t = byId.get(x.taskId);
    expect(t, `${x.taskId} is not a task of the batch`).toBeDefined();
    const pool = poolById.get(x.poolId)!;
    expect(pool, `${x.taskId} on unknown pool ${x.poolId}`).toBeDefined();
    const key = `${x.poolId}|${x.node}`;
    const l = load.get(key) ?? {
      cpu: 0,
      mem: 0,
      wholeDevices: 0,
      sharedMilli: 0,
      pool,
      existing: !x.newNode,
    };
    const ask = t!.gpu?.find(
      (g) => (g.model === '*' || g.model === pool.gpuModel) && g.count <= pool.gpuCount,
    );
    if (t!.gpu?.length) expect(ask, `${x.taskId} on a pool without its GPU`).toBeDefined();
    l.cpu += t!.cpuMilli;
    l.mem += t!.memoryMiB;
    if (ask && ask.count >= 1) l.wholeDevices += ask.count;
    else if (ask) l.sharedMilli += Math.round(ask.count * 1000);
    load.set(key, l);
  }
  for (const u of p.unplaced) {
    expect(seen.has(u.taskId), `${u.taskId} both placed and unplaced`).toBe(false);
    seen.add(u.taskId);
  }
  for (const t of tasks) expect(seen.has(t.id), `${t.id} neither placed nor unplaced`).toBe(true);
  for (const [key, l] of load) {
    const node = l.existing ? l.pool.nodes.find((n) => `${l.pool.id}|${n.name}` === key) : undefined;
    if (l.existing) expect(node, `${key} is not a running node`).toBeDefined();
    const devices = node ? node.freeGpuMilli : Array<number>(l.pool.gpuCount).fill(1000);
    const cpu = node ? node.freeCpuMilli : l.pool.cpuMilli;
    const mem = node ? node.freeMemoryMiB : l.pool.memoryMiB;
    expect(l.cpu, `${key} cpu`).toBeLessThanOrEqual(cpu + 1e-6);
    expect(l.mem, `${key} memory`).toBeLessThanOrEqual(mem + 1e-6);
    const whole = devices.filter((f) => f >= 1000).length;
    expect(l.wholeDevices, `${key} whole GPUs`).toBeLessThanOrEqual(whole);
    // Shared asks go on what the whole-device tasks leave, least free first.
    const rest = [...devices].sort((a, b) => b - a).slice(l.wholeDevices);
    const total = rest.reduce((a, b) => a + b, 0);
    expect(l.sharedMilli, `${key} shared GPU thousandths`).toBeLessThanOrEqual(total + 1e-6);
  }
  for (const n of p.newNodes) {
    const pool = poolById.get(n.poolId)!;
    expect(n.count, `${n.poolId} past its maximum`).toBeLessThanOrEqual(pool.maxNewNodes);
  }
}
