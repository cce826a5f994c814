/**
 * The placement LP. Variables (all continuous here; the packer rounds):
 *   xe[o,c]  tasks of option o (a group on a pool) on existing nodes of class c of that pool
 *   xn[o]    tasks of option o on nodes added to the pool for the group's duration bucket
 *   n[p,k]   nodes added to pool p for duration bucket k
 *   u[g]     tasks of group g left unplaced
 *   b[q]     amount borrowed beyond quota q's nominal
 * See docs/solver.md for the objective and constraints written out.
 */
import type { Policy, Quota } from '../policies/index.ts';
import type { LpModel } from './lp/index.ts';
import { type Group, type NodeClass, type Option, tasksThatFit } from './groups.ts';
import type { PoolState, TeamUsage } from './types.ts';

/** Cost of keeping work on a node that already runs: tiny, only to break ties between equal plans. */
const EXISTING_EPSILON = 1e-6;
/** Per-node cost on top of the price, so that a free (reserved) node is not added without need. */
const NODE_EPSILON = 1e-4;
// Rows are written in cores, GiB and devices: coefficients near 1 keep the simplex well conditioned.
const CPU_UNIT = 1000;
const MEM_UNIT = 1024;
const GPU_UNIT = 1000;
/** A per-node fit row is only added where whole tasks per node lose this much against the resource totals. */
const FIT_ROW_GAIN = 0.02;

/** Objective cost of borrowing one GPU, one core or one GiB beyond a quota's nominal amount. */
const BORROW_COST = { gpu: 1e-3, cpu: 1e-3, memory: 1e-4 } as const;
/** Quota rows in cores, GiB and devices. */
const QUOTA_UNIT = { gpu: 1, cpu: CPU_UNIT, memory: MEM_UNIT } as const;

export type VarMeta =
  | { kind: 'xe'; option: number; cls: number }
  | { kind: 'xn'; option: number; key: string }
  | { kind: 'n'; pool: number; bucket: number; key: string }
  | { kind: 'u'; group: number }
  | { kind: 'b'; row: number };

/** A constraint the explanation may blame when it binds. */
export interface LimitRow {
  row: number;
  kind: 'quota' | 'budget' | 'max-nodes';
  label: string;
  policy?: string;
  /** max-nodes: the pool whose room it limits. */
  pool?: number;
  /** quota and budget: the options (indices into the model's options) the row counts. */
  options?: ReadonlySet<number>;
}

/** The LP and how to read its answer back. */
export interface PlacementModel {
  lp: LpModel;
  vars: VarMeta[];
  limits: LimitRow[];
  /** Penalty per unplaced task of each group (not dollars: excluded from costs and bounds). */
  unplacedPenalty: number[];
  /** Per variable: its objective coefficient without penalties and tie-breakers (dollars + preferences). */
  dollarCost: number[];
  /** Group of each option in the model. */
  optionGroup: number[];
}

export interface ModelInput {
  groups: readonly Group[];
  pools: readonly PoolState[];
  options: readonly Option[];
  classes: readonly NodeClass[];
  usage: Readonly<Record<string, TeamUsage>>;
  /** Per group: a lower bound on unplaced tasks (used to re-solve for the bound on the same tasks). */
  minUnplaced?: readonly number[];
  /** Tasks per group to place, when not all of them (residual rounds). */
  counts?: readonly number[];
  /** Whether to add quota and budget rows (residual rounds leave them to the packer's ledger). */
  policyRows?: boolean;
}

/** Builds the LP relaxation of the placement problem. */
export function buildModel(input: ModelInput): PlacementModel {
  const { groups, pools, options, classes } = input;
  const lp: LpModel = { variables: [], constraints: [] };
  const vars: VarMeta[] = [];
  const limits: LimitRow[] = [];
  const dollarCost: number[] = [];
  const addVar = (name: string, cost: number, meta: VarMeta, upper?: number, dollars = 0) => {
    lp.variables.push(upper === undefined ? { name, cost } : { name, cost, upper });
    dollarCost.push(dollars);
    vars.push(meta);
    return vars.length - 1;
  };
  const addRow = (name: string, terms: [number, number][], lower?: number, upper?: number) => {
    lp.constraints.push({
      name,
      terms,
      ...(lower === undefined ? {} : { lower }),
      ...(upper === undefined ? {} : { upper }),
    });
    return lp.constraints.length - 1;
  };

  // Terms per group (demand), per class resource, per new-node bucket, and per option (for quotas/budgets).
  const demand: [number, number][][] = groups.map(() => []);
  const optionVars: number[][] = options.map(() => []);
  const classTerms = classes.map(() => ({
    cpu: [] as [number, number][],
    mem: [] as [number, number][],
    gpu: [] as [number, number][],
  }));
  // Per pool: node variables by duration bucket, and the tasks on added nodes with their bucket.
  const added = new Map<
    number,
    { nodes: Map<number, number>; tasks: { v: number; o: Option; duration: number }[] }
  >();
  const classesOfPool = new Map<number, number[]>();
  classes.forEach((c, i) => classesOfPool.set(c.pool, [...(classesOfPool.get(c.pool) ?? []), i]));

  options.forEach((o, oi) => {
    const g = groups[o.group]!;
    const pool = pools[o.pool]!;
    const gpuCount = o.gpuMilli / 1000;
    for (const ci of classesOfPool.get(o.pool) ?? []) {
      const cls = classes[ci]!;
      if (g.durationSeconds > cls.maxDuration) continue;
      const fit = tasksThatFit(cls.free, g.cpuMilli, g.memoryMiB, gpuCount);
      if (fit === 0) continue;
      const cost = o.risk + o.preference;
      const v = addVar(
        `xe:${oi}:${ci}`,
        cost + EXISTING_EPSILON,
        { kind: 'xe', option: oi, cls: ci },
        fit * cls.nodes.length,
        cost,
      );
      demand[o.group]!.push([v, 1]);
      optionVars[oi]!.push(v);
      const t = classTerms[ci]!;
      t.cpu.push([v, g.cpuMilli / CPU_UNIT]);
      t.mem.push([v, g.memoryMiB / MEM_UNIT]);
      if (o.gpuMilli > 0) t.gpu.push([v, o.lpGpuMilli / GPU_UNIT]);
    }
    if (pool.maxNewNodes > 0 && o.perNode > 0) {
      const key = `${o.pool}:${g.durationSeconds}`;
      let entry = added.get(o.pool);
      if (!entry) {
        entry = { nodes: new Map(), tasks: [] };
        added.set(o.pool, entry);
      }
      if (!entry.nodes.has(g.durationSeconds)) {
        const hours = (g.durationSeconds + pool.launchDelaySeconds) / 3600;
        const meta: VarMeta = { kind: 'n', pool: o.pool, bucket: g.durationSeconds, key };
        entry.nodes.set(
          g.durationSeconds,
          addVar(`n:${key}`, pool.price * hours + NODE_EPSILON, meta, undefined, pool.price * hours),
        );
      }
      const v = addVar(
        `xn:${oi}`,
        o.risk + o.preference,
        { kind: 'xn', option: oi, key },
        undefined,
        o.risk + o.preference,
      );
      demand[o.group]!.push([v, 1]);
      optionVars[oi]!.push(v);
      entry.tasks.push({ v, o, duration: g.durationSeconds });
    }
  });

  const unplacedPenalty = unplacedPenalties(groups, pools, options);
  groups.forEach((g, gi) => {
    const count = input.counts?.[gi] ?? g.taskIds.length;
    if (count === 0 && demand[gi]!.length === 0) return;
    const u = addVar(`u:${gi}`, unplacedPenalty[gi]!, { kind: 'u', group: gi }, count);
    const min = input.minUnplaced?.[gi];
    if (min !== undefined && min > 0) lp.variables[u]!.lower = Math.min(min, count);
    addRow(`demand:${gi}`, [...demand[gi]!, [u, 1]], count, count);
  });

  classes.forEach((cls, ci) => {
    const t = classTerms[ci]!;
    const m = cls.nodes.length;
    if (t.cpu.length > 1) addRow(`ecpu:${ci}`, t.cpu, undefined, (m * cls.free.cpuMilli) / CPU_UNIT);
    if (t.mem.length > 1) addRow(`emem:${ci}`, t.mem, undefined, (m * cls.free.memoryMiB) / MEM_UNIT);
    if (t.gpu.length > 1)
      addRow(`egpu:${ci}`, t.gpu, undefined, (m * cls.free.gpuMilli.reduce((a, b) => a + b, 0)) / GPU_UNIT);
  });

  // Added nodes, nested by duration: a node bought for a longer bucket also serves shorter tasks, so for
  // every bucket k, the tasks at least as long as k must fit on the nodes bought for k or longer.
  for (const [p, { nodes, tasks }] of added) {
    const pool = pools[p]!;
    const buckets = [...nodes.keys()].sort((a, b) => a - b);
    const nodesFrom = (d: number): [number, number][] =>
      buckets.filter((b) => b >= d).map((b) => [nodes.get(b)!, 1]);
    for (const d of buckets) {
      const longer = tasks.filter((t) => t.duration >= d);
      const n = nodesFrom(d);
      const g = (t: { o: Option }) => groups[t.o.group]!;
      addRow(
        `ncpu:${p}:${d}`,
        [
          ...longer.map((t): [number, number] => [t.v, g(t).cpuMilli / CPU_UNIT]),
          ...n.map(([v]): [number, number] => [v, -pool.cpuMilli / CPU_UNIT]),
        ],
        undefined,
        0,
      );
      addRow(
        `nmem:${p}:${d}`,
        [
          ...longer.map((t): [number, number] => [t.v, g(t).memoryMiB / MEM_UNIT]),
          ...n.map(([v]): [number, number] => [v, -pool.memoryMiB / MEM_UNIT]),
        ],
        undefined,
        0,
      );
      const gpu = longer.filter((t) => t.o.gpuMilli > 0);
      if (gpu.length > 0) {
        addRow(
          `ngpu:${p}:${d}`,
          [
            ...gpu.map((t): [number, number] => [t.v, t.o.lpGpuMilli / GPU_UNIT]),
            ...n.map(([v]): [number, number] => [v, -pool.gpuCount]),
          ],
          undefined,
          0,
        );
      }
    }
    // A task must fit on one node: at most perNode tasks of a group per added node that can take it. The
    // resource rows already say as much up to rounding, so the row is only kept where rounding matters
    // (a 5-GPU task takes a whole 8-GPU node: the GPU row alone would allow 1.6).
    for (const t of tasks) {
      const g = groups[t.o.group]!;
      const ratio = Math.min(
        pool.cpuMilli / Math.max(g.cpuMilli, 1e-9),
        pool.memoryMiB / Math.max(g.memoryMiB, 1e-9),
        t.o.gpuMilli > 0 ? (pool.gpuCount * 1000) / t.o.lpGpuMilli : Infinity,
      );
      if (ratio - t.o.perNode <= FIT_ROW_GAIN * ratio) continue;
      const terms: [number, number][] = [
        [t.v, 1],
        ...nodesFrom(t.duration).map(([v]): [number, number] => [v, -t.o.perNode]),
      ];
      addRow(`fit:${t.v}`, terms, undefined, 0);
    }
    const row = addRow(`max:${p}`, nodesFrom(0), undefined, pool.maxNewNodes);
    limits.push({
      row,
      kind: 'max-nodes',
      label: `pool ${pool.id} may add at most ${pool.maxNewNodes} nodes`,
      pool: p,
    });
  }

  if (input.policyRows !== false) addPolicyRows(input, optionVars, addVar, addRow, limits);
  return { lp, vars, limits, unplacedPenalty, dollarCost, optionGroup: options.map((o) => o.group) };
}

/**
 * How many variables {@link buildModel} would make, and whether it would have quota or budget rows,
 * without building it: the broker's path decides from these whether the aggregate LP is worth solving.
 */
export function modelSize(input: ModelInput): { variables: number; policyRows: boolean } {
  const { groups, pools, options, classes } = input;
  const classesOfPool = new Map<number, number[]>();
  classes.forEach((c, i) => classesOfPool.set(c.pool, [...(classesOfPool.get(c.pool) ?? []), i]));
  let variables = groups.length;
  const buckets = new Set<string>();
  for (const o of options) {
    const g = groups[o.group]!;
    for (const ci of classesOfPool.get(o.pool) ?? []) {
      const cls = classes[ci]!;
      if (
        g.durationSeconds <= cls.maxDuration &&
        tasksThatFit(cls.free, g.cpuMilli, g.memoryMiB, o.gpuMilli / 1000) > 0
      )
        variables++;
    }
    if (pools[o.pool]!.maxNewNodes > 0 && o.perNode > 0) {
      variables++;
      buckets.add(`${o.pool}:${g.durationSeconds}`);
    }
  }
  const policyRows = groups.some(
    (g) => g.policy !== undefined && (g.policy.quotas.length > 0 || g.policy.budget?.perHour !== undefined),
  );
  return { variables: variables + buckets.size, policyRows };
}

/**
 * The model's reading without its LP, where the aggregate LP is not solved: the penalties and which
 * option is whose, no rows.
 */
export function modelWithoutLp(input: ModelInput): PlacementModel {
  return {
    lp: { variables: [], constraints: [] },
    vars: [],
    limits: [],
    unplacedPenalty: unplacedPenalties(input.groups, input.pools, input.options),
    dollarCost: [],
    optionGroup: input.options.map((o) => o.group),
  };
}

type AddVar = (name: string, cost: number, meta: VarMeta, upper?: number, dollars?: number) => number;
type AddRow = (name: string, terms: [number, number][], lower?: number, upper?: number) => number;

function addPolicyRows(
  input: ModelInput,
  optionVars: number[][],
  addVar: AddVar,
  addRow: AddRow,
  limits: LimitRow[],
): void {
  const { groups, pools, options, usage } = input;
  const policies = new Map<string, Policy>();
  for (const g of groups) if (g.policy) policies.set(g.policy.name, g.policy);
  for (const policy of policies.values()) {
    const used = sumUsage(policy.teams.map((t) => usage[t]));
    const mine = options.map((o, oi) => ({ o, oi })).filter(({ o }) => groups[o.group]!.policy === policy);
    policy.quotas.forEach((q, qi) => {
      const terms: [number, number][] = [];
      const counted = new Set<number>();
      for (const { o, oi } of mine) {
        const amount = quotaAmount(q, groups[o.group]!, o, pools[o.pool]!) / QUOTA_UNIT[q.resource];
        if (amount <= 0) continue;
        counted.add(oi);
        for (const v of optionVars[oi]!) terms.push([v, amount]);
      }
      if (terms.length === 0) return;
      const borrow = (q.borrowingLimit ?? 0) / QUOTA_UNIT[q.resource];
      const rhs = Math.max((q.nominal - quotaUsed(q, used)) / QUOTA_UNIT[q.resource], -borrow);
      const row = addRow(`quota:${policy.name}:${qi}`, terms, undefined, rhs);
      if (borrow > 0) {
        const b = addVar(`b:${policy.name}:${qi}`, BORROW_COST[q.resource], { kind: 'b', row }, borrow);
        terms.push([b, -1]);
      }
      limits.push({
        row,
        kind: 'quota',
        label: `policy ${policy.name}: ${describeQuota(q)}`,
        policy: policy.name,
        options: counted,
      });
    });
    const budget = policy.budget;
    if (budget?.perHour !== undefined) {
      const terms: [number, number][] = [];
      const counted = new Set<number>();
      for (const { o, oi } of mine) {
        const rate = o.share * pools[o.pool]!.price;
        if (rate <= 0) continue;
        counted.add(oi);
        for (const v of optionVars[oi]!) terms.push([v, rate]);
      }
      if (terms.length > 0) {
        const row = addRow(
          `budget:${policy.name}`,
          terms,
          undefined,
          Math.max(0, budget.perHour - used.spendPerHour),
        );
        limits.push({
          row,
          kind: 'budget',
          label: `policy ${policy.name}: budget $${budget.perHour}/hour`,
          policy: policy.name,
          options: counted,
        });
      }
    }
  }
}

/** What the teams of one policy hold together. */
export function sumUsage(list: (TeamUsage | undefined)[]): TeamUsage {
  const total: TeamUsage = { cpuMilli: 0, memoryMiB: 0, gpus: 0, gpusByModel: {}, spendPerHour: 0 };
  for (const u of list) {
    if (!u) continue;
    total.cpuMilli += u.cpuMilli;
    total.memoryMiB += u.memoryMiB;
    total.gpus += u.gpus;
    total.spendPerHour += u.spendPerHour;
    for (const [m, n] of Object.entries(u.gpusByModel))
      total.gpusByModel[m] = (total.gpusByModel[m] ?? 0) + n;
  }
  return total;
}

/** How much of quota q one task of the option uses. */
export function quotaAmount(q: Quota, g: Group, o: Option, pool: PoolState): number {
  if (q.resource === 'cpu') return g.cpuMilli;
  if (q.resource === 'memory') return g.memoryMiB;
  if (q.model !== undefined && q.model !== pool.gpuModel) return 0;
  return o.gpuMilli / 1000;
}

/** How much of quota q is already used. */
export function quotaUsed(q: Quota, used: TeamUsage): number {
  if (q.resource === 'cpu') return used.cpuMilli;
  if (q.resource === 'memory') return used.memoryMiB;
  return q.model ? (used.gpusByModel[q.model] ?? 0) : used.gpus;
}

/** `gpu H100 16 (+8 borrowable)` */
export function describeQuota(q: Quota): string {
  const fmt = (n: number) =>
    q.resource === 'cpu'
      ? `${n / 1000} cores`
      : q.resource === 'memory'
        ? `${Math.round(n / 1024)}Gi`
        : `${n} GPUs`;
  const what = q.resource === 'gpu' && q.model ? `${q.model} quota` : `${q.resource} quota`;
  return `${what} ${fmt(q.nominal)}${q.borrowingLimit ? ` (+${fmt(q.borrowingLimit)} borrowable)` : ''}`;
}

/**
 * Penalty per unplaced task: larger than any placement could cost, so the LP places all it can; it grows
 * with the task's size (a big task left out weighs more) and with its priority level, so that when
 * capacity is short, higher priorities are served first.
 */
function unplacedPenalties(
  groups: readonly Group[],
  pools: readonly PoolState[],
  options: readonly Option[],
): number[] {
  let worst = 1;
  for (const o of options) {
    const p = pools[o.pool]!;
    const g = groups[o.group]!;
    worst = Math.max(
      worst,
      p.price * ((g.durationSeconds + p.launchDelaySeconds) / 3600) + o.preference + o.risk,
    );
  }
  const levels = [...new Set(groups.map((g) => g.priority))].sort((a, b) => a - b);
  return groups.map((g) => {
    const size = 1 + Math.max(0, ...g.gpu.map((a) => a.count)) + g.cpuMilli / 8000;
    return 10 * worst * size * (1 + levels.indexOf(g.priority));
  });
}
