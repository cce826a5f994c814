/**
 * The runtime client: turns task calls into broker requests, follows each to its result, retries typed
 * failures (more memory after an OOM, backoff, RetryAfter), keeps warm worker pools, fans out `map`,
 * and records lineage. One client serves a whole run; hosts make their own for nested calls.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  brokerFailureKind,
  type BrokerFailureKind,
  decodeJson,
  encodeJson,
  invokeReply,
  type InvokeMsg,
  type InvokeReply,
  type LeaseMsg,
  NoRespondersError,
  parseMessage,
  requestReply,
  type ResultMsg,
  resultMsg,
  type RunEvent as RunEventMsg,
  subjects,
  taskStateMsg,
  type Transport,
  TransportTimeoutError,
  type ValueMsg,
} from '../protocol/index.ts';
import { formatMemory, parseMemory } from '../policies/quantities.ts';
import { ArtifactMissingError, type ArtifactStore } from './artifacts.ts';
import {
  BROKER_FAILURES,
  fromErrorMsg,
  NonRetriableError,
  OutOfMemoryError,
  PolicyRefusedError,
  RetryAfterError,
  TaskError,
} from './errors.ts';
import type { LineageRecord } from './lineage.ts';
import { type Progress, type ProgressFactory, defaultProgress } from './progress.ts';
import {
  type Caller,
  type MapOptions,
  type Override,
  type Placement,
  type Resources,
  retryPolicy,
  type Scope,
  type Task,
  timeoutMs,
} from './task.ts';
import { KnownValues, nestedValues, refsOf } from './refs.ts';
import { checkValue, decodeValue, encodeValue, valueHash } from './values.ts';

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
  /** Remembers outputs of tasks with `cache` set; without it nothing is cached. */
  cache?: OutputCache;
  /** Progress display for `map`; `false` for none. Default: a bar on a TTY, lines otherwise. */
  progress?: ProgressFactory | false;
  clock?: () => number;
}

/** Where cached outputs live (the runtime store in `gantry run`). */
export interface OutputCache {
  get(key: string): Promise<ValueMsg | undefined>;
  put(key: string, value: ValueMsg): Promise<void>;
}

/** How an attempt ended, for its lineage record. */
interface RecordDetail {
  outcome?: Outcome;
  costUsd?: number;
  output?: ValueMsg;
  /** Artifacts inside the output. */
  outputRefs?: string[];
  err?: unknown;
  hit?: ValueMsg;
}

interface Outcome {
  result: ResultMsg;
  lease: LeaseMsg;
  preemptions: number;
  /** Cost of the segments cut short by preemptions. */
  lostCostUsd: number;
  warm: boolean;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A short random id token. */
export function newId(prefix: string): string {
  return `${prefix}${randomBytes(6)
    .toString('base64url')
    .replace(/[^A-Za-z0-9]/g, 'x')}`;
}

/** Turns task calls into placed, retried, recorded executions. */
export class Runtime implements Caller {
  readonly transport: Transport;
  readonly artifacts: ArtifactStore;
  readonly #opts: RuntimeOptions;
  readonly #clock: () => number;
  readonly #pools = new Map<string, WorkerPool>();
  /** Values task calls returned, so that lineage finds them inside later inputs. */
  readonly known = new KnownValues();
  #seq = 0;

  constructor(opts: RuntimeOptions) {
    this.#opts = opts;
    this.transport = opts.transport;
    this.artifacts = opts.artifacts;
    this.#clock = opts.clock ?? Date.now;
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
    return this.#execute(task, value, refs, override, scope, execution, 0);
  }

  /** Checks an output against the task's schema and remembers it (and what is inside) for lineage. */
  async #output(task: Task, value: ValueMsg): Promise<{ output: unknown; refs: string[] }> {
    const output = checkValue(task.options.output, await decodeValue(value, this.artifacts), {
      task: task.taskName,
      side: 'output',
    });
    const whole = valueHash(value);
    const nested = nestedValues(output);
    this.known.remember(output, whole, nested);
    return { output, refs: [...new Set(nested.map((n) => n.hash))].filter((h) => h !== whole) };
  }

  /** Sends a call and its retries; resolves with the checked output. */
  async #execute(
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
    let resources: Resources = { ...task.options.resources, ...stripRuntime(override) };
    const overridden = override !== undefined;
    const limitMs = timeoutMs(override?.timeout ?? task.options.timeout);
    const cacheKey = await this.#cacheKey(task, input);
    // Records one attempt's lineage (with the resources it asked for).
    const record = (attempt: number, startedAt: number, endedAt: number, how: RecordDetail) =>
      scope.record(
        this.#record(
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
        const decoded = await this.#output(task, hit).catch((err: unknown) => {
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
        const next = await this.#retryPlan(err, attempt, policy, resources);
        if (!next) throw err;
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
        if (err instanceof PolicyRefusedError || err instanceof NonRetriableError) throw err;
        pending = err;
        continue;
      }
      const { result } = outcome;
      for (const rec of result.lineage ?? []) scope.record(rec);
      const costUsd =
        outcome.lostCostUsd + this.#cost(outcome.lease.pricePerHour, result.startedAt, result.endedAt);
      const err = result.ok ? undefined : fromErrorMsg(result.error, { task: name, execution });
      if (err instanceof OutOfMemoryError && err.memoryMiB === undefined)
        err.data.memoryMiB = outcome.lease.memoryMiB;
      let checked: { output: unknown; refs: string[] } | undefined;
      let invalid: unknown;
      if (result.ok)
        checked = await this.#output(task, result.output).catch((e: unknown) => void (invalid = e));
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
      if (err instanceof NonRetriableError || err instanceof PolicyRefusedError) throw err;
      pending = err;
    }
  }

  /** What the next attempt asks for after `err`, or undefined when it should not be retried. */
  async #retryPlan(
    err: unknown,
    attempt: number,
    policy: ReturnType<typeof retryPolicy>,
    resources: Resources,
  ): Promise<{ resources: Resources; why: string } | undefined> {
    if (attempt > policy.attempts) return undefined;
    if (err instanceof NonRetriableError || err instanceof PolicyRefusedError) return undefined;
    if (err instanceof OutOfMemoryError) {
      const had = err.memoryMiB ?? (resources.memory !== undefined ? parseMemory(resources.memory) : 4096);
      const memory = `${had * 2}Mi`;
      return {
        resources: { ...resources, memory },
        why: `out of memory with ${formatMemory(had)}; retrying with ${formatMemory(had * 2)}`,
      };
    }
    const name = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    if (err instanceof RetryAfterError) {
      await sleep(err.delayMs);
      return { resources, why: `${name}; retrying after ${err.delayMs} ms` };
    }
    const delay = Math.min(policy.maxBackoffMs, policy.backoffMs * 2 ** (attempt - 1));
    const jittered = delay * (0.5 + Math.random() / 2);
    await sleep(jittered);
    return { resources, why: `${name}; retrying after ${Math.round(jittered)} ms` };
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
    const id = attempt === 0 ? execution : `${execution}-a${attempt}`;
    if (task.options.reuse) {
      return this.#pool(task, resources, scope)
        .invoke({
          task: task.taskName,
          run: scope.runId,
          team: scope.team,
          executions: [{ execution: id, input }],
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
    return this.#cold(task, input, resources, overridden, scope, execution, id, attempt, limitMs);
  }

  /** A cold attempt: a broker request, a lease, a task host, a result. */
  async #cold(
    task: Task,
    input: ValueMsg,
    resources: Resources,
    overridden: boolean,
    scope: Scope,
    execution: string,
    requestId: string,
    attempt: number,
    limitMs: number | undefined,
  ): Promise<Outcome> {
    const name = task.taskName;
    const t = this.transport;
    let lease: LeaseMsg | undefined;
    let runningAt: number | undefined;
    let preemptions = 0;
    let lostCostUsd = 0;
    let failTimer: NodeJS.Timeout | undefined;
    type End = { result: ResultMsg } | { failed: string } | { error: TaskError };
    let settle!: (v: End) => void;
    const ended = new Promise<End>((r) => (settle = r));
    const base = { execution, task: name, attempt, parent: scope.execution };
    const subs = [
      t.subscribe(subjects.result(requestId), (msg) => {
        const p = parseMessage(resultMsg, msg.data);
        if (p.ok) settle({ result: p.value });
      }),
      t.subscribe(subjects.taskState(requestId), (msg) => {
        const p = parseMessage(taskStateMsg, msg.data);
        if (!p.ok) return;
        const s = p.value;
        if (s.state === 'placed' && s.lease) {
          lease = s.lease;
          this.emit(scope, {
            ...base,
            type: 'placed',
            at: s.at,
            placement: placementOf(s.lease),
            message: 'placed again',
          });
        } else if (s.state === 'running') {
          runningAt ??= s.at;
          this.emit(scope, {
            ...base,
            type: 'running',
            at: s.at,
            ...(lease ? { placement: placementOf(lease, s.node) } : {}),
          });
        } else if (s.state === 'preempted' || s.state === 'lost') {
          preemptions++;
          if (lease && runningAt !== undefined)
            lostCostUsd += this.#cost(lease.pricePerHour, runningAt, s.at);
          runningAt = undefined;
          this.emit(scope, {
            ...base,
            type: 'preempted',
            at: s.at,
            ...(lease ? { placement: placementOf(lease, s.node) } : {}),
            message: `${s.state}: ${s.reason ?? ''}; the broker places it again`,
          });
        } else if (s.state === 'pending' && s.hold) {
          this.emit(scope, { ...base, type: 'held', at: s.at, hold: s.hold, message: s.hold.detail });
        } else if (s.state === 'failed' && s.failure) {
          // The broker stopped it (budget, cancelled run): no result will come.
          settle({ error: brokerError(s.failure, name) });
        } else if (s.state === 'failed') {
          // The host publishes the result before the agent reports the end; a failure without a
          // result (a crash the host could not report) is synthesized after a grace period.
          failTimer = setTimeout(() => settle({ failed: s.reason ?? 'the task failed' }), 500);
        } else if (s.state === 'succeeded') {
          // A success whose result never came (lost in transit): tried again, after a longer grace.
          failTimer = setTimeout(() => settle({ failed: 'the task ended but its result was lost' }), 5000);
        }
      }),
    ];
    try {
      await t.flush();
      lease = await this.ask(
        {
          requestId,
          team: scope.team,
          runId: scope.runId,
          taskId: name,
          ...(scope.workflow ? { workflow: scope.workflow } : {}),
          resources,
          override: overridden,
          work: {
            kind: 'task',
            module: scope.module,
            task: name,
            execution: requestId,
            run: scope.runId,
            team: scope.team,
            ...(scope.workflow ? { workflow: scope.workflow } : {}),
            input,
            ...(limitMs ? { timeoutMs: limitMs } : {}),
          },
        },
        name,
      );
      this.emit(scope, {
        ...base,
        type: 'placed',
        at: this.#clock(),
        placement: placementOf(lease),
        ...(overridden ? { message: `override ${describeResources(resources)}` } : {}),
      });
      const end = await ended;
      if ('error' in end) throw end.error;
      const result: ResultMsg =
        'result' in end
          ? end.result
          : {
              ok: false,
              execution: requestId,
              error: failureFromReason(end.failed, lease.memoryMiB),
              startedAt: runningAt ?? this.#clock(),
              endedAt: this.#clock(),
            };
      return { result, lease: lease!, preemptions, lostCostUsd, warm: false };
    } finally {
      clearTimeout(failTimer);
      for (const s of subs) s.unsubscribe();
    }
  }

  /**
   * Asks the broker for a lease, asking again (same id: idempotent) while it does not answer.
   * @internal for calls and {@link WorkerPool}
   */
  async ask(body: Record<string, unknown>, task: string): Promise<LeaseMsg> {
    const data = encodeJson(body);
    let waitMs = 100;
    for (;;) {
      let reply;
      try {
        reply = await this.transport.request(subjects.request, data, {
          timeoutMs: this.#opts.replyTimeoutMs ?? 30_000,
        });
      } catch (err) {
        if (err instanceof TransportTimeoutError) continue;
        if (err instanceof NoRespondersError) {
          // No broker yet (starting, failing over): wait and ask again.
          await sleep(waitMs);
          waitMs = Math.min(waitMs * 2, 2000);
          continue;
        }
        throw err;
      }
      const p = parseMessage(requestReply, reply.data);
      if (!p.ok) throw new TaskError(`the broker sent a bad reply: ${p.error.message}`);
      if (p.value.ok) return p.value.lease;
      const { code, message, field } = p.value.error;
      const failure = brokerFailureKind.safeParse(code);
      if (failure.success) throw brokerError({ kind: failure.data, detail: message }, task);
      const info = {
        code,
        ...(field ? { field } : {}),
        ...(policyName(message) ? { policy: policyName(message) } : {}),
      };
      if (code === 'policy' || code === 'no-policy' || code === 'bad-resources')
        throw new PolicyRefusedError(`${task}: ${message}`, info);
      throw new NonRetriableError(`${task}: the broker refused the request: ${message}`, info);
    }
  }

  /** The warm worker pool for a reusable task with these resources. */
  #pool(task: Task, resources: Resources, scope: Scope): WorkerPool {
    const reuse = task.options.reuse!;
    const key = JSON.stringify([scope.module, reuse.environment ?? task.taskName, scope.team, resources]);
    let pool = this.#pools.get(key);
    if (!pool) this.#pools.set(key, (pool = new WorkerPool(this, key, task, resources, scope)));
    return pool;
  }

  async map(task: Task, items: readonly unknown[], opts: MapOptions, scope: Scope): Promise<unknown[]> {
    const n = items.length;
    const results = new Array<unknown>(n);
    const progress = this.#progress(opts.label ?? task.taskName, n);
    let failure: { error: unknown; index: number } | undefined;
    const fail = (index: number, error: unknown) => {
      if (opts.returnExceptions) results[index] = error;
      else if (!failure || index < failure.index) failure = { error, index };
    };
    try {
      if (task.options.reuse) await this.#mapWarm(task, items, opts, scope, results, fail, progress);
      else {
        let next = 0;
        const lane = async () => {
          while (next < n && !failure) {
            const i = next++;
            try {
              results[i] = await this.call(task, items[i], opts.override, scope);
            } catch (err) {
              fail(i, err);
            }
            progress.tick(1);
          }
        };
        await Promise.all(Array.from({ length: Math.min(n, opts.concurrency ?? 1000) }, lane));
      }
    } finally {
      progress.done();
    }
    if (failure) {
      const err = failure.error;
      if (err instanceof Error) err.message = `map item ${failure.index}: ${err.message}`;
      throw err;
    }
    return results;
  }

  /** Fans out over warm workers in chunks; failed items are retried one by one with the task's policy. */
  async #mapWarm(
    task: Task,
    items: readonly unknown[],
    opts: MapOptions,
    scope: Scope,
    results: unknown[],
    fail: (index: number, err: unknown) => void,
    progress: Progress,
  ): Promise<void> {
    const resources: Resources = { ...task.options.resources, ...stripRuntime(opts.override) };
    const pool = this.#pool(task, resources, scope);
    const reuse = task.options.reuse!;
    const n = items.length;
    const capacity = pool.maxReplicas * (reuse.concurrency ?? 1);
    const chunk = Math.max(1, Math.min(256, Math.ceil(n / (capacity * 8))));
    const lanes = Math.min(Math.ceil(n / chunk), opts.concurrency ?? Math.max(2, capacity * 2));
    const limitMs = timeoutMs(opts.override?.timeout ?? task.options.timeout);
    const name = task.taskName;
    let next = 0;
    let stop = false;
    const lane = async () => {
      while (next < n && !stop) {
        const from = next;
        const to = Math.min(n, from + chunk);
        next = to;
        const executions: InvokeMsg['executions'] = [];
        const ids: string[] = [];
        const inputRefs: string[][] = [];
        for (let i = from; i < to; i++) {
          const id = this.nextExecution(scope.runId);
          ids.push(id);
          const checked = checkValue(task.options.input, items[i], { task: name, side: 'input' });
          const input = await encodeValue(checked, this.artifacts, this.#opts.inlineLimit);
          executions.push({ execution: id, input });
          inputRefs.push(refsOf(this.known, items[i], checked, valueHash(input)));
        }
        let reply: InvokeReply;
        try {
          reply = await pool.invoke({
            task: name,
            run: scope.runId,
            team: scope.team,
            executions,
            ...(limitMs ? { timeoutMs: limitMs } : {}),
          });
        } catch (err) {
          for (let i = from; i < to; i++) fail(i, err);
          if (!opts.returnExceptions) stop = true;
          progress.tick(to - from);
          continue;
        }
        const retries: Promise<void>[] = [];
        for (let k = 0; k < reply.results.length; k++) {
          const i = from + k;
          const r = reply.results[k]!;
          const outcome: Outcome = {
            result: r,
            lease: reply.lease,
            preemptions: 0,
            lostCostUsd: 0,
            warm: true,
          };
          const costUsd =
            this.#cost(reply.lease.pricePerHour, r.startedAt, r.endedAt) / (reuse.concurrency ?? 1);
          for (const rec of r.lineage ?? []) scope.record(rec);
          const err = r.ok ? undefined : fromErrorMsg(r.error, { task: name, execution: ids[k]! });
          const call = {
            task,
            scope,
            execution: ids[k]!,
            input: executions[k]!.input,
            inputRefs: inputRefs[k]!,
            asked: resources,
            override: !!opts.override,
          };
          let checked: { output: unknown; refs: string[] } | undefined;
          let invalid: unknown;
          if (r.ok) checked = await this.#output(task, r.output).catch((e: unknown) => void (invalid = e));
          scope.record(
            this.#record(call, 0, r.startedAt, r.endedAt, {
              outcome,
              costUsd,
              ...(r.ok ? { output: r.output, outputRefs: checked?.refs ?? [] } : { err }),
            }),
          );
          if (r.ok) {
            if (checked) results[i] = checked.output;
            else fail(i, invalid);
            continue;
          }
          retries.push(
            this.#execute(
              task,
              executions[k]!.input,
              inputRefs[k]!,
              opts.override,
              scope,
              ids[k]!,
              1,
              err,
            ).then(
              (v) => void (results[i] = v),
              (e) => fail(i, e),
            ),
          );
        }
        await Promise.all(retries);
        progress.tick(to - from);
      }
    };
    await Promise.all(Array.from({ length: lanes }, lane));
  }

  #progress(label: string, total: number): Progress {
    const p = this.#opts.progress;
    if (p === false) return { tick() {}, done() {} };
    return (p ?? defaultProgress)(label, total);
  }

  async #cacheKey(task: Task, input: ValueMsg): Promise<string | undefined> {
    const c = task.options.cache;
    if (!c || !this.#opts.cache) return undefined;
    const version = typeof c === 'object' ? `v-${c.version}` : task.codeHash;
    return `${task.taskName}.${version}.${valueHash(input)}`;
  }

  #cost(pricePerHour: number, from: number, to: number): number {
    return (pricePerHour * Math.max(0, to - from) * (this.#opts.timeScale ?? 1)) / 3_600_000;
  }

  #record(
    call: {
      task: Task;
      scope: Scope;
      execution: string;
      input: ValueMsg;
      inputRefs: string[];
      asked: Resources;
      override: boolean;
    },
    attempt: number,
    startedAt: number,
    endedAt: number,
    how: RecordDetail,
  ): LineageRecord {
    const lease = how.outcome?.lease;
    const err = how.err;
    const output = how.output ?? how.hit;
    const outputRefs = how.outputRefs ?? [];
    const stored = [call.input, ...(output ? [output] : [])].flatMap((v) =>
      'ref' in v ? [{ hash: v.ref, bytes: v.bytes }] : [],
    );
    return {
      run: call.scope.runId,
      execution: call.execution,
      parent: call.scope.execution,
      task: call.task.taskName,
      codeHash: call.task.codeHash,
      attempt,
      input: valueHash(call.input),
      ...(output ? { output: valueHash(output) } : {}),
      ...(call.inputRefs.length > 0 || outputRefs.length > 0
        ? {
            refs: {
              ...(call.inputRefs.length > 0 ? { input: call.inputRefs } : {}),
              ...(outputRefs.length > 0 ? { output: outputRefs } : {}),
            },
          }
        : {}),
      ...(stored.length > 0 ? { stored } : {}),
      ...(err !== undefined
        ? {
            error:
              err instanceof Error
                ? { name: err.name, message: err.message }
                : { name: 'Error', message: String(err) },
          }
        : {}),
      asked: call.asked,
      override: call.override,
      ...(lease ? { placement: lineagePlacement(lease) } : {}),
      preemptions: how.outcome?.preemptions ?? 0,
      startedAt,
      endedAt,
      costUsd: how.costUsd ?? 0,
      cached: how.hit !== undefined,
      warm: how.outcome?.warm ?? false,
    };
  }

  /** Publishes a run event (what `gantry run` prints). @internal for calls and {@link WorkerPool} */
  emit(scope: Scope, event: Omit<RunEvent, 'run' | 'parent'> & { parent?: string }): void {
    const full: RunEvent = { run: scope.runId, parent: scope.execution, ...event };
    this.transport.publish(subjects.runEvents(scope.runId), encodeJson(full));
  }

  /** Asks every warm worker this client started to stop (they stop by themselves when idle, too). */
  stopWorkers(): void {
    for (const pool of this.#pools.values()) pool.stop();
    this.#pools.clear();
  }
}

/**
 * Warm workers for one task environment. Invocations go to `subjects.invoke(pool)` (a queue group);
 * when nobody answers, the pool asks the broker for its minimum of workers and tries again until one
 * is up. Under load it grows to its maximum. Workers from an earlier run that are still warm answer
 * at once, without any solve cycle.
 */
class WorkerPool {
  readonly id: string;
  readonly minReplicas: number;
  readonly maxReplicas: number;
  readonly #concurrency: number;
  readonly #idleTtlMs: number;
  #started = 0;
  #inflight = 0;
  #refused: Error | undefined;
  #failures = 0;
  #lastFailure = '';
  readonly #workers = new Set<string>();

  constructor(
    private readonly client: Runtime,
    key: string,
    private readonly task: Task,
    private readonly resources: Resources,
    private readonly scope: Scope,
  ) {
    const reuse = task.options.reuse!;
    const r = reuse.replicas ?? 1;
    [this.minReplicas, this.maxReplicas] = Array.isArray(r) ? r : [r, r];
    if (this.minReplicas < 1 || this.maxReplicas < this.minReplicas)
      throw new NonRetriableError(`${task.taskName}: reuse.replicas must be at least 1, with min ≤ max`);
    this.#concurrency = reuse.concurrency ?? 1;
    this.#idleTtlMs = timeoutMs(reuse.idleTtl ?? '10m')!;
    this.id = `pool-${createHash('sha256').update(key).digest('base64url').slice(0, 16)}`;
  }

  async invoke(msg: InvokeMsg): Promise<InvokeReply> {
    const t = this.client.transport;
    const data = encodeJson(msg);
    this.#inflight++;
    try {
      if (
        this.#started > 0 &&
        this.#inflight > this.#started * this.#concurrency &&
        this.#started < this.maxReplicas
      )
        this.#startWorker();
      let waitMs = 5;
      const deadline = Date.now() + 15 * 60_000;
      for (;;) {
        try {
          // A chunk runs `concurrency` items at a time: allow each wave its own timeout.
          const waves = Math.ceil(msg.executions.length / this.#concurrency);
          const reply = await t.request(subjects.invoke(this.id), data, {
            timeoutMs: (msg.timeoutMs ?? 3_600_000) * waves + 30_000,
          });
          const p = parseMessage(invokeReply, reply.data);
          if (!p.ok) {
            const body = decodeJson(reply.data) as { error?: { message?: string } };
            throw new TaskError(
              `the worker refused the invocation: ${body.error?.message ?? p.error.message}`,
            );
          }
          return p.value;
        } catch (err) {
          if (!(err instanceof NoRespondersError)) throw err;
          if (this.#refused) throw this.#refused;
          // Workers that keep failing (the module does not load there, say) are not asked for forever.
          if (this.#failures >= Math.max(3, 2 * this.minReplicas))
            throw new TaskError(`${this.task.taskName}: its warm workers keep failing: ${this.#lastFailure}`);
          while (this.#started < this.minReplicas) this.#startWorker();
          if (Date.now() > deadline)
            throw new TaskError(`${this.task.taskName}: no warm worker came up in 15 minutes`);
          await sleep(waitMs);
          waitMs = Math.min(waitMs * 2, 25);
        }
      }
    } finally {
      this.#inflight--;
    }
  }

  #startWorker(): void {
    this.#started++;
    const requestId = newId(`${this.id}-`);
    this.#workers.add(requestId);
    const scope = this.scope;
    const ended = this.client.transport.subscribe(subjects.taskState(requestId), (msg) => {
      const p = parseMessage(taskStateMsg, msg.data);
      if (p.ok && (p.value.state === 'succeeded' || p.value.state === 'failed')) {
        if (p.value.state === 'failed') {
          this.#failures++;
          this.#lastFailure = p.value.reason ?? 'no reason given';
        }
        this.#started--;
        this.#workers.delete(requestId);
        ended.unsubscribe();
      }
    });
    this.client
      .ask(
        {
          requestId,
          team: scope.team,
          runId: scope.runId,
          taskId: `${this.task.taskName}-worker`,
          ...(scope.workflow ? { workflow: scope.workflow } : {}),
          resources: {
            ...this.resources,
            duration: this.resources.duration ?? Math.round(this.#idleTtlMs / 1000),
          },
          work: {
            kind: 'worker',
            module: scope.module,
            pool: this.id,
            idleTtlMs: this.#idleTtlMs,
            concurrency: this.#concurrency,
          },
        },
        this.task.taskName,
      )
      .then(
        (lease) =>
          this.client.emit(scope, {
            type: 'workers',
            execution: requestId,
            task: this.task.taskName,
            attempt: 0,
            at: Date.now(),
            placement: placementOf(lease),
            message: `warm worker ${this.#workers.size} of ${this.minReplicas}–${this.maxReplicas}`,
          }),
        (err: Error) => {
          this.#refused = err;
          this.#started--;
          this.#workers.delete(requestId);
          ended.unsubscribe();
        },
      );
  }

  stop(): void {
    this.client.transport.publish(subjects.stopWorkers(this.id), new Uint8Array());
  }
}

function stripRuntime(override: Override | undefined): Resources {
  if (!override) return {};
  const { retries: _r, timeout: _t, ...resources } = override;
  return resources;
}

/** The typed error for a failure the host could not report itself (the process died). */
/** The typed error of a request or lease the broker ended itself. */
function brokerError(f: { kind: BrokerFailureKind; detail: string }, task: string): TaskError {
  return new BROKER_FAILURES[f.kind](`${task}: ${f.detail}`, { kind: f.kind });
}

function failureFromReason(
  reason: string,
  memoryMiB: number,
): { name: string; message: string; data?: Record<string, unknown> } {
  if (/OOMKilled|out of memory/i.test(reason))
    return { name: 'OutOfMemoryError', message: `out of memory (${reason})`, data: { memoryMiB } };
  if (/preempt|reclaim/i.test(reason)) return { name: 'PreemptedError', message: reason };
  return { name: 'TaskError', message: reason };
}

function describeResources(r: Resources): string {
  return Object.entries(r)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('|') : v}`)
    .join(' ');
}

function policyName(message: string): string | undefined {
  return /policy '?([a-z0-9][a-z0-9-]*)'?/i.exec(message)?.[1];
}

/** Where a lease runs, and at what price; `node` once the agent named it. */
export function placementOf(lease: LeaseMsg, node?: string): Placement {
  return {
    cluster: lease.cluster,
    pool: lease.pool,
    node: node ?? lease.node,
    capacityType: lease.capacityType,
    pricePerHour: lease.pricePerHour,
    cpuMilli: lease.cpuMilli,
    memoryMiB: lease.memoryMiB,
    gpuMilli: lease.gpuMilli,
    gpuModel: lease.gpuModel,
    why: lease.why,
  };
}

function lineagePlacement(lease: LeaseMsg): NonNullable<LineageRecord['placement']> {
  const { why: _why, ...p } = placementOf(lease);
  return p;
}
