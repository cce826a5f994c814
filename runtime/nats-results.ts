/**
 * Results kept over NATS: a JetStream stream per team (`gantry-results-<team>`) captures every result
 * task hosts publish on `gantry.v1.team.<team>.exec.<execution>.result.<cluster>`. The runtime still
 * hears results live; the stream is for a result published while it was reconnecting, which it reads
 * back by subject instead of running the task again. Kept apart so embedded mode never loads nats.js.
 */
import {
  jetstream,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstreamManager,
  StorageType,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { parseMessage, resultMsg, resultsStream, subjects } from '../protocol/index.ts';
import type { ResultLookup } from './lease-watch.ts';
import { askAgainWaitMs } from './retry.ts';

/** How long results are kept: long enough for any reconnection or failover. */
const KEEP_MS = 3_600_000;

/**
 * Results looked up in their teams' streams; `prepare(team)` creates the team's stream when missing,
 * with `replicas` JetStream replicas (3 on a 3-server NATS cluster, as the broker's `--replicas`).
 *
 * @example
 * const results = await openJetStreamResults(transport.connection, 3);
 * await results.prepare('ml');
 */
export async function openJetStreamResults(nc: NatsConnection, replicas = 1): Promise<ResultLookup> {
  const jsm = await jetstreamManager(nc);
  const prepared = new Map<string, Promise<void>>();
  const create = async (team: string) => {
    const name = resultsStream.name(team);
    try {
      await jsm.streams.info(name);
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err;
      await jsm.streams.add({
        name,
        subjects: [resultsStream.subjects(team)],
        storage: StorageType.File,
        num_replicas: replicas,
        max_age: KEEP_MS * 1_000_000,
        // One result per subject is all a reader needs.
        max_msgs_per_subject: 1,
      });
    }
  };
  return {
    prepare(team) {
      let p = prepared.get(team);
      if (!p) {
        p = create(team);
        prepared.set(team, p);
        p.catch(() => prepared.delete(team));
      }
      return p;
    },
    async find(team, execution, cluster) {
      try {
        const m = await jsm.streams.getMessage(resultsStream.name(team), {
          last_by_subj: subjects.result(team, execution, cluster),
        });
        if (!m) return undefined;
        const p = parseMessage(resultMsg, m.data);
        return p.ok && p.value.execution === execution ? p.value : undefined;
      } catch {
        // Not kept (no such message, no stream) or JetStream not reachable yet: not found this time.
        return undefined;
      }
    },
  };
}

/** How long a host keeps asking the results stream to take a result before it publishes it plainly. */
const KEEP_TRYING_MS = 60_000;

/**
 * A task host's way of publishing results over NATS: through JetStream, so that the publish resolves
 * only once the team's results stream has the result — asked again (same message id: the stream keeps
 * it once) while NATS restarts or JetStream elects a leader. After a minute without an ack (no stream
 * for that team), the result is published as a plain message. A result over the message limit throws
 * at once, as a plain publish would.
 *
 * @example
 * const publishResult = resultPublisher(transport.connection);
 * await publishResult(subjects.result('ml', execution, 'aws'), encodeJson(result));
 */
export function resultPublisher(
  nc: NatsConnection,
  clock: () => number = Date.now,
): (subject: string, data: Uint8Array) => Promise<void> {
  const js = jetstream(nc);
  return async (subject, data) => {
    const limit = nc.info?.max_payload;
    if (limit !== undefined && data.length > limit)
      throw new Error(`the result is ${data.length} bytes, over the NATS limit of ${limit}`);
    const until = clock() + KEEP_TRYING_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        await js.publish(subject, data, { msgID: subject, timeout: 2000 });
        return;
      } catch {
        if (clock() >= until) return nc.publish(subject, data);
        await new Promise((r) => setTimeout(r, askAgainWaitMs(attempt)));
      }
    }
  };
}
