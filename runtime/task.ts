/**
 * Defining tasks. A task is a plain async function with a name, zod schemas for its input and output,
 * and the resources it needs. Calling it inside a workflow runs it where the broker places it and
 * returns its typed output; `task.override({...})` asks for different resources for one call.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash } from 'node:crypto';
import type { z } from 'zod';
import { parseDuration } from '../policies/quantities.ts';
import type { ExecutionStartRecord, ResourcesMsg } from '../protocol/index.ts';
import { NonRetriableError } from './errors.ts';
import type { ArtifactStore } from './artifacts.ts';
import type { LineageRecord } from './lineage.ts';

/** Resources as a task states them: quantities as in YAML (`'16Gi'`, `'H100:8'`, `['L4:1', 'A10G:1']`). */
export type Resources = ResourcesMsg;

/** How failures are retried. Out-of-memory escalation and preemption follow the same attempt count. */
export interface RetryPolicy {
  /** Attempts after the first. Default 0 (a bare number in `retries` sets this). */
  attempts: number;
  /** First backoff delay, ms. Default 500. */
  backoffMs?: number;
  /** Backoff cap, ms. Default 30 000. */
  maxBackoffMs?: number;
}

/**
 * Keeps workers warm for a task (Flyte's ReusePolicy): invocations go straight to a running worker
 * instead of through a solve cycle. Workers hold leased capacity until idle for `idleTtl`.
 */
export interface ReusePolicy {
  /** Workers to keep: a count, or `[min, max]` to grow under load. Default 1. */
  replicas?: number | [number, number];
  /** Stop a worker idle this long (`'10m'`, seconds). Default 10 minutes. */
  idleTtl?: string | number;
  /** Invocations one worker runs at once. Default 1. */
  concurrency?: number;
  /** Tasks with the same environment name and resources share workers. Default: the task's name. */
  environment?: string;
}

/** Everything a task is declared with. */
export interface TaskOptions<I extends z.ZodType, O extends z.ZodType> {
  /** Unique within the workflow's module graph; lineage and the cache key on it. */
  name: string;
  input: I;
  output: O;
  resources?: Resources;
  retries?: number | RetryPolicy;
  /** Longest one attempt may run (`'2h'`, seconds). */
  timeout?: string | number;
  /**
   * Reuse a successful output for the same task code and input. `version` replaces the code hash in
   * the key, to keep the cache across code changes that do not change results.
   */
  cache?: boolean | { version: string };
  reuse?: ReusePolicy;
  /** Set by `containerTask` and `commandTask`: the program the task runs (the pod's image on Kubernetes). */
  program?: ProgramSpec;
}

/** The program a container or command task runs. */
export interface ProgramSpec {
  image?: string;
  command: string;
  args: string[];
  env: Record<string, string>;
}

/** Per-call changes: resources, plus retries and timeout. Marked as an override to the broker. */
export type Override = Resources & { retries?: number | RetryPolicy; timeout?: string | number };

/** What a task's function receives beside its input. */
export interface TaskContext {
  readonly runId: string;
  readonly execution: string;
  readonly task: string;
  readonly attempt: number;
  /** Where it runs, as the broker placed it (`driver` for a workflow run in `gantry run`). */
  readonly placement: Placement;
  /**
   * Aborted when the node goes away, the lease is stopped (cancelled run, budget) or the task's timeout
   * passes; long work should watch it. `ctx.sleep` does.
   */
  readonly signal: AbortSignal;
  /**
   * Waits `ms` of the cluster's time: on a simulated cluster at `--speedup N`, `ms / N` of wall clock,
   * and the task is charged for `ms`. Rejects with the signal's reason when the signal aborts.
   *
   * @example
   * await ctx.sleep(90_000); // stands in for 90 s of work
   */
  sleep(ms: number): Promise<void>;
  /** The artifact store: `put` bytes to pass them by reference. */
  readonly artifacts: ArtifactStore;
  /** Set on each member of a gang task (`resources.nodes` > 1): its rank and the rendezvous. */
  readonly gang?: GangContext;
}

/**
 * A gang member's place in the gang, as distributed training frameworks expect it: one member per node,
 * rank 0's node is the rendezvous. {@link gangEnv} gives the conventional environment variables.
 */
export interface GangContext {
  rank: number;
  nodeRank: number;
  worldSize: number;
  masterAddr: string;
  masterPort: number;
}

/** `MASTER_ADDR`, `MASTER_PORT`, `WORLD_SIZE`, `RANK`, `NODE_RANK` of a gang member (what `torchrun` reads). */
export function gangEnv(g: GangContext): Record<string, string> {
  return {
    MASTER_ADDR: g.masterAddr,
    MASTER_PORT: String(g.masterPort),
    WORLD_SIZE: String(g.worldSize),
    RANK: String(g.rank),
    NODE_RANK: String(g.nodeRank),
  };
}

/** Where an execution ran, and at what price. */
export interface Placement {
  cluster: string;
  pool: string;
  node: string;
  capacityType: string;
  pricePerHour: number;
  cpuMilli: number;
  memoryMiB: number;
  gpuMilli: number;
  gpuModel: string | null;
  why: string;
}

/** The function a task wraps. */
export type TaskFn<I extends z.ZodType, O extends z.ZodType> = (
  input: z.output<I>,
  ctx: TaskContext,
) => Promise<z.input<O>> | z.input<O>;

/** A callable task. */
export interface Task<I extends z.ZodType = z.ZodType, O extends z.ZodType = z.ZodType> {
  (input: z.input<I>): Promise<z.output<O>>;
  readonly taskName: string;
  readonly options: TaskOptions<I, O>;
  /** sha256 of the task's name and function source: lineage records it, the cache keys on it. */
  readonly codeHash: string;
  readonly fn: TaskFn<I, O>;
  /** The same task with other resources (or retries, timeout) for the calls made through it. */
  override(changes: Override): (input: z.input<I>) => Promise<z.output<O>>;
}

/** How the runtime runs a call: implemented by the runtime client (runtime/client.ts). */
export interface Caller {
  call(task: Task, input: unknown, override: Override | undefined, scope: Scope): Promise<unknown>;
  map(task: Task, items: readonly unknown[], opts: MapOptions, scope: Scope): Promise<unknown[]>;
}

/** Options of `map`. */
export interface MapOptions {
  /** Items in flight at once. Default 1000 (cold tasks), or what the warm workers can take. */
  concurrency?: number;
  /** Return each failure in the item's place instead of throwing the first. */
  returnExceptions?: boolean;
  /** Resources for every item, as `task.override` would set them. */
  override?: Override;
  /** A label for the progress display. Default: the task's name. */
  label?: string;
}

/** The execution a call is made from: its run, its id (the parent of what it calls), its caller. */
export interface Scope {
  caller: Caller;
  runId: string;
  execution: string;
  team: string;
  /** The module a worker loads to find the tasks (the workflow file `gantry run` was given). */
  module: string;
  /** The workflow the run is of (for cost reports), when known. */
  workflow?: string | undefined;
  /** Where lineage records of calls made in this scope go. */
  record(rec: LineageRecord): void;
  /**
   * Where the starts of calls made in this scope go (when the broker placed them): the run's driver
   * writes them, so that history shows them running before they end.
   */
  started?(rec: Omit<ExecutionStartRecord, 'kind'>): void;
}

const scopes = new AsyncLocalStorage<Scope>();

/** Runs `fn` with `scope` as the current execution. */
export function withScope<T>(scope: Scope, fn: () => T): T {
  return scopes.run(scope, fn);
}

/** The current execution, or undefined outside any. */
export function currentScope(): Scope | undefined {
  return scopes.getStore();
}

// Shared by every copy of this module in the process (a test runner may load it twice).
const REGISTRY_KEY = Symbol.for('gantry.runtime.tasks');
const registry: Map<string, Task> = ((globalThis as Record<symbol, unknown>)[REGISTRY_KEY] ??=
  new Map()) as Map<string, Task>;

/** The task registered under `name` (by importing the module that defines it), if any. */
export function lookupTask(name: string): Task | undefined {
  return registry.get(name);
}

/** Names of every registered task. */
export function taskNames(): string[] {
  return [...registry.keys()];
}

const NAME = /^[A-Za-z][A-Za-z0-9_-]{0,99}$/;

/**
 * Declares a task.
 *
 * @example
 * export const preprocess = task(
 *   { name: 'preprocess', input: z.object({ rows: z.number() }), output: Dataset,
 *     resources: { cpu: 8, memory: '30Gi', spot: 'preferred' }, retries: 2 },
 *   async ({ rows }) => ({ path: `s3://data/${rows}`, sizeGiB: rows / 1e6 }),
 * );
 */
export function task<I extends z.ZodType, O extends z.ZodType>(
  options: TaskOptions<I, O>,
  fn: TaskFn<I, O>,
): Task<I, O> {
  if (!NAME.test(options.name))
    throw new NonRetriableError(
      `task name '${options.name}' must start with a letter and hold only letters, digits, _ and - (at most 100)`,
    );
  if (options.timeout !== undefined) parseDuration(options.timeout);
  const codeHash = createHash('sha256')
    .update(options.name)
    .update('\0')
    .update(fn.toString())
    .update(options.program ? `\0${JSON.stringify(options.program)}` : '')
    .digest('hex');
  const existing = registry.get(options.name);
  if (existing && existing.codeHash !== codeHash)
    throw new NonRetriableError(`two different tasks are named '${options.name}'; task names must be unique`);

  const call =
    (override: Override | undefined) =>
    (input: z.input<I>): Promise<z.output<O>> => {
      const scope = currentScope();
      if (!scope)
        return Promise.reject(
          new NonRetriableError(
            `task '${options.name}' was called outside a workflow: run the workflow with \`gantry run\` or runWorkflow()`,
          ),
        );
      return scope.caller.call(self as Task, input, override, scope) as Promise<z.output<O>>;
    };
  const self = Object.assign(call(undefined), {
    taskName: options.name,
    options,
    codeHash,
    fn,
    override: (changes: Override) => call(changes),
  }) as Task<I, O>;
  registry.set(options.name, self as Task);
  return self;
}

/** Retry settings with defaults filled in. */
export function retryPolicy(retries: number | RetryPolicy | undefined): Required<RetryPolicy> {
  const p = typeof retries === 'number' ? { attempts: retries } : (retries ?? { attempts: 0 });
  return { backoffMs: 500, maxBackoffMs: 30_000, ...p };
}

/** The task's timeout in ms, if it has one. */
export function timeoutMs(value: string | number | undefined): number | undefined {
  return value === undefined ? undefined : parseDuration(value) * 1000;
}
