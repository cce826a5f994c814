/**
 * Batched broker requests: the calls a runtime makes in one turn of the event loop (a `map`'s lanes,
 * a workflow's parallel calls) go to the broker as one message on `gantry.v1.team.<team>.requests`,
 * and their leases come back many at a time on the batch's subject (protocol/request-batch.ts). A
 * request not answered within the reply timeout is asked again with the same id (the broker answers
 * a retried request with the lease it already has); while no broker answers, the batch is sent again
 * after the same short waits as a single request (`askAgainWaitMs`).
 */
import { randomBytes } from 'node:crypto';
import {
  type BatchAnswer,
  batchSubjects,
  type LeaseMsg,
  MAX_BATCH_REQUESTS,
  NoRespondersError,
  type Subscription,
  type Transport,
  TransportTimeoutError,
} from '../protocol/index.ts';
import { refusalError, type RequestFollower } from './broker-request.ts';
import { askAgainWaitMs } from './retry.ts';
import { TaskError } from './errors.ts';

/** Bytes of requests per batch: well under NATS's default limit of 1 MiB per message. */
const MAX_BATCH_BYTES = 512 * 1024;

/**
 * How long to wait for the broker to take a batch before sending it again. The broker acknowledges a
 * batch once its requests are durable (within one intake write, about 50 ms plus JetStream's answer).
 */
const ACK_TIMEOUT_MS = 5000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** One request waiting for its lease. */
interface Pending {
  requestId: string;
  team: string;
  task: string;
  /** The request's JSON. */
  json: string;
  /** When to ask again if no answer came (set once the broker took the batch). */
  deadline: number;
  queued: boolean;
  /** Where the broker says it stands, past its deadline (a broker that took over lost the batch). */
  followed: { stop(): void } | undefined;
  resolve(lease: LeaseMsg): void;
  reject(err: Error): void;
}

/** Options of {@link RequestBatcher}. */
export interface RequestBatcherOptions {
  /** Ask again for a request not answered this long after the broker took it. Default 30 s. */
  replyTimeoutMs?: number;
  clock?: () => number;
  /**
   * Asks where waiting requests stand past their deadline (lease-watch.ts): a lease a broker that took
   * over already gave is taken from its answer, and a request it does not know is asked again at once.
   */
  follower?: RequestFollower;
}

/**
 * Sends a runtime's broker requests in batches and hands each its lease.
 *
 * @example
 * const batcher = new RequestBatcher(transport);
 * const lease = await batcher.ask({ requestId: 'r-1', team: 'ml', work: { kind: 'sim', durationMs: 10 } }, 'train');
 */
export class RequestBatcher {
  readonly #t: Transport;
  readonly #replyTimeoutMs: number;
  readonly #clock: () => number;
  readonly #follower: RequestFollower | undefined;
  /** Names this batcher's answers' subjects. */
  readonly #id = randomBytes(9).toString('base64url');
  readonly #pending = new Map<string, Pending>();
  /** Requests to send, per team. */
  readonly #queued = new Map<string, Pending[]>();
  /** The answers' subscription per team, live once its promise resolves. */
  readonly #subs = new Map<string, { sub: Subscription; live: Promise<void> }>();
  #sendScheduled = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(transport: Transport, opts: RequestBatcherOptions = {}) {
    this.#t = transport;
    this.#replyTimeoutMs = opts.replyTimeoutMs ?? 30_000;
    this.#clock = opts.clock ?? Date.now;
    this.#follower = opts.follower;
  }

  /** Requests waiting for their lease. */
  get pending(): number {
    return this.#pending.size;
  }

  /**
   * Asks for a lease; resolves with it, or rejects with the typed error of a refusal or withdrawal
   * (`refusalError`). Asking again for a request already waiting joins the wait.
   */
  ask(body: Record<string, unknown> & { team: string; requestId: string }, task: string): Promise<LeaseMsg> {
    const known = this.#pending.get(body.requestId);
    if (known)
      return new Promise((resolve, reject) => {
        const { resolve: r0, reject: j0 } = known;
        known.resolve = (l) => (r0(l), resolve(l));
        known.reject = (e) => (j0(e), reject(e));
      });
    return new Promise((resolve, reject) => {
      const p: Pending = {
        requestId: body.requestId,
        team: body.team,
        task,
        json: JSON.stringify(body),
        deadline: Infinity,
        queued: false,
        followed: undefined,
        resolve: (lease) => (p.followed?.stop(), resolve(lease)),
        reject: (err) => (p.followed?.stop(), reject(err)),
      };
      this.#pending.set(p.requestId, p);
      p.followed = this.#follower?.follow(p.team, p.requestId, (s) => {
        if (this.#pending.get(p.requestId) !== p) return;
        if (s.lease) {
          this.#pending.delete(p.requestId);
          p.resolve(s.lease);
        } else if (s.state === 'unknown' || s.state === 'failed') this.#enqueue(p);
      });
      this.#enqueue(p);
    });
  }

  /** Stops listening for answers; requests still waiting are rejected. */
  close(): void {
    for (const { sub } of this.#subs.values()) sub.unsubscribe();
    this.#subs.clear();
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    for (const p of this.#pending.values()) p.reject(new TaskError(`${p.task}: the runtime stopped`));
    this.#pending.clear();
    this.#queued.clear();
  }

  #enqueue(p: Pending): void {
    if (p.queued) return;
    p.queued = true;
    const list = this.#queued.get(p.team);
    if (list) list.push(p);
    else this.#queued.set(p.team, [p]);
    if (this.#sendScheduled) return;
    this.#sendScheduled = true;
    // Everything asked in this turn of the event loop goes in one batch.
    setImmediate(() => {
      this.#sendScheduled = false;
      for (const [team, list] of this.#queued) {
        this.#queued.delete(team);
        void this.#sendAll(team, list);
      }
    });
  }

  async #sendAll(team: string, list: Pending[]): Promise<void> {
    try {
      await this.#listen(team);
    } catch (err) {
      return this.#fail(list, err as Error);
    }
    let from = 0;
    while (from < list.length) {
      let bytes = 0;
      let to = from;
      while (to < list.length && to - from < MAX_BATCH_REQUESTS && (to === from || bytes < MAX_BATCH_BYTES))
        bytes += list[to++]!.json.length + 1;
      void this.#send(team, list.slice(from, to));
      from = to;
    }
  }

  /** Sends one batch until the broker takes it; settles what the reply decided. */
  async #send(team: string, batch: Pending[]): Promise<void> {
    let noBroker = 0;
    for (;;) {
      const live = batch.filter((p) => this.#pending.get(p.requestId) === p);
      for (const p of live) p.queued = false;
      if (live.length === 0) return;
      const data = encoder.encode(
        `{"batch":${JSON.stringify(this.#id)},"requests":[${live.map((p) => p.json).join(',')}]}`,
      );
      try {
        // The broker takes a batch within one write: a reply lost with a dropped connection is asked for again.
        const reply = await this.#t.request(batchSubjects.requests(team), data, {
          timeoutMs: ACK_TIMEOUT_MS,
          answeredAtOnce: true,
        });
        const deadline = this.#clock() + this.#replyTimeoutMs;
        for (const p of live) p.deadline = deadline;
        this.#watchDeadlines();
        this.#settleAll(reply.data);
        return;
      } catch (err) {
        if (err instanceof TransportTimeoutError) continue;
        if (err instanceof NoRespondersError) {
          // No broker yet (starting, failing over): wait and send again.
          await sleep(askAgainWaitMs(noBroker++));
          continue;
        }
        return this.#fail(live, err as Error);
      }
    }
  }

  /** Subscribes to the team's answers for this batcher (once), live on the server before a batch goes. */
  #listen(team: string): Promise<void> {
    let s = this.#subs.get(team);
    if (!s) {
      const sub = this.#t.subscribe(batchSubjects.answers(team, this.#id), (msg) =>
        this.#settleAll(msg.data),
      );
      s = { sub, live: this.#t.flush() };
      this.#subs.set(team, s);
    }
    return s.live;
  }

  /** Settles the requests a broker's answer decided. Only the broker may publish it (docs/security.md). */
  #settleAll(data: Uint8Array): void {
    let results: BatchAnswer[];
    try {
      results = (JSON.parse(decoder.decode(data)) as { results: BatchAnswer[] }).results;
    } catch {
      return;
    }
    if (!Array.isArray(results)) return;
    for (const a of results) {
      const p = this.#pending.get(a?.requestId);
      if (!p) continue;
      this.#pending.delete(a.requestId);
      if (a.ok) p.resolve(a.lease);
      else if (a.error && typeof a.error.code === 'string') p.reject(refusalError(a.error, p.task));
      else p.reject(new TaskError(`${p.task}: the broker sent a bad answer`));
    }
    if (this.#pending.size === 0 && this.#timer) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  #fail(list: Pending[], err: Error): void {
    for (const p of list) {
      if (this.#pending.get(p.requestId) !== p) continue;
      this.#pending.delete(p.requestId);
      p.reject(err);
    }
  }

  /** Asks again for requests past their deadline (the broker answers a retried request idempotently). */
  #watchDeadlines(): void {
    this.#timer ??= setInterval(
      () => {
        const now = this.#clock();
        for (const p of this.#pending.values())
          if (!p.queued && p.deadline <= now) {
            p.deadline = Infinity;
            this.#enqueue(p);
          }
      },
      Math.min(1000, this.#replyTimeoutMs),
    );
    this.#timer.unref?.();
  }
}
