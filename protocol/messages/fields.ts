/**
 * Fields every message shares (ids, team and cluster names, typed reasons), the error reply, and
 * {@link parseMessage}, which validates a message and names the field that is wrong.
 */
import { z } from 'zod';

// Ids end up in subjects (`gantry.v1.task.<requestId>.state`) and store keys: no dots, spaces or wildcards.
export const id = z
  .string()
  .regex(
    /^[A-Za-z0-9_=:@+\-]{1,200}$/,
    'must be 1–200 letters, digits or _=:@+- (no dots, spaces or wildcards)',
  );
/** A team name: it is a subject token (`gantry.v1.team.<team>.request`). */
export const team = z
  .string()
  .regex(/^[A-Za-z0-9_\-]{1,100}$/, 'must be 1–100 letters, digits, _ or - (it is part of NATS subjects)');
export const name = z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'must be a lower-case name');

/** A typed reason: `{ kind, detail }`. */
export const reasonOf = <K extends z.ZodType>(kind: K) =>
  z.strictObject({ kind, detail: z.string().max(2000) });

/** The error reply every receiver gives to a message it cannot take. */
export const errorReply = z.strictObject({
  ok: z.literal(false),
  error: z.strictObject({ code: z.string(), message: z.string(), field: z.string().optional() }),
});

/** One of the error replies. */
export type ErrorReply = z.output<typeof errorReply>;

/**
 * Validates a message body against its schema. Returns the value, or an error reply that names the
 * subject's field, for the receiver to send back and log.
 *
 * @example
 * const parsed = parseMessage(requestMsg, msg.data);
 * if (!parsed.ok) return transport.respond(msg, encodeJson(parsed));
 */
export function parseMessage<T extends z.ZodType>(
  schema: T,
  data: Uint8Array,
): { ok: true; value: z.output<T> } | ErrorReply {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(data));
  } catch (err) {
    return { ok: false, error: { code: 'bad-json', message: `not JSON: ${(err as Error).message}` } };
  }
  const parsed = schema.safeParse(raw);
  if (parsed.success) return { ok: true, value: parsed.data };
  const issue = parsed.error.issues[0]!;
  const field = issue.path.map(String).join('.');
  return {
    ok: false,
    error: {
      code: 'bad-message',
      message: `${field || '(message)'}: ${issue.message.replace(/^Invalid input: /, '')}`,
      field,
    },
  };
}
