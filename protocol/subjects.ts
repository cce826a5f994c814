/**
 * NATS subject rules shared by both transports, and the subscription index of the in-process
 * transport: a token trie (like nats-server's sublist) with a bounded cache of results per subject,
 * so that a publish costs a map lookup, not a scan of every subscription.
 */
import { BadSubjectError } from './errors.ts';

/** Tokens may not be empty or contain whitespace (what nats-server accepts). */
const BAD_TOKEN = /[\s]/;

/**
 * Throws `BadSubjectError` unless `subject` is dot-separated non-empty tokens without whitespace;
 * wildcards (`*`, and `>` as the last token) only when `wildcards` is set (subscriptions).
 */
export function validateSubject(subject: string, wildcards: boolean): void {
  if (subject.length === 0) throw new BadSubjectError(subject, 'subject is empty');
  const tokens = subject.split('.');
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.length === 0) throw new BadSubjectError(subject, `token ${i + 1} is empty`);
    if (BAD_TOKEN.test(t)) throw new BadSubjectError(subject, `token ${i + 1} contains whitespace`);
    const wild = t === '*' || t === '>';
    if (wild && !wildcards) throw new BadSubjectError(subject, 'wildcards are not allowed when publishing');
    if (t === '>' && i !== tokens.length - 1)
      throw new BadSubjectError(subject, '`>` must be the last token');
  }
}

/** One node of the trie: literal children, the `*` child, and the entries ending here or at `>`. */
interface Node<T> {
  children: Map<string, Node<T>>;
  star?: Node<T>;
  /** Entries whose pattern ends at this node. */
  here: Set<T>;
  /** Entries whose pattern is this node's path followed by `>`. */
  rest: Set<T>;
}

function newNode<T>(): Node<T> {
  return { children: new Map(), here: new Set(), rest: new Set() };
}

/**
 * Maps subject patterns to entries and finds every entry whose pattern matches a concrete subject.
 * Results are cached per subject until the next `add`/`remove`; the cache is cleared when it grows
 * past `cacheSize` (unique subjects such as reply inboxes would otherwise fill it).
 */
export class SubjectIndex<T> {
  readonly #root = newNode<T>();
  readonly #cache = new Map<string, readonly T[]>();
  readonly #cacheSize: number;
  #count = 0;

  constructor(cacheSize = 4096) {
    this.#cacheSize = cacheSize;
  }

  /** How many entries are indexed. */
  get size(): number {
    return this.#count;
  }

  /** Indexes `entry` under `pattern` (a subject, possibly with `*` and `>`). */
  add(pattern: string, entry: T): void {
    let node = this.#root;
    const tokens = pattern.split('.');
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i]!;
      if (t === '>') {
        node.rest.add(entry);
        this.#changed(1);
        return;
      }
      if (t === '*') {
        node = node.star ??= newNode();
      } else {
        let next = node.children.get(t);
        if (next === undefined) node.children.set(t, (next = newNode()));
        node = next;
      }
    }
    node.here.add(entry);
    this.#changed(1);
  }

  /** Removes `entry` from `pattern`; unknown entries are ignored. */
  remove(pattern: string, entry: T): void {
    // Empty nodes are left in place: patterns repeat (per-cluster subjects), and the trie stays small.
    let node: Node<T> | undefined = this.#root;
    const tokens = pattern.split('.');
    for (let i = 0; i < tokens.length && node !== undefined; i++) {
      const t = tokens[i]!;
      if (t === '>') {
        if (node.rest.delete(entry)) this.#changed(-1);
        return;
      }
      node = t === '*' ? node.star : node.children.get(t);
    }
    if (node?.here.delete(entry)) this.#changed(-1);
  }

  /** Entries whose pattern matches `subject`, in no particular order; cached. */
  match(subject: string): readonly T[] {
    const cached = this.#cache.get(subject);
    if (cached !== undefined) return cached;
    const out: T[] = [];
    collect(this.#root, subject.split('.'), 0, out);
    if (this.#cache.size >= this.#cacheSize) this.#cache.clear();
    this.#cache.set(subject, out);
    return out;
  }

  #changed(delta: number): void {
    this.#count += delta;
    this.#cache.clear();
  }
}

function collect<T>(node: Node<T>, tokens: readonly string[], i: number, out: T[]): void {
  if (i === tokens.length) {
    for (const e of node.here) out.push(e);
    return;
  }
  // `>` needs at least one more token, which there is (i < tokens.length).
  for (const e of node.rest) out.push(e);
  const literal = node.children.get(tokens[i]!);
  if (literal !== undefined) collect(literal, tokens, i + 1, out);
  if (node.star !== undefined) collect(node.star, tokens, i + 1, out);
}
