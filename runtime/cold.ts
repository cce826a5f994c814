/**
 * A cold attempt: a broker request, a lease, a task host, a result. Follows the request's state
 * (placed again, running, preempted) and turns a failure the host could not report into a typed error.
 */
import {
  type LeaseMsg,
  parseMessage,
  type RequestStatus,
  type ResultMsg,
  resultMsg,
  subjects,
  type TaskStateMsg,
  type ValueMsg,
} from '../protocol/index.ts';
import type { Outcome } from './attempt-record.ts';
import { brokerError } from './broker-request.ts';
import type { TaskError } from './errors.ts';
import type { Followed } from './lease-watch.ts';
import type { Runtime } from './client.ts';
import { lineagePlacement, placementOf } from './ids.ts';
import { valueHash } from './values.ts';
import type { Resources, Scope, Task } from './task.ts';

/** One cold attempt of a call. */
export interface ColdAttempt {
  task: Task;
  input: ValueMsg;
  resources: Resources;
  overridden: boolean;
  scope: Scope;
  execution: string;
  /** The broker request's id: the execution for the first attempt, `<execution>-a<n>` after. */
  requestId: string;
  attempt: number;
  limitMs: number | undefined;
  /** One member of a gang attempt (see gang.ts). */
  gang?: { id: string; rank: number };
}

/** Runs a cold attempt through the broker; resolves with how it ended. */
export async function coldAttempt(rt: Runtime, a: ColdAttempt): Promise<Outcome> {
  const { task, input, resources, overridden, scope, execution, requestId, attempt, limitMs } = a;
  const name = task.taskName;
  const t = rt.transport;
  let lease: LeaseMsg | undefined;
  let runningAt: number | undefined;
  let preemptions = 0;
  let lostCostUsd = 0;
  let failTimer: NodeJS.Timeout | undefined;
  type End = { result: ResultMsg } | { failed: string } | { error: TaskError };
  let settle!: (v: End) => void;
  const ended = new Promise<End>((r) => (settle = r));
  const base = { execution, task: name, attempt, parent: scope.execution };
  // A result counts only from the cluster holding the lease (the subject's last token, which only
  // that cluster's credentials may publish) and only for this execution; one that comes before the
  // lease is known waits for it.
  let early: { cluster: string; result: ResultMsg }[] = [];
  const accept = (cluster: string, result: ResultMsg) => {
    if (result.execution !== requestId) return;
    if (lease === undefined) early.push({ cluster, result });
    else if (cluster === lease.cluster) settle({ result });
  };
  const subs = [
    t.subscribe(subjects.result(scope.team, requestId, '*'), (msg) => {
      const p = parseMessage(resultMsg, msg.data);
      if (p.ok) accept(msg.subject.slice(msg.subject.lastIndexOf('.') + 1), p.value);
    }),
  ];
  const unfollow = rt.states.follow(scope.team, scope.runId, requestId, (s) => onState(s));
  // Past its deadline, the call asks the broker where its lease stands (lease-watch.ts).
  let followed: Followed | undefined;
  let lastState: string | undefined;
  let unknown = 0;
  /** Reads the result back from where results are kept; `why`: else the attempt failed so. */
  const recover = async (why?: string) => {
    const kept = lease && (await rt.findResult(scope.team, requestId, lease.cluster));
    if (kept) accept(lease!.cluster, kept);
    else if (why !== undefined) settle({ failed: why });
  };
  const onStatus = (s: RequestStatus) => {
    if (!lease) return;
    // A broker that just took over may not have loaded everything yet: its result may be kept, or
    // the next answer may know it. Only a request unknown three times in a row is given up.
    if (s.state === 'unknown')
      return void recover(++unknown >= 3 ? 'the broker no longer knows this request' : undefined);
    unknown = 0;
    const at = rt.now();
    if (s.lease && s.lease.leaseId !== lease.leaseId)
      return onState({ requestId, leaseId: s.lease.leaseId, state: 'placed', at, lease: s.lease });
    if (s.state === lastState) return;
    onState({ requestId, state: s.state, at, leaseId: s.leaseId, node: s.node, reason: s.reason });
  };
  function onState(s: TaskStateMsg): void {
    followed?.heard();
    lastState = s.state;
    if (s.state === 'placed' && s.lease) {
      lease = s.lease;
      early = [];
      rt.emit(scope, {
        ...base,
        type: 'placed',
        at: s.at,
        placement: placementOf(s.lease),
        message: 'placed again',
      });
    } else if (s.state === 'running') {
      runningAt ??= s.at;
      // A lease on a planned node runs on the node the cloud gave it: the lineage names that node.
      if (lease && s.node) lease = { ...lease, node: s.node };
      rt.emit(scope, {
        ...base,
        type: 'running',
        at: s.at,
        ...(lease ? { placement: placementOf(lease, s.node) } : {}),
      });
    } else if (s.state === 'preempted' || s.state === 'lost') {
      preemptions++;
      if (lease && runningAt !== undefined) lostCostUsd += rt.costOf(lease.pricePerHour, runningAt, s.at);
      runningAt = undefined;
      rt.emit(scope, {
        ...base,
        type: 'preempted',
        at: s.at,
        ...(lease ? { placement: placementOf(lease, s.node) } : {}),
        // Stopped for higher-priority work: the attempt ends in a PreemptedError and is placed again.
        message: s.preemption
          ? `PreemptedError: ${s.preemption.detail}; the broker places it again`
          : `${s.state}: ${s.reason ?? ''}; the broker places it again`,
      });
    } else if (s.state === 'pending' && s.hold) {
      rt.emit(scope, { ...base, type: 'held', at: s.at, hold: s.hold, message: s.hold.detail });
    } else if (s.state === 'failed' && s.failure) {
      // The broker stopped it (budget, cancelled run): no result will come.
      const err = brokerError(s.failure, name);
      if (s.failure.kind === 'run-cancelled' || s.failure.kind === 'run-abandoned')
        rt.cancelledRuns.set(scope.runId, err);
      settle({ error: err });
    } else if (s.state === 'failed') {
      // The host publishes the result before the agent reports the end; a failure without a
      // result (a crash the host could not report) is synthesized after a grace period.
      clearTimeout(failTimer);
      failTimer = setTimeout(() => void recover(s.reason ?? 'the task failed'), 500);
    } else if (s.state === 'succeeded') {
      // A result published while this runtime was reconnecting is kept: read back, not run again.
      // One that is nowhere after a longer grace was lost in transit: tried again.
      if (lease) void recover();
      clearTimeout(failTimer);
      failTimer = setTimeout(() => void recover('the task ended but its result was lost'), 5000);
    }
  }
  try {
    await t.flush();
    lease = await rt.ask(
      {
        requestId,
        team: scope.team,
        runId: scope.runId,
        taskId: name,
        ...(scope.workflow ? { workflow: scope.workflow } : {}),
        resources,
        override: overridden,
        ...(a.gang ? { gang: a.gang } : {}),
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
          ...(attempt > 0 ? { attempt } : {}),
          ...(task.options.program ? { program: task.options.program } : {}),
        },
      },
      name,
    );
    for (const e of early) accept(e.cluster, e.result);
    early = [];
    followed = rt.leases.follow(scope.team, requestId, onStatus);
    rt.emit(scope, {
      ...base,
      type: 'placed',
      at: rt.now(),
      placement: placementOf(lease),
      ...(overridden ? { message: `override ${describeResources(resources)}` } : {}),
    });
    // One start per attempt (a gang's members are one execution: its rank 0 speaks for it).
    if ((a.gang?.rank ?? 0) === 0)
      scope.started?.({
        run: scope.runId,
        execution,
        parent: scope.execution,
        task: name,
        codeHash: task.codeHash,
        attempt,
        input: valueHash(input),
        asked: resources,
        override: overridden,
        placement: lineagePlacement(lease),
        startedAt: rt.now(),
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
            startedAt: runningAt ?? rt.now(),
            endedAt: rt.now(),
          };
    return { result, lease: lease!, preemptions, lostCostUsd, warm: false };
  } finally {
    clearTimeout(failTimer);
    followed?.stop();
    for (const s of subs) s.unsubscribe();
    unfollow();
  }
}

/** The typed error for a failure the host could not report itself (the process died). */
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
