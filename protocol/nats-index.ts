/**
 * The NATS front door: the NATS transport and the JetStream store. Only `bin/` and tests import it;
 * everything else takes a `Transport` and a `Store` from `index.ts` and never loads nats.js.
 *
 * @example
 * import { connectNats, openJetStreamStore } from '../protocol/nats-index.ts';
 *
 * const transport = await connectNats({ servers: 'nats://nats:4222', name: 'gantry-broker' });
 * const store = await openJetStreamStore(transport.connection, { bucket: 'gantry', stream: 'GANTRY' });
 */
export { openJetStreamKeys, openJetStreamStore } from './jetstream-store.ts';
export { connectNats, inboxPrefix } from './nats.ts';

export type { JetStreamKeysOptions, JetStreamStoreOptions } from './jetstream-store.ts';
export type { NatsOptions, NatsTransport } from './nats.ts';
