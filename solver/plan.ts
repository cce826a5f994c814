/**
 * `plan(snapshot, requests, policies, options) → Plan`: the whole placement decision for one batch.
 *
 * Steps, each timed: group identical requests → find each group's compatible pools → build and solve the
 * LP relaxation → round and pack onto concrete nodes, repairing leftovers → run the per-task greedy on the
 * same input as a baseline (and keep it if it is better: the plan is never worse than greedy) → explain.
 */
import type { Policy } from '../policies/index.ts';
import { explainGroups, unplacedReason } from './explain.ts';
import { greedyPack } from './greedy.ts';
import {
  type Group,
  groupRequests,
  incompatibility,
  makeOption,
  nodeClasses,
  type Option,
} from './groups.ts';
import { Ledger } from './ledger.ts';
import { chooseBackend, type LpBackends, type LpSolution } from './lp/index.ts';
import { buildModel, type PlacementModel } from './model.ts';
import { finishPacking, type Intent, Packer, type Packing, type PackContext, packIntents } from './pack.ts';
import type { NodeState, Placement, Plan, PlanCost, PoolState, Snapshot, TaskRequest } from './types.ts';

/** Options of {@link plan}. Every field has a default. */
export interface PlanOptions {
  /** LP engines to choose from by model size (see `defaultBackends()`). Without any, the plan is greedy. */
  backends?: LpBackends;
  /** Wall-clock budget for the LP in milliseconds; past it the plan falls back to greedy. Default 5000. */
  timeBudgetMs?: number;
  /** Millisecond clock for the timings in `plan.solver`. Default `performance.now`. */
  clock?: () => number;
}

/** LP rounds over what packing left over, before repair takes the rest one task at a time. */
const RESIDUAL_ROUNDS = 3;
/** Pools whose nodes could absorb this many times the whole batch are enough candidates for one group. */
const CANDIDATE_CAPACITY_FACTOR = 2;
/** …but every group keeps at least this many new-node candidates. */
const MIN_NEW_CANDIDATES = 4;

/**
 * Plans a batch of requests at least expected cost.
 *
 * @example
 * const backends = await defaultBackends();
 * const result = plan({ pools }, requests, platform.policies, { backends });
 * console.log(result.cost.perHour, result.bound, result.unplaced);
 */
export function plan(
  snapshot: Snapshot,
  requests: readonly TaskRequest[],
  policies: readonly Policy[],
  options: PlanOptions = {},
): Plan {
  const clock = options.clock ?? (() => performance.now());
  const started = clock();
  const phases: Record<string, number> = {};
  let mark = started;
  const phase = (name: string) => {
    const now = clock();
    phases[name] = (phases[name] ?? 0) + (now - mark);
    mark = now;
  };
  const byTeam = new Map<string, Policy>();
  for (const p of policies) for (const t of p.teams) if (!byTeam.has(t)) byTeam.set(t, p);
  const pools = snapshot.pools;
  const usage = snapshot.usage ?? {};
  const groups = groupRequests(requests, (team) => byTeam.get(team));

  const all: Option[] = [];
  const optionsByGroup: number[][] = groups.map(() => []);
  const excluded: Map<string, number>[] = groups.map(() => new Map());
  for (const g of groups) {
    pools.forEach((pool, pi) => {
      const why = incompatibility(g, pool);
      if (why) {
        excluded[g.index]!.set(why, (excluded[g.index]!.get(why) ?? 0) + 1);
        return;
      }
      const o = makeOption(g, pool, pi);
      if (o.perNode === 0) return;
      optionsByGroup[g.index]!.push(all.length);
      all.push(o);
    });
  }

  phase('options');
  const classes = pools.flatMap((p, i) => nodeClasses(p, i));
  const lpOptionIds = candidates(
    groups,
    pools,
    all,
    optionsByGroup,
    classes.map((c) => c.pool),
  );
  const lpOptions = lpOptionIds.map((i) => all[i]!);
  const context = (): PackContext => ({
    groups,
    pools,
    options: all,
    optionsByGroup,
    ledger: new Ledger(groups, pools, usage),
  });

  // The LP.
  const model = buildModel({ groups, pools, options: lpOptions, classes, usage });
  const backends = options.backends ?? {};
  const budget = options.timeBudgetMs ?? 5000;
  let solution: LpSolution | undefined;
  let fallback: string | undefined;
  phase('model');
  const lpStart = clock();
  if (!backends.js && !backends.highs) fallback = 'no LP backend given: greedy plan';
  else {
    const backend = chooseBackend(model.lp, backends);
    solution = backend.solve(model.lp, { timeLimitMs: budget });
    if (solution.status !== 'optimal')
      fallback = `LP ${solution.status}${solution.message ? ` (${solution.message})` : ''}: greedy plan`;
  }
  const lpMs = clock() - lpStart;
  phase('lp');

  const taskGroups = taskOrder(requests, groups);
  const greedy = greedyPack(context(), taskGroups);
  phase('greedy');
  let chosen = greedy;
  const greedyCost = costOf(greedy, all, pools);
  let chosenCost = greedyCost;
  if (solution && !fallback) {
    const ctx = context();
    const packer = new Packer(ctx);
    let overflow = groups.map((g) => g.taskIds.length);
    const intents = roundIntents(model, solution.values, lpOptionIds, groups);
    for (const it of intents) overflow[all[it.option]!.group]! -= it.count;
    packIntents(ctx, packer, classes, intents, overflow);
    phase('pack');
    // What rounding and packing left over is planned again by the LP, on what is left: running nodes,
    // nodes already being added (paid for), and the room pools still have. Repair takes the rest.
    for (let round = 0; round < RESIDUAL_ROUNDS && overflow.some((n) => n > 0); round++) {
      const left = budget - (clock() - started);
      if (left <= 0) break;
      const residual = residualPools(packer, pools);
      const rclasses = residual.pools.flatMap((p, i) =>
        nodeClasses(p, i, (n) => residual.duration.get(`${i}|${n.name}`) ?? Infinity),
      );
      const ids = lpOptionIds.filter((oi) => overflow[all[oi]!.group]! > 0);
      const m = buildModel({
        groups,
        pools: residual.pools,
        options: ids.map((i) => all[i]!),
        classes: rclasses,
        usage,
        counts: overflow,
        policyRows: false,
      });
      const s = chooseBackend(m.lp, backends).solve(m.lp, { timeLimitMs: left });
      if (s.status !== 'optimal') break;
      const more = roundIntents(m, s.values, ids, groups);
      const next = [...overflow];
      for (const it of more) next[all[it.option]!.group]! -= it.count;
      packIntents(ctx, packer, rclasses, more, next);
      phase('residual');
      const progress = next.reduce((a, b) => a + b, 0) < overflow.reduce((a, b) => a + b, 0);
      overflow = next;
      if (!progress) break;
    }
    const packed = finishPacking(ctx, packer, overflow);
    phase('repair');
    chosen = packed;
    chosenCost = costOf(packed, all, pools);
    if (better({ packing: greedy, cost: greedyCost }, { packing: packed, cost: chosenCost }, model)) {
      chosen = greedy;
      chosenCost = greedyCost;
      fallback = 'the greedy plan was cheaper than the rounded LP: greedy plan';
    }
  }

  const cost = chosenCost;
  const baseline = { ...greedyCost, unplaced: greedy.unplaced.reduce((n, u) => n + u.count, 0) };
  let bound = Number.NaN;
  if (solution && solution.status === 'optimal') {
    bound = boundOf(model, solution.values);
    const lpUnplaced = groups.map((g) => unplacedIn(model, solution!.values, g.index));
    const planUnplaced = groups.map((g) => chosen.unplaced.find((u) => u.group === g.index)?.count ?? 0);
    if (planUnplaced.some((n, gi) => n > lpUnplaced[gi]! + 1e-6) && clock() - started < budget) {
      const again = buildModel({
        groups,
        pools,
        options: lpOptions,
        classes,
        usage,
        minUnplaced: planUnplaced,
      });
      const s = chooseBackend(again.lp, backends).solve(again.lp, { timeLimitMs: budget });
      if (s.status === 'optimal') bound = boundOf(again, s.values);
    }
  }

  phase('bound');
  const placements = toPlacements(chosen, groups, all, pools);
  const unplaced = chosen.unplaced.flatMap((u) => {
    const g = groups[u.group]!;
    const why = unplacedReason(optionsByGroup[g.index]!.length > 0, u, excluded[g.index]!);
    return g.taskIds.slice(g.taskIds.length - u.count).map((taskId) => ({ taskId, ...why }));
  });

  return {
    placements,
    newNodes: newNodesOf(chosen, pools),
    unplaced,
    cost,
    bound,
    baseline,
    groups: explainGroups({
      groups,
      pools,
      options: all,
      optionsByGroup,
      packing: chosen,
      model,
      solution,
      excluded,
    }),
    solver: {
      backend: solution?.backend ?? 'greedy',
      status: solution?.status ?? 'skipped',
      ms: clock() - started,
      phases,
      lpMs,
      variables: model.lp.variables.length,
      constraints: model.lp.constraints.length,
      groups: groups.length,
      pools: pools.length,
      ...(fallback ? { fallback } : {}),
    },
  };
}

/**
 * The options the LP considers: every option on running nodes, and per group the cheapest new-node
 * options until their room could hold the whole batch twice over (at least four). Dearer pools only
 * matter when the cheap ones run out, which this room rules out; repair still sees every option.
 */
function candidates(
  groups: readonly Group[],
  pools: Snapshot['pools'],
  all: readonly Option[],
  byGroup: number[][],
  classPools: number[],
): number[] {
  const withNodes = new Set(classPools);
  const totalTasks = groups.reduce((n, g) => n + g.taskIds.length, 0);
  const keep: number[] = [];
  for (const g of groups) {
    const list = [...byGroup[g.index]!].sort(
      (a, b) => all[a]!.costPerTask + all[a]!.preference - (all[b]!.costPerTask + all[b]!.preference),
    );
    let room = 0;
    let kept = 0;
    for (const oi of list) {
      const o = all[oi]!;
      const onNew = pools[o.pool]!.maxNewNodes > 0;
      if (
        withNodes.has(o.pool) ||
        (onNew && (kept < MIN_NEW_CANDIDATES || room < CANDIDATE_CAPACITY_FACTOR * totalTasks))
      ) {
        keep.push(oi);
        if (onNew) {
          kept++;
          room += pools[o.pool]!.maxNewNodes * o.perNode;
        }
      }
    }
  }
  return keep.sort((a, b) => a - b);
}

/** The pools as packing has left them: nodes with free room (running and being added), room to grow. */
function residualPools(
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
function roundIntents(
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

function unplacedIn(model: PlacementModel, values: Float64Array, group: number): number {
  const v = model.vars.findIndex((m) => m.kind === 'u' && m.group === group);
  return v < 0 ? 0 : (values[v] ?? 0);
}

/** The LP's objective without unplaced penalties, borrowing and tie-breakers: a lower bound in dollars+preferences. */
function boundOf(model: PlacementModel, values: Float64Array): number {
  let sum = 0;
  model.vars.forEach((meta, v) => {
    if (meta.kind === 'u' || meta.kind === 'b') return;
    sum += model.dollarCost[v]! * (values[v] ?? 0);
  });
  return sum;
}

function costOf(p: Packing, options: readonly Option[], pools: Snapshot['pools']): PlanCost {
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
function better(
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

function taskOrder(requests: readonly TaskRequest[], groups: readonly Group[]): number[] {
  const groupOf = new Map<string, number>();
  for (const g of groups) for (const id of g.taskIds) groupOf.set(id, g.index);
  return requests.map((r) => groupOf.get(r.id)!);
}

function toPlacements(
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
      });
    }
  }
  return out;
}

function newNodesOf(p: Packing, pools: Snapshot['pools']): Plan['newNodes'] {
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
