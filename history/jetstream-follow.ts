/**
 * Following a JetStream stream into the history by a durable pull consumer (`gantry-history` by
 * default, one per stream). The database's offset is the truth: a batch is applied and the offset moved
 * in one transaction, and only then acknowledged (ack-all, so acking the last acks the batch). A process
 * killed between the two leaves acknowledged less than applied; the next one finds the consumer behind
 * (or holding deliveries nobody will acknowledge), makes it anew from the entry after the offset, and
 * carries on: every entry once, none skipped. While it runs, the consumer's pending count is the
 * history's lag (`nats consumer info gantry-events gantry-history`).
 */
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { HistoryUnavailableError } from './errors.ts';
import type { IngestResult, Ingester, LogEntry } from './ingest.ts';
import type { Source } from './records.ts';

/** The durable consumer's name unless told otherwise. */
export const DURABLE = 'gantry-history';

/** Options of {@link followStream}. */
export interface StreamFollowOptions {
  /** The durable consumer's name; default {@link DURABLE}. */
  durable?: string;
  /** Entries per fetch and per transaction; default 1000. */
  batch?: number;
  /** How long a fetch waits for entries when the stream has none new; default 1000 ms. */
  idleMs?: number;
  onBatch?: (r: IngestResult) => void;
  /** Told when entries the history never had are gone from the stream (its limits dropped them). */
  onSkipped?: (from: number, to: number) => void;
}

/**
 * Applies `stream`'s entries to the history until `signal` aborts; rejects when the stream or the
 * connection fails (the caller retries).
 *
 * @example
 * await followStream(history.ingester, 'broker', nc, 'gantry-events', abort.signal);
 */
export async function followStream(
  ingester: Ingester,
  source: Source,
  nc: NatsConnection,
  stream: string,
  signal: AbortSignal,
  opts: StreamFollowOptions = {},
): Promise<void> {
  const durable = opts.durable ?? DURABLE;
  const batch = opts.batch ?? 1000;
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(stream).catch((err: unknown) => {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)
      throw new HistoryUnavailableError(
        stream,
        `no stream ${stream} on this NATS server yet (its writer has not started): waiting for it`,
        { cause: err },
      );
    throw err;
  });
  const origin = `${stream}@${info.created}`;
  const offset = await ingester.offset(source, origin);
  const logStart = Math.max(offset + 1, info.state.first_seq);
  if (logStart > offset + 1 && info.state.messages > 0) opts.onSkipped?.(offset + 1, logStart - 1);
  await ensureConsumer(jsm, stream, durable, offset, batch);
  const consumer = await js.consumers.get(stream, durable);
  let gapless = { logStart };
  // One batch written (and then acknowledged) while the next is fetched and decoded.
  let writing: Promise<void> | undefined;
  try {
    while (!signal.aborted) {
      const msgs = await consumer.fetch({ max_messages: batch, expires: opts.idleMs ?? 1000 });
      const got: JsMsg[] = [];
      for await (const m of msgs) got.push(m);
      if (got.length === 0) continue;
      const entries: LogEntry[] = got.map((m) => ({ seq: m.seq, data: m.data }));
      const before = writing;
      const next = ingester.apply(source, entries, origin, { gapless }).then(async (r) => {
        // Acknowledged in order: the batch before first.
        await before;
        await got.at(-1)!.ackAck();
        opts.onBatch?.(r);
      });
      next.catch(() => undefined);
      gapless = { logStart: 1 };
      await before;
      writing = next;
    }
    await writing;
  } finally {
    await writing?.catch(() => undefined);
  }
}

/**
 * The durable consumer, kept when it is where the history is (nothing delivered and unacknowledged,
 * acknowledged up to the offset), else made anew from the entry after the offset.
 */
async function ensureConsumer(
  jsm: Awaited<ReturnType<typeof jetstreamManager>>,
  stream: string,
  durable: string,
  offset: number,
  batch: number,
): Promise<void> {
  try {
    const ci = await jsm.consumers.info(stream, durable);
    if (
      ci.num_ack_pending === 0 &&
      ci.ack_floor.stream_seq === offset &&
      ci.config.ack_policy === AckPolicy.All
    )
      return;
    await jsm.consumers.delete(stream, durable);
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)) throw err;
  }
  await jsm.consumers.add(stream, {
    durable_name: durable,
    description: 'Gantry history: entries applied to the history database',
    ack_policy: AckPolicy.All,
    // Deliveries to a process that died come back only after this; a restart makes the consumer anew.
    ack_wait: 60_000_000_000,
    max_ack_pending: batch * 4,
    ...(offset === 0
      ? { deliver_policy: DeliverPolicy.All }
      : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: offset + 1 }),
  });
}
