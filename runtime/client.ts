/**
 * The runtime client: turns task calls into broker requests, follows each to its result and retries
 * typed failures (more memory after an OOM, backoff, RetryAfter). The cold attempt is in cold.ts, warm
 * workers in warm-pool.ts, `map` in map.ts, retry decisions in retry.ts, lineage records in
 * attempt-record.ts. One client serves a whole run; hosts make their own for nested calls.
 */
import { TaskStates } from './task-states.ts';
import { randomBytes } from 'node:crypto';
import {
  encodeJson,
  type LeaseMsg,
  type ResultMsg,
  type RunEvent as RunEventMsg,
  subjects,
  type Transport,
  type ValueMsg,
} from '../protocol/index.ts';
import { ArtifactMissingError, type ArtifactStore } from './artifacts.ts';
import { attemptRecord, nestedLineage, type Outcome, type RecordDetail } from './attempt-record.ts';
import { askBroker } from './broker-request.ts';
import { RequestBatcher } from './request-batcher.ts';
import { coldAttempt } from './cold.ts';
import { gangAttempt } from './gang.ts';
import { costUsd, resultCostUsd } from './cost.ts';
import { fromErrorMsg, OutOfMemoryError, TaskError } from './errors.ts';
import { placementOf } from './ids.ts';
import { mapTask } from './map.ts';
import { type Progress, type ProgressFactory, defaultProgress } from './progress.ts';
import { LeaseWatch, type ResultLookup } from './lease-watch.ts';
import { KnownValues, nestedValues, refsOf } from './refs.ts';
import { isFinal, nextAttempt, overrideResources } from './retry.ts';
import {
  type Caller,
  type MapOptions,
  type Override,
  type Resources,
  retryPolicy,
  type Scope,
  type Task,
  timeoutMs,
} from './task.ts';
import { checkValue, decodeValue, encodeValue, valueHash } from './values.ts';
import { WorkerPool } from './warm-pool.ts';

/** What `gantry run` prints as a run goes: placements, retries, ends. Published on the run's subject. */
export type RunEvent = RunEventMsg;

/** Options of {@link Runtime}. */
export interface RuntimeOptions {
  transport: Transport;
  artifacts: ArtifactStore;
  /** Simulated seconds per wall-clock second (simulated clusters run faster); costs scale by it. */
  timeScale?: number;
  /** Values over this many bytes of JSON go by reference. */
  inlineLimit?: number;
  /** Wait this long for the broker's answer before asking again with the same request id. */
  replyTimeoutMs?: number;
  /**
   * Set when this runtime runs inside a cluster's task host (nested calls): requests go through the
   * cluster's agent subject, which its credential may use, instead of the team's.
   */
  cluster?: string;
  /** Remembers outputs of tasks with `cache` set; without it nothing is cached. */
  cache?: OutputCache;
  /**
   * Where results are kept durably (over NATS, the team's results stream): a result published while
   * this runtime was reconnecting is read back from it instead of the task running again.
   */
  results?: ResultLookup;
  /** Progress display for `map`; `false` for none. Default: a bar on a TTY, lines otherwise. */
  progress?: ProgressFactory | false;
  clock?: () => number;
}

/** Where cached outputs live (the runtime store in `gantry run`). */
export interface OutputCache {
  get(key: string): Promise<ValueMsg | undefined>;
  put(key: string, value: ValueMsg): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Turns task calls into placed, retried, recorded executions. */
export class Runtime implements Caller {
  readonly transport: Transport;
  readonly artifacts: ArtifactStore;
  readonly #opts: RuntimeOptions;
  readonly #clock: () => number;
  readonly #pools = new Map<string, WorkerPool>();
  /** Values task calls returned, so that lineage finds them inside later inputs. */
  readonly known = new KnownValues();
  /** Runs the broker cancelled or abandoned (a task call heard so): they end as cancelled. */
  readonly cancelledRuns = new Map<string, TaskError>();
  /** Deadlines of leased calls, renewed by the broker (lease-watch.ts). @internal for cold.ts */
  readonly leases: LeaseWatch;
  /** The task states its calls follow, one subscription per run. @internal for cold.ts and warm-pool.ts */
  readonly states: TaskStates;
  #seq = 0;
  /** The team's broker requests, sent many per message (request-batcher.ts). */
  readonly #batcher: RequestBatcher;

  constructor(opts: RuntimeOptions) {
    this.#opts = opts;
    this.transport = opts.transport;
    this.artifacts = opts.artifacts;
    this.#clock = opts.clock ?? Date.now;
    this.leases = new LeaseWatch(opts.transport, { cluster: opts.cluster, clock: this.#clock });
    this.states = new TaskStates(opts.transport);
    this.#batcher = new RequestBatcher(opts.transport, {
      ...(opts.replyTimeoutMs !== undefined ? { replyTimeoutMs: opts.replyTimeoutMs } : {}),
      clock: this.#clock,
      follower: this.leases,
    });
  }

  /** The result `cluster` published for `execution`, when results are kept. @internal for cold.ts */
  findResult(team: string, execution: string, cluster: string): Promise<ResultMsg | undefined> {
    return this.#opts.results?.find(team, execution, cluster) ?? Promise.resolve(undefined);
  }

  /** A new execution id under `runId`. */
  nextExecution(runId: string): string {
    return `${runId}-${(this.#seq++).toString(36)}${randomBytes(2).toString('hex')}`;
  }

  async call(task: Task, input: unknown, override: Override | undefined, scope: Scope): Promise<unknown> {
    const execution = this.nextExecution(scope.runId);
    const checked = checkValue(task.options.input, input, { task: task.taskName, side: 'input' });
    const value = await encodeValue(checked, this.artifacts, this.#opts.inlineLimit);
    const refs = refsOf(this.known, input, checked, valueHash(value));
    return this.execute(task, value, refs, override, scope, execution, 0);
  }

  map(task: Task, items: readonly unknown[], opts: MapOptions, scope: Scope): Promise<unknown[]> {
    return mapTask(this, task, items, opts, scope);
  }

  /**
   * Checks an output against the task's schema and remembers it (and what is inside) for lineage.
   * @internal for map.ts
   */
  async checkOutput(task: Task, value: ValueMsg): Promise<{ output: unknown; refs: string[] }> {
    const output = checkValue(task.options.output, await decodeValue(value, this.artifacts), {
      task: task.taskName,
      side: 'output',
    });
    const whole = valueHash(value);
    const nested = nestedValues(output);
    this.known.remember(output, whole, nested);
    return { output, refs: [...new Set(nested.map((n) => n.hash))].filter((h) => h !== whole) };
  }

  /**
   * Sends a call and its retries from `firstAttempt` (after `firstError`); resolves with the checked
   * output. @internal for map.ts
   */
  async execute(
    task: Task,
    input: ValueMsg,
    inputRefs: string[],
    override: Override | undefined,
    scope: Scope,
    execution: string,
    firstAttempt: number,
    firstError?: unknown,
  ): Promise<unknown> {
    const name = task.taskName;
    const policy = retryPolicy(override?.retries ?? task.options.retries);
    let resources: Resources = { ...task.options.resources, ...overrideResources(override) };
    const overridden = override !== undefined;
    const limitMs = timeoutMs(override?.timeout ?? task.options.timeout);
    const cacheKey = this.#cacheKey(task, input);
    // Records one attempt's lineage (with the resources it asked for).
    const record = (attempt: number, startedAt: number, endedAt: number, how: RecordDetail) =>
      scope.record(
        attemptRecord(
          { task, scope, execution, input, inputRefs, asked: resources, override: overridden },
          attempt,
          startedAt,
          endedAt,
          how,
        ),
      );
    if (cacheKey && firstAttempt === 0) {
      const hit = await this.#opts.cache!.get(cacheKey);
      if (hit) {
        const now = this.#clock();
        // A value the artifact store no longer keeps (collected) is a miss: the task runs again.
        const decoded = await this.checkOutput(task, hit).catch((err: unknown) => {
          if (err instanceof ArtifactMissingError) return undefined;
          throw err;
        });
        if (decoded) {
          this.emit(scope, { type: 'cached', execution, task: name, attempt: 0, at: now });
          record(0, now, now, { hit, outputRefs: decoded.refs });
          return decoded.output;
        }
      }
    }
    let pending = firstError;
    for (let attempt = firstAttempt; ; attempt++) {
      if (pending !== undefined) {
        const err = pending;
        pending = undefined;
        const next = nextAttempt(err, attempt, policy, resources);
        if (!next) throw err;
        if (next.delayMs > 0) await sleep(next.delayMs);
        resources = next.resources;
        this.emit(scope, {
          type: 'retry',
          execution,
          task: name,
          attempt,
          at: this.#clock(),
          message: next.why,
        });
      }
      const startedAt = this.#clock();
      let outcome: Outcome;
      try {
        outcome = await this.#attempt(task, input, resources, overridden, scope, execution, attempt, limitMs);
      } catch (err) {
        if (err instanceof TaskError) {
          err.task ??= name;
          err.execution ??= execution;
        }
        record(attempt, startedAt, this.#clock(), { err });
        if (isFinal(err)) throw err;
        pending = err;
        continue;
      }
      const { result } = outcome;
      for (const rec of await nestedLineage(result, this.artifacts)) scope.record(rec);
      const costUsd =
        outcome.lostCostUsd +
        (outcome.membersCostUsd ?? 0) +
        this.costOfResult(outcome.lease.pricePerHour, result);
      const err = result.ok ? undefined : fromErrorMsg(result.error, { task: name, execution });
      if (err instanceof OutOfMemoryError && err.memoryMiB === undefined)
        err.data.memoryMiB = outcome.lease.memoryMiB;
      let checked: { output: unknown; refs: string[] } | undefined;
      let invalid: unknown;
      if (result.ok)
        checked = await this.checkOutput(task, result.output).catch((e: unknown) => void (invalid = e));
      record(attempt, result.startedAt, result.endedAt, {
        outcome,
        costUsd,
        ...(result.ok ? { output: result.output, outputRefs: checked?.refs ?? [] } : { err }),
      });
      this.emit(scope, {
        type: err ? 'failed' : 'succeeded',
        execution,
        task: name,
        attempt,
        at: result.endedAt,
        placement: placementOf(outcome.lease),
        costUsd,
        ...(err ? { message: `${err.name}: ${err.message}` } : {}),
      });
      if (result.ok) {
        if (!checked) throw invalid;
        if (cacheKey) await this.#opts.cache!.put(cacheKey, result.output);
        return checked.output;
      }
      if (isFinal(err)) throw err;
      pending = err;
    }
  }

  /** One attempt: on a warm worker for reusable tasks, else through the broker. */
  #attempt(
    task: Task,
    input: ValueMsg,
    resources: Resources,
    overridden: boolean,
    scope: Scope,
    execution: string,
    attempt: number,
    limitMs: number | undefined,
  ): Promise<Outcome> {
    const requestId = attempt === 0 ? execution : `${execution}-a${attempt}`;
    const nodes = Number(resources.nodes ?? 1);
    // A gang runs cold: its members are placed together and stopped together, never on warm workers.
    if (task.options.reuse && nodes <= 1) {
      return this.pool(task, resources, scope)
        .invoke({
          task: task.taskName,
          run: scope.runId,
          team: scope.team,
          executions: [{ execution: requestId, input, ...(attempt > 0 ? { attempt } : {}) }],
          ...(limitMs ? { timeoutMs: limitMs } : {}),
        })
        .then((reply) => ({
          result: reply.results[0]!,
          lease: reply.lease,
          preemptions: 0,
          lostCostUsd: 0,
          warm: true,
        }));
    }
    const cold = { task, input, resources, overridden, scope, execution, requestId, attempt, limitMs };
    return nodes > 1 ? gangAttempt(this, cold, nodes) : coldAttempt(this, cold);
  }

  /**
   * Asks the broker for a lease, asking again (same id: idempotent) while it does not answer.
   * @internal for cold.ts and {@link WorkerPool}
   */
  ask(body: Record<string, unknown> & { team: string; requestId: string }, task: string): Promise<LeaseMsg> {
    // Nested calls ask one at a time through their cluster's subject; a team's runtime in batches.
    if (this.#opts.cluster !== undefined)
      return askBroker(
        this.transport,
        body,
        task,
        this.#opts.replyTimeoutMs,
        this.#opts.cluster,
        this.leases,
      );
    return this.#batcher.ask(body, task);
  }

  /** The warm worker pool for a reusable task with these resources. @internal for map.ts */
  pool(task: Task, resources: Resources, scope: Scope): WorkerPool {
    const reuse = task.options.reuse!;
    const key = JSON.stringify([scope.module, reuse.environment ?? task.taskName, scope.team, resources]);
    let pool = this.#pools.get(key);
    if (!pool) this.#pools.set(key, (pool = new WorkerPool(this, key, task, resources, scope)));
    return pool;
  }

  /** The progress display for a `map`. @internal for map.ts */
  progress(label: string, total: number): Progress {
    const p = this.#opts.progress;
    if (p === false) return { tick() {}, done() {} };
    return (p ?? defaultProgress)(label, total);
  }

  /** Values over this many bytes of JSON go by reference. @internal for map.ts */
  get inlineLimit(): number | undefined {
    return this.#opts.inlineLimit;
  }

  /** Simulated seconds per wall-clock second of the clusters this client runs on. @internal for run.ts */
  get timeScale(): number {
    return this.#opts.timeScale ?? 1;
  }

  /** The client's clock. @internal for cold.ts */
  now(): number {
    return this.#clock();
  }

  /** What a lease at `pricePerHour` cost from `from` to `to`, on this client's time scale. @internal */
  costOf(pricePerHour: number, from: number, to: number): number {
    return costUsd(pricePerHour, from, to, this.#opts.timeScale ?? 1);
  }

  /** What an execution's result cost at `pricePerHour`: over the time it ran on its cluster. @internal */
  costOfResult(pricePerHour: number, result: ResultMsg): number {
    return resultCostUsd(pricePerHour, result, this.#opts.timeScale ?? 1);
  }

  #cacheKey(task: Task, input: ValueMsg): string | undefined {
    const c = task.options.cache;
    if (!c || !this.#opts.cache) return undefined;
    const version = typeof c === 'object' ? `v-${c.version}` : task.codeHash;
    return `${task.taskName}.${version}.${valueHash(input)}`;
  }

  /** Publishes a run event (what `gantry run` prints). @internal for calls and {@link WorkerPool} */
  emit(scope: Scope, event: Omit<RunEvent, 'run' | 'parent'> & { parent?: string }): void {
    const full: RunEvent = { run: scope.runId, parent: scope.execution, ...event };
    this.transport.publish(subjects.runEvents(scope.team, scope.runId), encodeJson(full));
  }

  /** Asks every warm worker this client started to stop (they stop by themselves when idle, too). */
  stopWorkers(): void {
    for (const pool of this.#pools.values()) pool.stop();
    this.#pools.clear();
  }
}
