/**
 * Turning packings into a plan: costs, comparison, placements and the nodes to add; and reading LP answers
 * back as integer intents and bounds.
 */
import type { Group, Option } from './groups.ts';
import type { PlacementModel } from './model.ts';
import type { Intent, Packer, Packing } from './pack.ts';
import type { NodeState, Placement, Plan, PlanCost, PoolState, Snapshot, TaskRequest } from './types.ts';

/** The pools as packing has left them: nodes with free room (running and being added), room to grow. */
export function residualPools(
  packer: Packer,
  pools: readonly PoolState[],
): { pools: PoolState[]; duration: Map<string, number> } {
  const duration = new Map<string, number>();
  const out = pools.map((p, i) => {
    const nodes: NodeState[] = [];
    for (const b of packer.binsByPool[i]!) {
      if (b.cpuMilli <= 0 || b.memoryMiB <= 0) continue;
      nodes.push({
        name: b.id,
        freeCpuMilli: b.cpuMilli,
        freeMemoryMiB: b.memoryMiB,
        freeGpuMilli: [...b.gpuMilli],
      });
      if (!b.existing) duration.set(`${i}|${b.id}`, b.bucket);
    }
    return { ...p, nodes, maxNewNodes: packer.roomToGrow(i) };
  });
  return { pools: out, duration };
}

/** Integer amounts per LP variable: each group's placed total rounded, split by largest remainder. */
export function roundIntents(
  model: PlacementModel,
  values: Float64Array,
  lpToAll: readonly number[],
  groups: readonly Group[],
): Intent[] {
  const perGroup = groups.map(() => [] as { intent: Intent; value: number }[]);
  model.vars.forEach((meta, v) => {
    if (meta.kind !== 'xe' && meta.kind !== 'xn') return;
    const value = values[v] ?? 0;
    if (value <= 1e-9) return;
    const option = lpToAll[meta.option]!;
    perGroup[model.optionGroup[meta.option]!]!.push({
      intent: meta.kind === 'xe' ? { option, count: 0, cls: meta.cls } : { option, count: 0 },
      value,
    });
  });
  const intents: Intent[] = [];
  perGroup.forEach((list) => {
    const total = Math.round(list.reduce((s, x) => s + x.value, 0) + 1e-7);
    for (const x of list) x.intent.count = Math.floor(x.value + 1e-7);
    let left = total - list.reduce((s, x) => s + x.intent.count, 0);
    const byRemainder = [...list].sort(
      (a, b) => b.value - Math.floor(b.value + 1e-7) - (a.value - Math.floor(a.value + 1e-7)),
    );
    for (const x of byRemainder) {
      if (left <= 0) break;
      x.intent.count++;
      left--;
    }
    for (const x of list) if (x.intent.count > 0) intents.push(x.intent);
  });
  return intents;
}

export function unplacedIn(model: PlacementModel, values: Float64Array, group: number): number {
  const v = model.vars.findIndex((m) => m.kind === 'u' && m.group === group);
  return v < 0 ? 0 : (values[v] ?? 0);
}

/** The LP's objective without unplaced penalties, borrowing and tie-breakers: a lower bound in dollars+preferences. */
export function boundOf(model: PlacementModel, values: Float64Array): number {
  let sum = 0;
  model.vars.forEach((meta, v) => {
    if (meta.kind === 'u' || meta.kind === 'b') return;
    sum += model.dollarCost[v]! * (values[v] ?? 0);
  });
  return sum;
}

export function costOf(p: Packing, options: readonly Option[], pools: Snapshot['pools']): PlanCost {
  let perHour = 0;
  let expected = 0;
  let preference = 0;
  for (const b of p.bins) {
    if (b.existing) continue;
    const pool = pools[b.pool]!;
    perHour += pool.price;
    expected += (pool.price * (b.bucket + pool.launchDelaySeconds)) / 3600;
  }
  for (const a of p.assignments) {
    const o = options[a.option]!;
    expected += o.risk * a.count;
    preference += o.preference * a.count;
  }
  return { perHour, expected, objective: expected + preference };
}

/** Whether packing `a` beats `b`: fewer unplaced (weighted by the LP's penalties), then lower objective. */
export function better(
  a: { packing: Packing; cost: PlanCost },
  b: { packing: Packing; cost: PlanCost },
  model: PlacementModel,
): boolean {
  const weight = (p: Packing) =>
    p.unplaced.reduce((s, u) => s + u.count * model.unplacedPenalty[u.group]!, 0);
  const wa = weight(a.packing);
  const wb = weight(b.packing);
  if (Math.abs(wa - wb) > 1e-6) return wa < wb;
  return a.cost.objective < b.cost.objective - 1e-9;
}

export function taskOrder(requests: readonly TaskRequest[], groups: readonly Group[]): number[] {
  const groupOf = new Map<string, number>();
  for (const g of groups) for (const id of g.taskIds) groupOf.set(id, g.index);
  return requests.map((r) => groupOf.get(r.id)!);
}

export function toPlacements(
  p: Packing,
  groups: readonly Group[],
  options: readonly Option[],
  pools: Snapshot['pools'],
): Placement[] {
  const next = groups.map(() => 0);
  const out: Placement[] = [];
  for (const a of p.assignments) {
    const o = options[a.option]!;
    const g = groups[o.group]!;
    const pool = pools[o.pool]!;
    for (let i = 0; i < a.count; i++) {
      out.push({
        taskId: g.taskIds[next[g.index]!++]!,
        cluster: pool.cluster,
        pool: pool.name,
        poolId: pool.id,
        node: a.bin.id,
        newNode: !a.bin.existing,
        pricePerHour: o.share * pool.price,
        group: g.index,
      });
    }
  }
  return out;
}

export function newNodesOf(p: Packing, pools: Snapshot['pools']): Plan['newNodes'] {
  const byPool = new Map<number, Plan['newNodes'][number]>();
  for (const b of p.bins) {
    if (b.existing) continue;
    const pool = pools[b.pool]!;
    let entry = byPool.get(b.pool);
    if (!entry) {
      entry = {
        cluster: pool.cluster,
        pool: pool.name,
        poolId: pool.id,
        instanceType: pool.instanceType,
        capacityType: pool.capacityType,
        count: 0,
        pricePerHour: pool.price,
        ids: [],
      };
      byPool.set(b.pool, entry);
    }
    entry.count++;
    entry.ids.push(b.id);
  }
  return [...byPool.values()];
}
