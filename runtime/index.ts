/**
 * Gantry's workflow SDK. Tasks are plain async functions with zod-typed input and output and the
 * resources they need; a workflow is a task that calls tasks with ordinary control flow.
 *
 * @example
 * import { task, map, z } from 'gantry/runtime';
 * export const square = task({ name: 'square', input: z.number(), output: z.number() }, async (n) => n * n);
 * export default task({ name: 'sum-squares', input: z.array(z.number()), output: z.number() },
 *   async (xs) => (await map(square, xs)).reduce((a, b) => a + b, 0));
 */
import { z } from 'zod';
import { NonRetriableError } from './errors.ts';
import { currentScope, type MapOptions, type Task } from './task.ts';

export { z };
export {
  BudgetExceededError,
  MaxQueuedTimeExceededError,
  NonRetriableError,
  OutOfMemoryError,
  PolicyRefusedError,
  PreemptedError,
  RetryAfterError,
  RunCancelledError,
  TaskError,
  TimeoutError,
  ValidationError,
} from './errors.ts';
export { gangEnv, task } from './task.ts';
export { commandTask, containerTask } from './container-task.ts';
export type { ContainerTaskOptions, ProgramTaskOptions } from './container-task.ts';
export { Artifact } from './command-run.ts';
export type {
  GangContext,
  MapOptions,
  Override,
  Placement,
  ProgramSpec,
  Resources,
  RetryPolicy,
  ReusePolicy,
  Task,
  TaskContext,
  TaskOptions,
} from './task.ts';
export { Runtime } from './client.ts';
export type { OutputCache, RunEvent, RuntimeOptions } from './client.ts';
export { RequestBatcher } from './request-batcher.ts';
export type { RequestBatcherOptions } from './request-batcher.ts';
export { cancelRun, listRuns, loadWorkflow, RUN_HEARTBEAT_MS, runWorkflow, storeCache } from './run.ts';
export type { RunOptions, RunResult } from './run.ts';
export { openLocalArtifacts } from './artifacts.ts';
export type { ArtifactStore, CollectableArtifactStore, StoredArtifact } from './artifacts.ts';
export { createTaskHost } from './host.ts';
export { formatUsd } from './cost.ts';
export {
  edgesOf,
  inputsOf,
  lineageDot,
  lineageGraph,
  lineageText,
  outputsOf,
  readLineage,
} from './lineage.ts';
export type { LineageEdge, LineageGraph, LineageRecord, RunRecord } from './lineage.ts';
export { progressLines } from './progress.ts';
export type { Progress, ProgressFactory } from './progress.ts';

/**
 * Runs `task` over every item, at most `concurrency` at a time, and returns the outputs in the items'
 * order. Reusable tasks go to their warm workers in chunks. The first failure is thrown (with the
 * item's index) unless `returnExceptions` is set, in which case each failure takes its item's place.
 *
 * @example
 * const scores = await map(evaluate, shards, { concurrency: 64 });
 */
export function map<I extends z.ZodType, O extends z.ZodType>(
  task: Task<I, O>,
  items: readonly z.input<I>[],
  opts: MapOptions & { returnExceptions: true },
): Promise<(z.output<O> | Error)[]>;
export function map<I extends z.ZodType, O extends z.ZodType>(
  task: Task<I, O>,
  items: readonly z.input<I>[],
  opts?: MapOptions,
): Promise<z.output<O>[]>;
export function map(task: Task, items: readonly unknown[], opts: MapOptions = {}): Promise<unknown[]> {
  const scope = currentScope();
  if (!scope)
    return Promise.reject(
      new NonRetriableError(
        `map(${task.taskName}) was called outside a workflow: run it with \`gantry run\``,
      ),
    );
  return scope.caller.map(task, items, opts, scope);
}
