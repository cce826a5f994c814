/**
 * The NATS `Transport`, on the maintained modular nats.js line (`@nats-io/transport-node`). It
 * reconnects forever, so an agent or broker rides out a nats-server restart; subscriptions are
 * re-established by nats.js after each reconnection.
 */
import { readFile } from 'node:fs/promises';
import { fromSeed } from '@nats-io/nkeys';
import {
  ClosedConnectionError,
  connect,
  credsAuthenticator,
  nkeyAuthenticator,
  NoRespondersError as NatsNoRespondersError,
  RequestError,
  TimeoutError,
  type NatsConnection,
  type NodeConnectionOptions,
} from '@nats-io/transport-node';
import { NoRespondersError, ReplyLostError, TransportClosedError, TransportTimeoutError } from './errors.ts';
import { validateSubject } from './subjects.ts';
import type {
  Msg,
  RequestOptions,
  SubscribeOptions,
  Subscription,
  Transport,
  TransportEvent,
} from './transport.ts';

/** Options of {@link connectNats}. Give at most one of `creds`, `token`, `user`/`pass`. */
export interface NatsOptions {
  /** `nats://host:port` URLs (or `host:port`). */
  servers: string | string[];
  /** Shown by the server's monitoring (`connz`); e.g. `gantry-agent-aws-east`. */
  name?: string;
  /**
   * Path of credentials: a `.creds` file (JWT + NKey seed) as `nsc` writes them, or a `.nk` file holding a
   * bare NKey seed, as `gantry cluster onboard` writes them for agents.
   */
  creds?: string;
  token?: string;
  user?: string;
  pass?: string;
  /** Wait between reconnection attempts; default 250 ms. */
  reconnectTimeWaitMs?: number;
  /**
   * Called when a subscription handler throws; the message is not redelivered. Default:
   * `console.error`. (nats.js calls handlers from its socket parser, so a throw must not escape.)
   */
  onHandlerError?: (err: unknown, msg: Msg) => void;
}

/** A `Transport` over NATS that also exposes the connection, for the JetStream store. */
export interface NatsTransport extends Transport {
  readonly kind: 'nats';
  /** The underlying nats.js connection (owned by the transport: `close()` closes it). */
  readonly connection: NatsConnection;
}

const DEFAULT_TIMEOUT_MS = 5000;

/**
 * The reply-inbox prefix of an nkey identity: `_INBOX_<public key>`. The credentials `gantry cluster
 * onboard` writes let each identity subscribe to its own inboxes only, so no one reads another's replies.
 *
 * @example
 * inboxPrefix('UABC…'); // '_INBOX_UABC…'
 */
export function inboxPrefix(publicKey: string): string {
  return `_INBOX_${publicKey}`;
}

/**
 * Connects to NATS. Rejects if no server answers the first time; after that, it reconnects forever
 * and reports `disconnected` / `reconnecting` / `reconnected` through `onEvent`.
 *
 * @example
 * const t = await connectNats({ servers: 'nats://127.0.0.1:4222', name: 'gantry-broker' });
 * t.onEvent((e) => log.info({ event: e }, 'nats'));
 * const sub = t.subscribe('gantry.v1.agent.*.heartbeat', (msg) => onHeartbeat(msg));
 */
export async function connectNats(opts: NatsOptions): Promise<NatsTransport> {
  const options: NodeConnectionOptions = {
    servers: opts.servers,
    maxReconnectAttempts: -1,
    // Capturing a stack trace for every request costs a fifth of a busy broker's time (measured).
    noAsyncTraces: true,
    reconnectTimeWait: opts.reconnectTimeWaitMs ?? 250,
  };
  if (opts.name !== undefined) options.name = opts.name;
  if (opts.creds !== undefined) {
    const text = await readFile(opts.creds);
    if (opts.creds.endsWith('.nk')) {
      const seed = new TextEncoder().encode(new TextDecoder().decode(text).trim());
      options.authenticator = nkeyAuthenticator(seed);
      // Replies come to this identity's own inboxes, which only it may read (docs/security.md).
      options.inboxPrefix = inboxPrefix(fromSeed(seed).getPublicKey());
    } else options.authenticator = credsAuthenticator(text);
  }
  if (opts.token !== undefined) options.token = opts.token;
  if (opts.user !== undefined) options.user = opts.user;
  if (opts.pass !== undefined) options.pass = opts.pass;
  const nc = await connect(options);
  return new NatsTransportImpl(nc, opts.onHandlerError ?? reportHandlerError);
}

class NatsTransportImpl implements NatsTransport {
  readonly kind = 'nats' as const;
  readonly #listeners = new Set<(event: TransportEvent) => void>();

  constructor(
    readonly connection: NatsConnection,
    private readonly onHandlerError: (err: unknown, msg: Msg) => void,
  ) {
    void this.#watchStatus();
    void connection.closed().then(() => this.#emit('closed'));
  }

  publish(subject: string, data: Uint8Array): void {
    validateSubject(subject, false);
    try {
      this.connection.publish(subject, data);
    } catch (err) {
      throw mapError(err, subject, 0);
    }
  }

  subscribe(subject: string, handler: (msg: Msg) => void, options: SubscribeOptions = {}): Subscription {
    validateSubject(subject, true);
    try {
      const sub = this.connection.subscribe(subject, {
        ...(options.queue !== undefined ? { queue: options.queue } : {}),
        callback: (err, m) => {
          // Errors here are permission violations; the subscription is closed by nats.js.
          if (err !== null) return;
          const msg: Msg = m.reply
            ? { subject: m.subject, data: m.data, reply: m.reply }
            : { subject: m.subject, data: m.data };
          try {
            handler(msg);
          } catch (e) {
            this.onHandlerError(e, msg);
          }
        },
      });
      return {
        unsubscribe: () => sub.unsubscribe(),
        drain: () => (sub.isClosed() ? Promise.resolve() : sub.drain()),
      };
    } catch (err) {
      throw mapError(err, subject, 0);
    }
  }

  async request(subject: string, data: Uint8Array, options: RequestOptions = {}): Promise<Msg> {
    validateSubject(subject, false);
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const asked = this.connection.request(subject, data, { timeout: timeoutMs });
    let off = () => {};
    // Answered at once: a drop while it waits took the reply with it (nats.js would wait out the timeout).
    const dropped = options.answeredAtOnce
      ? new Promise<never>((_, reject) => {
          off = this.onEvent((e) => {
            if (e === 'disconnected') reject(new ReplyLostError(subject, timeoutMs));
          });
        })
      : undefined;
    try {
      const m = await (dropped ? Promise.race([asked, dropped]) : asked);
      return { subject: m.subject, data: m.data };
    } catch (err) {
      // Given up on a drop: the request nats.js still holds fails at its timeout, and nobody waits for it.
      asked.catch(() => undefined);
      throw err instanceof ReplyLostError ? err : mapError(err, subject, timeoutMs);
    } finally {
      off();
    }
  }

  respond(msg: Msg, data: Uint8Array): void {
    if (msg.reply === undefined || msg.reply === '') return;
    this.publish(msg.reply, data);
  }

  /**
   * Resolves once the server has everything sent so far. While the connection is down, it waits for it
   * to come back (subscriptions are sent again on reconnect) rather than failing the caller.
   */
  async flush(): Promise<void> {
    for (;;) {
      try {
        await this.connection.flush();
        return;
      } catch (err) {
        if (this.connection.isClosed() || !isDisconnect(err)) throw mapError(err, '', 0);
      }
      // Tried again on reconnect, or after a second in case it came back before this listened.
      await new Promise<void>((resolve) => {
        const done = () => {
          off();
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(done, 1000);
        const off = this.onEvent((e) => {
          if (e === 'reconnected' || e === 'closed') done();
        });
      });
    }
  }

  onEvent(listener: (event: TransportEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async close(): Promise<void> {
    if (this.connection.isClosed()) return;
    await this.connection.close();
  }

  async #watchStatus(): Promise<void> {
    for await (const s of this.connection.status()) {
      if (s.type === 'disconnect') this.#emit('disconnected');
      else if (s.type === 'reconnecting') this.#emit('reconnecting');
      else if (s.type === 'reconnect') this.#emit('reconnected');
    }
  }

  #emit(event: TransportEvent): void {
    for (const listener of this.#listeners) listener(event);
  }
}

function reportHandlerError(err: unknown, msg: Msg): void {
  console.error(`nats transport: handler for ${msg.subject} threw`, err);
}

/** The error nats.js rejects a flush (or a ping) with when the connection drops under it. */
function isDisconnect(err: unknown): boolean {
  return err instanceof RequestError && err.message === 'connection disconnected';
}

/** Maps nats.js errors (possibly wrapped in `RequestError`) to the protocol's error types. */
function mapError(err: unknown, subject: string, timeoutMs: number): unknown {
  const cause = err instanceof RequestError && err.cause instanceof Error ? err.cause : err;
  if (err instanceof RequestError && err.isNoResponders())
    return new NoRespondersError(subject, { cause: err });
  if (cause instanceof NatsNoRespondersError) return new NoRespondersError(subject, { cause: err });
  if (cause instanceof TimeoutError) return new TransportTimeoutError(subject, timeoutMs, { cause: err });
  if (cause instanceof ClosedConnectionError) {
    return new TransportClosedError('the nats transport is closed', { cause: err });
  }
  return err;
}
