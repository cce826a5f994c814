/**
 * Artifacts found inside values: what lineage's data-flow edges are made of. A training task called
 * with `{ data, lr }`, where `data` is a dataset task's output, read that dataset even though its
 * input as a whole is a new value. Two ways find it:
 *
 * - identity: the runtime remembers every value a task call returned (and the values nested in it);
 *   when one of those very objects turns up inside a later input, its hash is a ref (key order and
 *   schema changes do not matter);
 * - content: the hashes of the nested values themselves (objects, arrays, longer strings), the way a
 *   task output's hash is made, so that a value from another run or process links up too.
 *
 * Both are bounded (depth, count, bytes): a value with a million items gets its first refs, not a
 * million hashes.
 */
import { createHash } from 'node:crypto';

/** Nested levels looked into. */
const MAX_DEPTH = 4;
/** Refs kept per value. */
const MAX_REFS = 32;
/** Characters of JSON hashed per value, at most. */
const MAX_HASHED = 1 << 20;
/** Strings shorter than this are not artifacts (names, flags). */
const MIN_STRING = 8;
/** Strings remembered by identity (values, not objects: kept in a bounded map). */
const MAX_STRINGS = 10_000;

const hashOf = (json: string) => `sha256:${createHash('sha256').update(json).digest('hex')}`;

/** Values this runtime has seen come out of task calls, by identity. */
export class KnownValues {
  readonly #objects = new WeakMap<object, string>();
  readonly #strings = new Map<string, string>();

  /** Remembers a value a call returned (its hash is `hash`) and the nested values of it. */
  remember(value: unknown, hash: string, nested: readonly { value: unknown; hash: string }[] = []): void {
    this.#put(value, hash);
    for (const n of nested) this.#put(n.value, n.hash);
  }

  #put(value: unknown, hash: string): void {
    if (typeof value === 'object' && value !== null) this.#objects.set(value, hash);
    else if (typeof value === 'string' && value.length >= MIN_STRING) {
      if (this.#strings.size >= MAX_STRINGS) this.#strings.delete(this.#strings.keys().next().value!);
      this.#strings.set(value, hash);
    }
  }

  /** The hash of a value remembered by identity, if any. */
  hashOf(value: unknown): string | undefined {
    if (typeof value === 'object' && value !== null) return this.#objects.get(value);
    if (typeof value === 'string') return this.#strings.get(value);
    return undefined;
  }

  /** Hashes of remembered values anywhere inside `value` (not `value` itself). */
  inside(value: unknown): string[] {
    const out = new Set<string>();
    walk(value, (v) => {
      const h = this.hashOf(v);
      if (h !== undefined) out.add(h);
      return out.size < MAX_REFS;
    });
    return [...out];
  }
}

/** The nested values of `value` (not itself) with their content hashes, bounded. */
export function nestedValues(value: unknown): { value: unknown; hash: string }[] {
  const out: { value: unknown; hash: string }[] = [];
  let hashed = 0;
  walk(value, (v) => {
    if (typeof v === 'string' && v.length < MIN_STRING) return true;
    const json = JSON.stringify(v);
    if (json === undefined) return true;
    hashed += json.length;
    if (hashed > MAX_HASHED) return false;
    out.push({ value: v, hash: hashOf(json) });
    return out.length < MAX_REFS;
  });
  return out;
}

/**
 * The refs of a value: remembered values inside it (identity, on `raw`: what the workflow passed) and
 * the content hashes of its nested values (on `checked`: what was sent), without `whole` itself.
 */
export function refsOf(known: KnownValues, raw: unknown, checked: unknown, whole: string): string[] {
  const refs = new Set(known.inside(raw));
  for (const n of nestedValues(checked)) refs.add(n.hash);
  refs.delete(whole);
  return [...refs].slice(0, MAX_REFS);
}

/**
 * Visits the nested values of `value` (objects, arrays and strings) breadth-first, at most
 * `MAX_DEPTH` levels down; stops when `visit` returns false.
 */
function walk(value: unknown, visit: (v: unknown) => boolean): void {
  let level: unknown[] = children(value);
  for (let depth = 1; level.length > 0 && depth <= MAX_DEPTH; depth++) {
    const next: unknown[] = [];
    for (const v of level) {
      if (typeof v !== 'object' && typeof v !== 'string') continue;
      if (v === null) continue;
      if (!visit(v)) return;
      if (typeof v === 'object') for (const c of children(v)) next.push(c);
      if (next.length > 10_000) break;
    }
    level = next;
  }
}

function children(value: unknown): unknown[] {
  if (Array.isArray(value)) return value;
  if (typeof value === 'object' && value !== null) return Object.values(value);
  return [];
}
