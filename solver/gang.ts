/**
 * Gangs: a task that needs `size` nodes at once (distributed training) is one unit with a multiplicity.
 * All its members go to distinct nodes of one pool — running nodes with room first, new nodes for the
 * rest — in the same plan, or none of them does: a gang that does not fit whole is left unplaced with
 * the reason, never placed in part.
 *
 * Gangs are planned before the rest of the batch, highest priority first, each on the pool where it costs
 * least; what they take comes off the snapshot the rest is planned on.
 */
import type { Policy } from '../policies/index.ts';
import { groupRequests, incompatibility, makeOption, tasksThatFit, type Group } from './groups.ts';
import { Ledger } from './ledger.ts';
import type {
  NewNodes,
  NodeState,
  Placement,
  PoolState,
  Snapshot,
  TaskRequest,
  TeamUsage,
  Unplaced,
} from './types.ts';

/** One gang of a batch: its members, in rank order. */
export interface GangRequest {
  id: string;
  members: TaskRequest[];
}

/** Where a gang went, or why it did not go anywhere. */
export interface GangExplanation {
  gang: string;
  team: string;
  size: number;
  /** The pool all members went to, with how many on running nodes and how many on new ones. */
  chosen?: { poolId: string; existing: number; added: number; costPerMember: number };
  /** Why the gang is unplaced, or why it could not go to a cheaper pool. */
  detail: string;
}

/** The gangs' part of a plan, and the snapshot left for the rest of the batch. */
export interface GangPlan {
  placements: Placement[];
  newNodes: NewNodes[];
  unplaced: Unplaced[];
  explanations: GangExplanation[];
  /** $/hour of the nodes the gangs add, and their expected dollars. */
  perHour: number;
  expected: number;
  /** The snapshot minus what the gangs took (node room, pool room, team usage). */
  residual: Snapshot;
}

interface Candidate {
  pool: number;
  existing: NodeState[];
  added: number;
  cost: number;
  objective: number;
  perMemberPrice: number;
}

/**
 * Places each gang whole on one pool, or leaves it unplaced.
 *
 * @example
 * const g = planGangs({ pools }, [{ id: 'train', members }], policies);
 * g.placements.length; // members.length, or 0 with g.unplaced naming why
 */
export function planGangs(
  snapshot: Snapshot,
  gangs: readonly GangRequest[],
  policies: readonly Policy[],
): GangPlan {
  const byTeam = new Map<string, Policy>();
  for (const p of policies) for (const t of p.teams) if (!byTeam.has(t)) byTeam.set(t, p);
  const pools: PoolState[] = snapshot.pools.map((p) => ({ ...p, nodes: [...p.nodes] }));
  const usage: Record<string, TeamUsage> = {};
  for (const [t, u] of Object.entries(snapshot.usage ?? {}))
    usage[t] = { ...u, gpusByModel: { ...u.gpusByModel } };
  const out: GangPlan = {
    placements: [],
    newNodes: [],
    unplaced: [],
    explanations: [],
    perHour: 0,
    expected: 0,
    residual: { pools, usage },
  };
  const ordered = [...gangs].sort((a, b) => (b.members[0]?.priority ?? 0) - (a.members[0]?.priority ?? 0));
  for (const gang of ordered) {
    const size = gang.members.length;
    const group = groupRequests([gang.members[0]!], (t) => byTeam.get(t))[0]!;
    const ledger = new Ledger([group], pools, usage);
    const reasons = new Map<string, Unplaced['reason']['kind']>();
    let best: Candidate | undefined;
    pools.forEach((pool, pi) => {
      const why = incompatibility(group, pool);
      if (why) return void reasons.set(why, 'policy');
      const option = makeOption(group, pool, pi);
      if (option.perNode === 0)
        return void reasons.set(`a member does not fit on one ${pool.instanceType} node`, 'policy');
      const allowance = ledger.allowance(group, option, size);
      if (allowance.n < size) {
        const r = allowance.refusal!;
        return void reasons.set(`${r.detail} (the gang needs ${size} members at once)`, r.kind);
      }
      const gpuCount = option.gpuMilli / 1000;
      const existing = pool.nodes
        .filter(
          (n) =>
            tasksThatFit(
              { cpuMilli: n.freeCpuMilli, memoryMiB: n.freeMemoryMiB, gpuMilli: n.freeGpuMilli },
              group.cpuMilli,
              group.memoryMiB,
              gpuCount,
            ) >= 1,
        )
        .slice(0, size);
      const added = size - existing.length;
      if (added > pool.maxNewNodes) {
        return void reasons.set(
          `pool ${pool.id} has room for ${existing.length + pool.maxNewNodes} of the gang's ${size} nodes`,
          'capacity',
        );
      }
      const hours = group.durationSeconds / 3600;
      const launchHours = pool.launchDelaySeconds / 3600;
      // A running node is paid for already: a member there costs its share; a new node costs whole.
      const cost =
        existing.length * option.share * pool.price * hours +
        added * pool.price * (hours + launchHours) +
        size * option.risk;
      const objective = cost + size * option.preference;
      if (!best || objective < best.objective - 1e-9)
        best = { pool: pi, existing, added, cost, objective, perMemberPrice: option.share * pool.price };
    });
    if (!best) {
      const kind = pickKind(reasons);
      const detail =
        [...reasons.keys()]
          .filter((r) => reasons.get(r) === kind)
          .slice(0, 3)
          .join('; ') || 'no pool';
      for (const m of gang.members)
        out.unplaced.push({ taskId: m.id, reason: { kind, detail: `gang of ${size}: ${detail}` } });
      out.explanations.push({ gang: gang.id, team: group.team, size, detail: `unplaced: ${detail}` });
      continue;
    }
    take(out, gang, group, best, pools, usage, ledger);
  }
  return out;
}

/** Capacity and quota are waits; policy only when nothing else stood in the way. */
function pickKind(reasons: Map<string, Unplaced['reason']['kind']>): Unplaced['reason']['kind'] {
  const kinds = new Set(reasons.values());
  for (const k of ['capacity', 'quota', 'budget'] as const) if (kinds.has(k)) return k;
  return 'policy';
}

function take(
  out: GangPlan,
  gang: GangRequest,
  group: Group,
  c: Candidate,
  pools: PoolState[],
  usage: Record<string, TeamUsage>,
  ledger: Ledger,
): void {
  const pool = pools[c.pool]!;
  const option = makeOption(group, pool, c.pool);
  ledger.take(group, option, gang.members.length);
  const ids = Array.from({ length: c.added }, (_, k) => `new:${pool.id}#gang-${gang.id}-${k}`);
  const nodes = [
    ...c.existing.map((n) => ({ name: n.name, newNode: false })),
    ...ids.map((name) => ({ name, newNode: true })),
  ];
  gang.members.forEach((m, rank) => {
    const n = nodes[rank]!;
    out.placements.push({
      taskId: m.id,
      cluster: pool.cluster,
      pool: pool.name,
      poolId: pool.id,
      node: n.name,
      newNode: n.newNode,
      pricePerHour: c.perMemberPrice,
    });
  });
  if (c.added > 0) {
    out.newNodes.push({
      cluster: pool.cluster,
      pool: pool.name,
      poolId: pool.id,
      instanceType: pool.instanceType,
      capacityType: pool.capacityType,
      count: c.added,
      pricePerHour: pool.price,
      ids,
    });
    out.perHour += c.added * pool.price;
  }
  out.expected += c.cost;
  // What the members take comes off the nodes (running ones) and the pool's room (new ones).
  const gpuPerMember = option.gpuMilli;
  const used = new Set(c.existing.map((n) => n.name));
  const nodesLeft = pool.nodes.map((n) => {
    if (!used.has(n.name)) return n;
    const free = [...n.freeGpuMilli].sort((a, b) => b - a);
    let need = gpuPerMember;
    for (let i = 0; i < free.length && need > 0; i++) {
      const t = Math.min(free[i]!, need >= 1000 ? 1000 : need);
      free[i] = free[i]! - t;
      need -= t;
    }
    return {
      ...n,
      freeCpuMilli: n.freeCpuMilli - group.cpuMilli,
      freeMemoryMiB: n.freeMemoryMiB - group.memoryMiB,
      freeGpuMilli: free,
    };
  });
  pools[c.pool] = { ...pool, nodes: nodesLeft, maxNewNodes: pool.maxNewNodes - c.added };
  const size = gang.members.length;
  const u = (usage[group.team] ??= { cpuMilli: 0, memoryMiB: 0, gpus: 0, gpusByModel: {}, spendPerHour: 0 });
  u.cpuMilli += group.cpuMilli * size;
  u.memoryMiB += group.memoryMiB * size;
  u.gpus += (gpuPerMember / 1000) * size;
  if (pool.gpuModel && gpuPerMember > 0)
    u.gpusByModel[pool.gpuModel] = (u.gpusByModel[pool.gpuModel] ?? 0) + (gpuPerMember / 1000) * size;
  u.spendPerHour += c.perMemberPrice * size;
  out.explanations.push({
    gang: gang.id,
    team: group.team,
    size,
    chosen: { poolId: pool.id, existing: c.existing.length, added: c.added, costPerMember: c.cost / size },
    detail: `${size} members on ${pool.id}: ${c.existing.length} on running nodes, ${c.added} new at $${pool.price}/h per node`,
  });
}
