/** Asking the broker for a lease: the request, asked again while no broker answers, refusals typed. */
import {
  brokerFailureKind,
  type BrokerFailureKind,
  encodeJson,
  type LeaseMsg,
  type Msg,
  NoRespondersError,
  parseMessage,
  requestReply,
  type RequestStatus,
  subjects,
  type Transport,
  TransportTimeoutError,
} from '../protocol/index.ts';
import { BROKER_FAILURES, NonRetriableError, PolicyRefusedError, TaskError } from './errors.ts';
import { askAgainWaitMs } from './retry.ts';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Where the broker said a request stands, while its answer is awaited (lease-watch.ts). */
export interface RequestFollower {
  follow(team: string, requestId: string, onStatus: (s: RequestStatus) => void): { stop(): void };
}

/**
 * Asks the broker for a lease, asking again (same id: idempotent) while it does not answer. A refusal
 * by policy is a {@link PolicyRefusedError}; any other refusal a {@link NonRetriableError}.
 *
 * With `follower`, the request's state is asked for past its deadline while the answer is awaited (a
 * broker that took over lost the waiting requests' reply subjects): a lease the broker already gave is
 * taken from the status answer, and a request the broker does not know (it died before the request was
 * durable) is asked again at once, instead of after `replyTimeoutMs`.
 */
export async function askBroker(
  transport: Transport,
  body: Record<string, unknown> & { team: string },
  task: string,
  replyTimeoutMs = 30_000,
  cluster?: string,
  follower?: RequestFollower,
): Promise<LeaseMsg> {
  const data = encodeJson(body);
  // A team's runtime asks on its team's subject; a task host's nested calls through its cluster's.
  const subject = cluster === undefined ? subjects.request(body.team) : subjects.agentRequest(cluster);
  type Heard = { reply: Msg } | { err: unknown } | { lease: LeaseMsg } | { again: true };
  let heard: ((h: Heard) => void) | undefined;
  const requestId = typeof body.requestId === 'string' ? body.requestId : undefined;
  const followed =
    requestId === undefined
      ? undefined
      : follower?.follow(body.team, requestId, (s) => {
          if (s.lease) heard?.({ lease: s.lease });
          else if (s.state === 'unknown' || s.state === 'failed') heard?.({ again: true });
        });
  let noBroker = 0;
  try {
    for (;;) {
      const outcome = await new Promise<Heard>((resolve) => {
        heard = resolve;
        transport.request(subject, data, { timeoutMs: replyTimeoutMs }).then(
          (reply) => resolve({ reply }),
          (err: unknown) => resolve({ err }),
        );
      });
      heard = undefined;
      if ('lease' in outcome) return outcome.lease;
      if ('again' in outcome) continue;
      if ('err' in outcome) {
        const { err } = outcome;
        if (err instanceof TransportTimeoutError) continue;
        if (err instanceof NoRespondersError) {
          // No broker yet (starting, failing over): wait and ask again.
          await sleep(askAgainWaitMs(noBroker++));
          continue;
        }
        throw err;
      }
      const reply = outcome.reply;
      const p = parseMessage(requestReply, reply.data);
      if (!p.ok) throw new TaskError(`the broker sent a bad reply: ${p.error.message}`);
      if (p.value.ok) return p.value.lease;
      throw refusalError(p.value.error, task);
    }
  } finally {
    followed?.stop();
  }
}

/**
 * The typed error of a refused or withdrawn request: a failure the broker decided itself (budget, queue
 * time, a cancelled run) as its class, a refusal by policy as a {@link PolicyRefusedError}, any other
 * refusal a {@link NonRetriableError}.
 */
export function refusalError(error: { code: string; message: string; field?: string }, task: string): Error {
  const { code, message, field } = error;
  const failure = brokerFailureKind.safeParse(code);
  if (failure.success) return brokerError({ kind: failure.data, detail: message }, task);
  const info = {
    code,
    ...(field ? { field } : {}),
    ...(policyName(message) ? { policy: policyName(message) } : {}),
  };
  if (code === 'policy' || code === 'no-policy' || code === 'bad-resources')
    return new PolicyRefusedError(`${task}: ${message}`, info);
  return new NonRetriableError(`${task}: the broker refused the request: ${message}`, info);
}

/** The typed error of a request or lease the broker ended itself (budget, queue time, cancelled run). */
export function brokerError(f: { kind: BrokerFailureKind; detail: string }, task: string): TaskError {
  return new BROKER_FAILURES[f.kind](`${task}: ${f.detail}`, { kind: f.kind });
}

function policyName(message: string): string | undefined {
  return /policy '?([a-z0-9][a-z0-9-]*)'?/i.exec(message)?.[1];
}
