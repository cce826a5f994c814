/**
 * Agents' lease reports, checked at the cost of a few `typeof`s each. An agent's credential is its
 * cluster's alone (docs/security.md), and the broker takes a lease report only for a lease of that
 * cluster, so the reports need no more than the right fields of the right types: a busy cluster sends
 * tens of thousands a second. Anything else in the message (node and pool events, the nodes of a
 * heartbeat) and any report that fails the quick check goes through the full schema, which names the
 * field that is wrong.
 */
import type { z } from 'zod';
import { agentEvent, agentEvents, heartbeatMsg, MAX_FINISHED_IN_HEARTBEAT } from './messages/agents.ts';
import { type ErrorReply, parseMessage } from './messages/fields.ts';
import { taskState } from './messages/requests.ts';

type Parsed<T> = { ok: true; value: T } | ErrorReply;

const STATES: ReadonlySet<unknown> = new Set(taskState.options);
const decoder = new TextDecoder();

/** Fields of a lease event and of a heartbeat's finished entry; the event has `type`, `cluster`, `at` too. */
const REPORT_FIELDS = ['leaseId', 'state', 'node', 'reason', 'cause', 'startedAt', 'ranMs'];
const EVENT_FIELDS: ReadonlySet<string> = new Set([...REPORT_FIELDS, 'type', 'cluster', 'at', 'exitCode']);
const FINISHED_FIELDS: ReadonlySet<string> = new Set(REPORT_FIELDS);

type Loose = Record<string, unknown>;
const finishedEntry = heartbeatMsg.shape.finished.unwrap().element;
const optional = (v: unknown, type: 'string' | 'number') => v === undefined || typeof v === type;

/** Whether `r` is a well-formed lease report with only `fields` (a `cause` takes the full check). */
function quickReport(r: unknown, fields: ReadonlySet<string>): r is Loose {
  if (typeof r !== 'object' || r === null) return false;
  const o = r as Loose;
  for (const k in o) if (!fields.has(k)) return false;
  return (
    typeof o.leaseId === 'string' &&
    STATES.has(o.state) &&
    o.cause === undefined &&
    optional(o.node, 'string') &&
    optional(o.reason, 'string') &&
    optional(o.startedAt, 'number') &&
    (o.ranMs === undefined || (typeof o.ranMs === 'number' && o.ranMs >= 0))
  );
}

function quickEvent(e: unknown): boolean {
  if (!quickReport(e, EVENT_FIELDS)) return false;
  return (
    e.type === 'lease' &&
    typeof e.cluster === 'string' &&
    typeof e.at === 'number' &&
    (e.exitCode === undefined || Number.isInteger(e.exitCode))
  );
}

/** The error reply for an item that failed its full check, the field named from the message's root. */
function itemError(path: string, error: z.ZodError): ErrorReply {
  const issue = error.issues[0]!;
  const field = [...(path ? [path] : []), ...issue.path.map(String)].join('.');
  return {
    ok: false,
    error: {
      code: 'bad-message',
      message: `${field}: ${issue.message.replace(/^Invalid input: /, '')}`,
      field,
    },
  };
}

function json(data: Uint8Array): Loose | undefined {
  try {
    const v: unknown = JSON.parse(decoder.decode(data));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Loose) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * An agent's `{ events }` message: lease events by the quick check, the rest by the schema.
 *
 * @example
 * const parsed = parseAgentEvents(msg.data);
 * if (!parsed.ok) return transport.respond(msg, encodeJson(parsed));
 */
export function parseAgentEvents(data: Uint8Array): Parsed<z.output<typeof agentEvents>> {
  const raw = json(data);
  const events = raw?.events;
  // The message's shape is wrong: the schema says how.
  if (
    !raw ||
    Object.keys(raw).length !== 1 ||
    !Array.isArray(events) ||
    events.length < 1 ||
    events.length > 10_000
  )
    return parseMessage(agentEvents, data);
  for (let i = 0; i < events.length; i++) {
    if (quickEvent(events[i])) continue;
    const p = agentEvent.safeParse(events[i]);
    if (!p.success) return itemError(`events.${i}`, p.error);
    events[i] = p.data;
  }
  return { ok: true, value: raw as z.output<typeof agentEvents> };
}

/** An agent's heartbeat: its finished entries by the quick check, the rest by the schema. */
export function parseHeartbeat(data: Uint8Array): Parsed<z.output<typeof heartbeatMsg>> {
  const raw = json(data);
  const finished = raw?.finished;
  if (!raw || !Array.isArray(finished)) return parseMessage(heartbeatMsg, data);
  const rest = heartbeatMsg.safeParse({
    ...raw,
    finished: finished.length > MAX_FINISHED_IN_HEARTBEAT ? finished : [],
  });
  if (!rest.success) return itemError('', rest.error);
  for (let i = 0; i < finished.length; i++) {
    if (quickReport(finished[i], FINISHED_FIELDS)) continue;
    const p = finishedEntry.safeParse(finished[i]);
    if (!p.success) return itemError(`finished.${i}`, p.error);
    finished[i] = p.data;
  }
  return {
    ok: true,
    value: { ...rest.data, finished: finished as z.output<typeof heartbeatMsg>['finished'] },
  };
}
