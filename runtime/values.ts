/**
 * Typed values on the wire. A task's input and output are checked against its zod schemas on both
 * sides, then sent inline when small or by reference to the artifact store when large. Every value
 * has a content hash (sha256 of its JSON), which lineage and the cache key on.
 */
import type { z } from 'zod';
import type { ValueMsg } from '../protocol/index.ts';
import { type ArtifactStore, contentRef } from './artifacts.ts';
import { TaskError, ValidationError } from './errors.ts';

/** Values whose JSON is larger than this go to the artifact store. */
export const DEFAULT_INLINE_LIMIT = 16 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Encodes a value: inline under `inlineLimit` bytes of JSON, else stored and referenced. */
export async function encodeValue(
  value: unknown,
  artifacts: ArtifactStore,
  inlineLimit = DEFAULT_INLINE_LIMIT,
): Promise<ValueMsg> {
  const json = JSON.stringify(value ?? null);
  // Most values are small: skip the byte conversion unless the length could be over the limit.
  if (json.length * 3 <= inlineLimit) return { inline: value ?? null, hash: contentRef(json) };
  const bytes = encoder.encode(json);
  if (bytes.byteLength <= inlineLimit) return { inline: value ?? null, hash: contentRef(json) };
  return { ref: await artifacts.put(bytes), bytes: bytes.byteLength };
}

/** The value's content hash, inline or not. */
export function valueHash(msg: ValueMsg): string {
  return 'ref' in msg ? msg.ref : msg.hash;
}

/**
 * Decodes a value, fetching it from the artifact store when it went by reference. Every value is
 * checked against its content hash, inline ones too: a value altered on the way (or forged) is a
 * `TaskError`, never an output.
 */
export async function decodeValue(msg: ValueMsg, artifacts: ArtifactStore): Promise<unknown> {
  if (!('ref' in msg)) {
    const actual = contentRef(JSON.stringify(msg.inline ?? null));
    if (actual !== msg.hash)
      throw new TaskError(`a value does not match its content hash ${msg.hash}`, {
        hash: msg.hash,
        actual,
      });
    return msg.inline;
  }
  const bytes = await artifacts.get(msg.ref);
  if (contentRef(bytes) !== msg.ref)
    throw new TaskError(`artifact ${msg.ref} does not match its hash`, {
      hash: msg.ref,
      actual: contentRef(bytes),
    });
  return JSON.parse(decoder.decode(bytes));
}

/**
 * Checks a value against a task's schema; a mismatch is a `ValidationError` that names the task, the
 * side and the field. JSON has no `undefined`: a `null` that fails is tried again as `undefined`.
 */
export function checkValue<S extends z.ZodType>(
  schema: S,
  value: unknown,
  where: { task: string; side: 'input' | 'output' },
): z.output<S> {
  let parsed = schema.safeParse(value);
  if (!parsed.success && value === null) {
    const again = schema.safeParse(undefined);
    if (again.success) parsed = again;
  }
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const field = issue.path.map(String).join('.');
  throw new ValidationError(
    `${where.task}: ${where.side}${field ? `.${field}` : ''}: ${issue.message.replace(/^Invalid input: /, '')}`,
    { task: where.task, side: where.side, field },
  );
}
