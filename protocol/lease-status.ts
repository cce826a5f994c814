/**
 * Lease status: how a runtime learns, after a fault, where its calls stand. A runtime whose call has
 * heard nothing past the call's deadline asks the broker (request/reply) for the state of those
 * requests; the broker answers each with its state, its lease and until when that lease is renewed
 * (its cluster's agent heartbeats), which becomes the call's next deadline. Results are kept in a
 * JetStream stream per team (`gantry-results-<team>`), so a result published while a runtime was
 * reconnecting can be read back instead of being run again.
 */
import { z } from 'zod';
import { brokerFailureKind, leaseMsg, PROTOCOL, taskState } from './messages.ts';

/** Requests per status question (a status is about 700 bytes with its lease; NATS's limit is 1 MiB). */
export const MAX_STATUS_REQUESTS = 1000;

/** Subjects of the lease status question. */
export const leaseStatusSubjects = {
  /** a team's runtime → broker, request/reply: where these requests of the team stand. */
  team: (team: string) => `${PROTOCOL}.team.${team}.status`,
  /** a cluster's task hosts (nested calls) → broker, request/reply: as `team`, through the agent's subject. */
  agent: (cluster: string) => `${PROTOCOL}.agent.${cluster}.status`,
} as const;

/** The stream that keeps a team's results, and the subjects it captures. */
export const resultsStream = {
  name: (team: string) => `gantry-results-${team}`,
  subjects: (team: string) => `${PROTOCOL}.team.${team}.exec.*.result.*`,
} as const;

/** runtime → broker: the requests whose state it wants. */
export const leaseStatusAsk = z.strictObject({
  requestIds: z.array(z.string().min(1).max(200)).min(1).max(MAX_STATUS_REQUESTS),
});

/** Where one request stands; `unknown` when the broker has no such request (of this team). */
export const requestStatus = z.strictObject({
  requestId: z.string(),
  state: z.union([taskState, z.literal('unknown')]),
  leaseId: z.string().optional(),
  /** The request's current lease (when it has one). */
  lease: leaseMsg.optional(),
  /** The node the lease runs on, once the agent said (a planned node gets a real name). */
  node: z.string().optional(),
  reason: z.string().optional(),
  failure: z.strictObject({ kind: brokerFailureKind, detail: z.string() }).optional(),
  /**
   * Until when (broker clock, ms) the lease holds without more news: its cluster's last heartbeat plus
   * the broker's grace. Past it, the broker places the work again (and says so on the state subject).
   */
  renewedUntil: z.number().optional(),
});

/** broker → runtime: the answer, in the order asked. */
export const leaseStatusReply = z.strictObject({
  states: z.array(requestStatus),
  /** How often the broker expects agents' heartbeats: a caller checks again at most this often. */
  renewMs: z.number().positive(),
  /** The broker's clock when it answered (deadlines are turned into the caller's clock by it). */
  at: z.number(),
});

export type LeaseStatusAsk = z.output<typeof leaseStatusAsk>;
export type RequestStatus = z.output<typeof requestStatus>;
export type LeaseStatusReply = z.output<typeof leaseStatusReply>;
