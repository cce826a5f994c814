/**
 * The broker's live state as the console shows it: clusters with their pools and nodes, the queue with
 * the typed reason each request waits, budgets, and the spend rate now. Read through the broker's
 * admin subjects (what `gantry get` and `gantry cluster` ask, in this process or over NATS), and the
 * fleet gauges of a broker in this process.
 */
import { type Broker, heldReason } from '../broker/index.ts';
import { decodeJson, encodeJson, type Reason, subjects, type Transport } from '../protocol/index.ts';

/** Asks the broker one admin verb; rejects with the broker's error. */
export type AskBroker = (verb: string, body?: unknown) => Promise<Record<string, unknown>>;

/** A refusal of the broker, with its code (`unknown-verb` when it does not know the verb). */
export class BrokerRefused extends Error {
  override name = 'BrokerRefused';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Admin requests over a transport (the in-process one, or a NATS connection). */
export function askOver(transport: Transport, timeoutMs = 5000): AskBroker {
  return async (verb, body = {}) => {
    const reply = await transport.request(subjects.admin(verb), encodeJson(body), { timeoutMs });
    const answer = decodeJson(reply.data) as {
      ok: boolean;
      error?: { code: string; message: string };
    } & Record<string, unknown>;
    if (!answer.ok)
      throw new BrokerRefused(answer.error?.code ?? 'refused', answer.error?.message ?? 'the broker refused');
    return answer;
  };
}

/** One gauge's samples summed over every label but the ones kept. */
export interface SpendRate {
  /** Running work's $/hour now. */
  perHour: number;
  /** The same work at on-demand prices. */
  onDemandPerHour: number;
  /** Nodes up, idle ones included. */
  nodesPerHour: number;
  byTeam: Record<string, number>;
}

/** The spend rate now from a broker's fleet gauges (zero on a standby, which exports none). */
export async function spendRate(broker: Pick<Broker, 'metrics' | 'refreshGauges'>): Promise<SpendRate> {
  broker.refreshGauges();
  const m = broker.metrics;
  const sum = async (g: typeof m.spendPerHour | typeof m.nodesPerHour) =>
    (await g.get()).values.reduce((s, v) => s + v.value, 0);
  const byTeam: Record<string, number> = {};
  for (const v of (await m.spendPerHour.get()).values) {
    const team = String(v.labels.team ?? '');
    byTeam[team] = (byTeam[team] ?? 0) + v.value;
  }
  return {
    perHour: await sum(m.spendPerHour),
    onDemandPerHour: await sum(m.onDemandPerHour),
    nodesPerHour: await sum(m.nodesPerHour),
    byTeam,
  };
}

interface PendingRequest {
  requestId: string;
  team: string;
  runId?: string;
  taskId?: string;
  workflow?: string;
  reason?: string;
  /** Why it is held, as data (unset while only queued). */
  held?: Reason;
  createdAt: number;
  resources: unknown;
}

/** The pending requests, each with the kind of reason it waits (quota, budget, capacity, policy). */
export async function queue(ask: AskBroker, now = Date.now()) {
  const a = (await ask('requests', { state: 'pending', limit: 100_000 })) as unknown as {
    total: number;
    requests: PendingRequest[];
  };
  return {
    total: a.total,
    requests: a.requests.map((r) => ({
      requestId: r.requestId,
      team: r.team,
      run: r.runId,
      task: r.taskId,
      workflow: r.workflow,
      resources: r.resources,
      waitingMs: now - r.createdAt,
      kind: heldReason(r.held) ?? 'queued',
      reason: r.reason ?? 'queued for the next solve cycle',
    })),
  };
}

/** Every cluster with its pools (and what they cost), nodes and what is free. */
export async function clusters(ask: AskBroker) {
  const list = (await ask('clusters')) as unknown as { clusters: { name: string }[] };
  return Promise.all(
    list.clusters.map(
      async (c) => ((await ask('describe', { name: c.name })) as { cluster: unknown }).cluster,
    ),
  );
}
