/** `map`: a task over many items, cold through the broker or in chunks over warm workers. */
import type { InvokeMsg, InvokeReply } from '../protocol/index.ts';
import { attemptRecord, nestedLineage, type Outcome } from './attempt-record.ts';
import type { Runtime } from './client.ts';
import { fromErrorMsg } from './errors.ts';
import type { Progress } from './progress.ts';
import { refsOf } from './refs.ts';
import { overrideResources } from './retry.ts';
import { type MapOptions, type Resources, type Scope, type Task, timeoutMs } from './task.ts';
import { checkValue, encodeValue, valueHash } from './values.ts';

/**
 * Runs `task` over `items` in `scope`, at most `opts.concurrency` at a time; reusable tasks go to their
 * warm workers in chunks. Outputs come back in the items' order.
 */
export async function mapTask(
  rt: Runtime,
  task: Task,
  items: readonly unknown[],
  opts: MapOptions,
  scope: Scope,
): Promise<unknown[]> {
  const n = items.length;
  const results = new Array<unknown>(n);
  const progress = rt.progress(opts.label ?? task.taskName, n);
  let failure: { error: unknown; index: number } | undefined;
  const fail = (index: number, error: unknown) => {
    if (opts.returnExceptions) results[index] = error;
    else if (!failure || index < failure.index) failure = { error, index };
  };
  try {
    if (task.options.reuse) await mapWarm(rt, task, items, opts, scope, results, fail, progress);
    else {
      let next = 0;
      const lane = async () => {
        while (next < n && !failure) {
          const i = next++;
          try {
            results[i] = await rt.call(task, items[i], opts.override, scope);
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
async function mapWarm(
  rt: Runtime,
  task: Task,
  items: readonly unknown[],
  opts: MapOptions,
  scope: Scope,
  results: unknown[],
  fail: (index: number, err: unknown) => void,
  progress: Progress,
): Promise<void> {
  const resources: Resources = { ...task.options.resources, ...overrideResources(opts.override) };
  const pool = rt.pool(task, resources, scope);
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
        const id = rt.nextExecution(scope.runId);
        ids.push(id);
        const checked = checkValue(task.options.input, items[i], { task: name, side: 'input' });
        const input = await encodeValue(checked, rt.artifacts, rt.inlineLimit);
        executions.push({ execution: id, input });
        inputRefs.push(refsOf(rt.known, items[i], checked, valueHash(input)));
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
        const costUsd = rt.costOfResult(reply.lease.pricePerHour, r) / (reuse.concurrency ?? 1);
        for (const rec of await nestedLineage(r, rt.artifacts)) scope.record(rec);
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
        if (r.ok) checked = await rt.checkOutput(task, r.output).catch((e: unknown) => void (invalid = e));
        scope.record(
          attemptRecord(call, 0, r.startedAt, r.endedAt, {
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
          rt.execute(task, executions[k]!.input, inputRefs[k]!, opts.override, scope, ids[k]!, 1, err).then(
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
