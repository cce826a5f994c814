/** Key rules shared by every `Store`, so that a key accepted locally is also accepted by JetStream. */
import { BadKeyError } from './errors.ts';

const TOKEN = /^[-_=a-zA-Z0-9]+$/;

/** The longest key accepted; JetStream subjects get slow and unwieldy well before NATS's own limits. */
export const MAX_KEY_LENGTH = 1024;

/**
 * Throws `BadKeyError` unless `key` is dot-separated tokens of `[-_=a-zA-Z0-9]`, e.g. `lease.l-42`.
 *
 * @example
 * validateKey('lease.l-42'); // ok
 * validateKey('lease..x'); // throws BadKeyError (empty token)
 */
export function validateKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0) throw new BadKeyError(String(key), 'key is empty');
  if (key.length > MAX_KEY_LENGTH) throw new BadKeyError(key, `longer than ${MAX_KEY_LENGTH} characters`);
  const tokens = key.split('.');
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.length === 0) throw new BadKeyError(key, `token ${i + 1} is empty`);
    if (!TOKEN.test(t))
      throw new BadKeyError(key, `token ${i + 1} (${JSON.stringify(t)}) is not [-_=a-zA-Z0-9]+`);
  }
}

/** Like `validateKey`, but the empty prefix (every key) is allowed. */
export function validatePrefix(prefix: string): void {
  if (prefix !== '') validateKey(prefix);
}

/** Whether `key` starts with the whole tokens of `prefix` (`lease` matches `lease.x`, not `leases.x`). */
export function keyHasPrefix(key: string, prefix: string): boolean {
  if (prefix === '') return true;
  return (
    key === prefix || (key.length > prefix.length && key.startsWith(prefix) && key[prefix.length] === '.')
  );
}

/** Code-unit order, the same in every store and independent of locale. */
export function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
