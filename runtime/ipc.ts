/**
 * A worker process talks to Gantry through its parent (the agent) over the Node IPC channel: the
 * child gets a `Transport` and an `ArtifactStore` whose calls the parent carries out on its own. So a
 * worker needs no NATS address or credentials, and works the same in embedded mode, where the
 * parent's transport is in-process.
 */
import type { ChildProcess } from 'node:child_process';
import {
  type Msg,
  NoRespondersError,
  type RequestOptions,
  type SubscribeOptions,
  type Subscription,
  type Transport,
  type TransportEvent,
  TransportTimeoutError,
} from '../protocol/index.ts';
import type { ArtifactStore } from './artifacts.ts';

/** child → parent */
export type Up =
  | { t: 'pub'; subject: string; data: Uint8Array }
  | { t: 'sub'; sid: number; subject: string; queue?: string | undefined }
  | { t: 'unsub'; sid: number }
  | { t: 'req'; id: number; subject: string; data: Uint8Array; timeoutMs?: number | undefined }
  | { t: 'res'; replyId: number; data: Uint8Array }
  | { t: 'aput'; id: number; data: Uint8Array }
  | { t: 'aget'; id: number; ref: string }
  | { t: 'flush'; id: number }
  | { t: 'drain'; id: number; sid: number };

/** parent → child */
export type Down =
  | { t: 'start'; payload: unknown }
  | { t: 'preload'; module: string }
  | { t: 'msg'; sid: number; subject: string; data: Uint8Array; replyId?: number }
  | { t: 'ok'; id: number; subject?: string; data?: Uint8Array; ref?: string }
  | { t: 'err'; id: number; name: string; message: string };

/** What the parent does for the child. */
export interface Relay {
  /** Requests the child received and has not answered (it died holding them). */
  orphans(): Msg[];
  /** Drops the child's subscriptions (it exited). */
  close(): void;
}

/**
 * Parent side: carries out the child's transport and artifact calls. `onPublish` sees every publish
 * before it goes out (the process host watches for the execution's result); when it returns true, it
 * has sent the message itself.
 */
export function relayForChild(
  child: ChildProcess,
  transport: Transport,
  artifacts: ArtifactStore,
  onPublish?: (subject: string, data: Uint8Array) => boolean | void,
): Relay {
  const subs = new Map<number, Subscription>();
  const pending = new Map<number, Msg>();
  let nextReply = 1;
  const send = (m: Down) => {
    if (child.connected) child.send(m);
  };
  const bytes = (d: Uint8Array) => (d instanceof Uint8Array ? d : new Uint8Array(d));
  const onMessage = (raw: unknown) => {
    const m = raw as Up;
    try {
      carryOut(m);
    } catch (err) {
      // A message the transport refuses (over its size limit, a bad subject) must not take the agent
      // down: calls get the error, publishes are dropped.
      const e = err as Error;
      if ('id' in m) send({ t: 'err', id: m.id, name: e.name, message: e.message });
      else process.emitWarning(`worker message not sent: ${e.message}`);
    }
  };
  const carryOut = (m: Up) => {
    switch (m.t) {
      case 'pub':
        if (onPublish?.(m.subject, bytes(m.data)) !== true) transport.publish(m.subject, bytes(m.data));
        break;
      case 'sub':
        subs.set(
          m.sid,
          transport.subscribe(
            m.subject,
            (msg) => {
              let replyId: number | undefined;
              if (msg.reply) {
                replyId = nextReply++;
                pending.set(replyId, msg);
              }
              send({
                t: 'msg',
                sid: m.sid,
                subject: msg.subject,
                data: msg.data,
                ...(replyId ? { replyId } : {}),
              });
            },
            m.queue ? { queue: m.queue } : {},
          ),
        );
        break;
      case 'unsub':
        subs.get(m.sid)?.unsubscribe();
        subs.delete(m.sid);
        break;
      case 'res': {
        const msg = pending.get(m.replyId);
        pending.delete(m.replyId);
        if (msg) transport.respond(msg, bytes(m.data));
        break;
      }
      case 'req':
        transport.request(m.subject, bytes(m.data), m.timeoutMs ? { timeoutMs: m.timeoutMs } : {}).then(
          (r) => send({ t: 'ok', id: m.id, subject: r.subject, data: r.data }),
          (err: Error) => send({ t: 'err', id: m.id, name: err.name, message: err.message }),
        );
        break;
      case 'drain': {
        const sub = subs.get(m.sid);
        subs.delete(m.sid);
        (sub ? sub.drain() : Promise.resolve()).then(
          () => send({ t: 'ok', id: m.id }),
          (err: Error) => send({ t: 'err', id: m.id, name: err.name, message: err.message }),
        );
        break;
      }
      case 'flush':
        // The parent handles the child's messages in order: everything sent before has been carried out.
        transport.flush().then(
          () => send({ t: 'ok', id: m.id }),
          (err: Error) => send({ t: 'err', id: m.id, name: err.name, message: err.message }),
        );
        break;
      case 'aput':
        artifacts.put(bytes(m.data)).then(
          (ref) => send({ t: 'ok', id: m.id, ref }),
          (err: Error) => send({ t: 'err', id: m.id, name: err.name, message: err.message }),
        );
        break;
      case 'aget':
        artifacts.get(m.ref).then(
          (data) => send({ t: 'ok', id: m.id, data }),
          (err: Error) => send({ t: 'err', id: m.id, name: err.name, message: err.message }),
        );
        break;
    }
  };
  child.on('message', onMessage);
  return {
    orphans: () => [...pending.values()],
    close() {
      child.off('message', onMessage);
      for (const s of subs.values()) s.unsubscribe();
      subs.clear();
      pending.clear();
    },
  };
}

/** Child side: a transport and an artifact store that go through the parent. */
export function connectToParent(onPreload?: (module: string) => void): {
  transport: Transport;
  artifacts: ArtifactStore;
  started: Promise<unknown>;
} {
  if (!process.send) throw new Error('this process has no IPC channel: it must be started by a Gantry agent');
  const send = (m: Up) => process.send!(m);
  const handlers = new Map<number, (msg: Msg) => void>();
  const calls = new Map<
    number,
    { resolve: (m: Extract<Down, { t: 'ok' }>) => void; reject: (e: Error) => void }
  >();
  let nextSid = 1;
  let nextId = 1;
  let start!: (payload: unknown) => void;
  const started = new Promise<unknown>((r) => (start = r));
  const replies = new Map<string, number>();
  process.on('message', (raw) => {
    const m = raw as Down;
    if (m.t === 'start') start(m.payload);
    else if (m.t === 'preload') onPreload?.(m.module);
    else if (m.t === 'msg') {
      const reply = m.replyId ? `_IPC.${m.replyId}` : undefined;
      if (reply) replies.set(reply, m.replyId!);
      handlers.get(m.sid)?.({
        subject: m.subject,
        data: new Uint8Array(m.data),
        ...(reply ? { reply } : {}),
      });
    } else {
      const call = calls.get(m.id);
      calls.delete(m.id);
      if (!call) return;
      if (m.t === 'ok') call.resolve(m);
      else call.reject(remoteError(m.name, m.message));
    }
  });
  const rpc = (m: Up & { id: number }) =>
    new Promise<Extract<Down, { t: 'ok' }>>((resolve, reject) => {
      calls.set(m.id, { resolve, reject });
      send(m);
    });
  const listeners = new Set<(e: TransportEvent) => void>();
  const transport: Transport = {
    kind: 'ipc',
    publish(subject, data) {
      send({ t: 'pub', subject, data });
    },
    subscribe(subject, handler, options?: SubscribeOptions) {
      const sid = nextSid++;
      handlers.set(sid, handler);
      send({ t: 'sub', sid, subject, queue: options?.queue });
      return {
        unsubscribe() {
          if (!handlers.delete(sid)) return;
          send({ t: 'unsub', sid });
        },
        async drain() {
          if (!handlers.has(sid)) return;
          await rpc({ t: 'drain', id: nextId++, sid });
          handlers.delete(sid);
        },
      };
    },
    async request(subject, data, options?: RequestOptions) {
      const r = await rpc({ t: 'req', id: nextId++, subject, data, timeoutMs: options?.timeoutMs });
      return { subject: r.subject ?? subject, data: new Uint8Array(r.data ?? []) };
    },
    respond(msg, data) {
      const replyId = msg.reply ? replies.get(msg.reply) : undefined;
      if (replyId === undefined) return;
      replies.delete(msg.reply!);
      send({ t: 'res', replyId, data });
    },
    async flush() {
      await rpc({ t: 'flush', id: nextId++ });
    },
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {
      for (const l of listeners) l('closed');
    },
  };
  const artifacts: ArtifactStore = {
    kind: 'ipc',
    async put(data) {
      return (await rpc({ t: 'aput', id: nextId++, data })).ref!;
    },
    async get(ref) {
      return new Uint8Array((await rpc({ t: 'aget', id: nextId++, ref })).data ?? []);
    },
  };
  return { transport, artifacts, started };
}

function remoteError(name: string, message: string): Error {
  if (name === 'NoRespondersError')
    return new NoRespondersError(message.replace(/^no one is listening on /, ''));
  if (name === 'TransportTimeoutError') return Object.assign(new TransportTimeoutError('', 0), { message });
  const err = new Error(message);
  err.name = name;
  return err;
}
