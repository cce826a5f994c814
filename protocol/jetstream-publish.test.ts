/** JetStream publishes over the publisher's own reply subscription: sequences in order, refusals typed. */
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNatsServer, type NatsServer } from '../test/nats/server.ts';
import { JetStreamPublishError, JetStreamPublisher } from './jetstream-publish.ts';
import { connectNats, type NatsTransport } from './nats.ts';

let server: NatsServer;
let t: NatsTransport;

beforeAll(async () => {
  server = await startNatsServer();
  t = await connectNats({ servers: server.url });
  const jsm = await jetstreamManager(t.connection);
  await jsm.streams.add({ name: 'pub-test', subjects: ['pub-test.>'] });
});
afterAll(async () => {
  await t?.close();
  await server?.stop();
});

describe('JetStreamPublisher', () => {
  it('stores 10,000 messages, more than one window, and resolves with their sequences in order', async () => {
    const p = new JetStreamPublisher(t.connection);
    const data = (i: number) => new TextEncoder().encode(String(i));
    const seqs = await p.publishMany(10_000, (i) => `pub-test.${i % 7}`, data);
    expect(seqs).toEqual(Array.from({ length: 10_000 }, (_, i) => i + 1));
    const more = await p.publishMany(2, () => 'pub-test.x', data);
    expect(more).toEqual([10_001, 10_002]);
    const jsm = await jetstreamManager(t.connection);
    expect((await jsm.streams.info('pub-test')).state.messages).toBe(10_002);
    p.close();
  });

  it('rejects when no stream takes the subject, naming the status', async () => {
    const p = new JetStreamPublisher(t.connection);
    const err = await p
      .publishMany(
        3,
        () => 'nobody.listens',
        () => new Uint8Array([1]),
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JetStreamPublishError);
    expect((err as JetStreamPublishError).code).toBe(503);
    p.close();
  });

  it('rejects when no acknowledgement comes in time', async () => {
    // A plain subscriber on the subject takes the message and never answers: no ack.
    t.subscribe('silent.subject', () => undefined);
    await t.flush();
    const p = new JetStreamPublisher(t.connection, 200);
    const err = await p
      .publishMany(
        1,
        () => 'silent.subject',
        () => new Uint8Array([1]),
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JetStreamPublishError);
    expect((err as Error).message).toBe('no acknowledgement from JetStream within 200 ms');
    p.close();
  });

  it('rejects at once the publishes still awaiting acks when the connection drops', async () => {
    // Taken by a plain subscriber that never answers: no ack comes, only the dropped connection ends it.
    t.subscribe('silent.until-crash', () => undefined);
    await t.flush();
    const p = new JetStreamPublisher(t.connection, 60_000);
    try {
      const pending = p
        .publishMany(
          3,
          () => 'silent.until-crash',
          () => new Uint8Array([1]),
        )
        .catch((e: unknown) => e);
      await t.flush();
      await server.kill();
      const err = await pending;
      expect(err).toBeInstanceOf(JetStreamPublishError);
      expect((err as Error).message).toBe('the connection to NATS dropped before JetStream acknowledged');
    } finally {
      p.close();
      await server.restart();
    }
  });
});
