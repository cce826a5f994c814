/**
 * Explanations: for each group, where its tasks went and at what cost per task, the cheapest pool it did
 * not use and why, and which constraint kept it from doing better. Unplaced tasks get a reason that names
 * the policy, quota, budget or pool.
 */
import type { Group, Option } from './groups.ts';
import type { LpSolution } from './lp/index.ts';
import type { LimitRow, PlacementModel } from './model.ts';
import type { Packing } from './pack.ts';
import type { GroupExplanation, PoolState, Reason } from './types.ts';
import { formatCpu, formatMemory } from '../policies/index.ts';

export interface ExplainInput {
  groups: readonly Group[];
  pools: readonly PoolState[];
  options: readonly Option[];
  optionsByGroup: readonly number[][];
  packing: Packing;
  model: PlacementModel;
  solution: LpSolution | undefined;
  excluded: readonly Map<string, number>[];
}

/** Human description of a group's shape: `8 cpu, 64Gi, H100:1|A100:1, 1h`. */
export function describeShape(g: Group): string {
  const gpu = g.gpu.length
    ? `, ${g.gpu.map((a) => `${a.model === '*' ? 'any' : a.model}:${a.count}`).join('|')}`
    : '';
  return `${formatCpu(g.cpuMilli)} cpu, ${formatMemory(g.memoryMiB)}${gpu}, ${formatHours(g.durationSeconds)}`;
}

function formatHours(seconds: number): string {
  return seconds < 3600 ? `${Math.round(seconds / 60)}m` : `${Number((seconds / 3600).toFixed(1))}h`;
}

/** Rows of the model that sit at their limit in the LP answer. */
function bindingLimits(model: PlacementModel, solution: LpSolution | undefined): LimitRow[] {
  if (!solution || solution.status !== 'optimal') return [];
  return model.limits.filter((l) => {
    const row = model.lp.constraints[l.row]!;
    const upper = row.upper ?? Infinity;
    const activity = row.terms.reduce((s, [v, c]) => s + c * (solution.values[v] ?? 0), 0);
    return upper - activity <= 1e-6 * Math.max(1, Math.abs(upper));
  });
}

/** Explains every group of the plan. */
export function explainGroups(input: ExplainInput): GroupExplanation[] {
  const { groups, pools, options, packing } = input;
  const binding = bindingLimits(input.model, input.solution);
  type Entry = GroupExplanation['chosen'][number] & { option: Option; shared: boolean };
  const placed = new Map<number, Map<string, Entry>>();
  // Nodes the plan adds that hold more than one group: a group on one of them may only be using its room.
  const groupsOn = new Map<object, Set<number>>();
  for (const a of packing.assignments) {
    if (a.bin.existing) continue;
    const set = groupsOn.get(a.bin) ?? new Set<number>();
    set.add(options[a.option]!.group);
    groupsOn.set(a.bin, set);
  }
  for (const a of packing.assignments) {
    const o = options[a.option]!;
    const key = `${o.pool}|${a.bin.existing}`;
    const byPool = placed.get(o.group) ?? new Map();
    placed.set(o.group, byPool);
    const entry: Entry = byPool.get(key) ?? {
      poolId: pools[o.pool]!.id,
      onRunningNodes: a.bin.existing,
      tasks: 0,
      costPerTask: a.bin.existing ? o.risk : o.costPerTask,
      why: { kind: 'cost', detail: '' },
      option: o,
      shared: false,
    };
    if (!a.bin.existing && (groupsOn.get(a.bin)?.size ?? 0) > 1) entry.shared = true;
    entry.tasks += a.count;
    byPool.set(key, entry);
  }
  return groups.map((g) => {
    const entries = [...(placed.get(g.index)?.values() ?? [])].sort((a, b) => b.tasks - a.tasks);
    const unplaced = packing.unplaced.find((u) => u.group === g.index);
    const base = {
      group: (g.taskIds[0] ?? g.key).replace(/-\d+$/, ''),
      team: g.team,
      tasks: g.taskIds.length,
      shape: describeShape(g),
      unplaced: unplaced?.count ?? 0,
    };
    const opts = input.optionsByGroup[g.index]!.map((oi) => options[oi]!);
    if (opts.length === 0) return { ...base, chosen: [], why: noPool(input.excluded[g.index]!) };
    // Why an option did not take more of the group: the pool's size, a quota or budget that counts this
    // group on this pool, or other work in the batch. Limits that do not count the option are not blamed.
    const limitOf = (o: Option): Reason => {
      const full = binding.find((l) => l.kind === 'max-nodes' && l.pool === o.pool);
      if (full) return { kind: 'capacity', detail: full.label };
      const policyLimit = binding.find(
        (l) => (l.kind === 'quota' || l.kind === 'budget') && l.options?.has(optionIndex(input, o)),
      );
      if (policyLimit)
        return { kind: policyLimit.kind === 'quota' ? 'quota' : 'budget', detail: policyLimit.label };
      return { kind: 'capacity', detail: 'its room went to other work in this batch' };
    };
    const total = (o: Option) => o.costPerTask + o.preference;
    const byTotal = [...opts].sort((a, b) => total(a) - total(b));
    const best = byTotal[0]!;
    const usedPools = new Set(entries.map((c) => c.option.pool));
    const onBest = entries.filter((c) => c.option.pool === best.pool).reduce((n, c) => n + c.tasks, 0);
    const chosen = entries.map(({ option: o, shared, ...c }) => {
      let why: Reason;
      if (c.onRunningNodes) why = { kind: 'cost', detail: 'room on nodes already running' };
      else if (shared && total(o) > total(best) + 1e-9)
        why = { kind: 'cost', detail: 'spare room on nodes the plan adds for other work' };
      else if (total(o) <= total(best) + 1e-9)
        why =
          o.rank > 0 || o.preference > 0 || byCost(opts)[0]!.costPerTask < o.costPerTask - 1e-9
            ? { kind: 'preference', detail: preferenceDetail(g, o, pools) }
            : { kind: 'cost', detail: 'cheapest compatible pool' };
      else {
        const limit = limitOf(best);
        why = {
          kind: limit.kind,
          detail: `${pools[best.pool]!.id} ($${best.costPerTask.toFixed(4)}/task) took only ${onBest}: ${limit.detail}`,
        };
      }
      return { ...c, why };
    });
    // What the group's dearest placement costs it at the margin: room on running nodes, or on nodes added
    // for other work, costs it only its risk.
    const marginal = (c: Entry) => (c.onRunningNodes || c.shared ? c.option.risk : c.option.costPerTask);
    const worstCost = entries.length ? Math.max(...entries.map(marginal)) : -Infinity;
    const worst = entries.length
      ? Math.max(...entries.map((c) => marginal(c) + c.option.preference))
      : -Infinity;
    const next = byTotal.find((o) => !usedPools.has(o.pool));
    let nextBest: GroupExplanation['nextBest'];
    if (next) {
      // Dearer in dollars; as cheap but ranked later by the policy; no cheaper; or left out by a limit.
      const whyNot: Reason =
        next.costPerTask > worstCost + 1e-9
          ? { kind: 'cost', detail: 'costs more per task' }
          : total(next) > worst + 1e-9
            ? {
                kind: 'preference',
                detail: `costs no more per task, but ${preferenceDetail(g, next, pools)}`,
              }
            : total(next) >= worst - 1e-9
              ? { kind: 'cost', detail: 'costs the same per task as where the group went' }
              : limitOf(next);
      nextBest = { poolId: pools[next.pool]!.id, costPerTask: next.costPerTask, whyNot };
    }
    let why: Reason = chosen.length
      ? { kind: 'cost', detail: `cheapest compatible capacity for ${g.taskIds.length} task(s)` }
      : { kind: 'capacity', detail: 'nothing placed' };
    const dearer = chosen.find((c) => c.why.kind !== 'cost' && c.why.kind !== 'preference');
    if (dearer) why = dearer.why;
    else if (chosen.some((c) => c.why.kind === 'preference'))
      why = {
        kind: 'preference',
        detail: "cheapest by cost and the policy's preferences (spot preference, fallback order)",
      };
    if (unplaced)
      why = unplaced.refusal ?? {
        kind: 'capacity',
        detail: `${unplaced.count} task(s) found no room in any compatible pool`,
      };
    return { ...base, chosen, ...(nextBest ? { nextBest } : {}), why };
  });
}

function byCost(opts: readonly Option[]): Option[] {
  return [...opts].sort((a, b) => a.costPerTask - b.costPerTask);
}

function optionIndex(input: ExplainInput, o: Option): number {
  return input.optionsByGroup[o.group]!.find((oi) => input.options[oi] === o) ?? -1;
}

/** Why a pool is ranked where it is by the policy's preferences. */
function preferenceDetail(g: Group, o: Option, pools: readonly PoolState[]): string {
  const pool = pools[o.pool]!;
  if (g.spot === 'preferred' && pool.capacityType !== 'spot' && o.rank === 0)
    return `the policy prefers spot and ${pool.id} is ${pool.capacityType}`;
  if (o.rank > 0) return `${pool.id} is fallback ${o.rank + 1} of policy ${g.policy?.name ?? ''}`.trim();
  return `first in policy ${g.policy?.name ?? ''}'s fallback order`;
}

/** The reason given for each unplaced task of a group. */
export function unplacedReason(
  hasOptions: boolean,
  u: Packing['unplaced'][number],
  excluded: Map<string, number>,
): Reason {
  if (!hasOptions) return noPool(excluded);
  if (u.refusal) return u.refusal;
  return { kind: 'capacity', detail: 'every compatible pool is full or at its maximum number of nodes' };
}

function noPool(excluded: Map<string, number>): Reason {
  if (excluded.size === 0) return { kind: 'policy', detail: 'no pool exists' };
  const top = [...excluded.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 3)
    .map(([why]) => why);
  return { kind: 'policy', detail: `no compatible pool (${top.join('; ')})` };
}
