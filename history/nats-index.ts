/**
 * The history's NATS front door: following the broker's and the runtime's JetStream streams by a
 * durable consumer. Only `bin/` and tests import it, so that the rest of the history never loads
 * nats.js.
 *
 * @example
 * import { followStream } from '../history/nats-index.ts';
 * await followStream(history.ingester, 'broker', nc, 'gantry-events', abort.signal);
 */
export { DURABLE, followStream } from './jetstream-follow.ts';
export type { StreamFollowOptions } from './jetstream-follow.ts';
