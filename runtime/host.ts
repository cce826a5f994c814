/**
 * Task hosts run workflow code where the broker placed it. `executeTask` runs one execution: load the
 * module, find the task, fetch and check the input, run the function (tasks it calls go back through
 * the broker), check and store the output. `serveWorker` keeps a warm worker answering invocations
 * until it is idle. `createTaskHost` wraps both as an executor that runs them in this process (the
 * simulated clusters); `process-host.ts` runs them in a child process per lease (local clusters).
 */
import { pathToFileURL } from 'node:url';
import type { Executor, ExecutorReport } from '../agents/executor.ts';
import {
  encodeJson,
  type InvokeReply,
  invokeMsg,
  type LeaseMsg,
  type Msg,
  parseMessage,
  type ResultMsg,
  subjects,
  type Transport,
  type ValueMsg,
  type WorkSpec,
} from '../protocol/index.ts';
import type { ArtifactStore } from './artifacts.ts';
import { executionClock } from './clock.ts';
import { executionLog, type ProgramLauncher, useLauncher } from './command-run.ts';
import { Runtime } from './client.ts';
import { placementOf } from './ids.ts';
import { NonRetriableError, registerErrorClasses, TimeoutError, toErrorMsg } from './errors.ts';
import type { LineageRecord } from './lineage.ts';
import {
  type GangContext,
  lookupTask,
  type Placement,
  type Task,
  type TaskContext,
  taskNames,
  withScope,
} from './task.ts';
import { checkValue, decodeValue, encodeValue } from './values.ts';

/** What a host needs: the transport (results, nested calls) and the artifact store. */
export interface HostServices {
  transport: Transport;
  artifacts: ArtifactStore;
  /**
   * Simulated seconds per wall-clock second of the cluster: how fast `ctx.sleep` runs, and the time
   * scale of nested calls' costs. Default 1.
   */
  timeScale?: number;
  /** The cluster this host runs on: its tasks' nested calls go through that cluster's agent subject. */
  cluster?: string;
  /**
   * Publishes a result so that it is kept (over NATS: acknowledged by the team's results stream, asked
   * again until it is); resolves once it is. Without it results are published as any message.
   */
  publishResult?: (subject: string, data: Uint8Array) => Promise<void>;
}

export type TaskWork = Extract<WorkSpec, { kind: 'task' }>;
export type WorkerWork = Extract<WorkSpec, { kind: 'worker' }>;

const loaded = new Map<string, Promise<unknown>>();

/** Imports a workflow module once per process; its `task()` calls register its tasks. */
export function loadModule(module: string): Promise<unknown> {
  let p = loaded.get(module);
  if (!p) {
    const url = module.startsWith('file:') ? module : pathToFileURL(module).href;
    p = import(url).then(
      (mod: Record<string, unknown>) => {
        registerErrorClasses(mod);
        return mod;
      },
      (err: Error) => {
        loaded.delete(module);
        throw new NonRetriableError(`cannot load workflow module ${module}: ${err.message}`);
      },
    );
    loaded.set(module, p);
  }
  return p;
}

/** A task of a workflow module, loaded; a {@link NonRetriableError} naming what it has when missing. */
export async function resolveTask(module: string, name: string): Promise<Task> {
  await loadModule(module);
  const task = lookupTask(name);
  if (!task)
    throw new NonRetriableError(
      `${module} defines no task named '${name}' (it defines: ${taskNames().join(', ') || 'none'})`,
    );
  return task;
}

/**
 * Answers an invocation; a reply over the transport's message limit (a chunk of large outputs) is
 * answered with a failure per execution instead, which the caller retries one by one.
 */
function respondSafely(t: Transport, msg: Msg, reply: InvokeReply): void {
  try {
    t.respond(msg, encodeJson(reply));
  } catch (err) {
    const message = `the results could not be sent together: ${(err as Error).message}`;
    t.respond(
      msg,
      encodeJson({
        ...reply,
        results: reply.results.map((r) => ({
          ok: false,
          execution: r.execution,
          error: { name: 'TaskError', message },
          startedAt: r.startedAt,
          endedAt: r.endedAt,
        })),
      }),
    );
  }
}

/** One execution to run. */
export interface Execution {
  module: string;
  task: string;
  execution: string;
  run: string;
  team: string;
  workflow?: string | undefined;
  input: ValueMsg;
  attempt: number;
  placement: Placement;
  timeoutMs?: number | undefined;
  signal: AbortSignal;
  /** A gang member's rank and rendezvous (from its lease). */
  gang?: GangContext | undefined;
  /** Where a container or command task's program runs, when not as a process here. */
  launcher?: ProgramLauncher | undefined;
}

/** Runs one execution and returns its result (never throws: failures are results). */
export async function executeTask(
  services: HostServices,
  runtime: Runtime,
  x: Execution,
): Promise<ResultMsg> {
  const startedAt = Date.now();
  const lineage: LineageRecord[] = [];
  let cleanup = () => {};
  let onTimeout = () => {};
  // The task's signal aborts when the lease stops, or when its timeout passes (a signal of its own
  // only then: most tasks have no timeout, and a `map` runs hundreds of thousands of them).
  let signal = x.signal;
  if (x.timeoutMs) {
    const ac = new AbortController();
    const abort = () => ac.abort();
    x.signal.addEventListener('abort', abort);
    cleanup = () => x.signal.removeEventListener('abort', abort);
    onTimeout = abort;
    signal = ac.signal;
  }
  const clock = executionClock(services.timeScale ?? 1, signal);
  let ctx: TaskContext | undefined;
  // The log of the program a container or command task ran, when it ran one.
  const logs = (): { logs?: string } => {
    const ref = ctx && executionLog(ctx);
    return ref ? { logs: ref } : {};
  };
  try {
    const task = await resolveTask(x.module, x.task);
    const input = checkValue(task.options.input, await decodeValue(x.input, services.artifacts), {
      task: x.task,
      side: 'input',
    });
    ctx = {
      runId: x.run,
      execution: x.execution,
      task: x.task,
      attempt: x.attempt,
      placement: x.placement,
      signal,
      sleep: clock.sleep,
      artifacts: services.artifacts,
      ...(x.gang ? { gang: x.gang } : {}),
    };
    if (x.launcher) useLauncher(ctx, x.launcher);
    const scope = {
      caller: runtime,
      runId: x.run,
      execution: x.execution,
      team: x.team,
      module: x.module,
      workflow: x.workflow,
      record: (rec: LineageRecord) => lineage.push(rec),
    };
    const run = withScope(scope, () => Promise.resolve(task.fn(input, ctx!)));
    const raw = x.timeoutMs ? await withTimeout(run, x.timeoutMs, x.task, onTimeout) : await run;
    const output = checkValue(task.options.output, raw, { task: x.task, side: 'output' });
    const value = await encodeValue(output, services.artifacts);
    return {
      ok: true,
      execution: x.execution,
      output: value,
      startedAt,
      endedAt: Date.now(),
      ranMs: clock.elapsed(),
      ...(await withLineage(lineage, services.artifacts)),
      ...logs(),
    };
  } catch (err) {
    return {
      ok: false,
      execution: x.execution,
      error: toErrorMsg(err),
      startedAt,
      endedAt: Date.now(),
      ranMs: clock.elapsed(),
      ...(await withLineage(lineage, services.artifacts)),
      ...logs(),
    };
  } finally {
    cleanup();
  }
}

/** Nested lineage past this many bytes of JSON goes to the artifact store (a message is at most 1 MiB). */
const LINEAGE_INLINE_BYTES = 64 * 1024;

/** The lineage of the calls an execution made, inline or (when large) by reference. */
async function withLineage(
  lineage: LineageRecord[],
  artifacts: ArtifactStore,
): Promise<{ lineage?: LineageRecord[]; lineageRef?: string }> {
  if (lineage.length === 0) return {};
  const json = JSON.stringify(lineage);
  if (json.length <= LINEAGE_INLINE_BYTES) return { lineage };
  return { lineageRef: await artifacts.put(new TextEncoder().encode(json)) };
}

function withTimeout<T>(p: Promise<T>, ms: number, task: string, onTimeout: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new TimeoutError(`${task} ran longer than its timeout of ${ms} ms`));
    }, ms);
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

/** Runs a `task` lease's execution and publishes its result; resolves with it. */
export async function runTaskLease(
  services: HostServices,
  runtime: Runtime,
  lease: LeaseMsg,
  node: string,
  signal: AbortSignal,
  launcher?: ProgramLauncher,
): Promise<ResultMsg | undefined> {
  const work = lease.work as TaskWork;
  const result = await executeTask(services, runtime, {
    module: work.module,
    task: work.task,
    execution: work.execution,
    run: work.run,
    team: work.team,
    workflow: work.workflow,
    input: work.input,
    attempt: work.attempt ?? 0,
    placement: placementOf(lease, node),
    timeoutMs: work.timeoutMs,
    signal,
    gang: lease.gang && {
      rank: lease.gang.rank,
      nodeRank: lease.gang.rank,
      worldSize: lease.gang.size,
      masterAddr: lease.gang.master,
      masterPort: lease.gang.port,
    },
    launcher,
  });
  // A lease stopped meanwhile (preempted, cancelled) reports nothing: the broker places it again.
  if (signal.aborted) return undefined;
  return publishLeaseResult(services, lease, result);
}

/**
 * Publishes a `task` lease's result on its team's result subject; resolves with what was published
 * (a failure saying so when the result is over the transport's message limit).
 */
export async function publishLeaseResult(
  services: HostServices,
  lease: LeaseMsg,
  result: ResultMsg,
): Promise<ResultMsg> {
  const work = lease.work as TaskWork;
  const subject = subjects.result(work.team, work.execution, lease.cluster);
  // The end is reported once the result is kept, so a runtime that missed it can read it back.
  const publish = (data: Uint8Array) =>
    services.publishResult
      ? services.publishResult(subject, data)
      : services.transport.publish(subject, data);
  try {
    await publish(encodeJson(result));
    return result;
  } catch (err) {
    // Over the transport's message limit (a huge lineage): the result says so instead.
    const failed: ResultMsg = {
      ok: false,
      execution: work.execution,
      error: { name: 'TaskError', message: `the result could not be sent: ${(err as Error).message}` },
      startedAt: result.startedAt,
      endedAt: result.endedAt,
    };
    await publish(encodeJson(failed));
    return failed;
  }
}

/**
 * Serves a `worker` lease: answers invocations on the pool's subject (a queue group shared with the
 * pool's other workers) until idle for `idleTtlMs`, told to stop, or `signal` aborts.
 */
export async function serveWorker(
  services: HostServices,
  runtime: Runtime,
  lease: LeaseMsg,
  node: string,
  signal: AbortSignal,
): Promise<void> {
  const work = lease.work as WorkerWork;
  const t = services.transport;
  await loadModule(work.module);
  const placement = placementOf(lease, node);
  let active = 0;
  const waiting: (() => void)[] = [];
  const slot = async () => {
    if (active >= work.concurrency) await new Promise<void>((r) => waiting.push(r));
    active++;
  };
  const release = () => {
    active--;
    waiting.shift()?.();
  };
  await new Promise<void>((resolve) => {
    let idle: NodeJS.Timeout | undefined;
    let busy = 0;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(idle);
      stop.unsubscribe();
      signal.removeEventListener('abort', finish);
      // Invocations the server already routed to this worker are still answered.
      void sub.drain().then(async () => {
        while (busy > 0) await new Promise((r) => setTimeout(r, 10));
        resolve();
      });
    };
    const armIdle = () => {
      clearTimeout(idle);
      idle = setTimeout(() => (busy === 0 ? finish() : armIdle()), work.idleTtlMs);
    };
    const sub = t.subscribe(
      subjects.invoke(work.team, work.pool),
      (msg) => {
        const p = parseMessage(invokeMsg, msg.data);
        if (!p.ok) {
          t.respond(msg, encodeJson(p));
          return;
        }
        const inv = p.value;
        busy++;
        clearTimeout(idle);
        void Promise.all(
          inv.executions.map(async (e) => {
            await slot();
            try {
              return await executeTask(services, runtime, {
                module: work.module,
                task: inv.task,
                execution: e.execution,
                run: inv.run,
                team: inv.team,
                input: e.input,
                attempt: e.attempt ?? 0,
                placement,
                timeoutMs: inv.timeoutMs,
                signal,
              });
            } finally {
              release();
            }
          }),
        ).then((results) => {
          respondSafely(t, msg, { lease, node, results });
          busy--;
          if (!finished) armIdle();
        });
      },
      { queue: work.pool },
    );
    const stop = t.subscribe(subjects.stopWorkers(work.team, work.pool), finish);
    signal.addEventListener('abort', finish);
    armIdle();
  });
}

/**
 * An executor that runs `task` and `worker` leases in this process: the simulated clusters' way of
 * running real workflow code. Stopping a lease aborts its signal and drops its result.
 *
 * @example
 * const executor = withTaskHost(createSimExecutor({ speedup }), createTaskHost({ transport, artifacts }));
 */
export function createTaskHost(services: HostServices): Executor {
  const runtime = new Runtime({ ...services, progress: false });
  const running = new Map<string, AbortController>();
  return {
    kind: 'in-process',
    start(lease: LeaseMsg, node: string, report: ExecutorReport) {
      const ac = new AbortController();
      running.set(lease.leaseId, ac);
      report('running');
      const done = (ok: boolean, reason?: string) => {
        running.delete(lease.leaseId);
        if (!ac.signal.aborted)
          report(
            ok ? 'succeeded' : 'failed',
            ok ? { exitCode: 0 } : { exitCode: 1, reason: reason ?? 'failed' },
          );
      };
      if (lease.work.kind === 'task') {
        void runTaskLease(services, runtime, lease, node, ac.signal).then((r) =>
          r ? done(r.ok, r.ok ? undefined : `${r.error.name}: ${r.error.message}`.slice(0, 500)) : undefined,
        );
      } else if (lease.work.kind === 'worker') {
        serveWorker(services, runtime, lease, node, ac.signal).then(
          () => done(true),
          (err: Error) => done(false, err.message),
        );
      } else {
        running.delete(lease.leaseId);
        report('failed', { reason: `the task host cannot run ${lease.work.kind} work` });
      }
    },
    stop(leaseId: string) {
      running.get(leaseId)?.abort();
      running.delete(leaseId);
    },
    async close() {
      for (const ac of running.values()) ac.abort();
      running.clear();
    },
  };
}
