/**
 * What the solver reads and writes. Everything here is plain data: the solver is a pure function of a
 * snapshot, a batch of requests and the teams' policies.
 */
import type { CapacityType, Policy, SpotPreference } from '../policies/index.ts';
import type { Reason } from '../protocol/index.ts';

export type { Reason, ReasonKind } from '../protocol/index.ts';
import type { GangExplanation } from './gang.ts';

/** One way to satisfy a GPU request: `count` devices of `model` (`'*'`: any model). */
export interface GpuAsk {
  model: string;
  count: number;
}

/** A pending task's resource request, fully resolved (profiles and policy defaults applied). */
export interface TaskRequest {
  id: string;
  team: string;
  cpuMilli: number;
  memoryMiB: number;
  /** Alternatives: any one of them satisfies the task. Empty or absent: no GPU. */
  gpu?: readonly GpuAsk[];
  /** Overrides the policy's spot preference for this task. */
  spot?: SpotPreference;
  /** Expected run time in seconds; prices the task and the nodes it needs. */
  durationSeconds: number;
  /** Higher is placed first when capacity is short; defaults to the policy's priority. */
  priority?: number;
  /** A member of a gang: all `size` members are placed together, on distinct nodes of one pool, or none. */
  gang?: { id: string; size: number; rank: number };
}

/** An existing node and what is free on it. */
export interface NodeState {
  name: string;
  freeCpuMilli: number;
  freeMemoryMiB: number;
  /** Free thousandths of each GPU device (1000 = a whole free device). */
  freeGpuMilli: readonly number[];
}

/** A node pool as the solver sees it: shape and price of one node, running nodes, room to grow. */
export interface PoolState {
  id: string;
  cluster: string;
  name: string;
  region: string;
  instanceType: string;
  capacityType: CapacityType;
  cpuMilli: number;
  memoryMiB: number;
  gpuModel: string | null;
  gpuCount: number;
  /** $/hour for one node. */
  price: number;
  /** Spot interruptions per node-hour. */
  interruptionRate: number;
  /** Seconds from asking for a node until it takes work; paid for like any other time. */
  launchDelaySeconds: number;
  taints?: readonly { key: string; effect: string }[];
  /** Nodes running now with their free capacity. */
  nodes: readonly NodeState[];
  /** How many nodes may still be added (max nodes minus current). */
  maxNewNodes: number;
}

/** What a team already holds, counted against its quotas and budget. */
export interface TeamUsage {
  cpuMilli: number;
  memoryMiB: number;
  gpus: number;
  gpusByModel: Record<string, number>;
  /** $/hour of the team's running work. */
  spendPerHour: number;
}

/** The cluster state at the start of a solve cycle. */
export interface Snapshot {
  pools: readonly PoolState[];
  usage?: Readonly<Record<string, TeamUsage>>;
}

/** Where one task goes. */
export interface Placement {
  taskId: string;
  cluster: string;
  pool: string;
  poolId: string;
  /** An existing node's name, or a new node's id (`new:<pool id>#<n>`). */
  node: string;
  newNode: boolean;
  /** The task's share of the node's $/hour (dominant resource share). */
  pricePerHour: number;
  /** Index into `plan.groups`: the explanation of the task's group (a gang member's is in `plan.gangs`). */
  group?: number;
}

/** Nodes to add to one pool. */
export interface NewNodes {
  cluster: string;
  pool: string;
  poolId: string;
  instanceType: string;
  capacityType: CapacityType;
  count: number;
  pricePerHour: number;
  ids: string[];
}

/** A task the plan could not place, and why. */
export interface Unplaced {
  taskId: string;
  reason: Reason;
}

/** Expected cost of a plan. */
export interface PlanCost {
  /** $/hour of the nodes the plan adds. */
  perHour: number;
  /** Expected dollars: added nodes × how long they are needed, plus spot rework risk. */
  expected: number;
  /** `expected` plus the preference terms (spot preference, fallback order): what the solver minimises. */
  objective: number;
}

/** Why a group of identical tasks went where it went. */
export interface GroupExplanation {
  /** The first task's id without its trailing `-<n>`: a name people recognise. */
  group: string;
  team: string;
  tasks: number;
  shape: string;
  /**
   * Pools that received tasks (on their running nodes, or on nodes the plan adds), with how many, the
   * expected cost per task and why there.
   */
  chosen: { poolId: string; onRunningNodes: boolean; tasks: number; costPerTask: number; why: Reason }[];
  /** The cheapest pool the group did not use, its cost per task, and why not. */
  nextBest?: { poolId: string; costPerTask: number; whyNot: Reason };
  /**
   * What decided the group: `cost` when it went to its cheapest compatible capacity, `preference`, or what
   * stopped it from going somewhere cheaper or from being placed at all.
   */
  why: Reason;
  unplaced: number;
}

/** The solver's result. */
export interface Plan {
  placements: Placement[];
  newNodes: NewNodes[];
  unplaced: Unplaced[];
  cost: PlanCost;
  /**
   * The aggregate LP bound on the whole batch (`bounds.lp`). Where the aggregate LP was not solved (the
   * broker's path on a large batch without quotas or budgets), the node-level bound (`bounds.node`),
   * else NaN.
   */
  bound: number;
  /**
   * Lower bounds on the whole batch, on the objective without penalties (dollars and preferences). No plan
   * that places as many tasks as the LP (all but `lpUnplaced`) can cost less than `lp`. `node`, when
   * computed, is the node-level model's bound (every node's contents fit it, quotas and budgets hold)
   * for what this plan leaves out: no plan leaving at most as many tasks of each group unplaced costs
   * less; it is a Lagrangian bound, valid whether or not column generation converged
   * (`solver.nodeModel` says when it did not), and at least `lp`. `lp` and `lpUnplaced` are NaN where
   * the aggregate LP was not solved; `diagnostics: true` always solves it.
   */
  bounds: { lp: number; node?: number; lpUnplaced: number };
  /** What first-fit-decreasing (constrained first, best fit, price per slot) gets on the same input. */
  baseline: PlanCost & { unplaced: number };
  /** On request (`diagnostics: true`): the FFD and per-task greedy figures on the same input. */
  diagnostics?: { ffd: PlanCost & { unplaced: number }; greedy: PlanCost & { unplaced: number } };
  groups: GroupExplanation[];
  /** Where each gang of the batch went, or why it did not (set when the batch had gangs). */
  gangs?: GangExplanation[];
  solver: {
    backend: string;
    status: string;
    /**
     * Where the returned plan came from: `node-model` (node-level column generation), `lp` (rounded,
     * packed, repaired), `ffd` or `greedy`.
     */
    method: string;
    ms: number;
    /** Milliseconds per step: options, model, lp, greedy, pack, residual, repair, bound. */
    phases: Record<string, number>;
    lpMs: number;
    variables: number;
    constraints: number;
    groups: number;
    pools: number;
    /** Set when the plan is not the rounded LP's: what was used instead and why. */
    fallback?: string;
    /**
     * Set when column generation stopped before it converged: why (time budget, search limit,
     * tail-off); when it names the time budget, the plan is the best found when the budget ran out.
     */
    nodeModel?: string;
  };
}

/** A team's policy as the solver reads it. */
export type SolverPolicy = Policy;
