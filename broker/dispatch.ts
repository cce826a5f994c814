/**
 * Intake and dispatch: requests come in (checked, admitted, queued); what a cycle decided goes out —
 * launches to the agents, leases to the requesters, task states to whoever follows a task.
 */
import {
  batchSubjects,
  encodeJson,
  type LeaseMsg,
  MAX_BATCH_ANSWERS,
  MAX_TASK_STATES,
  type Msg,
  parseMessage,
  requestBatchMsg,
  requestMsg,
  type RequestMsg,
  subjects,
  type TaskStateMsg,
} from '../protocol/index.ts';
import { admit, admitGang } from './admission.ts';
import { BatchedPublish } from './batched-publish.ts';
import { authorizeRequest, requestOrigin } from './origin.ts';
import { append, type BrokerContext, type Waiter } from './context.ts';
import type { RequestRecord } from './records.ts';
import type { runCycle } from './cycle.ts';
import type { LeaseRecord } from './records.ts';

const encoder = new TextEncoder();

/**
 * Leases per launch message (a lease with its explanation is up to about 1.2 KB of JSON; NATS's default
 * limit is 1 MiB).
 */
const LAUNCH_CHUNK = 500;

/** Requests taken are written within this long (with those taken meanwhile), ms. */
const INTAKE_FLUSH_MS = 50;

/** Intake and dispatch of a broker; see {@link createDispatch}. */
export interface Dispatch {
  /** A request on `gantry.v1.team.<team>.request` or `gantry.v1.agent.<cluster>.request`. */
  onRequest(msg: Msg): void;
  /** A batch of requests on `gantry.v1.team.<team>.requests`. */
  onRequests(msg: Msg): void;
  /** Answers whoever waits for a request's lease (a requester or a batch), with `body` as JSON. */
  answer(requestId: string, body: unknown): void;
  /** Tells agents and requesters what a cycle decided, once it is durable. */
  announceCycle(result: ReturnType<typeof runCycle>): void;
  publishState(
    requestId: string,
    leaseId: string | undefined,
    s: string,
    reason?: string,
    node?: string,
    extra?: Pick<TaskStateMsg, 'hold' | 'failure' | 'preemption'>,
  ): void;
  /** Sends launches to a cluster's agent in chunks. */
  dispatch(cluster: string, leaseIds: readonly string[], encoded?: ReadonlyMap<string, string>): void;
  /**
   * Answers those waiting for requests that already have a lease or failed (their cycle's answer was
   * not sent: the broker stopped serving before it was durable). Call once the state is durable.
   */
  answerDecided(): number;
}

/** Intake and dispatch over the context's transport; `schedule` starts a cycle when one is due. */
export function createDispatch(ctx: BrokerContext, deps: { schedule(): void }): Dispatch {
  const { transport, state, metrics, log, clock, platform, waiters, admitted } = ctx;
  const { schedule } = deps;
  const bad = ctx.bad;

  /** Tells agents and requesters what a cycle decided, once it is durable. */
  function announceCycle(result: ReturnType<typeof runCycle>): void {
    // Work stopped for higher-priority requests: its agents stop it, its requesters hear why.
    for (const p of result.preemptions) {
      for (const { lease, request } of p.victims) {
        transport.publish(
          subjects.cancel(lease.cluster),
          encodeJson({ leaseId: lease.leaseId, reason: p.detail }),
        );
        publishState(request.requestId, lease.leaseId, 'preempted', p.detail, undefined, {
          preemption: { kind: 'priority', detail: p.detail },
        });
        metrics.preemptions.inc({ team: request.team });
      }
      log.info(
        { requestId: p.request.requestId, victims: p.victims.map((v) => v.lease.leaseId), detail: p.detail },
        'preempted',
      );
    }
    for (const [cluster, pools] of result.scale) {
      for (const [pool, add] of pools)
        transport.publish(subjects.scale(cluster), encodeJson({ pool, add, remove: [] }));
    }
    const byCluster = new Map<string, string[]>();
    const encoded = new Map<string, string>();
    for (const { lease } of result.leases) {
      append(byCluster, lease.cluster, lease.leaseId);
      encoded.set(lease.leaseId, JSON.stringify(lease));
    }
    for (const [cluster, ids] of byCluster) dispatch(cluster, ids, encoded);
    for (const { lease, request } of result.leases) {
      if (log.isLevelEnabled('debug')) {
        const { requestId, runId, taskId } = request;
        log.debug(
          {
            requestId,
            runId,
            taskId,
            leaseId: lease.leaseId,
            cluster: lease.cluster,
            pool: lease.pool,
            node: lease.node,
          },
          'placed',
        );
      }
      const text = encoded.get(lease.leaseId)!;
      // Nobody waits for a reply when the broker placed a request again (after a preemption or a
      // lost cluster): the requester hears of the new lease on the task's state subject.
      if (!answerRaw(request.requestId, `{"ok":true,"lease":${text}}`))
        states.add(
          subjects.taskStates(request.team, request.runId),
          `{"requestId":${JSON.stringify(request.requestId)},"leaseId":${JSON.stringify(lease.leaseId)},"state":"placed","at":${clock()},"lease":${text}}`,
        );
    }
    for (const { request } of result.refused) {
      // The request's reason is the refusal's text (`policy: …`), as `gantry get requests` shows it.
      const message = request.reason ?? 'policy: no compatible pool';
      metrics.refused.inc({ code: 'policy' });
      answer(request.requestId, { ok: false, error: { code: 'policy', message } });
      publishState(request.requestId, undefined, 'failed', message);
    }
    answers.flush();
    states.flush();
  }

  function answer(requestId: string, body: unknown): void {
    answerRaw(requestId, JSON.stringify(body));
  }

  /** Answers everyone waiting for `requestId`; false when nobody was. */
  function answerRaw(requestId: string, json: string): boolean {
    const ws = waiters.get(requestId);
    if (!ws) return false;
    waiters.delete(requestId);
    let data: Uint8Array | undefined;
    for (const w of ws) {
      if ('answers' in w) answers.add(w.answers, answerItem(requestId, json));
      else transport.respond(w, (data ??= encoder.encode(json)));
    }
    return true;
  }

  /** Answers to batches and task states, sent a few per message once the current work is done. */
  const answers = new BatchedPublish(transport, 'results', MAX_BATCH_ANSWERS);
  const states = new BatchedPublish(transport, 'states', MAX_TASK_STATES);

  /** Returns how many requests it answered. */
  function answerDecided(): number {
    let n = 0;
    for (const requestId of [...waiters.keys()]) {
      const r = state.requests.get(requestId);
      const lease = r?.leaseId ? state.leases.get(r.leaseId) : undefined;
      if (lease) answer(requestId, { ok: true, lease: toLeaseMsg(lease) });
      else if (r?.state === 'failed') answer(requestId, { ok: false, error: failedError(r) });
      else continue;
      n++;
    }
    return n;
  }

  function publishState(
    requestId: string,
    leaseId: string | undefined,
    s: string,
    reason?: string,
    node?: string,
    extra?: Pick<TaskStateMsg, 'hold' | 'failure' | 'preemption'>,
  ): void {
    const r = state.requests.get(requestId);
    if (r === undefined) return;
    states.add(
      subjects.taskStates(r.team, r.runId),
      JSON.stringify({ requestId, leaseId, state: s, at: clock(), reason, node, ...extra }),
    );
  }

  /**
   * Sends launches to a cluster's agent in chunks; the agent launches each lease once. `encoded` holds
   * leases already turned into JSON (a cycle encodes each once, for the reply and the launch).
   */
  function dispatch(
    cluster: string,
    leaseIds: readonly string[],
    encoded?: ReadonlyMap<string, string>,
  ): void {
    const json: string[] = [];
    const ids: string[] = [];
    for (const id of leaseIds) {
      const text = encoded?.get(id);
      if (text) json.push(text);
      else {
        const l = state.leases.get(id);
        if (!l) continue;
        json.push(JSON.stringify(toLeaseMsg(l)));
      }
      ids.push(id);
    }
    for (let i = 0; i < json.length; i += LAUNCH_CHUNK) {
      const chunk = json.slice(i, i + LAUNCH_CHUNK);
      const chunkIds = ids.slice(i, i + LAUNCH_CHUNK);
      const body = new TextEncoder().encode(`{"leases":[${chunk.join(',')}]}`);
      transport.request(subjects.launch(cluster), body, { timeoutMs: 5000, answeredAtOnce: true }).then(
        (reply) => {
          // The agent took them (it answers before launching): they are not sent again, however long
          // they wait for a node. An agent that restarts is sent them again when it registers.
          if (reply.data[6] === 116 /* 't' of {"ok":true */) state.acknowledge(chunkIds);
        },
        (err: Error) => {
          // The redispatch loop sends them again.
          log.warn({ cluster, leases: chunk.length, err: err.message }, 'launch not acknowledged');
        },
      );
    }
  }

  // Most requests repeat a handful of shapes: their admission is computed once. The platform's policies
  // do not change while the broker runs; onboarding clears the cache anyway.
  function admitCached(m: RequestMsg): ReturnType<typeof admit> {
    const key = `${m.team}\u0000${m.override}\u0000${JSON.stringify(m.resources)}`;
    let result = admitted.get(key);
    if (!result) {
      if (admitted.size >= 10_000) admitted.clear();
      result = admit(m, platform);
      admitted.set(key, result);
    }
    return result;
  }

  const teamRunsOn = (team: string, cluster: string) => state.hostsWorkOf(cluster, team);

  /**
   * Takes one request for `waiter`: the answer's JSON when it is decided at once (forbidden, refused,
   * a retried request that already has its lease or failed), else undefined (it waits for a cycle).
   */
  function intake(m: RequestMsg, subject: string, waiter: Waiter): string | undefined {
    // The team is the one the subject names (its credential's), never only the message's.
    const forbidden = authorizeRequest(requestOrigin(subject), m, { platform, teamRunsOn });
    if (forbidden) {
      metrics.refused.inc({ code: forbidden.code });
      log.warn({ requestId: m.requestId, subject, error: forbidden.message }, 'request forbidden');
      return JSON.stringify({ ok: false, error: forbidden });
    }
    const known = state.requests.get(m.requestId);
    if (known) {
      // Idempotent: a retried request gets the lease it already has, or waits for it — until the lease is
      // durable, so that a broker taking over knows every lease a requester was told of.
      const lease = known.leaseId ? state.leases.get(known.leaseId) : undefined;
      if (lease) {
        const json = JSON.stringify({ ok: true, lease: toLeaseMsg(lease) });
        if (!ctx.writer.unwritten(m.requestId)) return json;
        // Not answered if the write fails: the requester asks again.
        wait(m.requestId, waiter);
        void ctx.writer.flush().then(
          () => void answerRaw(m.requestId, json),
          () => undefined,
        );
        return undefined;
      }
      if (known.state === 'failed') return JSON.stringify({ ok: false, error: failedError(known) });
      wait(m.requestId, waiter);
      return undefined;
    }
    const admitted = admitCached(m);
    const resources = 'code' in admitted ? admitted : (admitGang(m, admitted) ?? admitted);
    if ('code' in resources) {
      metrics.refused.inc({ code: resources.code });
      log.info(
        { requestId: m.requestId, runId: m.runId, taskId: m.taskId, error: resources.message },
        'request refused',
      );
      return JSON.stringify({ ok: false, error: resources });
    }
    const now = clock();
    // Every field in one literal, in one order: the records share one object shape (see leaseRecord).
    state.addRequest({
      requestId: m.requestId,
      team: m.team,
      runId: m.runId,
      taskId: m.taskId,
      workflow: m.workflow,
      resources,
      priority: m.priority,
      override: m.override,
      work: m.work,
      state: 'pending',
      reason: undefined,
      held: undefined,
      failure: undefined,
      leaseId: undefined,
      attempt: 0,
      gang: m.gang ? { ...m.gang, size: resources.nodes ?? 1 } : undefined,
      avoidSpot: undefined,
      createdAt: now,
      updatedAt: now,
    });
    waiters.set(m.requestId, [waiter]);
    // A gang's members held waiting for this one are planned with it.
    if (m.gang) state.releaseGang(m.gang.id);
    return undefined;
  }

  /** Adds a waiter for a request, unless the same batch subject waits already (a batch sent again). */
  function wait(requestId: string, waiter: Waiter): void {
    const list = waiters.get(requestId);
    if ('answers' in waiter && list?.some((w) => 'answers' in w && w.answers === waiter.answers)) return;
    append(waiters, requestId, waiter);
  }

  function onRequest(msg: Msg): void {
    const parsed = parseMessage(requestMsg, msg.data);
    if (!parsed.ok) return bad(msg, msg.subject, parsed.error);
    const now = intake(parsed.value, msg.subject, msg);
    if (now !== undefined) transport.respond(msg, encoder.encode(now));
    else taken();
  }

  /**
   * Requests were taken: a cycle is due, and they are written soon whatever it does, so that a broker
   * taking over has them however long they queue here (a cycle deciding them first writes them once).
   */
  function taken(): void {
    schedule();
    ctx.writer.flushSoon(
      INTAKE_FLUSH_MS,
      () => ctx.serving,
      (err) => log.warn({ err: err.message }, 'could not write the requests taken; the next write retries'),
    );
  }

  /**
   * A batch: the reply says what was decided at once; the rest is answered on the batch's subject. The
   * reply is the acknowledgement: it goes once every request taken is durable (the intake write that holds
   * them landed, or they were written already), so that a broker taking over has each request the runtime
   * was told was taken. If that write fails, no reply goes: the runtime sends the batch again, and each
   * request it holds is taken once (by its id).
   */
  function onRequests(msg: Msg): void {
    const parsed = parseMessage(requestBatchMsg, msg.data);
    if (!parsed.ok) return bad(msg, msg.subject, parsed.error);
    const { batch, requests } = parsed.value;
    const origin = requestOrigin(msg.subject);
    const waiter = { answers: batchSubjects.answers(origin?.kind === 'team' ? origin.team : '-', batch) };
    const results: string[] = [];
    const accepted: string[] = [];
    for (const m of requests) {
      const now = intake(m, msg.subject, waiter);
      if (now === undefined) accepted.push(m.requestId);
      else results.push(answerItem(m.requestId, now));
    }
    const reply = () =>
      transport.respond(
        msg,
        encoder.encode(`{"results":[${results.join(',')}],"accepted":${accepted.length}}`),
      );
    if (accepted.length === 0) return reply();
    taken();
    ctx.writer.written(accepted).then(reply, () => undefined);
  }

  return { onRequest, onRequests, announceCycle, answer, publishState, dispatch, answerDecided };
}

/**
 * A lease as agents and requesters see it: the record without the broker's bookkeeping. Every field in
 * one literal (a copy without some fields by destructuring was a few percent of a busy broker's CPU).
 */
export function toLeaseMsg(l: LeaseRecord): LeaseMsg {
  return {
    leaseId: l.leaseId,
    requestId: l.requestId,
    cluster: l.cluster,
    pool: l.pool,
    node: l.node,
    pricePerHour: l.pricePerHour,
    cpuMilli: l.cpuMilli,
    memoryMiB: l.memoryMiB,
    gpuMilli: l.gpuMilli,
    gpuModel: l.gpuModel,
    capacityType: l.capacityType,
    expiresAt: l.expiresAt,
    attempt: l.attempt,
    why: l.why,
    explanation: l.explanation,
    gang: l.gang,
    work: l.work,
  };
}

/** One batch answer's JSON from a single answer's (`{"ok":…}`): the request id goes first. */
function answerItem(requestId: string, json: string): string {
  return `{"requestId":${JSON.stringify(requestId)},${json.slice(1)}`;
}

/** The error a request that failed is answered with again: its typed failure when the broker ended it. */
function failedError(r: RequestRecord): { code: string; message: string } {
  if (r.failure) return { code: r.failure.kind, message: r.failure.detail };
  return { code: 'policy', message: r.reason ?? 'failed' };
}
