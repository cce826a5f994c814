/**
 * The Transport contract: one suite, run against the in-process transport and against NATS (on a
 * nats-server this file starts). Each test gets a pair of endpoints: two connections for NATS, the
 * same bus twice in memory. Subscribers `flush()` before publishers send, as NATS requires.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNatsServer, type NatsServer } from '../test/nats/server.ts';
import { until } from '../test/nats/wait.ts';
import { NoRespondersError, ReplyLostError, TransportClosedError, TransportTimeoutError } from './errors.ts';
import { createMemoryTransport } from './memory.ts';
import { connectNats } from './nats.ts';
import { decodeJson, encodeJson, type Msg, type Transport } from './transport.ts';

interface Env {
  /** Two endpoints on one bus; closed by the suite. */
  pair(): Promise<[Transport, Transport]>;
  /** What handlers threw, as reported to `onHandlerError`. */
  handlerErrors: { err: unknown; subject: string }[];
  close(): Promise<void>;
}

function memoryEnv(): Env {
  const open: Transport[] = [];
  const handlerErrors: Env['handlerErrors'] = [];
  return {
    handlerErrors,
    pair: async () => {
      const t = createMemoryTransport({
        onHandlerError: (err, msg) => handlerErrors.push({ err, subject: msg.subject }),
      });
      open.push(t);
      return [t, t];
    },
    close: async () => {
      await Promise.all(open.map((t) => t.close()));
    },
  };
}

async function natsEnv(): Promise<Env> {
  const server = await startNatsServer({ jetstream: false });
  const open: Transport[] = [];
  const handlerErrors: Env['handlerErrors'] = [];
  const onHandlerError = (err: unknown, msg: Msg) => handlerErrors.push({ err, subject: msg.subject });
  return {
    handlerErrors,
    pair: async () => {
      const a = await connectNats({ servers: server.url, name: 'contract-a', onHandlerError });
      const b = await connectNats({ servers: server.url, name: 'contract-b', onHandlerError });
      open.push(a, b);
      return [a, b];
    },
    close: async () => {
      await Promise.all(open.map((t) => t.close()));
      await server[Symbol.asyncDispose]();
    },
  };
}

const text = (s: string) => new TextEncoder().encode(s);
const str = (m: Msg) => new TextDecoder().decode(m.data);

/** Subscribes and records every message. */
function record(t: Transport, subject: string, queue?: string): { msgs: Msg[]; stop: () => void } {
  const msgs: Msg[] = [];
  const sub = t.subscribe(subject, (m) => msgs.push(m), queue === undefined ? {} : { queue });
  return { msgs, stop: () => sub.unsubscribe() };
}

describe.each([
  { name: 'memory', env: async () => memoryEnv() },
  { name: 'nats', env: natsEnv },
])('Transport contract: $name', ({ env: makeEnv }) => {
  let env: Env;
  beforeAll(async () => {
    env = await makeEnv();
  });
  afterAll(async () => {
    await env?.close();
  });

  it('delivers messages in publish order with their bytes', async () => {
    const [pub, sub] = await env.pair();
    const got = record(sub, 'order.test');
    await sub.flush();
    for (let i = 0; i < 200; i++) pub.publish('order.test', text(`m${i}`));
    await until(
      () => got.msgs.length === 200,
      () => `got ${got.msgs.length} of 200`,
    );
    expect(got.msgs.map(str)).toEqual(Array.from({ length: 200 }, (_, i) => `m${i}`));
    expect(got.msgs[0]!.subject).toBe('order.test');
    expect(got.msgs[0]!.reply).toBeUndefined();
  });

  it('matches `*` to exactly one token', async () => {
    const [pub, sub] = await env.pair();
    const got = record(sub, 'star.*.x');
    await sub.flush();
    for (const s of ['star.a.x', 'star.a.y', 'star.a.b.x', 'star.x', 'star.b.x', 'star.end.x'])
      pub.publish(s, text(s));
    await until(() => got.msgs.some((m) => m.subject === 'star.end.x'), 'sentinel star.end.x');
    expect(got.msgs.map((m) => m.subject)).toEqual(['star.a.x', 'star.b.x', 'star.end.x']);
  });

  it('matches `>` to one or more trailing tokens', async () => {
    const [pub, sub] = await env.pair();
    const got = record(sub, 'tail.>');
    await sub.flush();
    for (const s of ['tail', 'tail.a', 'tails.a', 'x.tail.a', 'tail.a.b.c', 'tail.end'])
      pub.publish(s, text(s));
    await until(() => got.msgs.some((m) => m.subject === 'tail.end'), 'sentinel tail.end');
    expect(got.msgs.map((m) => m.subject)).toEqual(['tail.a', 'tail.a.b.c', 'tail.end']);
  });

  it('gives each message to exactly one member of a queue group, and to every plain subscriber', async () => {
    const [pub, sub] = await env.pair();
    const m1 = record(sub, 'work.items', 'workers');
    const m2 = record(pub, 'work.items', 'workers');
    const m3 = record(sub, 'work.*', 'workers');
    const all = record(sub, 'work.items');
    await Promise.all([sub.flush(), pub.flush()]);
    for (let i = 0; i < 300; i++) pub.publish('work.items', text(String(i)));
    const members = [m1, m2, m3];
    const total = () => members.reduce((n, m) => n + m.msgs.length, 0);
    await until(
      () => total() >= 300 && all.msgs.length === 300,
      () => `group ${total()}, plain ${all.msgs.length}`,
    );
    await Promise.all([sub.flush(), pub.flush()]);
    const seen = members.flatMap((m) => m.msgs.map(str)).sort((a, b) => Number(a) - Number(b));
    expect(seen).toEqual(Array.from({ length: 300 }, (_, i) => String(i)));
    for (const m of members) expect(m.msgs.length).toBeGreaterThan(0);
  });

  it('answers a request with the reply of a subscriber', async () => {
    const [client, server] = await env.pair();
    server.subscribe('svc.double', (m) => {
      const { n } = decodeJson(m.data) as { n: number };
      server.respond(m, encodeJson({ n: n * 2 }));
    });
    await server.flush();
    const replies = await Promise.all([1, 2, 3].map((n) => client.request('svc.double', encodeJson({ n }))));
    expect(replies.map((r) => decodeJson(r.data))).toEqual([{ n: 2 }, { n: 4 }, { n: 6 }]);
  });

  it('rejects with TransportTimeoutError when nobody answers in time', async () => {
    const [client, server] = await env.pair();
    const got = record(server, 'svc.silent');
    await server.flush();
    const started = Date.now();
    const err = await client.request('svc.silent', text('hi'), { timeoutMs: 100 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportTimeoutError);
    expect(err).toMatchObject({ subject: 'svc.silent', timeoutMs: 100 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    expect(got.msgs.map(str)).toEqual(['hi']);
    expect(got.msgs[0]!.reply).toEqual(expect.any(String));
  });

  it('rejects with NoRespondersError when nobody subscribes', async () => {
    const [client] = await env.pair();
    const err = await client
      .request('svc.nobody.home', text('?'), { timeoutMs: 2000 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoRespondersError);
    expect(err).toMatchObject({ subject: 'svc.nobody.home' });
  });

  it('respond ignores a message without a reply subject', async () => {
    const [pub, sub] = await env.pair();
    const everything = record(sub, 'plain.>');
    const seen: Msg[] = [];
    sub.subscribe('plain.note', (m) => {
      seen.push(m);
      sub.respond(m, text('nobody asked'));
    });
    await sub.flush();
    pub.publish('plain.note', text('fyi'));
    pub.publish('plain.end', text('end'));
    await until(() => everything.msgs.length >= 2 && seen.length === 1, 'plain.note and plain.end');
    await sub.flush();
    expect(seen[0]!.reply).toBeUndefined();
    expect(everything.msgs.map(str)).toEqual(['fyi', 'end']);
  });

  it('stops delivery after unsubscribe, even of messages already on their way', async () => {
    const [pub, sub] = await env.pair();
    const got: string[] = [];
    const s = sub.subscribe('unsub.x', (m) => {
      got.push(str(m));
      if (got.length === 3) s.unsubscribe();
    });
    const end = record(sub, 'unsub.end');
    await sub.flush();
    for (let i = 0; i < 10; i++) pub.publish('unsub.x', text(String(i)));
    pub.publish('unsub.end', text('end'));
    await until(() => end.msgs.length === 1, 'sentinel unsub.end');
    expect(got).toEqual(['0', '1', '2']);
  });

  it('reports a throwing handler and keeps delivering', async () => {
    const [pub, sub] = await env.pair();
    const got: string[] = [];
    sub.subscribe('boom.x', (m) => {
      got.push(str(m));
      if (str(m) === '1') throw new Error('handler failed on 1');
    });
    await sub.flush();
    for (const s of ['0', '1', '2']) pub.publish('boom.x', text(s));
    await until(
      () => got.length === 3,
      () => `got ${got.join(',')}`,
    );
    expect(got).toEqual(['0', '1', '2']);
    const mine = env.handlerErrors.filter((e) => e.subject === 'boom.x');
    expect(mine.map((e) => (e.err as Error).message)).toEqual(['handler failed on 1']);
  });

  it('emits closed on close, then refuses to publish or request', async () => {
    const [t] = await env.pair();
    const events: string[] = [];
    t.onEvent((e) => events.push(e));
    await t.close();
    await until(
      () => events.includes('closed'),
      () => `events: ${events.join(',')}`,
    );
    expect(() => t.publish('after.close', text('x'))).toThrow(TransportClosedError);
    const err = await t.request('after.close', text('x'), { timeoutMs: 100 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportClosedError);
    await t.close(); // idempotent
  });

  it('round-trips 10,000 requests and 10,000 messages', async () => {
    const [client, server] = await env.pair();
    server.subscribe('bulk.echo', (m) => server.respond(m, m.data));
    const got = record(server, 'bulk.stream');
    await server.flush();
    for (let start = 0; start < 10_000; start += 1000) {
      const batch = Array.from({ length: 1000 }, (_, i) => String(start + i));
      const replies = await Promise.all(
        batch.map((s) => client.request('bulk.echo', text(s), { timeoutMs: 10_000 })),
      );
      expect(replies.map(str)).toEqual(batch);
    }
    for (let i = 0; i < 10_000; i++) client.publish('bulk.stream', text(String(i)));
    await until(
      () => got.msgs.length === 10_000,
      () => `got ${got.msgs.length} of 10000`,
      20_000,
    );
    expect(got.msgs.every((m, i) => str(m) === String(i))).toBe(true);
  });
});

describe('Transport: NATS reconnection', () => {
  let server: NatsServer;
  beforeAll(async () => {
    server = await startNatsServer({ jetstream: false });
  });
  afterAll(async () => {
    await server?.[Symbol.asyncDispose]();
  });

  it('keeps a subscription receiving across a server crash and restart', async () => {
    const pub = await connectNats({ servers: server.url, name: 'reconnect-pub' });
    const sub = await connectNats({ servers: server.url, name: 'reconnect-sub' });
    const events: string[] = [];
    sub.onEvent((e) => events.push(e));
    const pubEvents: string[] = [];
    pub.onEvent((e) => pubEvents.push(e));
    try {
      const got = record(sub, 'live.ticks');
      await sub.flush();
      for (let i = 0; i < 50; i++) pub.publish('live.ticks', text(`before-${i}`));
      await until(
        () => got.msgs.length === 50,
        () => `before: ${got.msgs.length} of 50`,
      );

      await server.kill();
      await until(
        () => events.includes('disconnected'),
        () => `sub events: ${events.join(',')}`,
      );
      await server.restart();
      await until(
        () => events.includes('reconnected') && pubEvents.includes('reconnected'),
        () => `sub events: ${events.join(',')}; pub events: ${pubEvents.join(',')}`,
        10_000,
      );
      await sub.flush(); // the re-sent SUB has reached the restarted server

      for (let i = 0; i < 50; i++) pub.publish('live.ticks', text(`after-${i}`));
      const after = () => got.msgs.map(str).filter((s) => s.startsWith('after-'));
      await until(
        () => after().length === 50,
        () => `after: ${after().length} of 50`,
      );
      expect(after()).toEqual(Array.from({ length: 50 }, (_, i) => `after-${i}`));
      expect(events.indexOf('disconnected')).toBeLessThan(events.indexOf('reconnected'));
    } finally {
      await pub.close();
      await sub.close();
    }
    expect(events.at(-1)).toBe('closed');
  });

  it('a request answered at once, waiting when the server dies, fails with ReplyLostError, not at its timeout', async () => {
    const responder = await connectNats({ servers: server.url, name: 'silent-responder' });
    const t = await connectNats({ servers: server.url, name: 'lost-reply' });
    try {
      // Takes the request and never answers: only the dropped connection can end the wait.
      responder.subscribe('never.answers', () => undefined);
      await responder.flush();
      const asked = t
        .request('never.answers', text('hello'), { timeoutMs: 60_000, answeredAtOnce: true })
        .catch((e: unknown) => e);
      await t.flush();
      await server.kill();
      const err = await asked;
      expect(err).toBeInstanceOf(ReplyLostError);
      expect(err).toBeInstanceOf(TransportTimeoutError);
      expect((err as ReplyLostError).subject).toBe('never.answers');
    } finally {
      await server.restart();
      await t.close();
      await responder.close();
    }
  });

  it('a request not answered at once still gets a reply sent after the reconnection', async () => {
    const responder = await connectNats({ servers: server.url, name: 'late-responder' });
    const t = await connectNats({ servers: server.url, name: 'late-reply' });
    const events: string[] = [];
    t.onEvent((e) => events.push(e));
    const taken: Msg[] = [];
    try {
      responder.subscribe('answers.later', (msg) => void taken.push(msg));
      await responder.flush();
      const asked = t.request('answers.later', text('hello'), { timeoutMs: 20_000 });
      await until(
        () => taken.length === 1,
        () => 'the request did not arrive',
      );
      await server.kill();
      await server.restart();
      await until(
        () => events.includes('reconnected'),
        () => `events: ${events.join(',')}`,
        10_000,
      );
      await t.flush();
      await responder.flush();
      responder.respond(taken[0]!, text('later'));
      expect(str(await asked)).toBe('later');
    } finally {
      await t.close();
      await responder.close();
    }
  });

  it('a flush while the server is down waits for it to come back instead of failing', async () => {
    const t = await connectNats({ servers: server.url, name: 'flush-across-restart' });
    const events: string[] = [];
    t.onEvent((e) => events.push(e));
    try {
      await server.kill();
      await until(
        () => events.includes('disconnected'),
        () => `events: ${events.join(',')}`,
      );
      let flushed = false;
      const flush = t.flush().then(() => (flushed = true));
      await new Promise((r) => setTimeout(r, 300));
      expect(flushed).toBe(false);
      await server.restart();
      await flush;
      expect(events).toContain('reconnected');
    } finally {
      await t.close();
    }
  });
});
