/**
 * Batched requests: a team's runtime sends many requests in one message and hears of their leases many
 * at a time, so that one client process is not the ceiling of a busy broker. The batch goes to
 * `gantry.v1.team.<team>.requests` (request/reply): the reply holds what the broker decided on arrival
 * (refusals, leases a retried request already has). The rest are answered on the batch's own subject
 * under the team, `gantry.v1.team.<team>.batch.<batch>.leases`, once per solve cycle that decides some
 * of them; a request held for capacity, quota or budget is answered when it is placed or withdrawn.
 * The team is the subject's, as for single requests; only the broker may publish on the answers'
 * subject (docs/security.md).
 */
import { z } from 'zod';
import { leaseMsg, PROTOCOL, requestMsg } from './messages.ts';

/** Requests per batch (a task request with an inline input is up to a few KB; NATS's limit is 1 MiB). */
export const MAX_BATCH_REQUESTS = 1000;

/** Answers per message on a batch's subject (a lease with its explanation is up to about 1.2 KB). */
export const MAX_BATCH_ANSWERS = 500;

/** Subjects of batched requests. */
export const batchSubjects = {
  /** a team's runtime → broker, request/reply: many requests; the reply is `requestBatchReply`. */
  requests: (team: string) => `${PROTOCOL}.team.${team}.requests`,
  /** broker → the team's runtime: answers to a batch's requests as cycles decide them. */
  answers: (team: string, batch: string) => `${PROTOCOL}.team.${team}.batch.${batch}.leases`,
} as const;

/** runtime → broker: requests of the subject's team; `batch` names the subject the answers go to. */
export const requestBatchMsg = z.strictObject({
  batch: z
    .string()
    .regex(/^[A-Za-z0-9_\-]{1,64}$/, 'must be 1–64 letters, digits, _ or - (it is part of a NATS subject)'),
  requests: z.array(requestMsg).min(1).max(MAX_BATCH_REQUESTS),
});

const error = z.strictObject({ code: z.string(), message: z.string(), field: z.string().optional() });

/** The answer to one request of a batch: its lease, or why it was refused or withdrawn. */
export const batchAnswer = z.discriminatedUnion('ok', [
  z.strictObject({ requestId: z.string(), ok: z.literal(true), lease: leaseMsg }),
  z.strictObject({ requestId: z.string(), ok: z.literal(false), error }),
]);

/**
 * broker → runtime: answers to requests of a batch (the reply on arrival, and each message on the
 * batch's subject). `accepted` (in the reply only): how many requests wait for a cycle. The reply
 * goes once those are durable, so a broker taking over has them; none if their write failed.
 */
export const requestBatchReply = z.strictObject({
  results: z.array(batchAnswer),
  accepted: z.int().nonnegative().optional(),
});

export type RequestBatchMsg = z.output<typeof requestBatchMsg>;
export type BatchAnswer = z.output<typeof batchAnswer>;
export type RequestBatchReply = z.output<typeof requestBatchReply>;
