/**
 * Explanations: for each group, where its tasks went and at what cost per task, the cheapest pool it did
 * not use and why, and which constraint kept it from doing better. Unplaced tasks get a reason that names
 * the policy, quota, budget or pool.
 */
import type { Group, Option } from './groups.ts';
import type { LpSolution } from './lp/index.ts';
import type { LimitRow, PlacementModel } from './model.ts';
import type { Packing } from './pack.ts';
import type { GroupExplanation, PoolState } from './types.ts';
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
  const placed = new Map<number, Map<string, GroupExplanation['chosen'][number]>>();
  for (const a of packing.assignments) {
    const o = options[a.option]!;
    const key = `${pools[o.pool]!.id}${a.bin.existing ? ' (running nodes)' : ''}`;
    const byPool = placed.get(o.group) ?? new Map();
    placed.set(o.group, byPool);
    const entry = byPool.get(key) ?? {
      poolId: key,
      tasks: 0,
      costPerTask: a.bin.existing ? o.risk : o.costPerTask,
    };
    entry.tasks += a.count;
    byPool.set(key, entry);
  }
  return groups.map((g) => {
    const chosen = [...(placed.get(g.index)?.values() ?? [])].sort((a, b) => b.tasks - a.tasks);
    const unplaced = packing.unplaced.find((u) => u.group === g.index);
    const base = {
      group: (g.taskIds[0] ?? g.key).replace(/-\d+$/, ''),
      team: g.team,
      tasks: g.taskIds.length,
      shape: describeShape(g),
      chosen,
      unplaced: unplaced?.count ?? 0,
    };
    const opts = input.optionsByGroup[g.index]!.map((oi) => options[oi]!);
    if (opts.length === 0) {
      return { ...base, binding: 'policy' as const, detail: topReasons(input.excluded[g.index]!) };
    }
    const usedPools = new Set(
      packing.assignments
        .filter((a) => options[a.option]!.group === g.index)
        .map((a) => options[a.option]!.pool),
    );
    const worstChosen = Math.max(...chosen.map((c) => c.costPerTask), 0);
    const byCost = [...opts].sort((a, b) => a.costPerTask + a.preference - (b.costPerTask + b.preference));
    const cheapest = byCost[0]!;
    const next = byCost.find((o) => !usedPools.has(o.pool));
    // Why the cheapest pool did not take everything: its size, the team's quota or budget, or other work.
    const limitOf = (o: Option): { kind: GroupExplanation['binding']; label: string } => {
      const pool = pools[o.pool]!;
      const full = binding.find((l) => l.kind === 'max-nodes' && l.label.includes(`pool ${pool.id} `));
      if (full) return { kind: 'capacity', label: full.label };
      const policyLimit = binding.find(
        (l) => (l.kind === 'quota' || l.kind === 'budget') && l.policy === g.policy?.name,
      );
      if (policyLimit)
        return { kind: policyLimit.kind === 'quota' ? 'quota' : 'budget', label: policyLimit.label };
      return { kind: 'capacity', label: 'its room went to other work in this batch' };
    };
    let nextBest: GroupExplanation['nextBest'];
    if (next) {
      const dearer = next.costPerTask + next.preference > worstChosen + 1e-9;
      nextBest = {
        poolId: pools[next.pool]!.id,
        costPerTask: next.costPerTask,
        whyNot: dearer ? 'costs more per task' : limitOf(next).label,
      };
    }
    let kind: GroupExplanation['binding'] = 'none';
    let detail = chosen.length
      ? `cheapest compatible capacity for ${g.taskIds.length} task(s)`
      : 'nothing placed';
    const onCheapest = packing.assignments
      .filter((a) => options[a.option]!.group === g.index && options[a.option]!.pool === cheapest.pool)
      .reduce((n, a) => n + a.count, 0);
    if (worstChosen > cheapest.costPerTask + 1e-9) {
      const limit = limitOf(cheapest);
      kind = limit.kind;
      detail = `${pools[cheapest.pool]!.id} ($${cheapest.costPerTask.toFixed(4)}/task) took only ${onCheapest}: ${limit.label}`;
    } else if (cheapest.rank > 0 || cheapest.preference > 0) {
      detail = "cheapest by cost and the policy's preferences (spot preference, fallback order)";
    }
    if (unplaced) {
      kind = unplaced.refusal?.kind ?? 'capacity';
      detail = unplaced.refusal?.detail ?? `${unplaced.count} task(s) found no room in any compatible pool`;
    }
    return { ...base, ...(nextBest ? { nextBest } : {}), binding: kind, detail };
  });
}

/** Why a task was left unplaced: a kind for programs and a reason for people (`kind: detail`). */
export interface UnplacedReason {
  kind: 'capacity' | 'quota' | 'budget' | 'policy';
  reason: string;
}

/** The reason given for each unplaced task of a group. */
export function unplacedReason(
  hasOptions: boolean,
  u: Packing['unplaced'][number],
  excluded: Map<string, number>,
): UnplacedReason {
  if (!hasOptions) return { kind: 'policy', reason: topReasons(excluded) };
  if (u.refusal) return { kind: u.refusal.kind, reason: `${u.refusal.kind}: ${u.refusal.detail}` };
  return {
    kind: 'capacity',
    reason: 'capacity: every compatible pool is full or at its maximum number of nodes',
  };
}

function topReasons(excluded: Map<string, number>): string {
  if (excluded.size === 0) return 'policy: no pool exists';
  const top = [...excluded.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 3)
    .map(([why]) => why);
  return `policy: no compatible pool (${top.join('; ')})`;
}
