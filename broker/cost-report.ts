/**
 * Cost reports from the ledger alone. A node's cost is its price times its lifetime; each task that ran
 * on it is charged the node's price times its dominant share of the node for as long as it ran (scaled
 * down when shares overlap beyond the whole node), and what no task used is the pool's idle cost —
 * shown, never spread. Beside the spend: what the same work would have cost all on-demand, and what a
 * cheapest-first greedy placement of it would have cost.
 */
import type { Platform } from '../policies/index.ts';
import { type LpBackends, plan, poolStates, type TaskRequest } from '../solver/index.ts';
import { type LedgerEntry, type NodeLife, type TaskUsage, usageCost } from './ledger.ts';

/** What rows can be grouped by. */
export const DIMENSIONS = [
  'team',
  'workflow',
  'run',
  'task',
  'cluster',
  'pool',
  'gpu',
  'capacity-type',
] as const;
export type Dimension = (typeof DIMENSIONS)[number];

/** One grouped row. */
export interface CostRow {
  key: Partial<Record<Dimension, string>>;
  costUsd: number;
  /** Of `costUsd`, what nodes cost while no task used them. */
  idleUsd: number;
  /** The same work (and idle time) at on-demand prices. */
  onDemandUsd: number;
  /** Task executions (usage entries) in the row. */
  executions: number;
  gpuHours: number;
}

/** A cost report. Money is in dollars, unrounded: round for display only. */
export interface CostReport {
  since: number;
  until: number;
  by: Dimension[];
  rows: CostRow[];
  totals: {
    costUsd: number;
    taskUsd: number;
    idleUsd: number;
    onDemandUsd: number;
    /** `onDemandUsd − costUsd`: what spot (and reserved) capacity saved. */
    spotSavingsUsd: number;
    /**
     * Spot and reserved spend whose instance type has no on-demand price in the platform (all of it
     * without a platform): it counts at its own price in `onDemandUsd`, so the savings leave it out.
     */
    unpricedUsd: number;
    /** A cheapest-first greedy placement of the same tasks, when the platform was given. */
    greedyUsd?: number;
    /** Gantry's placement of the same tasks on a fresh fleet (LP), for comparison with `greedyUsd`. */
    plannedUsd?: number;
    executions: number;
    nodes: number;
  };
  /** Spend per UTC day, split by the first grouping. */
  days: { day: string; values: Record<string, number> }[];
  /** Spend per GPU model (`none` for CPU-only). */
  byGpu: Record<string, number>;
}

/** A charge: a slice of money with the attributes to group it by. */
interface Charge {
  key: Record<Dimension, string>;
  costUsd: number;
  onDemandUsd: number;
  gpuHours: number;
  /** The task execution the money is for (none for idle time). */
  usage?: TaskUsage;
  /** The interval the money was spent over (for per-day splits). */
  from: number;
  to: number;
  /** Spot or reserved money with no on-demand price to compare with. */
  unpriced?: boolean;
  /** Money per UTC day (its start), when not spread evenly over the interval. */
  perDay?: Map<number, number>;
}

const DAY = 86_400_000;

/** Each day's part of [from, to). */
function daySlices(from: number, to: number): { day: number; a: number; b: number }[] {
  const out: { day: number; a: number; b: number }[] = [];
  for (let t = Math.floor(from / DAY) * DAY; t < to; t += DAY) {
    const a = Math.max(t, from);
    const b = Math.min(t + DAY, to);
    if (b > a) out.push({ day: t, a, b });
  }
  return out;
}

/** A node's idle cost per day: what it cost that day, less what its tasks were charged that day. */
function idlePerDay(
  price: number,
  from: number,
  to: number,
  tasks: readonly { a: number; b: number; cost: number }[],
  scale: number,
): Map<number, number> {
  const out = new Map<number, number>();
  for (const d of daySlices(from, to)) out.set(d.day, (price * (d.b - d.a)) / HOUR);
  for (const t of tasks) {
    if (t.b <= t.a) continue;
    for (const d of daySlices(t.a, t.b))
      out.set(d.day, (out.get(d.day) ?? 0) - (t.cost * scale * (d.b - d.a)) / (t.b - t.a));
  }
  return out;
}

const HOUR = 3_600_000;
const IDLE = '(idle)';

/**
 * Computes a report over [since, until) from ledger entries (in log order).
 *
 * @example
 * const report = costReport(entries, { by: ['team'], since: Date.now() - 7 * 86_400_000, until: Date.now(), platform });
 */
export function costReport(
  entries: readonly LedgerEntry[],
  opts: { by: Dimension[]; since: number; until: number; platform?: Platform; backends?: LpBackends },
): CostReport {
  const { since, until } = opts;
  const usages = entries.filter((e): e is TaskUsage => e.kind === 'usage');
  const lives = nodeLifetimes(entries, until);
  const assigned = assignLives(lives, usages);
  const nodes = coverTasks(lives, usages, assigned);
  const onDemand = onDemandPrices(opts.platform);
  const charges: Charge[] = [];

  // Task charges, clipped to the window and to their node's lifetime, scaled so a node's tasks never
  // cost more than the node.
  const byLife = new Map<object, TaskUsage[]>();
  for (const [u, life] of assigned) push(byLife, life, u);
  const charged = new Set<TaskUsage>();
  for (const life of nodes) {
    const from = Math.max(life.start, since);
    const to = Math.min(life.end, until);
    if (to <= from) continue;
    const nodeCost = (life.pricePerHour * (to - from)) / HOUR;
    const tasks = byLife.get(life) ?? [];
    const raw = tasks.map((u) => {
      const a = Math.max(u.start, from);
      const b = Math.min(u.end, to);
      return { u, a, b, cost: usageCost(u, a, b) };
    });
    const sum = raw.reduce((s, r) => s + r.cost, 0);
    const scale = sum > nodeCost && sum > 0 ? nodeCost / sum : 1;
    for (const r of raw) {
      charged.add(r.u);
      if (r.b <= r.a) continue;
      const cost = r.cost * scale;
      charges.push(taskCharge(r.u, cost, onDemand, r.a, r.b, scale));
    }
    // A node its tasks used whole has no idle cost, yet idle days when its tasks ran on others.
    const idle = Math.max(0, nodeCost - sum * scale);
    if (nodeCost > 0) {
      const ratio = onDemandRatio(life.instanceType, life.capacityType, life.pricePerHour, onDemand);
      charges.push({
        key: {
          team: IDLE,
          workflow: IDLE,
          run: IDLE,
          task: IDLE,
          cluster: life.cluster,
          pool: life.pool,
          gpu: life.gpuModel ?? 'none',
          'capacity-type': life.capacityType,
        },
        costUsd: idle,
        onDemandUsd: idle * (ratio ?? 1),
        gpuHours: 0,
        from,
        to,
        // A node is idle when its tasks are not running: per day, its cost that day less theirs.
        perDay: idlePerDay(life.pricePerHour, from, to, raw, scale),
        ...(ratio === undefined ? { unpriced: true } : {}),
      });
    }
  }
  // Tasks on nodes whose lifetime the ledger does not hold: charged their share, unscaled.
  for (const u of usages) {
    if (charged.has(u)) continue;
    const a = Math.max(u.start, since);
    const b = Math.min(u.end, until);
    if (b <= a) continue;
    charges.push(taskCharge(u, usageCost(u, a, b), onDemand, a, b, 1));
  }
  // An execution counts once, in the window its end falls in.
  const executions = usages.filter((u) => u.end > since && u.end <= until);
  const counted = new Set(executions);

  const rows = group(charges, opts.by, counted);
  const costUsd = sum(charges.map((c) => c.costUsd));
  const idleUsd = sum(charges.filter((c) => !c.usage).map((c) => c.costUsd));
  const onDemandUsd = sum(charges.map((c) => c.onDemandUsd));
  const report: CostReport = {
    since,
    until,
    by: opts.by,
    rows,
    totals: {
      costUsd,
      taskUsd: costUsd - idleUsd,
      idleUsd,
      onDemandUsd,
      spotSavingsUsd: onDemandUsd - costUsd,
      unpricedUsd: sum(charges.filter((c) => c.unpriced).map((c) => c.costUsd)),
      executions: executions.length,
      nodes: nodes.filter((n) => n.end > since && n.start < until).length,
    },
    days: perDay(charges, opts.by[0] ?? 'team'),
    byGpu: totalsBy(charges, (c) => c.key.gpu),
  };
  if (opts.platform && executions.length > 0 && executions.length <= 50_000) {
    const compared = greedyComparison(executions, opts.platform, opts.backends);
    if (compared) Object.assign(report.totals, compared);
  }
  return report;
}

function taskCharge(
  u: TaskUsage,
  cost: number,
  onDemand: Map<string, number>,
  from: number,
  to: number,
  scale: number,
): Charge {
  const ratio = onDemandRatio(u.instanceType, u.capacityType, u.nodePricePerHour, onDemand);
  return {
    key: {
      team: u.team,
      workflow: u.workflow ?? '(none)',
      run: u.run ?? '(none)',
      task: u.task ?? '(none)',
      cluster: u.cluster,
      pool: u.pool,
      gpu: u.gpuModel ?? 'none',
      'capacity-type': u.capacityType,
    },
    costUsd: cost,
    onDemandUsd: cost * (ratio ?? 1),
    ...(ratio === undefined ? { unpriced: true } : {}),
    gpuHours: (u.gpus * (to - from) * scale) / HOUR,
    usage: u,
    from,
    to,
  };
}

/** On-demand price ÷ actual price for an instance type: 1 when on-demand or free, undefined when unknown. */
export function onDemandRatio(
  instanceType: string,
  capacityType: string,
  price: number,
  onDemand: Map<string, number>,
): number | undefined {
  if (capacityType === 'on-demand' || price <= 0) return 1;
  const od = onDemand.get(instanceType);
  return od !== undefined ? od / price : undefined;
}

/** On-demand $/hour per instance type: the platform's on-demand pools, else the catalog. */
export function onDemandPrices(platform: Platform | undefined): Map<string, number> {
  const out = new Map<string, number>();
  if (!platform) return out;
  for (const p of platform.pools) {
    if (p.capacityType !== 'on-demand') continue;
    out.set(p.instanceType, p.price);
  }
  for (const p of platform.pools) {
    if (out.has(p.instanceType)) continue;
    const e = platform.catalog.lookup(p.cloud, p.instanceType, p.region);
    if (e) out.set(p.instanceType, e.onDemand);
  }
  return out;
}

/** A lifetime: from start to end, `open` while the node is still up (it then ends at `until`). */
type Life = NodeLife & { start: number; end: number; open: boolean };

/** Node lifetimes from start/end entries; a node still up ends at `until`. */
function nodeLifetimes(entries: readonly LedgerEntry[], until: number): Life[] {
  const open = new Map<string, NodeLife>();
  const out: Life[] = [];
  for (const e of entries) {
    if (e.kind !== 'node-start' && e.kind !== 'node-end') continue;
    const key = `${e.cluster}|${e.node}`;
    if (e.kind === 'node-start') {
      if (!open.has(key)) open.set(key, e);
      continue;
    }
    const start = open.get(key);
    if (!start) continue;
    open.delete(key);
    out.push({ ...start, start: start.at, end: e.at, open: false, ...(e.ended ? { ended: e.ended } : {}) });
  }
  for (const start of open.values())
    out.push({ ...start, start: start.at, end: Math.max(start.at, until), open: true });
  return out;
}

/**
 * The lifetime of its node each task ran in: the nearest (a lifetime still open reaches on without
 * end), the earliest-starting of equally near ones. Tasks on nodes the ledger has no lifetime of are
 * left out. The history store attaches usages the same way as it ingests them.
 */
export function assignLives<
  L extends { cluster: string; node: string; start: number; end: number; open?: boolean },
>(lives: readonly L[], usages: readonly TaskUsage[]): Map<TaskUsage, L> {
  const byNode = new Map<string, L[]>();
  for (const l of lives) push(byNode, `${l.cluster}|${l.node}`, l);
  const out = new Map<TaskUsage, L>();
  for (const u of usages) {
    const candidates = byNode.get(`${u.cluster}|${u.node}`);
    if (!candidates) continue;
    const distance = (l: L) => Math.max(0, l.start - u.end, u.start - (l.open ? Infinity : l.end));
    let best = candidates[0]!;
    for (const l of candidates) {
      const d = distance(l);
      const b = distance(best);
      if (d < b || (d === b && l.start < best.start)) best = l;
    }
    out.set(u, best);
  }
  return out;
}

/**
 * A node existed at least while tasks ran on it: lifetimes are widened to cover their tasks (the
 * broker stamps a node's start when it hears of it, a moment after the agent may have started work on
 * it), so no task time falls outside a node.
 */
export function coverTasks<L extends { cluster: string; node: string; start: number; end: number }>(
  lives: L[],
  usages: readonly TaskUsage[],
  assigned: Map<TaskUsage, L> = assignLives(lives, usages),
): L[] {
  for (const u of usages) {
    const life = assigned.get(u);
    if (!life) continue;
    life.start = Math.min(life.start, u.start);
    life.end = Math.max(life.end, u.end);
  }
  return lives;
}

/** Sums charges into rows by the grouping; an execution counts in a row once, if its end is in the window. */
function group(
  charges: readonly Charge[],
  by: readonly Dimension[],
  counted: ReadonlySet<TaskUsage>,
): CostRow[] {
  const rows = new Map<string, CostRow & { seen: Set<TaskUsage> }>();
  for (const c of charges) {
    const id = JSON.stringify(by.map((d) => c.key[d]));
    let row = rows.get(id);
    if (!row) {
      const key: Partial<Record<Dimension, string>> = {};
      for (const d of by) key[d] = c.key[d];
      row = { key, costUsd: 0, idleUsd: 0, onDemandUsd: 0, executions: 0, gpuHours: 0, seen: new Set() };
      rows.set(id, row);
    }
    row.costUsd += c.costUsd;
    if (!c.usage) row.idleUsd += c.costUsd;
    row.onDemandUsd += c.onDemandUsd;
    row.gpuHours += c.gpuHours;
    if (c.usage && counted.has(c.usage) && !row.seen.has(c.usage)) {
      row.seen.add(c.usage);
      row.executions++;
    }
  }
  return [...rows.values()]
    .map(({ seen: _seen, ...row }) => row)
    .filter((row) => Math.abs(row.costUsd) > 1e-9 || row.executions > 0)
    .sort((a, b) => b.costUsd - a.costUsd);
}

/** Money per UTC day, split proportionally to time, by one dimension. */
function perDay(charges: readonly Charge[], dim: Dimension): CostReport['days'] {
  const days = new Map<string, Record<string, number>>();
  for (const c of charges) {
    if (c.perDay) {
      for (const [t, v] of c.perDay) {
        const day = new Date(t).toISOString().slice(0, 10);
        const values = days.get(day) ?? {};
        values[c.key[dim]] = (values[c.key[dim]] ?? 0) + v;
        days.set(day, values);
      }
      continue;
    }
    const span = c.to - c.from;
    for (let t = Math.floor(c.from / DAY) * DAY; t < c.to; t += DAY) {
      const a = Math.max(t, c.from);
      const b = Math.min(t + DAY, c.to);
      if (b <= a) continue;
      const day = new Date(t).toISOString().slice(0, 10);
      const values = days.get(day) ?? {};
      values[c.key[dim]] = (values[c.key[dim]] ?? 0) + (span > 0 ? (c.costUsd * (b - a)) / span : c.costUsd);
      days.set(day, values);
    }
  }
  return [...days.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([day, values]) => ({ day, values }));
}

function totalsBy(charges: readonly Charge[], key: (c: Charge) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of charges) out[key(c)] = (out[key(c)] ?? 0) + c.costUsd;
  return out;
}

/**
 * Plans the period's tasks again on an empty fleet: the solver's cheapest-first greedy baseline and
 * its own plan, both in expected dollars for the tasks' actual durations.
 */
export function greedyComparison(
  usages: readonly TaskUsage[],
  platform: Platform,
  backends: LpBackends | undefined,
): { greedyUsd: number; plannedUsd: number } | undefined {
  const requests: TaskRequest[] = usages.map((u, i) => ({
    id: `${u.task ?? 'task'}-${i}`,
    team: u.team,
    cpuMilli: u.cpuMilli,
    memoryMiB: u.memoryMiB,
    durationSeconds: Math.max(1, Math.round((u.end - u.start) / 1000)),
    ...(u.gpus > 0 && u.gpuModel ? { gpu: [{ model: u.gpuModel as never, count: u.gpus }] } : {}),
  }));
  try {
    const pools = poolStates(platform.pools, new Map(platform.pools.map((p) => [p.id, []])));
    const result = plan({ pools }, requests, platform.policies, {
      ...(backends ? { backends } : {}),
      timeBudgetMs: 5000,
      diagnostics: true,
    });
    const greedy = result.diagnostics?.greedy ?? result.baseline;
    return { greedyUsd: greedy.expected, plannedUsd: result.cost.expected };
  } catch {
    return undefined;
  }
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function sum(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}
