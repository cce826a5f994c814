/**
 * Answers the lease status question (protocol/lease-status.ts): for each request a runtime names, where
 * it stands, its lease and until when that lease holds — its cluster's last heartbeat plus the grace
 * after which the broker would place the work again. A runtime asks only for calls that heard nothing
 * past their deadline (after a NATS restart or a failover), so this is cheap.
 */
import {
  encodeJson,
  leaseStatusAsk,
  type Msg,
  parseMessage,
  PROTOCOL,
  type RequestStatus,
} from '../protocol/index.ts';
import type { BrokerContext } from './context.ts';
import { toLeaseMsg } from './dispatch.ts';
import type { RequestRecord } from './records.ts';

const ACTIVE = new Set(['placed', 'launching', 'running']);

/**
 * Who may see a request: a team's runtime (`gantry.v1.team.<team>.status`) its team's; a cluster's task
 * hosts (`gantry.v1.agent.<cluster>.status`) those of the teams with workflow work on that cluster.
 */
function viewer(ctx: BrokerContext, subject: string): ((r: RequestRecord) => boolean) | undefined {
  const tokens = subject.split('.');
  if (tokens.length !== 5 || tokens[4] !== 'status') return undefined;
  const who = tokens[3]!;
  if (subject.startsWith(`${PROTOCOL}.team.`)) return (r) => r.team === who;
  if (!subject.startsWith(`${PROTOCOL}.agent.`)) return undefined;
  // Kept as leases start and end: no walk over the cluster's leases.
  return (r) => ctx.state.hostsWorkOf(who, r.team);
}

/** Answers one status question. */
export function answerLeaseStatus(ctx: BrokerContext, msg: Msg): void {
  const parsed = parseMessage(leaseStatusAsk, msg.data);
  if (!parsed.ok) return ctx.bad(msg, msg.subject, parsed.error);
  const sees = viewer(ctx, msg.subject);
  const now = ctx.clock();
  // Past this, the health check places a silent cluster's work elsewhere (agent-handlers.ts).
  const graceMs = 2 * ctx.heartbeatMs;
  const states = parsed.value.requestIds.map((requestId): RequestStatus => {
    const r = ctx.state.requests.get(requestId);
    if (!r || !sees?.(r)) return { requestId, state: 'unknown' };
    // A lease not durable yet is not told of (a broker taking over would not know it): still pending.
    if (ctx.writer.unwritten(requestId) && r.state === 'placed') return { requestId, state: 'pending' };
    const lease = r.leaseId ? ctx.state.leases.get(r.leaseId) : undefined;
    const out: RequestStatus = { requestId, state: r.state };
    if (r.reason) out.reason = r.reason;
    if (!lease) return out;
    out.leaseId = lease.leaseId;
    if (lease.actualNode) out.node = lease.actualNode;
    if (!ACTIVE.has(lease.state)) return out;
    out.lease = toLeaseMsg(lease);
    const beat = ctx.inventory.clusters.get(lease.cluster)?.lastHeartbeat ?? now;
    out.renewedUntil = beat + graceMs;
    return out;
  });
  ctx.transport.respond(msg, encodeJson({ states, renewMs: ctx.heartbeatMs, at: now }));
}
