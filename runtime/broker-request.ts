/** Asking the broker for a lease: the request, asked again while no broker answers, refusals typed. */
import {
  brokerFailureKind,
  type BrokerFailureKind,
  encodeJson,
  type LeaseMsg,
  NoRespondersError,
  parseMessage,
  requestReply,
  subjects,
  type Transport,
  TransportTimeoutError,
} from '../protocol/index.ts';
import { BROKER_FAILURES, NonRetriableError, PolicyRefusedError, TaskError } from './errors.ts';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Asks the broker for a lease, asking again (same id: idempotent) while it does not answer. A refusal
 * by policy is a {@link PolicyRefusedError}; any other refusal a {@link NonRetriableError}.
 */
export async function askBroker(
  transport: Transport,
  body: Record<string, unknown> & { team: string },
  task: string,
  replyTimeoutMs = 30_000,
  cluster?: string,
): Promise<LeaseMsg> {
  const data = encodeJson(body);
  // A team's runtime asks on its team's subject; a task host's nested calls through its cluster's.
  const subject = cluster === undefined ? subjects.request(body.team) : subjects.agentRequest(cluster);
  let waitMs = 100;
  for (;;) {
    let reply;
    try {
      reply = await transport.request(subject, data, { timeoutMs: replyTimeoutMs });
    } catch (err) {
      if (err instanceof TransportTimeoutError) continue;
      if (err instanceof NoRespondersError) {
        // No broker yet (starting, failing over): wait and ask again.
        await sleep(waitMs);
        waitMs = Math.min(waitMs * 2, 500);
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

/** The typed error of a request or lease the broker ended itself (budget, queue time, cancelled run). */
export function brokerError(f: { kind: BrokerFailureKind; detail: string }, task: string): TaskError {
  return new BROKER_FAILURES[f.kind](`${task}: ${f.detail}`, { kind: f.kind });
}

function policyName(message: string): string | undefined {
  return /policy '?([a-z0-9][a-z0-9-]*)'?/i.exec(message)?.[1];
}
