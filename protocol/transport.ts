/**
 * The seam between Gantry's processes: subject-based publish/subscribe and request/reply, the subset of
 * NATS that the broker, agents and runtime use. Two implementations pass one contract suite: an
 * in-process transport for the embedded single-process mode, and NATS.
 */

/** A received message. `reply` is set when the sender waits for an answer. */
export interface Msg {
  subject: string;
  data: Uint8Array;
  reply?: string;
}

/** Stops a subscription's handler from being called. */
export interface Subscription {
  unsubscribe(): void;
  /**
   * Stops taking new messages but still handles those already on their way (over NATS: the server
   * may have sent some before it saw the unsubscribe). A queue-group member that leaves uses this so
   * no request sent to it is dropped.
   */
  drain(): Promise<void>;
}

/** Options of {@link Transport.subscribe}. */
export interface SubscribeOptions {
  /** Members of one queue group share the messages: each goes to one of them. */
  queue?: string;
}

/** Options of {@link Transport.request}. */
export interface RequestOptions {
  /** How long to wait for a reply; default 5000. */
  timeoutMs?: number;
  /**
   * The responder answers as soon as the request reaches it (an acknowledgement, a status). When the
   * connection drops while such a request waits, its reply was lost with the connection, so the request
   * fails at once with a `ReplyLostError` (a `TransportTimeoutError`) instead of at its timeout. Default
   * false: a reply sent after the reconnection still arrives, as a long-running call's does.
   */
  answeredAtOnce?: boolean;
}

/** Connection state changes, for logs and health. */
export type TransportEvent = 'disconnected' | 'reconnecting' | 'reconnected' | 'closed';

/**
 * Subject-based messaging. Subjects are dot-separated tokens; subscriptions may use `*` (one token) and
 * `>` (one or more trailing tokens), as in NATS.
 */
export interface Transport {
  /** `memory` or `nats`. */
  readonly kind: string;
  /** Sends a message (at most once); throws `BadSubjectError` on a wildcard or malformed subject. */
  publish(subject: string, data: Uint8Array): void;
  /**
   * Calls `handler` for each matching message. A handler that throws is reported (the factory's
   * `onHandlerError`, default `console.error`) and delivery goes on.
   */
  subscribe(subject: string, handler: (msg: Msg) => void, options?: SubscribeOptions): Subscription;
  /** Sends and waits for one reply. Rejects with `TransportTimeoutError` or `NoRespondersError`. */
  request(subject: string, data: Uint8Array, options?: RequestOptions): Promise<Msg>;
  /** Answers a message that carries a `reply` subject; a message without one is ignored. */
  respond(msg: Msg, data: Uint8Array): void;
  /**
   * Resolves once everything sent so far (publishes and subscriptions) has reached the server (no-op
   * in memory). Call it after `subscribe` before telling another process to publish: over NATS a
   * subscription is live only once the server has it.
   */
  flush(): Promise<void>;
  /** Calls `listener` on connection state changes; returns a function that removes it. */
  onEvent(listener: (event: TransportEvent) => void): () => void;
  /** Closes; pending requests are abandoned and `closed` is emitted. Idempotent. */
  close(): Promise<void>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** JSON-encodes a message body. */
export function encodeJson(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

/** Decodes a JSON message body; throws `SyntaxError` on bad JSON (callers answer with an error). */
export function decodeJson(data: Uint8Array): unknown {
  return JSON.parse(decoder.decode(data));
}
