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
const nodeEntry = heartbeatMsg.shape.nodes.element;
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

const quickFinished = (f: unknown) => quickReport(f, FINISHED_FIELDS);

const NODE_FIELDS: ReadonlySet<string> = new Set([
  'name',
  'pool',
  'cpuMilli',
  'memoryMiB',
  'gpuCount',
  'ready',
  'plannedId',
  'capacityType',
  'readyAt',
]);
const CAPACITY_TYPES: ReadonlySet<unknown> = new Set(['spot', 'on-demand', 'reserved']);
const amount = (v: unknown) => typeof v === 'number' && v >= 0;

/** Whether `n` is a well-formed node of a heartbeat (its pool is looked up by name in the cluster's). */
function quickNode(n: unknown): boolean {
  if (typeof n !== 'object' || n === null) return false;
  const o = n as Loose;
  for (const k in o) if (!NODE_FIELDS.has(k)) return false;
  return (
    typeof o.name === 'string' &&
    o.name.length > 0 &&
    typeof o.pool === 'string' &&
    amount(o.cpuMilli) &&
    amount(o.memoryMiB) &&
    Number.isInteger(o.gpuCount) &&
    (o.gpuCount as number) >= 0 &&
    typeof o.ready === 'boolean' &&
    optional(o.plannedId, 'string') &&
    CAPACITY_TYPES.has(o.capacityType) &&
    optional(o.readyAt, 'number')
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

/** An agent's heartbeat: its nodes and finished entries by the quick check, the rest by the schema. */
export function parseHeartbeat(data: Uint8Array): Parsed<z.output<typeof heartbeatMsg>> {
  const raw = json(data);
  const finished = raw?.finished ?? [];
  const nodes = raw?.nodes;
  if (
    !raw ||
    !Array.isArray(finished) ||
    !Array.isArray(nodes) ||
    finished.length > MAX_FINISHED_IN_HEARTBEAT
  )
    return parseMessage(heartbeatMsg, data);
  const rest = heartbeatMsg.safeParse({ ...raw, nodes: [], finished: [] });
  if (!rest.success) return itemError('', rest.error);
  const lists = [
    { list: nodes, path: 'nodes', quick: quickNode, schema: nodeEntry },
    { list: finished, path: 'finished', quick: quickFinished, schema: finishedEntry },
  ];
  for (const { list, path, quick, schema } of lists)
    for (let i = 0; i < list.length; i++) {
      if (quick(list[i])) continue;
      const p = schema.safeParse(list[i]);
      if (!p.success) return itemError(`${path}.${i}`, p.error);
      list[i] = p.data;
    }
  return { ok: true, value: { ...rest.data, nodes, finished } as z.output<typeof heartbeatMsg> };
}
