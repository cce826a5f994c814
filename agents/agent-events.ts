/**
 * What an agent sends besides heartbeats: its events in batches (one message per few milliseconds
 * instead of one per state change), and how its readiness asks the executor and the provisioner.
 */
import type { Logger } from 'pino';
import {
  type AgentEvent,
  encodeJson,
  subjects,
  type Transport,
  TransportClosedError,
} from '../protocol/index.ts';

/** Events wait at most this long, or until this many are waiting, before they are sent. */
const EVENT_DELAY_MS = 5;
const EVENT_BATCH = 2000;

/** A cluster's events, sent in batches on its events subject. */
export class EventOutbox {
  #events: AgentEvent[] = [];
  readonly #byLease = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(
    private readonly transport: Transport,
    private readonly cluster: string,
    private readonly log: Logger,
  ) {}

  emit(event: AgentEvent): void {
    if (this.#closed) return;
    // A lease that moved on within one batch is reported once, in its latest state (the broker accepts
    // a jump from placed to running, or straight to the end).
    if (event.type === 'lease') {
      const earlier = this.#byLease.get(event.leaseId);
      if (earlier !== undefined) {
        this.#events[earlier] = event;
        return;
      }
      this.#byLease.set(event.leaseId, this.#events.length);
    }
    this.#events.push(event);
    if (this.#events.length >= EVENT_BATCH) this.flush();
    else this.#timer ??= setTimeout(() => this.flush(), EVENT_DELAY_MS);
  }

  /** Sends what waits now. */
  flush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#events.length === 0) return;
    const events = this.#events;
    this.#events = [];
    this.#byLease.clear();
    try {
      this.transport.publish(subjects.events(this.cluster), encodeJson({ events }));
    } catch (err) {
      // Closed under a stopping agent: the next agent's registration and heartbeats settle these leases.
      if (!(err instanceof TransportClosedError)) throw err;
      this.log.warn({ cluster: this.cluster, events: events.length }, 'transport closed; events not sent');
    }
  }

  /** Sends what waits, then nothing more (the transport may close). */
  close(): void {
    this.flush();
    this.#closed = true;
  }
}

/** Undefined when `ping` (if any) resolves within `timeoutMs`, else what went wrong. */
export async function answersWithin(
  what: string,
  ping: (() => Promise<void>) | undefined,
  timeoutMs: number,
): Promise<string | undefined> {
  if (!ping) return undefined;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`${what} did not answer within ${timeoutMs / 1000}s`), timeoutMs);
  });
  try {
    return await Promise.race([
      ping().then(
        () => undefined,
        (err: Error) => `${what}: ${err.message}`,
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
