/**
 * The node-level pricer: the most valuable contents of one node of a type at given duals, a bounded
 * knapsack over cpu, memory, GPU thousandths and whole devices, by depth-first branch and bound.
 *
 * What keeps the search small: options of one shape are taken best first (a worse one only once the
 * better one is used up), a shape that a no larger and no less valuable one makes pointless is dropped,
 * no node takes more tasks of a group than the group has, and every search node is bounded by the
 * tighter of each resource alone and a surrogate of all four whose weights are the duals of the node's
 * linear relaxation (at the root that bound is the relaxation's value).
 */
import type { NodeType } from './columns.ts';

const PRICER_NODE_LIMIT = 20_000;
const EPS = 1e-7;
/** Columns a type may add per round: the pricer's best and the incumbents it passed on the way. */
export const COLUMNS_PER_TYPE = 3;
/** Pivots of the relaxation's simplex: four rows need few; a cap only guards against cycling. */
const MAX_PIVOTS = 60;

/** What {@link price} finds for one type. */
export interface Priced {
  value: number;
  counts: Map<number, number>;
  /** Whether the search proved `value` the best (the node limit did not stop it). */
  exact: boolean;
  /** At least the best value of any contents: `value` when exact, else the relaxation's. */
  upper: number;
  /** The incumbents the search went through, best last. */
  alternatives: Map<number, number>[];
}

/** A type's items by shape, computed once per type. */
interface Shapes {
  /** Items of shape k are `item[start[k]]` up to `item[start[k + 1]]`. */
  start: Int32Array;
  item: Int32Array;
  /** Per entry of `item`: its group, option and per-task cost. */
  group: Int32Array;
  option: Int32Array;
  cost: Float64Array;
  /** Weights per shape: cpu, memory, GPU thousandths, whole devices. */
  w: Float64Array;
  /** How many tasks of the shape one empty node holds. */
  fit: Int32Array;
}

/** Whether shape a is at most shape b in every resource. */
function noLarger(w: Float64Array, a: number, b: number): boolean {
  for (let r = 0; r < 4; r++) if (w[a * 4 + r]! > w[b * 4 + r]!) return false;
  return true;
}

const shapesOf = new WeakMap<NodeType, Shapes>();

function shapes(type: NodeType): Shapes {
  const had = shapesOf.get(type);
  if (had) return had;
  const index = new Map<string, number>();
  const members: number[][] = [];
  const weights: number[] = [];
  type.items.forEach((it, i) => {
    if (it.cpu > type.cpuMilli || it.mem > type.memoryMiB || it.gpu > type.gpuMilli) return;
    if (it.whole > type.wholeGpus) return;
    const key = `${it.cpu}|${it.mem}|${it.gpu}|${it.whole}`;
    let k = index.get(key);
    if (k === undefined) {
      k = members.length;
      index.set(key, k);
      members.push([]);
      weights.push(it.cpu, it.mem, it.gpu, it.whole);
    }
    members[k]!.push(i);
  });
  const n = members.length;
  const start = new Int32Array(n + 1);
  members.forEach((m, k) => (start[k + 1] = start[k]! + m.length));
  const item = Int32Array.from(members.flat());
  const group = Int32Array.from(item, (i) => type.items[i]!.group);
  const option = Int32Array.from(item, (i) => type.items[i]!.option);
  const cost = Float64Array.from(item, (i) => type.items[i]!.cost);
  const w = Float64Array.from(weights);
  const cap = [type.cpuMilli, type.memoryMiB, type.gpuMilli, type.wholeGpus];
  const fit = new Int32Array(n);
  for (let k = 0; k < n; k++) {
    let most = Infinity;
    for (let r = 0; r < 4; r++)
      if (w[k * 4 + r]! > 0) most = Math.min(most, Math.floor(cap[r]! / w[k * 4 + r]! + 1e-9));
    fit[k] = Number.isFinite(most) ? most : 0;
  }
  const out = { start, item, group, option, cost, w, fit };
  shapesOf.set(type, out);
  return out;
}

/** One shape worth searching: its options worth taking, best first, and how many of each one node may take. */
interface LiveShape {
  shape: number;
  /** Entries of `Shapes.item`. */
  entries: number[];
  profit: number[];
  cap: number[];
}

/**
 * The most valuable contents of one node of the type at the duals `pi` (per group), less `extra` per
 * option (what quota and budget duals charge), with at most `demand[g]` tasks of group g when given.
 * `exact` is false when `limit` search nodes stopped the search before it proved the best.
 */
export function price(
  type: NodeType,
  pi: ArrayLike<number>,
  limit = PRICER_NODE_LIMIT,
  extra?: ArrayLike<number>,
  demand?: ArrayLike<number>,
): Priced {
  const sh = shapes(type);
  const ns = sh.fit.length;
  const live: LiveShape[] = [];
  for (let k = 0; k < ns; k++) {
    const fit = sh.fit[k]!;
    let best = -1;
    let bestP = EPS;
    let positive = 0;
    for (let e = sh.start[k]!; e < sh.start[k + 1]!; e++) {
      const p = pi[sh.group[e]!]! - sh.cost[e]! - (extra ? extra[sh.option[e]!]! : 0);
      if (p <= EPS || (demand && demand[sh.group[e]!]! < 1)) continue;
      positive++;
      if (p > bestP) {
        bestP = p;
        best = e;
      }
    }
    if (best < 0 || fit <= 0) continue;
    const c0 = capFor(sh, best, fit, demand);
    if (positive === 1 || c0 >= fit) {
      live.push({ shape: k, entries: [best], profit: [bestP], cap: [c0] });
      continue;
    }
    // Several options of the shape, the best not filling a node alone: the next ones too, best first,
    // until together they would.
    const list: { e: number; p: number }[] = [];
    for (let e = sh.start[k]!; e < sh.start[k + 1]!; e++) {
      const p = pi[sh.group[e]!]! - sh.cost[e]! - (extra ? extra[sh.option[e]!]! : 0);
      if (p > EPS && !(demand && demand[sh.group[e]!]! < 1)) list.push({ e, p });
    }
    list.sort((a, b) => b.p - a.p);
    const x: LiveShape = { shape: k, entries: [], profit: [], cap: [] };
    let total = 0;
    for (const { e, p } of list) {
      if (total >= fit) break;
      const c = capFor(sh, e, fit, demand);
      x.entries.push(e);
      x.profit.push(p);
      x.cap.push(c);
      total += c;
    }
    live.push(x);
  }
  // A shape is pointless when one no larger in any resource is worth at least as much per task and
  // has, in its best option alone, as many tasks as fit a node.
  live.sort((a, b) => b.profit[0]! - a.profit[0]!);
  const useful: LiveShape[] = [];
  for (const x of live) {
    let dominated = false;
    for (const y of useful)
      if (y.cap[0]! >= sh.fit[y.shape]! && noLarger(sh.w, y.shape, x.shape)) {
        dominated = true;
        break;
      }
    if (!dominated) useful.push(x);
  }
  const capOf = [type.cpuMilli, type.memoryMiB, type.gpuMilli, type.wholeGpus];
  const y = relaxationDuals(
    useful.map((x) => ({ w: sh.w.subarray(x.shape * 4, x.shape * 4 + 4), p: x.profit[0]! })),
    capOf,
  );

  // Densest first by the surrogate: the first dive is the relaxation's greedy, a good incumbent.
  const density = useful.map((x) => {
    const s = surrogateOf(sh.w, y, x.shape);
    return s > 0 ? x.profit[0]! / s : Infinity;
  });
  const order = useful
    .map((_x, i) => i)
    .sort((a, b) => density[b]! - density[a]! || useful[b]!.profit[0]! - useful[a]!.profit[0]!);
  // The search's items: each shape's members in turn, best first.
  const items: number[] = [];
  const profit: number[] = [];
  const cap: number[] = [];
  const shapeOf: number[] = [];
  const follows: number[] = [];
  for (const u of order) {
    const x = useful[u]!;
    x.entries.forEach((e, m) => {
      items.push(sh.option[e]!);
      profit.push(x.profit[m]!);
      cap.push(x.cap[m]!);
      shapeOf.push(x.shape);
      follows.push(m > 0 ? 1 : 0);
    });
  }
  const n = items.length;
  const w = new Float64Array(n * 5);
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < 4; r++) w[i * 5 + r] = sh.w[shapeOf[i]! * 4 + r]!;
    w[i * 5 + 4] = surrogateOf(sh.w, y, shapeOf[i]!);
  }
  // Suffix maxima of profit per unit of each resource and of the surrogate: what the rest can add.
  const ratio = new Float64Array((n + 1) * 5);
  for (let i = n - 1; i >= 0; i--)
    for (let r = 0; r < 5; r++) {
      const x = w[i * 5 + r]!;
      ratio[i * 5 + r] = Math.max(ratio[(i + 1) * 5 + r]!, x > 0 ? profit[i]! / x : Infinity);
    }
  const left = new Float64Array(5);
  for (let r = 0; r < 4; r++) left[r] = capOf[r]!;
  left[4] = y[0]! * capOf[0]! + y[1]! * capOf[1]! + y[2]! * capOf[2]! + y[3]! * capOf[3]!;
  const st: Search = {
    n,
    items,
    profit: Float64Array.from(profit),
    cap: Int32Array.from(cap),
    follows: Uint8Array.from(follows),
    w,
    ratio,
    left,
    take: new Int32Array(n),
    limit,
    nodes: 0,
    exact: true,
    best: 0,
    bestCounts: new Map(),
    alternatives: [],
  };
  const root = n > 0 ? searchBound(st, 0) : 0;
  visit(st, 0, 0);
  const { best, bestCounts, alternatives, exact } = st;
  // Items worth at most EPS each were left out of the search: as many as fit could add that much.
  let most = 0;
  for (const it of type.items) most = Math.max(most, Math.floor(type.cpuMilli / Math.max(it.cpu, 1)));
  return {
    value: best,
    counts: bestCounts,
    exact,
    upper: (exact || n === 0 ? best : Math.max(best, root)) + EPS * most,
    alternatives,
  };
}

/** Shape k's weight in the surrogate resource. */
function surrogateOf(w: Float64Array, y: Float64Array, k: number): number {
  let s = 0;
  for (let r = 0; r < 4; r++) s += y[r]! * w[k * 4 + r]!;
  return s;
}

/** How many tasks of entry `e` one node may take: as many as fit, no more than its group has. */
function capFor(sh: Shapes, e: number, fit: number, demand: ArrayLike<number> | undefined): number {
  return demand ? Math.min(fit, Math.floor(demand[sh.group[e]!]! + 1e-9)) : fit;
}

/** The branch and bound's state: items in search order, room left (four resources and the surrogate). */
interface Search {
  n: number;
  /** Option of each item. */
  items: number[];
  profit: Float64Array;
  cap: Int32Array;
  /** 1 where the item is a worse option of the previous item's shape. */
  follows: Uint8Array;
  /** Weights, five per item. */
  w: Float64Array;
  /** Suffix maxima of profit per unit, five per item. */
  ratio: Float64Array;
  left: Float64Array;
  take: Int32Array;
  limit: number;
  nodes: number;
  exact: boolean;
  best: number;
  bestCounts: Map<number, number>;
  alternatives: Map<number, number>[];
}

/** What items `i` onwards can add at most: the tightest of the resources' and the surrogate's bounds. */
function searchBound(st: Search, i: number): number {
  let ub = Infinity;
  for (let r = 0; r < 5; r++) {
    const q = st.ratio[i * 5 + r]!;
    if (q < Infinity) ub = Math.min(ub, st.left[r]! * q);
  }
  return ub;
}

function visit(st: Search, i: number, value: number): void {
  if (++st.nodes > st.limit) {
    st.exact = false;
    return;
  }
  const { take, left, w } = st;
  if (value > st.best + EPS) {
    st.best = value;
    st.bestCounts = new Map();
    for (let j = 0; j < i; j++) if (take[j]! > 0) st.bestCounts.set(st.items[j]!, take[j]!);
    st.alternatives.push(st.bestCounts);
    if (st.alternatives.length > COLUMNS_PER_TYPE) st.alternatives.shift();
  }
  if (i >= st.n) return;
  if (value + searchBound(st, i) <= st.best + EPS) return;
  // A worse option of a shape only once the better one before it is used up.
  let most = st.follows[i] && take[i - 1]! < st.cap[i - 1]! ? 0 : st.cap[i]!;
  for (let r = 0; r < 4; r++) {
    const x = w[i * 5 + r]!;
    if (x > 0) most = Math.min(most, Math.floor(left[r]! / x + 1e-9));
  }
  const p = st.profit[i]!;
  for (let k = Math.max(0, most); k >= 0 && st.exact; k--) {
    for (let r = 0; r < 5; r++) left[r] = left[r]! - k * w[i * 5 + r]!;
    take[i] = k;
    visit(st, i + 1, value + k * p);
    for (let r = 0; r < 5; r++) left[r] = left[r]! + k * w[i * 5 + r]!;
  }
  take[i] = 0;
}

/**
 * Duals of the node's linear relaxation, max Σ p_i x_i s.t. Σ_i w_ir x_i ≤ cap_r, x ≥ 0 (each resource
 * scaled to the node), by a small tableau simplex: non-negative weights per resource, per unit of it.
 * Any non-negative weights make a valid surrogate; these make it as tight as the relaxation.
 */
function relaxationDuals(
  items: readonly { w: ArrayLike<number>; p: number }[],
  cap: readonly number[],
): Float64Array {
  const y = new Float64Array(4);
  const rows = [0, 1, 2, 3].filter((r) => cap[r]! > 0);
  const m = rows.length;
  const n = items.length;
  if (n === 0 || m === 0) return y;
  const width = n + m + 1;
  const t = new Float64Array((m + 1) * width);
  rows.forEach((r, i) => {
    items.forEach((it, j) => (t[i * width + j] = it.w[r]! / cap[r]!));
    t[i * width + n + i] = 1;
    t[i * width + n + m] = 1;
  });
  const z = m * width;
  items.forEach((it, j) => (t[z + j] = -it.p));
  for (let pivot = 0; pivot < MAX_PIVOTS; pivot++) {
    let col = -1;
    for (let j = 0; j < n + m; j++) if (t[z + j]! < -1e-12 && (col < 0 || t[z + j]! < t[z + col]!)) col = j;
    if (col < 0) break;
    let row = -1;
    let ratio = Infinity;
    for (let i = 0; i < m; i++) {
      const a = t[i * width + col]!;
      if (a > 1e-12 && t[i * width + n + m]! / a < ratio) {
        ratio = t[i * width + n + m]! / a;
        row = i;
      }
    }
    if (row < 0) break;
    const a = t[row * width + col]!;
    for (let j = 0; j < width; j++) t[row * width + j] = t[row * width + j]! / a;
    for (let i = 0; i <= m; i++) {
      if (i === row) continue;
      const f = t[i * width + col]!;
      if (f === 0) continue;
      for (let j = 0; j < width; j++) t[i * width + j] = t[i * width + j]! - f * t[row * width + j]!;
    }
  }
  rows.forEach((r, i) => (y[r] = Math.max(0, t[z + n + i]!) / cap[r]!));
  return y;
}
