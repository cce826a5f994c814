/**
 * Reading large streams back (a load reads the event log and the journal, entries of up to ~250 KB each)
 * on a server whose per-connection buffer is small: a pull never asks for more bytes than the buffer
 * holds, so the server does not drop the reader as a slow consumer midway (which left a load waiting
 * for entries that were never coming).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNatsServer, type NatsServer } from '../test/nats/server.ts';
import { openJetStreamStore } from './jetstream-store.ts';
import { connectNats, type NatsTransport } from './nats.ts';

let server: NatsServer;
let t: NatsTransport;

beforeAll(async () => {
  // 8 MiB per connection instead of the default 64 MiB: the same limit, reached with fewer entries.
  server = await startNatsServer({ config: 'max_pending: 8388608' });
  t = await connectNats({ servers: server.url });
});
afterAll(async () => {
  await t?.close();
  await server?.stop();
});

describe('JetStream store: reading large entries back', () => {
  it('reads 120 entries of 256 KB (30 MB) from the event log and the journal, every one, in order', async () => {
    const store = await openJetStreamStore(t.connection, { bucket: 'read-test', stream: 'read-test' });
    const entry = (i: number) => {
      const data = new Uint8Array(256 * 1024).fill(97);
      data[0] = i;
      return data;
    };
    const entries = Array.from({ length: 120 }, (_, i) => entry(i));
    await store.appendMany(entries);
    await store.journal.append(entries);
    const seen: number[] = [];
    for await (const e of store.readLog()) seen.push(e.data[0]!);
    const journaled: number[] = [];
    for await (const e of store.journal.read(1)) journaled.push(e.data[0]!);
    const all = Array.from({ length: 120 }, (_, i) => i);
    expect(seen).toEqual(all);
    expect(journaled).toEqual(all);
    await store.close();
  }, 30_000);
});
