/**
 * The in-process `Transport` of embedded mode: NATS semantics (wildcards, queue groups,
 * request/reply, no-responders) without a server. Delivery is asynchronous but prompt: a publish
 * enqueues and one microtask drains the queue, so handlers never run inside `publish` and messages
 * from one publisher arrive in order.
 */
import { NoRespondersError, TransportClosedError, TransportTimeoutError } from './errors.ts';
import { SubjectIndex, validateSubject } from './subjects.ts';
import type {
  Msg,
  RequestOptions,
  SubscribeOptions,
  Subscription,
  Transport,
  TransportEvent,
} from './transport.ts';

/** Options of {@link createMemoryTransport}. */
export interface MemoryTransportOptions {
  /**
   * Called when a handler throws; the message is not redelivered. Default: `console.error`, since an
   * exception escaping a microtask would kill the process.
   */
  onHandlerError?: (err: unknown, msg: Msg) => void;
}

interface Sub {
  subject: string;
  queue: string | undefined;
  handler: (msg: Msg) => void;
  closed: boolean;
}

interface PendingRequest {
  resolve: (msg: Msg) => void;
  timer: ReturnType<typeof setTimeout>;
}

const INBOX = '_INBOX.';
const DEFAULT_TIMEOUT_MS = 5000;

/**
 * Creates an in-process transport. Everything shares one process; `flush` is a no-op.
 *
 * @example
 * const t = createMemoryTransport();
 * t.subscribe('gantry.v1.echo', (msg) => t.respond(msg, msg.data));
 * const reply = await t.request('gantry.v1.echo', encodeJson({ hi: 1 }), { timeoutMs: 100 });
 */
export function createMemoryTransport(options: MemoryTransportOptions = {}): Transport {
  return new MemoryTransport(options.onHandlerError ?? reportHandlerError);
}

function reportHandlerError(err: unknown, msg: Msg): void {
  console.error(`memory transport: handler for ${msg.subject} threw`, err);
}

class MemoryTransport implements Transport {
  readonly kind = 'memory';
  readonly #index = new SubjectIndex<Sub>();
  readonly #pending = new Map<string, PendingRequest>();
  readonly #listeners = new Set<(event: TransportEvent) => void>();
  /** Round-robin position per queue group name. */
  readonly #queueTurns = new Map<string, number>();
  /** Deliveries not yet made, in publish order: pairs of (subscription, message). */
  #queue: (Sub | Msg)[] = [];
  #draining = false;
  #nextInbox = 0;
  #closed = false;
  readonly #inboxPrefix = `${INBOX}${Math.random().toString(36).slice(2, 10)}.`;

  constructor(private readonly onHandlerError: (err: unknown, msg: Msg) => void) {}

  publish(subject: string, data: Uint8Array): void {
    this.#assertOpen();
    validateSubject(subject, false);
    this.#route({ subject, data });
  }

  subscribe(subject: string, handler: (msg: Msg) => void, options: SubscribeOptions = {}): Subscription {
    this.#assertOpen();
    validateSubject(subject, true);
    const sub: Sub = { subject, queue: options.queue, handler, closed: false };
    this.#index.add(subject, sub);
    return {
      unsubscribe: () => {
        if (sub.closed) return;
        sub.closed = true;
        this.#index.remove(subject, sub);
      },
      drain: () => {
        // Messages already queued for this subscription are delivered within the current microtask
        // queue; the subscription closes after them.
        this.#index.remove(subject, sub);
        return new Promise<void>((resolve) =>
          setTimeout(() => {
            sub.closed = true;
            resolve();
          }, 0),
        );
      },
    };
  }

  request(subject: string, data: Uint8Array, options: RequestOptions = {}): Promise<Msg> {
    if (this.#closed) return Promise.reject(new TransportClosedError('the memory transport is closed'));
    try {
      validateSubject(subject, false);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.#index.match(subject).length === 0) return Promise.reject(new NoRespondersError(subject));
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const reply = this.#inboxPrefix + (this.#nextInbox++).toString(36);
    return new Promise<Msg>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(reply);
        reject(new TransportTimeoutError(subject, timeoutMs));
      }, timeoutMs);
      this.#pending.set(reply, { resolve, timer });
      this.#route({ subject, data, reply });
    });
  }

  respond(msg: Msg, data: Uint8Array): void {
    if (msg.reply === undefined || msg.reply === '') return;
    this.publish(msg.reply, data);
  }

  flush(): Promise<void> {
    if (this.#closed) return Promise.reject(new TransportClosedError('the memory transport is closed'));
    return Promise.resolve();
  }

  onEvent(listener: (event: TransportEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const [reply, p] of this.#pending) {
      clearTimeout(p.timer);
      this.#pending.delete(reply);
    }
    this.#queue = [];
    for (const listener of this.#listeners) listener('closed');
    this.#listeners.clear();
  }

  #assertOpen(): void {
    if (this.#closed) throw new TransportClosedError('the memory transport is closed');
  }

  /** Picks the receivers now (so later subscribers do not see earlier messages) and enqueues. */
  #route(msg: Msg): void {
    if (msg.subject.startsWith(INBOX)) {
      const pending = this.#pending.get(msg.subject);
      if (pending !== undefined) {
        this.#pending.delete(msg.subject);
        clearTimeout(pending.timer);
        // A reply settles a promise, which is already asynchronous: no need to queue it.
        pending.resolve(msg);
      }
    }
    const subs = this.#index.match(msg.subject);
    if (subs.length === 0) return;
    let groups: Map<string, Sub[]> | undefined;
    for (const sub of subs) {
      if (sub.queue === undefined) {
        this.#queue.push(sub, msg);
      } else {
        groups ??= new Map();
        const members = groups.get(sub.queue);
        if (members === undefined) groups.set(sub.queue, [sub]);
        else members.push(sub);
      }
    }
    if (groups !== undefined) {
      for (const [queue, members] of groups) {
        const turn = this.#queueTurns.get(queue) ?? 0;
        this.#queueTurns.set(queue, turn + 1);
        this.#queue.push(members[turn % members.length]!, msg);
      }
    }
    if (!this.#draining) {
      this.#draining = true;
      queueMicrotask(this.#drain);
    }
  }

  /** Delivers everything queued, including what handlers publish meanwhile, in order. */
  readonly #drain = (): void => {
    const queue = this.#queue;
    try {
      // `queue.length` is re-read: messages that handlers publish join this same pass, in order.
      for (let i = 0; i < queue.length; i += 2) {
        const sub = queue[i] as Sub;
        const msg = queue[i + 1] as Msg;
        if (sub.closed || this.#closed) continue;
        try {
          sub.handler(msg);
        } catch (err) {
          this.onHandlerError(err, msg);
        }
      }
    } finally {
      if (this.#queue === queue) this.#queue = [];
      this.#draining = false;
    }
  };
}
