/**
 * Cost-optimal placement: a pure function from a snapshot of pools and nodes, a batch of requests and the
 * teams' policies to a plan — which node each task goes to, which nodes to add, what it costs, the LP
 * lower bound, the greedy baseline, and why.
 *
 * @example
 * import { plan, defaultBackends } from '../solver/index.ts';
 * const backends = await defaultBackends();
 * const result = plan({ pools }, requests, policies, { backends });
 * for (const g of result.groups) console.log(g.shape, g.chosen, g.why.kind, g.why.detail);
 */
export { plan } from './plan.ts';
export { planBatch } from './batch.ts';
export { planGangs } from './gang.ts';
export { chooseVictims } from './preempt.ts';
export type { PreemptionChoice, VictimCandidate } from './preempt.ts';
export type { GangExplanation, GangPlan, GangRequest } from './gang.ts';
export type { PlanOptions } from './plan.ts';
export { DURATION_BUCKETS, durationBucket, FALLBACK_STEP_PENALTY, SPOT_PREFERRED_PENALTY } from './groups.ts';
export { describeShape } from './explain.ts';
export { defaultBackends } from './backends.ts';
export { poolStates, taskRequest } from './snapshot.ts';
export * from './lp/index.ts';
export type {
  GpuAsk,
  GroupExplanation,
  NewNodes,
  NodeState,
  Placement,
  Plan,
  PlanCost,
  PoolState,
  Snapshot,
  TaskRequest,
  TeamUsage,
  Unplaced,
} from './types.ts';
