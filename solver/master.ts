/**
 * The restricted model of column generation, solved round after round over the columns found so far:
 *
 *   min Σ_j (cost_j + ε) λ_j + Σ_g M_g u_g   s.t.   Σ_j a_gj λ_j + u_g ≥ n_g,   Σ_{j of t} λ_j ≤ N_t,
 *                                                    Σ_j use_qj λ_j ≤ cap_q
 *
 * Two ways, one interface: on HiGHS, one persistent model that columns are appended to, each solve
 * warm-started from the last basis, its row duals read directly; on an engine without that
 * (javascript-lp-solver), the dual of the restricted model is built and solved from scratch each round,
 * and the primal once at the end.
 */
import type { Column, NodeLimit, NodeType } from './columns.ts';
import { limitCostAt } from './columns.ts';
import type { Group, Option } from './groups.ts';
import { chooseBackend, type LpBackend, type LpBackends, type LpMaster, type LpModel } from './lp/index.ts';

/** A node-count epsilon, as in the aggregate model: free nodes are not used without need. */
const NODE_EPSILON = 1e-4;
/** Rounds a column's row may stay slack before it leaves the restricted model (re-solved models only). */
const MAX_SLACK_ROUNDS = 6;

/** One round's answer: the duals priced next. */
export interface RoundDuals {
  /** π per group, then ρ per limit. */
  duals: Float64Array;
  /** μ per node type (0 for types not limited in count). */
  mu: Float64Array;
  /** The restricted model's value (for the tail-off test). */
  objective: number;
  /** The dual's value, where it is exactly a dual-feasible point's (the re-solved dual). */
  dualValue?: number;
  /** Indices of columns to drop (slack too long), before new ones are added. */
  drop: number[];
}

export interface RestrictedModel {
  solve(columns: readonly Column[], timeLimitMs: number): RoundDuals | { failed: string };
  /** λ per column, then u per group. */
  primal(columns: readonly Column[], timeLimitMs: number): Float64Array | undefined;
  dispose(): void;
}

export interface RestrictedInput {
  groups: readonly Group[];
  options: readonly Option[];
  types: readonly NodeType[];
  penalty: readonly number[];
  limits: readonly NodeLimit[];
  limited: readonly boolean[];
  backends: LpBackends;
  demand: readonly number[];
}

/** The restricted model on the best engine at hand: a warm-started HiGHS master where there is one. */
export function restrictedModel(input: RestrictedInput): RestrictedModel {
  const highs = input.backends.highs;
  if (highs?.master) return warmMaster(input, highs);
  return resolvedDual(input);
}

/** Terms of a column in the model's rows, same-group options summed. */
function columnTerms(c: Column, input: RestrictedInput): { groups: Map<number, number>; uses: number[] } {
  const groups = new Map<number, number>();
  for (const [oi, k] of c.counts) {
    const g = input.options[oi]!.group;
    groups.set(g, (groups.get(g) ?? 0) + k);
  }
  const uses = input.limits.map((l) => {
    let use = 0;
    for (const [oi, k] of c.counts) use += k * (l.coef.get(oi) ?? 0);
    return use;
  });
  return { groups, uses };
}

function warmMaster(input: RestrictedInput, backend: LpBackend): RestrictedModel {
  const { groups, types, limits, limited, demand, penalty } = input;
  // Rows: demand per group, then count per limited type, then the limits.
  const countRow = new Int32Array(types.length).fill(-1);
  const rows: { lower: number; upper: number }[] = demand.map((n) => ({ lower: n, upper: Infinity }));
  types.forEach((t, ti) => {
    if (!limited[ti]) return;
    countRow[ti] = rows.length;
    rows.push({ lower: -Infinity, upper: t.count });
  });
  const limitRow = rows.length;
  for (const l of limits) rows.push({ lower: -Infinity, upper: l.cap });
  const master: LpMaster = backend.master!(rows);
  master.addColumns(groups.map((_g, gi) => ({ cost: penalty[gi]!, upper: demand[gi]!, rows: [[gi, 1]] })));
  let sent = 0;
  let last: { values: Float64Array; sent: number } | undefined;
  const send = (columns: readonly Column[]) => {
    master.addColumns(
      columns.slice(sent).map((c) => {
        const t = columnTerms(c, input);
        const r: [number, number][] = [...t.groups];
        if (countRow[c.type]! >= 0) r.push([countRow[c.type]!, 1]);
        t.uses.forEach((u, q) => u > 0 && r.push([limitRow + q, u]));
        return { cost: c.cost + NODE_EPSILON, upper: Infinity, rows: r };
      }),
    );
    sent = columns.length;
  };
  const run = (columns: readonly Column[], timeLimitMs: number) => {
    send(columns);
    const s = master.solve({ timeLimitMs });
    if (s.status === 'optimal') last = { values: s.values, sent };
    return s;
  };
  return {
    solve(columns, timeLimitMs) {
      const s = run(columns, timeLimitMs);
      if (s.status !== 'optimal') return { failed: s.status };
      const duals = new Float64Array(groups.length + limits.length);
      // A dual outside the dual's box is rounding: clamped, π to [0, M_g] and ρ, μ to ≥ 0.
      for (let g = 0; g < groups.length; g++) duals[g] = Math.min(penalty[g]!, Math.max(0, s.duals[g]!));
      for (let q = 0; q < limits.length; q++) duals[groups.length + q] = Math.max(0, -s.duals[limitRow + q]!);
      const mu = Float64Array.from(types, (_t, ti) =>
        countRow[ti]! >= 0 ? Math.max(0, -s.duals[countRow[ti]!]!) : 0,
      );
      return { duals, mu, objective: s.objective, drop: [] };
    },
    primal(columns, timeLimitMs) {
      if (!last || last.sent !== columns.length) run(columns, timeLimitMs);
      if (!last) return undefined;
      const out = new Float64Array(columns.length + groups.length);
      out.set(last.values.subarray(groups.length, groups.length + last.sent));
      out.set(last.values.subarray(0, groups.length), columns.length);
      return out;
    },
    dispose: () => master.dispose(),
  };
}

/** The JavaScript solver only for models small in both directions; HiGHS for the rest. */
function backendFor(lp: LpModel, backends: LpBackends): LpBackend {
  if (backends.highs && lp.constraints.length > 150) return backends.highs;
  return chooseBackend(lp, backends);
}

function resolvedDual(input: RestrictedInput): RestrictedModel {
  const { groups, options, types, limits, limited, demand, penalty, backends } = input;
  const slackRounds = new WeakMap<Column, number>();
  return {
    solve(columns, timeLimitMs) {
      // The dual: max Σ n_g π_g − Σ N_t μ_t − Σ cap_q ρ_q
      //   s.t.  Σ_g a_gj π_g − μ_t(j) − Σ_q use_qj ρ_q ≤ cost_j,  0 ≤ π_g ≤ M_g,  μ, ρ ≥ 0.
      const lp: LpModel = { variables: [], constraints: [] };
      groups.forEach((_g, gi) =>
        lp.variables.push({ name: `pi:${gi}`, cost: -demand[gi]!, upper: penalty[gi]! }),
      );
      limits.forEach((l, q) => lp.variables.push({ name: `rho:${q}`, cost: l.cap }));
      const mu = types.map((t, ti) => {
        if (!limited[ti]) return -1;
        lp.variables.push({ name: `mu:${ti}`, cost: t.count });
        return lp.variables.length - 1;
      });
      for (const c of columns) {
        const t = columnTerms(c, input);
        const terms: [number, number][] = [...t.groups];
        t.uses.forEach((u, q) => u > 0 && terms.push([groups.length + q, -u]));
        if (mu[c.type]! >= 0) terms.push([mu[c.type]!, -1]);
        lp.constraints.push({ name: `col`, terms, upper: c.cost });
      }
      const s = backendFor(lp, backends).solve(lp, { timeLimitMs });
      if (s.status !== 'optimal') return { failed: s.status };
      // Columns whose row has been slack (not in the primal's basis) for a while leave the model.
      const drop: number[] = [];
      columns.forEach((c, j) => {
        let activity = mu[c.type]! >= 0 ? -s.values[mu[c.type]!]! : 0;
        for (const [oi, k] of c.counts)
          activity += k * (s.values[options[oi]!.group]! - limitCostAt(limits, s.values, groups.length, oi));
        const slack = c.cost - activity > 1e-6 * Math.max(1, c.cost);
        const n = slack ? (slackRounds.get(c) ?? 0) + 1 : 0;
        slackRounds.set(c, n);
        if (n > MAX_SLACK_ROUNDS) drop.push(j);
      });
      return {
        duals: Float64Array.from(s.values.subarray(0, groups.length + limits.length)),
        mu: Float64Array.from(mu, (v) => (v >= 0 ? s.values[v]! : 0)),
        objective: -s.objective,
        dualValue: -s.objective,
        drop,
      };
    },
    primal: (columns, timeLimitMs) => solvePrimal(columns, input, timeLimitMs),
    dispose: () => undefined,
  };
}

/** The restricted model itself, for λ, solved once. */
function solvePrimal(
  columns: readonly Column[],
  input: RestrictedInput,
  timeLimitMs: number,
): Float64Array | undefined {
  const { types, demand, penalty, limits, limited, backends } = input;
  const lp: LpModel = { variables: [], constraints: [] };
  const rows = demand.map((): [number, number][] => []);
  const byType = types.map((): [number, number][] => []);
  const limitTerms = limits.map((): [number, number][] => []);
  columns.forEach((c, j) => {
    lp.variables.push({ name: `l:${j}`, cost: c.cost + NODE_EPSILON });
    const t = columnTerms(c, input);
    for (const [g, k] of t.groups) rows[g]!.push([j, k]);
    t.uses.forEach((u, q) => u > 0 && limitTerms[q]!.push([j, u]));
    byType[c.type]!.push([j, 1]);
  });
  demand.forEach((n, gi) => {
    lp.variables.push({ name: `u:${gi}`, cost: penalty[gi]!, upper: n });
    rows[gi]!.push([lp.variables.length - 1, 1]);
    lp.constraints.push({ name: `demand:${gi}`, terms: rows[gi]!, lower: n });
  });
  types.forEach((t, ti) => {
    if (limited[ti] && byType[ti]!.length > 0)
      lp.constraints.push({ name: `count:${ti}`, terms: byType[ti]!, upper: t.count });
  });
  limits.forEach((l, q) => {
    if (limitTerms[q]!.length > 0)
      lp.constraints.push({ name: 'limit', terms: limitTerms[q]!, upper: l.cap });
  });
  const s = backendFor(lp, backends).solve(lp, { timeLimitMs: Math.max(1, timeLimitMs) });
  return s.status === 'optimal' ? s.values : undefined;
}
