/**
 * `plan(snapshot, requests, policies, options) → Plan`: the whole placement decision for one batch.
 *
 * Steps, each timed: group identical requests → find each group's compatible pools → build and solve the
 * LP relaxation → round and pack onto concrete nodes, re-solving what is left and repairing leftovers →
 * pack the same input first-fit-decreasing (the floor: the plan is never worse than FFD) → explain.
 * The per-task greedy and the bound on the same placed work are diagnostics, on request.
 */
import type { Policy } from '../policies/index.ts';
import { placeByEviction } from './evict.ts';
import { explainGroups, unplacedReason } from './explain.ts';
import { ffdPack } from './ffd.ts';
import { greedyPack } from './greedy.ts';
import { groupRequests, incompatibility, makeOption, nodeClasses, type Option } from './groups.ts';
import { Ledger } from './ledger.ts';
import { chooseBackend, type LpBackends, type LpSolution } from './lp/index.ts';
import { buildModel, modelSize, modelWithoutLp } from './model.ts';
import {
  better,
  boundOf,
  costOf,
  newNodesOf,
  residualPools,
  roundIntents,
  taskOrder,
  toPlacements,
  unplacedIn,
} from './outcome.ts';
import { nodeLevelPlan } from './nodeplan.ts';
import { finishPacking, Packer, type Packing, type PackContext, packIntents } from './pack.ts';
import type { Plan, PlanCost, Snapshot, TaskRequest } from './types.ts';

/** Options of {@link plan}. Every field has a default. */
export interface PlanOptions {
  /** LP engines to choose from by model size (see `defaultBackends()`). Without any, the plan is FFD's. */
  backends?: LpBackends;
  /**
   * Wall-clock budget in milliseconds for the whole solve. When it runs out the best plan found so far is
   * returned and `solver.fallback` says which. Default 5000.
   */
  timeBudgetMs?: number;
  /** Millisecond clock for the timings and the budget. Default `performance.now`. */
  clock?: () => number;
  /**
   * Also compute the diagnostics (`plan.diagnostics`): the per-task greedy and FFD figures, and the bound
   * re-solved on the tasks the plan places. `gantry plan` asks for them; the broker's cycles do not.
   */
  diagnostics?: boolean;
}

/**
 * Variables up to which the broker's path solves the aggregate LP anyway (a few tens of milliseconds);
 * above it the aggregate LP and its bound are diagnostics (`diagnostics: true`).
 */
const SMALL_AGGREGATE_LP = 1500;

/** Share of the time left at the node-level model kept for its last solve, packing and repair. */
const RESERVE_SHARE = 0.25;

/**
 * Milliseconds per task kept back from the budget for writing the plan out: about twice what it took
 * (122 ms for 250K tasks on a loaded 2-core machine).
 */
const OUTPUT_MS_PER_TASK = 0.001;

/** LP rounds over what packing left over, before repair takes the rest one task at a time. */
const RESIDUAL_ROUNDS = 3;

/**
 * Plans a batch of requests at least expected cost.
 *
 * @example
 * const backends = await defaultBackends();
 * const result = plan({ pools }, requests, platform.policies, { backends });
 * console.log(result.cost.perHour, result.bounds.lp, result.unplaced);
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
  const lpOptionIds = all.map((_, i) => i);
  const context = (): PackContext => ({
    groups,
    pools,
    options: all,
    optionsByGroup,
    ledger: new Ledger(groups, pools, usage),
  });

  // The floor, first: whatever happens to the LP, the plan is at least as good as FFD.
  const ffd = ffdPack(context());
  const ffdCost = costOf(ffd, all, pools);
  phase('ffd');

  // The LP, over every option: no candidate filter, so its value is the aggregate bound of the batch.
  const modelInput = { groups, pools, options: all, classes, usage };
  const size = modelSize(modelInput);
  // On the broker's path the aggregate LP runs only where it is cheap or needed: the node-level model
  // leaves nothing out that it holds, but a batch with quota or budget rows is planned from the LP's
  // rounding too. Elsewhere it is not even built.
  const aggregate = options.diagnostics === true || size.variables <= SMALL_AGGREGATE_LP || size.policyRows;
  const model = aggregate ? buildModel(modelInput) : modelWithoutLp(modelInput);
  const backends = options.backends ?? {};
  const budget = options.timeBudgetMs ?? 5000;
  // Writing the plan out (placements, explanations) comes after every step the budget stops: kept free.
  const tail = requests.length * OUTPUT_MS_PER_TASK;
  const left = () => budget - tail - (clock() - started);
  let solution: LpSolution | undefined;
  let fallback: string | undefined;
  phase('model');
  const lpStart = clock();
  if (!backends.js && !backends.highs) fallback = 'no LP backend given: FFD plan';
  else if (!aggregate) fallback = undefined;
  else if (left() <= 0) fallback = 'the time budget ran out before the LP: FFD plan';
  else {
    const backend = chooseBackend(model.lp, backends);
    solution = backend.solve(model.lp, { timeLimitMs: left() });
    if (solution.status !== 'optimal')
      fallback = `LP ${solution.status}${solution.message ? ` (${solution.message})` : ''}: FFD plan`;
  }
  const lpMs = clock() - lpStart;
  phase('lp');

  let chosen: Packing = ffd;
  let chosenCost: PlanCost = ffdCost;
  let method = 'ffd';
  // FFD and then the local search, where FFD left tasks over: fewer unplaced than the floor itself.
  if (ffd.unplaced.length > 0 && left() > 0) {
    const ctx = context();
    const searched = ffdPack(ctx, (packer, packing) =>
      placeByEviction(ctx, packer, packing, () => left() <= 0),
    );
    const c = costOf(searched, all, pools);
    if (better({ packing: searched, cost: c }, { packing: chosen, cost: chosenCost }, model)) {
      chosen = searched;
      chosenCost = c;
      method = 'ffd+search';
    }
    phase('ffd+search');
  }
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
    let outOfTime = false;
    for (let round = 0; round < RESIDUAL_ROUNDS && overflow.some((n) => n > 0); round++) {
      if (left() <= 0) {
        outOfTime = true;
        break;
      }
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
      const s = chooseBackend(m.lp, backends).solve(m.lp, { timeLimitMs: left() });
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
    const packed = placeByEviction(ctx, packer, finishPacking(ctx, packer, overflow), () => left() <= 0);
    phase('repair');
    const packedCost = costOf(packed, all, pools);
    if (better({ packing: packed, cost: packedCost }, { packing: chosen, cost: chosenCost }, model)) {
      chosen = packed;
      chosenCost = packedCost;
      method = 'lp';
    } else {
      fallback = `${method === 'ffd' ? 'FFD' : 'FFD and local search'} was at least as good as the rounded LP: ${method} plan`;
    }
    if (outOfTime) fallback = `the time budget ran out during the residual rounds: ${method} plan`;
  }

  // The node-level model: columns are node contents, generated from the best packing so far.
  // Lower bound on cost + penalties of any plan (see NodePlan.bound); in dollars once the plan is chosen.
  let nodeLagrangian: number | undefined;
  let nodeNote: string | undefined;
  if ((backends.js || backends.highs) && left() > 0) {
    // Column generation stops early enough to leave time for turning its answer into nodes.
    const reserve = RESERVE_SHARE * left();
    const np = nodeLevelPlan({
      ctx: context,
      groups,
      pools,
      options: all,
      classes,
      seed: chosen,
      penalty: model.unplacedPenalty,
      model,
      backends,
      timeLeft: () => left() - reserve,
      outOfTime: () => left() <= 0,
      budgetLeft: left,
      prove: options.diagnostics === true,
      scale: chosenCost.objective,
    });
    phase('node-model');
    if (np) {
      nodeLagrangian = np.bound;
      nodeNote = np.note;
      const c = costOf(np.packing, all, pools);
      if (better({ packing: np.packing, cost: c }, { packing: chosen, cost: chosenCost }, model)) {
        chosen = np.packing;
        chosenCost = c;
        method = 'node-model';
        fallback = undefined;
      }
    } else nodeNote = 'the node-level model had no answer in the time budget';
  }

  const diagnostics: Plan['diagnostics'] = options.diagnostics
    ? {
        ffd: { ...ffdCost, unplaced: countUnplaced(ffd) },
        greedy: (() => {
          const greedy = greedyPack(context(), taskOrder(requests, groups));
          const c = costOf(greedy, all, pools);
          if (better({ packing: greedy, cost: c }, { packing: chosen, cost: chosenCost }, model)) {
            chosen = greedy;
            chosenCost = c;
            method = 'greedy';
            fallback = 'the per-task greedy was cheaper: greedy plan';
          }
          return { ...c, unplaced: countUnplaced(greedy) };
        })(),
      }
    : undefined;
  phase('greedy');

  let lpBound = Number.NaN;
  let lpUnplaced = Number.NaN;
  if (solution && solution.status === 'optimal') {
    lpBound = boundOf(model, solution.values);
    lpUnplaced = groups.reduce((n, g) => n + unplacedIn(model, solution!.values, g.index), 0);
  }
  const cost = chosenCost;
  // The node-level bound for what this plan leaves out: any plan leaving as many of each group unplaced
  // costs at least this much (the model holds quotas and budgets, so quota-bound tasks count as out).
  let nodeBound: number | undefined;
  if (nodeLagrangian !== undefined && Number.isFinite(nodeLagrangian)) {
    nodeBound = nodeLagrangian;
    for (const u of chosen.unplaced) nodeBound -= model.unplacedPenalty[u.group]! * u.count;
    if (!(nodeBound >= 0)) nodeBound = undefined;
  }
  phase('bound');
  const placements = toPlacements(chosen, groups, all, pools);
  const unplaced = chosen.unplaced.flatMap((u) => {
    const g = groups[u.group]!;
    const reason = unplacedReason(optionsByGroup[g.index]!.length > 0, u, excluded[g.index]!);
    return g.taskIds.slice(g.taskIds.length - u.count).map((taskId) => ({ taskId, reason }));
  });

  const newNodes = newNodesOf(chosen, pools);
  const explained = explainGroups({
    groups,
    pools,
    options: all,
    optionsByGroup,
    packing: chosen,
    model,
    solution,
    excluded,
  });
  phase('output');
  return {
    placements,
    newNodes,
    unplaced,
    cost,
    // Without the aggregate LP (the broker's path on large batches), the node-level bound when proven.
    bound: Number.isFinite(lpBound) ? lpBound : (nodeBound ?? Number.NaN),
    bounds: {
      lp: lpBound,
      lpUnplaced,
      ...(nodeBound !== undefined
        ? { node: Number.isFinite(lpBound) ? Math.max(lpBound, nodeBound) : nodeBound }
        : {}),
    },
    baseline: { ...ffdCost, unplaced: countUnplaced(ffd) },
    ...(diagnostics ? { diagnostics } : {}),
    groups: explained,
    solver: {
      backend: solution?.backend ?? 'none',
      status: solution?.status ?? 'skipped',
      method,
      ms: clock() - started,
      phases,
      lpMs,
      variables: aggregate ? model.lp.variables.length : size.variables,
      constraints: model.lp.constraints.length,
      groups: groups.length,
      pools: pools.length,
      ...(fallback ? { fallback } : {}),
      ...(nodeNote ? { nodeModel: nodeNote } : {}),
    },
  };
}

function countUnplaced(p: Packing): number {
  return p.unplaced.reduce((n, u) => n + u.count, 0);
}
