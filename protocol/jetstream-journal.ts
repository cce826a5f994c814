/**
 * The JetStream store's journal: the stream `<stream>-journal` on subject `<stream>.journal`, apart from
 * the event log so that trimming it (a purge up to a sequence) never touches what the history reads.
 * JetStream keeps counting after a purge, so sequence numbers keep growing as the journal contract
 * asks. Also the stream reading both logs share.
 */
import {
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  StorageType,
  type Consumer,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import type { JetStreamPublisher } from './jetstream-publish.ts';
import type { Journal, LogEvent } from './store.ts';

/** Messages per pull of the consumers that read streams of small messages (the KV view). */
export const BATCH = 1000;

/**
 * Messages per pull of the event log and the journal, whose entries are up to ~250 KB (events) and
 * 768 KB (journal, at three bytes a character): pulls of 1,000 asked for 250 MB and more at once, past
 * the server's per-connection buffer (64 MiB by default); it dropped the reader as a slow consumer, and
 * the read (a broker's load) waited for good for what was dropped. 20 stay well under it.
 */
export const LOG_BATCH = 20;

/** Creates the stream `name` capturing `subject` unless it exists. */
export async function ensureStream(
  jsm: JetStreamManager,
  name: string,
  subject: string,
  replicas: number,
): Promise<void> {
  try {
    await jsm.streams.info(name);
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err;
    await jsm.streams.add({ name, subjects: [subject], storage: StorageType.File, num_replicas: replicas });
  }
}

/**
 * The journal on stream `stream`, created on first use: a store whose owner never journals (the
 * runtime's, the lineage store) neither creates it nor needs the permission to. `assertOpen` throws
 * once the store is closed.
 */
export function jetStreamJournal(
  js: JetStreamClient,
  jsm: JetStreamManager,
  publisher: JetStreamPublisher,
  stream: string,
  subject: string,
  replicas: number,
  assertOpen: () => void,
): Journal {
  let created: Promise<void> | undefined;
  const ready = async () => {
    assertOpen();
    created ??= ensureStream(jsm, stream, subject, replicas).catch((err: unknown) => {
      created = undefined;
      throw err;
    });
    await created;
  };
  return {
    async append(entries) {
      await ready();
      const seqs = await publisher.publishMany(
        entries.length,
        () => subject,
        (i) => entries[i]!,
      );
      return seqs.at(-1) ?? 0;
    },
    async *read(fromSeq) {
      await ready();
      yield* readStream(js, jsm, stream, fromSeq);
    },
    async trim(throughSeq) {
      await ready();
      const { state } = await jsm.streams.info(stream);
      // Up to but not including `seq`; never past the last entry, so numbering does not jump.
      const seq = Math.min(Math.floor(throughSeq), state.last_seq) + 1;
      if (seq > state.first_seq) await jsm.streams.purge(stream, { seq });
    },
  };
}

/** Messages of `stream` from `fromSeq` (default 1) to its last one when reading starts. */
export async function* readStream(
  js: JetStreamClient,
  jsm: JetStreamManager,
  stream: string,
  fromSeq = 1,
): AsyncGenerator<LogEvent> {
  const { state } = await jsm.streams.info(stream);
  const from = Math.max(1, Math.floor(fromSeq), state.first_seq);
  if (state.messages === 0 || state.last_seq < from) return;
  const last = state.last_seq;
  const consumer = await js.consumers.get(stream, {
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: from,
  });
  for await (const m of drain(consumer, (m) => m.seq >= last, LOG_BATCH)) yield { seq: m.seq, data: m.data };
}

/**
 * Yields a consumer's messages up to and including the one `isLast` accepts, then deletes it; `batch`
 * messages per pull.
 */
export async function* drain(
  consumer: Consumer,
  isLast: (m: JsMsg) => boolean,
  batch = BATCH,
): AsyncGenerator<JsMsg> {
  const messages = await consumer.consume({ max_messages: batch });
  try {
    for await (const m of messages) {
      yield m;
      if (isLast(m)) break;
    }
  } finally {
    messages.stop();
    // Ordered consumers are ephemeral; deleting now spares the server 5 minutes of idle consumers.
    void consumer.delete().catch(() => undefined);
  }
}
