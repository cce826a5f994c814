/**
 * Test helpers for the running system: a client that sends requests and follows tasks to their end,
 * counting every terminal state so that "exactly once" can be asserted.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Agent, SimProvisioner } from '../agents/index.ts';
import { simAgent, startEmbedded } from '../bin/embedded.ts';
import { type Broker, createBroker } from '../broker/index.ts';
import { loadPlatform } from '../policies/index.ts';
import { connectNats, openJetStreamStore } from '../protocol/nats-index.ts';
import { defaultBackends } from '../solver/index.ts';
import type { ArtifactStore } from '../runtime/artifacts.ts';
import { openJetStreamArtifacts } from '../runtime/nats-artifacts.ts';
import type { Store } from '../protocol/index.ts';
import { type NatsServer, startNatsServer } from './nats/server.ts';
import {
  decodeJson,
  encodeJson,
  type RequestReply,
  subjects,
  type TaskStatesMsg,
  type Transport,
} from '../protocol/index.ts';

/** Sends requests and records every state the broker publishes for them. */
export class TestClient {
  readonly states = new Map<string, string[]>();
  private readonly waiters = new Map<string, () => void>();

  /** `team`: whose task states to follow (a team's runtime credentials may read only its own). */
  constructor(
    private readonly transport: Transport,
    team = '*',
  ) {
    transport.subscribe(subjects.taskStates(team, '*'), (msg) => {
      for (const s of (decodeJson(msg.data) as TaskStatesMsg).states) {
        const list = this.states.get(s.requestId) ?? [];
        list.push(s.state);
        this.states.set(s.requestId, list);
        if (s.state === 'succeeded' || s.state === 'failed') this.waiters.get(s.requestId)?.();
      }
    });
  }

  /** Asks for resources for sim work; resolves with the broker's reply. */
  async request(
    requestId: string,
    body: Record<string, unknown> = {},
    timeoutMs = 30_000,
  ): Promise<RequestReply> {
    const msg = {
      requestId,
      team: 'ml',
      resources: { cpu: 2, memory: '4Gi' },
      work: { kind: 'sim', durationMs: 20 },
      ...body,
    };
    const reply = await this.transport.request(subjects.request(String(msg.team)), encodeJson(msg), {
      timeoutMs,
    });
    return decodeJson(reply.data) as RequestReply;
  }

  /** Resolves when every request has reached `succeeded` or `failed`, or rejects after `timeoutMs`. */
  async finished(ids: readonly string[], timeoutMs = 30_000): Promise<void> {
    const open = ids.filter((id) => !this.ended(id));
    await Promise.race([
      Promise.all(
        open.map(
          (id) =>
            new Promise<void>((resolve) => (this.ended(id) ? resolve() : this.waiters.set(id, resolve))),
        ),
      ),
      new Promise((_, reject) =>
        setTimeout(
          () =>
            reject(
              new Error(`${ids.filter((id) => !this.ended(id)).length} of ${ids.length} tasks not finished`),
            ),
          timeoutMs,
        ),
      ),
    ]);
  }

  private ended(id: string): boolean {
    const s = this.states.get(id) ?? [];
    return s.includes('succeeded') || s.includes('failed');
  }

  /** How many times each request reached `succeeded`. */
  successes(id: string): number {
    return (this.states.get(id) ?? []).filter((s) => s === 'succeeded').length;
  }
}

/** Polls `check` every 20 ms until it returns true, or throws after `timeoutMs`. */
export async function eventually(
  check: () => boolean,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A running system for tests: broker and agents, embedded or over a real nats-server. */
export interface TestSystem {
  mode: 'embedded' | 'nats';
  /** The client's transport (over NATS: its own connection, like a separate process). */
  transport: Transport;
  broker: Broker;
  agents: Agent[];
  clouds: Map<string, SimProvisioner>;
  server?: NatsServer;
  /** The broker's store (its log holds the cost ledger). */
  brokerStore: Store;
  /** The client's artifact store and runtime store (lineage, runs). */
  artifacts: ArtifactStore;
  runtimeStore: Store;
  speedup: number;
  /** Restarts a cluster's agent over the same simulated cloud (embedded only). */
  restartAgent?(cluster: string): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts the test platform (`test/fixtures/platform`) with sim clusters, in `mode`.
 *
 * @example
 * const system = await startSystem('nats', { speedup: 1000 });
 */
export async function startSystem(
  mode: 'embedded' | 'nats',
  opts: { speedup?: number; heartbeatMs?: number; platformDir?: string } = {},
): Promise<TestSystem> {
  const { platform } = loadPlatform([opts.platformDir ?? 'test/fixtures/platform']);
  const speedup = opts.speedup ?? 1000;
  const heartbeatMs = opts.heartbeatMs ?? 100;
  const stateDir = mkdtempSync(join(tmpdir(), 'gantry-system-'));
  if (mode === 'embedded') {
    const e = await startEmbedded({ platform, stateDir, speedup, heartbeatMs, forwardStderr: false });
    return {
      mode,
      transport: e.transport,
      broker: e.broker,
      agents: e.agents,
      clouds: e.clouds,
      brokerStore: e.store,
      artifacts: e.artifacts,
      runtimeStore: e.runtimeStore,
      speedup,
      restartAgent: (cluster) => e.restartAgent(cluster),
      stop: () => e.stop(),
    };
  }
  const server = await startNatsServer();
  const brokerNats = await connectNats({ servers: server.url, name: 'broker' });
  const store = await openJetStreamStore(brokerNats.connection, {
    bucket: 'gantry-state',
    stream: 'gantry-events',
  });
  const broker = createBroker({
    transport: brokerNats,
    store,
    platform,
    backends: await defaultBackends(),
    heartbeatMs,
  });
  await broker.start();
  const clouds = new Map<string, SimProvisioner>();
  const agentConns: Transport[] = [];
  const agents: Agent[] = [];
  for (const cluster of platform.clusters) {
    const conn = await connectNats({ servers: server.url, name: `agent-${cluster.name}` });
    agentConns.push(conn);
    const { agent, cloud } = simAgent(conn, cluster, speedup, heartbeatMs, {
      transport: conn,
      artifacts: await openJetStreamArtifacts(conn.connection),
      timeScale: speedup,
      forwardStderr: false,
    });
    clouds.set(cluster.name, cloud);
    agents.push(agent);
  }
  await Promise.all(agents.map((a) => a.start()));
  const client = await connectNats({ servers: server.url, name: 'client' });
  const runtimeStore = await openJetStreamStore(client.connection, {
    bucket: 'gantry-runtime',
    stream: 'gantry-lineage',
  });
  return {
    mode,
    transport: client,
    broker,
    agents,
    clouds,
    server,
    brokerStore: store,
    artifacts: await openJetStreamArtifacts(client.connection),
    runtimeStore,
    speedup,
    async stop() {
      await Promise.all(agents.map((a) => a.stop()));
      await broker.stop();
      await store.close();
      await runtimeStore.close();
      for (const c of [...agentConns, brokerNats, client]) await c.close();
      await server.stop();
    },
  };
}
