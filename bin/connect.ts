/**
 * How commands reach NATS and the broker: connecting, opening JetStream state and asking the broker's
 * admin subjects, with every operational failure (server down, no JetStream, no broker, credentials)
 * turned into one line that says what to do.
 */
import { lookup } from 'node:dns/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeJson, encodeJson, type Store, subjects } from '../protocol/index.ts';
import {
  connectNats,
  type JetStreamStoreOptions,
  type NatsTransport,
  openJetStreamStore,
} from '../protocol/nats-index.ts';
import {
  jetStreamNotReady,
  jetStreamNotReadyLine,
  natsProblem,
  type NatsTarget,
  OperationalError,
  UsageError,
} from './errors.ts';

/** Runs `use`, turning known NATS failures into one line (an OperationalError). */
export async function overNats<T>(target: NatsTarget, use: () => Promise<T>): Promise<T> {
  try {
    return await use();
  } catch (err) {
    throw natsProblem(err, target) ?? err;
  }
}

/**
 * Connects to `target.nats` as `name`: one URL, or several separated by commas (the servers of a NATS
 * cluster; the connection moves to another when one goes down).
 */
export async function connectCli(target: NatsTarget, name: string): Promise<NatsTransport> {
  const servers = target.nats.split(',').map((s) => s.trim());
  await expectSomeHost(servers, target);
  return overNats(target, () =>
    connectNats({ servers, name, ...(target.creds ? { creds: target.creds } : {}) }),
  );
}

/**
 * Fails in one line when no server of `--nats` has a host name that resolves (a typo, a URL of another
 * scheme), rather than leaving the NATS client to reject where nothing catches it. One that resolves is
 * enough: the client skips the others, as it does servers that are down.
 */
async function expectSomeHost(servers: string[], target: NatsTarget): Promise<void> {
  const hosts = servers.map((s) => {
    try {
      return new URL(s.includes('://') ? s : `nats://${s}`).hostname.replace(/^\[(.*)\]$/, '$1');
    } catch {
      throw new UsageError(
        `--nats ${s} is not a NATS URL: write nats://<host>:<port>, e.g. nats://127.0.0.1:4222`,
      );
    }
  });
  const found = await Promise.all(
    hosts.map((h) =>
      lookup(h).then(
        () => true,
        () => false,
      ),
    ),
  );
  if (found.includes(true)) return;
  const names = [...new Set(hosts)].map((h) => `'${h}'`).join(', ');
  throw new OperationalError(
    `cannot reach NATS at ${target.nats} (no such host: ${names}): check the host name in --nats, e.g. nats://127.0.0.1:4222`,
  );
}

/**
 * Opens a JetStream store on a connection made by {@link connectCli}; closes the connection if it cannot.
 * `wait` (long-running commands): while JetStream has no meta leader yet, says so in one line and
 * tries again until it answers.
 */
export async function openStoreCli(
  transport: NatsTransport,
  target: NatsTarget,
  opts: JetStreamStoreOptions,
  wait = false,
): Promise<Store> {
  const open = () => openJetStreamStore(transport.connection, opts);
  try {
    return await overNats(target, wait ? () => untilJetStream(transport, target, open) : open);
  } catch (err) {
    await transport.close();
    throw err;
  }
}

/** How long to wait before trying JetStream again, ms. */
const JETSTREAM_RETRY_MS = 2000;

/**
 * Runs `use` until JetStream answers it: while the NATS cluster has no JetStream meta leader (its
 * servers just started, or most are down), says so on stderr in one line — then again every 30 s with
 * how long it has waited — and tries again every 2 s. Other failures go to the caller.
 */
export async function untilJetStream<T>(
  transport: NatsTransport,
  target: NatsTarget,
  use: () => Promise<T>,
  say: (line: string) => void = (line) => void process.stderr.write(`gantry: ${line}\n`),
): Promise<T> {
  const from = Date.now();
  let saidAt: number | undefined;
  for (;;) {
    try {
      const value = await use();
      if (saidAt !== undefined) say(`JetStream on NATS at ${target.nats} answers; going on`);
      return value;
    } catch (err) {
      const hasJetStream = (transport.connection.info as { jetstream?: boolean } | undefined)?.jetstream;
      if (!jetStreamNotReady(err, hasJetStream === true)) throw err;
      const now = Date.now();
      if (saidAt === undefined) {
        say(`${jetStreamNotReadyLine(target)}; trying again every 2 s`);
        saidAt = now;
      } else if (now - saidAt >= 30_000) {
        say(`still waiting for JetStream on NATS at ${target.nats} (${Math.round((now - from) / 1000)} s)`);
        saidAt = now;
      }
      await sleep(JETSTREAM_RETRY_MS);
    }
  }
}

/** The `--nats` a command that asks a running broker needs, or a usage error saying so. */
export function brokerTarget(flags: { nats?: string; creds?: string }): NatsTarget {
  if (!flags.nats)
    throw new UsageError(
      `this command asks a running broker: pass --nats <url> (an embedded broker lives inside 'gantry up')`,
    );
  return { nats: flags.nats, creds: flags.creds };
}

/**
 * Sends one admin request to the broker and returns its answer; a refusal becomes a UsageError with the
 * broker's message.
 */
export async function askBroker(
  flags: { nats?: string; creds?: string },
  verb: string,
  body: unknown = {},
  timeoutMs = 5000,
): Promise<Record<string, unknown>> {
  const target = brokerTarget(flags);
  const transport = await connectCli(target, 'gantry-cli');
  try {
    const reply = await overNats(target, () =>
      transport.request(subjects.admin(verb), encodeJson(body), { timeoutMs }),
    );
    const answer = decodeJson(reply.data) as { ok: boolean; error?: { message: string } } & Record<
      string,
      unknown
    >;
    if (!answer.ok) throw new UsageError(answer.error?.message ?? 'the broker refused');
    return answer;
  } finally {
    await transport.close();
  }
}

/**
 * Asks for a listing page after page on one connection (each answer stays under the NATS payload
 * limit) until `limit` rows or the last page; returns the last answer with every row, oldest first.
 */
export async function askBrokerPages(
  flags: { nats?: string; creds?: string },
  verb: string,
  body: { limit: number } & Record<string, unknown>,
  timeoutMs = 5000,
): Promise<Record<string, unknown>> {
  const target = brokerTarget(flags);
  const transport = await connectCli(target, 'gantry-cli');
  try {
    const pages: unknown[][] = [];
    let offset = 0;
    for (;;) {
      const reply = await overNats(target, () =>
        transport.request(subjects.admin(verb), encodeJson({ ...body, offset }), { timeoutMs }),
      );
      const answer = decodeJson(reply.data) as {
        ok: boolean;
        next?: number;
        error?: { message: string };
      } & Record<string, unknown>;
      if (!answer.ok) throw new UsageError(answer.error?.message ?? 'the broker refused');
      pages.unshift((answer[verb] as unknown[]) ?? []);
      if (answer.next === undefined || answer.next >= body.limit) {
        const { next: _next, ...rest } = answer;
        return { ...rest, [verb]: pages.flat() };
      }
      offset = answer.next;
    }
  } finally {
    await transport.close();
  }
}

/**
 * Fails in one line when no broker listens on `target.nats` — asked only of servers without
 * credentials: a workflow runtime's credentials may not send admin requests, and a runtime waits for a
 * broker that is starting or failing over anyway.
 */
export async function expectBroker(transport: NatsTransport, target: NatsTarget): Promise<void> {
  if (target.creds) return;
  try {
    await transport.request(subjects.admin('stats'), encodeJson({}), { timeoutMs: 2000 });
  } catch (err) {
    if (err instanceof Error && err.name === 'NoRespondersError') {
      await transport.close();
      throw natsProblem(err, target)!;
    }
  }
}
