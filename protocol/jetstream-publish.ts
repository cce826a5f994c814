/**
 * Many JetStream publishes with their acknowledgements, over one reply subscription of the store's
 * own. nats.js's `request()` (behind `kv.put` and `js.publish`) makes a request object, a timer and,
 * for each reply, an error object with a stack trace; at a cycle's thousands of writes that was a
 * tenth of a busy broker's CPU. Here each publish carries a reply subject `<inbox>.<n>`, the acks are
 * matched by `n`, and one timer watches the whole batch. When the connection drops, the acks still
 * awaited went to the server that is gone: those publishes fail at once (the caller writes again)
 * rather than at the timeout.
 */
import {
  createInbox,
  headers,
  type Msg,
  type NatsConnection,
  type Status,
  type Subscription,
} from '@nats-io/transport-node';

/** Publishes in flight at once: enough to keep the server busy, few enough to bound the buffers. */
const WINDOW = 4096;

/** Default time without any acknowledgement before a batch's publishes fail, ms (see the constructor). */
const ACK_TIMEOUT_MS = 2000;

/** A publish JetStream did not take: the stream's error, no stream for the subject, or no answer. */
export class JetStreamPublishError extends Error {
  override name = 'JetStreamPublishError';
  constructor(
    message: string,
    readonly code?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

interface Waiting {
  resolve(seq: number): void;
  reject(err: Error): void;
}

const decoder = new TextDecoder();

/** Publishes to JetStream-captured subjects and waits for their acks. */
export class JetStreamPublisher {
  readonly #nc: NatsConnection;
  readonly #inbox: string;
  readonly #waiting = new Map<number, Waiting>();
  #sub: Subscription | undefined;
  /** The connection's status events (nats.js's iterator has `stop()`, which the type leaves out). */
  #status: (AsyncIterable<Status> & { stop?: () => void }) | undefined;
  #next = 0;

  /**
   * @param timeoutMs how long without any acknowledgement before the publishes still awaited fail. A
   * publish sent to a stream leader that died as it arrived is never acknowledged: the writer retries
   * after this long (safely: the journal keeps the latest record of each request, and event entries
   * carry a `Nats-Msg-Id`), so it is short.
   */
  constructor(
    nc: NatsConnection,
    private readonly timeoutMs = ACK_TIMEOUT_MS,
  ) {
    this.#nc = nc;
    // The connection's own inbox prefix: only this identity may read its replies (docs/security.md).
    const prefix = (nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix;
    this.#inbox = createInbox(prefix);
  }

  /**
   * Publishes `n` messages (`subject(i)`, `data(i)`) in order, at most {@link WINDOW} unacknowledged;
   * resolves with their stream sequences once every one is stored, rejects on the first that is not.
   * `msgId(i)` is sent as `Nats-Msg-Id`: the stream stores a message of an id it holds once (a retry
   * of a publish whose ack was lost), and acknowledges it with the first one's sequence.
   */
  async publishMany(
    n: number,
    subject: (i: number) => string,
    data: (i: number) => Uint8Array,
    msgId?: (i: number) => string | undefined,
  ): Promise<number[]> {
    const seqs = new Array<number>(n);
    if (n === 0) return seqs;
    this.#listen();
    let sent = 0;
    let done = 0;
    let failed: Error | undefined;
    let wake: (() => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        failed ??= new JetStreamPublishError(`no acknowledgement from JetStream within ${this.timeoutMs} ms`);
        wake?.();
      }, this.timeoutMs);
    };
    const ids: number[] = [];
    try {
      arm();
      while (done < n && !failed) {
        while (sent < n && sent - done < WINDOW) {
          const i = sent++;
          const id = this.#next++;
          ids.push(id);
          this.#waiting.set(id, {
            resolve: (seq) => {
              seqs[i] = seq;
              done++;
              arm();
              wake?.();
            },
            reject: (err) => {
              failed ??= err;
              wake?.();
            },
          });
          const dedup = msgId?.(i);
          const hdrs = dedup === undefined ? undefined : headers();
          hdrs?.set('Nats-Msg-Id', dedup!);
          this.#nc.publish(subject(i), data(i), {
            reply: `${this.#inbox}.${id}`,
            ...(hdrs ? { headers: hdrs } : {}),
          });
        }
        if (done < n && !failed) await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
    } finally {
      clearTimeout(timer);
      for (const id of ids) this.#waiting.delete(id);
    }
    if (failed) throw failed;
    return seqs;
  }

  /** Stops listening; publishes waiting for acks fail. */
  close(): void {
    this.#status?.stop?.();
    this.#sub?.unsubscribe();
    this.#sub = undefined;
    for (const w of this.#waiting.values()) w.reject(new JetStreamPublishError('the store was closed'));
    this.#waiting.clear();
  }

  #listen(): void {
    this.#watchConnection();
    if (this.#sub && !this.#sub.isClosed()) return;
    this.#sub = this.#nc.subscribe(`${this.#inbox}.*`, {
      callback: (err, m) => {
        if (err === null) this.#ack(m);
      },
    });
  }

  /** Fails the publishes awaiting acks when the connection drops (once, for the publisher's life). */
  #watchConnection(): void {
    if (this.#status) return;
    const status = this.#nc.status();
    this.#status = status;
    void (async () => {
      for await (const s of status) {
        if (s.type !== 'disconnect') continue;
        const lost = [...this.#waiting.values()];
        this.#waiting.clear();
        const err = new JetStreamPublishError('the connection to NATS dropped before JetStream acknowledged');
        for (const w of lost) w.reject(err);
      }
    })();
  }

  #ack(m: Msg): void {
    const id = Number(m.subject.slice(this.#inbox.length + 1));
    const w = this.#waiting.get(id);
    if (!w) return;
    this.#waiting.delete(id);
    // No stream captures the subject: the server answers with a 503 status and no body.
    if (m.data.length === 0) {
      const code = m.headers?.code ?? 0;
      return w.reject(new JetStreamPublishError(`JetStream did not take the message (status ${code})`, code));
    }
    let ack: { seq?: number; error?: { code?: number; err_code?: number; description?: string } };
    try {
      ack = JSON.parse(decoder.decode(m.data)) as typeof ack;
    } catch (err) {
      return w.reject(
        new JetStreamPublishError('JetStream sent a bad acknowledgement', undefined, { cause: err }),
      );
    }
    if (ack.error || typeof ack.seq !== 'number')
      return w.reject(
        new JetStreamPublishError(
          `JetStream refused the message: ${ack.error?.description ?? 'no sequence'}`,
          ack.error?.err_code ?? ack.error?.code,
        ),
      );
    w.resolve(ack.seq);
  }
}
