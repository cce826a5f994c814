/**
 * Running a workflow: the workflow task's function runs here (the driver), every task it calls runs
 * where the broker places it. The run's lineage and summary go to the runtime store.
 */
import { pathToFileURL } from 'node:url';
import {
  encodeJson,
  parseMessage,
  type RunCancelReply,
  runCancelReply,
  type Store,
  subjects,
  type Transport,
  type ValueMsg,
} from '../protocol/index.ts';
import type { OutputCache, Runtime } from './client.ts';
import { executionClock } from './clock.ts';
import { newId } from './ids.ts';
import { registerErrorClasses, RunCancelledError, TaskError, toErrorMsg } from './errors.ts';
import { type LineageRecord, LineageWriter, type RunRecord, runRecord } from './lineage.ts';
import { type Scope, type Task, type TaskContext, withScope } from './task.ts';
import { refsOf } from './refs.ts';
import { checkValue, encodeValue, valueHash } from './values.ts';

/** Options of {@link runWorkflow}. */
export interface RunOptions {
  runtime: Runtime;
  /** The team whose policy applies. */
  team: string;
  /** The module that defines the tasks (absolute path); workers import it to find them. */
  module: string;
  /** Lineage, run summaries (and the output cache) go here; nothing is kept without it. */
  store?: Store;
  runId?: string;
  /** Called for every lineage record (every execution, as it ends). */
  onRecord?: (rec: LineageRecord) => void;
  /**
   * How often the run tells the broker its driver is alive (wall clock); default
   * {@link RUN_HEARTBEAT_MS}. A run silent past the broker's grace period (15 s) has its work stopped.
   */
  heartbeatMs?: number;
}

/** The run's liveness heartbeat interval (wall clock). */
export const RUN_HEARTBEAT_MS = 2000;

/** How a run ended. */
export interface RunResult {
  runId: string;
  ok: boolean;
  output?: unknown;
  error?: unknown;
  costUsd: number;
  executions: number;
  startedAt: number;
  endedAt: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Runs `workflow` with `input` and waits for it to end. Never throws for a failed workflow: the
 * failure is in the result (and the run's record).
 *
 * @example
 * const result = await runWorkflow(pipeline, { rows: 1e6 }, { runtime, team: 'research', module });
 */
export async function runWorkflow(workflow: Task, input: unknown, opts: RunOptions): Promise<RunResult> {
  const { runtime, store } = opts;
  const runId = opts.runId ?? newId('run-');
  const execution = runtime.nextExecution(runId);
  const writer = store ? new LineageWriter(store) : undefined;
  let costUsd = 0;
  let executions = 0;
  const record = (rec: LineageRecord) => {
    writer?.record(rec);
    costUsd += rec.costUsd;
    executions++;
    opts.onRecord?.(rec);
  };
  const startedAt = Date.now();
  const summary: RunRecord = {
    run: runId,
    workflow: workflow.taskName,
    module: opts.module,
    team: opts.team,
    status: 'running',
    startedAt,
    input: '',
    costUsd: 0,
    executions: 0,
  };
  let inputValue: ValueMsg | undefined;
  let outValue: ValueMsg | undefined;
  let inputRefs: string[] = [];
  let outputRefs: string[] = [];
  let result: RunResult;
  const control = subjects.runControl(opts.team, runId);
  const beat = () => runtime.transport.publish(control, encodeJson({ type: 'heartbeat' }));
  beat();
  const heartbeat = setInterval(beat, opts.heartbeatMs ?? RUN_HEARTBEAT_MS);
  heartbeat.unref();
  try {
    const checked = checkValue(workflow.options.input, input, { task: workflow.taskName, side: 'input' });
    inputValue = await encodeValue(checked, runtime.artifacts);
    summary.input = valueHash(inputValue);
    // What the run was given may hold other runs' outputs: found by content.
    inputRefs = refsOf(runtime.known, input, checked, summary.input);
    if (store) await store.put(runKey(runId), encoder.encode(JSON.stringify(summary)));
    writer?.run({ ...summary });
    // The driver's work ends with the run: nothing aborts it.
    const driverSignal = new AbortController().signal;
    const ctx: TaskContext = {
      runId,
      execution,
      task: workflow.taskName,
      attempt: 0,
      placement: {
        cluster: 'driver',
        pool: 'driver',
        node: 'driver',
        capacityType: 'on-demand',
        pricePerHour: 0,
        cpuMilli: 0,
        memoryMiB: 0,
        gpuMilli: 0,
        gpuModel: null,
        why: 'the workflow itself runs in the driver',
      },
      signal: driverSignal,
      sleep: executionClock(runtime.timeScale, driverSignal).sleep,
      artifacts: runtime.artifacts,
    };
    const scope = {
      caller: runtime,
      runId,
      execution,
      team: opts.team,
      module: opts.module,
      workflow: workflow.taskName,
      record,
      started: (rec: Parameters<NonNullable<Scope['started']>>[0]) => writer?.start(rec),
    };
    const raw = await withScope(scope, () => Promise.resolve(workflow.fn(checked, ctx)));
    const output = checkValue(workflow.options.output, raw, { task: workflow.taskName, side: 'output' });
    outValue = await encodeValue(output, runtime.artifacts);
    summary.output = valueHash(outValue);
    outputRefs = refsOf(runtime.known, raw, output, summary.output);
    result = { runId, ok: true, output, costUsd: 0, executions: 0, startedAt, endedAt: Date.now() };
  } catch (error) {
    summary.error = `${toErrorMsg(error).name}: ${toErrorMsg(error).message}`;
    result = { runId, ok: false, error, costUsd: 0, executions: 0, startedAt, endedAt: Date.now() };
  }
  record({
    run: runId,
    execution,
    task: workflow.taskName,
    codeHash: workflow.codeHash,
    attempt: 0,
    input: summary.input || 'none',
    ...(summary.output ? { output: summary.output } : {}),
    ...(inputRefs.length > 0 || outputRefs.length > 0
      ? {
          refs: {
            ...(inputRefs.length > 0 ? { input: inputRefs } : {}),
            ...(outputRefs.length > 0 ? { output: outputRefs } : {}),
          },
        }
      : {}),
    ...storedOf(inputValue, outValue),
    ...(summary.error ? { error: { name: 'WorkflowError', message: summary.error } } : {}),
    asked: {},
    override: false,
    preemptions: 0,
    startedAt,
    endedAt: result.endedAt,
    costUsd: 0,
    cached: false,
    warm: false,
  });
  clearInterval(heartbeat);
  // Cancelled (Ctrl-C, gantry run cancel) or abandoned: the run failed, whatever its code caught.
  const cancelled = runtime.cancelledRuns.get(runId);
  if (cancelled) {
    runtime.cancelledRuns.delete(runId);
    if (!(result.error instanceof RunCancelledError)) {
      result = { ...result, ok: false, output: undefined, error: cancelled };
      delete summary.output;
      summary.error = `${cancelled.name}: ${cancelled.message}`;
    }
  }
  runtime.transport.publish(control, encodeJson({ type: 'end' }));
  result.costUsd = costUsd;
  result.executions = executions;
  if (store) {
    Object.assign(summary, {
      status: result.ok ? 'succeeded' : result.error instanceof RunCancelledError ? 'cancelled' : 'failed',
      endedAt: result.endedAt,
      costUsd,
      executions,
    });
    writer!.run({ ...summary });
    await stored(() => writer!.flush());
    await stored(() => store.put(runKey(runId), encoder.encode(JSON.stringify(summary))).then(() => {}));
  }
  return result;
}

/**
 * Writes the run's last records, asking again for up to 30 s while the store does not answer: a
 * JetStream stream elects a new leader for a few seconds after a server of a NATS cluster is lost.
 */
async function stored(write: () => Promise<void>): Promise<void> {
  const until = Date.now() + 30_000;
  for (let waitMs = 200; ; waitMs = Math.min(2 * waitMs, 2000)) {
    try {
      return await write();
    } catch (err) {
      if (Date.now() >= until) throw err;
      await new Promise((r) => setTimeout(r, waitMs));
    }
  }
}

/** The values of a run that went by reference to the artifact store, for lineage. */
function storedOf(...values: (ValueMsg | undefined)[]): { stored?: { hash: string; bytes: number }[] } {
  const stored = values.flatMap((v) => (v && 'ref' in v ? [{ hash: v.ref, bytes: v.bytes }] : []));
  return stored.length > 0 ? { stored } : {};
}

/** Store key of a run's summary. */
export const runKey = (runId: string) => `run.${runId.replace(/[^-_=a-zA-Z0-9]/g, '_')}`;

/** Every run's summary in the store, oldest first. */
export async function listRuns(store: Store): Promise<RunRecord[]> {
  const out: RunRecord[] = [];
  for (const e of await store.list('run')) {
    const r = runRecord.safeParse(JSON.parse(decoder.decode(e.value)));
    if (r.success) out.push(r.data);
  }
  return out.sort((a, b) => a.startedAt - b.startedAt);
}

/** An output cache over the runtime store's key-value map. */
export function storeCache(store: Store): OutputCache {
  const key = (k: string) => `cache.${k.replace(/[^-_=a-zA-Z0-9.]/g, '_').replace(/\.(?=\.)/g, '._')}`;
  return {
    async get(k) {
      const e = await store.get(key(k));
      return e ? (JSON.parse(decoder.decode(e.value)) as ValueMsg) : undefined;
    },
    async put(k, value) {
      await store.put(key(k), encoder.encode(JSON.stringify(value)));
    },
  };
}

/**
 * Loads a workflow file and finds the workflow: the export named `name`, else the default export,
 * else the only exported task.
 */
export async function loadWorkflow(file: string, name?: string): Promise<{ workflow: Task; module: string }> {
  const mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  registerErrorClasses(mod);
  const isTask = (v: unknown): v is Task =>
    typeof v === 'function' && typeof (v as Task).taskName === 'string';
  const tasks = Object.entries(mod).filter(([, v]) => isTask(v)) as [string, Task][];
  let workflow: Task | undefined;
  if (name) workflow = tasks.find(([k, v]) => k === name || v.taskName === name)?.[1];
  else if (isTask(mod.default)) workflow = mod.default;
  else if (tasks.length === 1) workflow = tasks[0]![1];
  if (!workflow) {
    const names = tasks.map(([k]) => k).join(', ') || 'none';
    throw new Error(
      name
        ? `${file} exports no task named '${name}' (it exports: ${names})`
        : `${file} has no default export that is a task; name one with --task (it exports: ${names})`,
    );
  }
  return { workflow, module: file };
}

/**
 * Cancels a run: the broker withdraws its pending requests and stops its running leases, and answers
 * with what it stopped. Its task calls fail with {@link RunCancelledError}.
 *
 * @example
 * const { stopped } = await cancelRun(transport, 'research', 'run-20261201-ab12', 'Ctrl-C');
 */
export async function cancelRun(
  transport: Transport,
  team: string,
  runId: string,
  reason?: string,
): Promise<RunCancelReply> {
  const reply = await transport.request(
    subjects.runControl(team, runId),
    encodeJson({ type: 'cancel', ...(reason ? { reason } : {}) }),
    { timeoutMs: 10_000 },
  );
  const p = parseMessage(runCancelReply, reply.data);
  if (!p.ok) throw new TaskError(`the broker sent a bad reply to the cancel: ${p.error.message}`);
  return p.value;
}
