/**
 * Warm worker pools: workers that keep a task's module loaded and answer invocations directly, with no
 * solve cycle per call. A pool asks the broker for its minimum of workers when nobody answers and grows
 * to its maximum under load.
 */
import { createHash } from 'node:crypto';
import {
  decodeJson,
  encodeJson,
  invokeReply,
  type InvokeMsg,
  type InvokeReply,
  NoRespondersError,
  parseMessage,
  subjects,
} from '../protocol/index.ts';
import type { Runtime } from './client.ts';
import { NonRetriableError, TaskError } from './errors.ts';
import { newId, placementOf } from './ids.ts';
import { type Resources, type Scope, type Task, timeoutMs } from './task.ts';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Warm workers for one task environment. Invocations go to `subjects.invoke(pool)` (a queue group);
 * when nobody answers, the pool asks the broker for its minimum of workers and tries again until one
 * is up. Under load it grows to its maximum. Workers from an earlier run that are still warm answer
 * at once, without any solve cycle.
 */
export class WorkerPool {
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
          const reply = await t.request(subjects.invoke(this.scope.team, this.id), data, {
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
    const unfollow = this.client.states.follow(scope.team, scope.runId, requestId, (s) => {
      if (s.state === 'succeeded' || s.state === 'failed') {
        if (s.state === 'failed') {
          this.#failures++;
          this.#lastFailure = s.reason ?? 'no reason given';
        }
        this.#started--;
        this.#workers.delete(requestId);
        unfollow();
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
            team: scope.team,
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
          unfollow();
        },
      );
  }

  stop(): void {
    this.client.transport.publish(subjects.stopWorkers(this.scope.team, this.id), new Uint8Array());
  }
}
