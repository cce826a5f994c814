/**
 * Reliability over a real nats-server: the broker killed with SIGKILL mid-run, the NATS server restarted
 * mid-run, and a flood of malformed and unauthorised messages. Each test starts its own server.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type Agent,
  createAgent,
  createSimExecutor,
  createSimProvisioner,
  type Executor,
} from '../agents/index.ts';
import { loadPlatform } from '../policies/index.ts';
import { decodeJson, encodeJson, type RequestReply, subjects, type Transport } from '../protocol/index.ts';
import { connectNats } from '../protocol/nats-index.ts';
import { startNatsServer, type NatsServer } from './nats/server.ts';
import { eventually } from './system.ts';

// Generous enough that a loaded CI machine does not mistake a slow agent for a dead one.
const HEARTBEAT_MS = 250;
const SPEEDUP = 1000;

/** Counts how often each request's work ran to the end, across every agent. */
function countingExecutor(inner: Executor, completions: Map<string, number>): Executor {
  return {
    kind: inner.kind,
    start(lease, node, report) {
      inner.start(lease, node, (state, info) => {
        if (state === 'succeeded')
          completions.set(lease.requestId, (completions.get(lease.requestId) ?? 0) + 1);
        report(state, info);
      });
    },
    stop: (id) => inner.stop(id),
    close: () => inner.close(),
  };
}

function startBrokerProcess(url: string): ChildProcess {
  return spawn(
    process.execPath,
    [
      'bin/gantry.js',
      'broker',
      '-f',
      'test/fixtures/platform',
      '--nats',
      url,
      '--heartbeat',
      String(HEARTBEAT_MS),
    ],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, GANTRY_LOG: 'warn' },
    },
  );
}

/** Sends a request until the broker answers, resending the same id after timeouts (idempotent). */
async function requestUntilAnswered(
  t: Transport,
  requestId: string,
  durationMs: number,
): Promise<RequestReply> {
  for (;;) {
    try {
      const body = {
        requestId,
        team: 'ml',
        resources: { cpu: 1, memory: '2Gi' },
        work: { kind: 'sim', durationMs },
      };
      const reply = await t.request(subjects.request('ml'), encodeJson(body), { timeoutMs: 2000 });
      return decodeJson(reply.data) as RequestReply;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
  cleanup = [];
});

async function agentsOn(server: NatsServer, completions: Map<string, number>): Promise<Agent[]> {
  const { platform } = loadPlatform(['test/fixtures/platform']);
  const agents: Agent[] = [];
  for (const cluster of platform.clusters) {
    const conn = await connectNats({ servers: server.url, name: `agent-${cluster.name}` });
    const agent = createAgent({
      transport: conn,
      cluster,
      executor: countingExecutor(createSimExecutor({ speedup: SPEEDUP }), completions),
      provisioner: createSimProvisioner(cluster, { speedup: SPEEDUP }),
      heartbeatMs: HEARTBEAT_MS,
      speedup: SPEEDUP,
    });
    agents.push(agent);
    cleanup.push(async () => {
      await agent.stop();
      await conn.close();
    });
  }
  await Promise.all(agents.map((a) => a.start()));
  return agents;
}

/**
 * A nats-server, the brokers `startBrokers` starts on it, the test platform's agents (counting
 * completions; they register with a broker, so they come after) and a client; all cleaned up after.
 */
async function startRun(
  startBrokers: (url: string) => Promise<void>,
): Promise<{ server: NatsServer; completions: Map<string, number>; client: Transport }> {
  const server = await startNatsServer();
  cleanup.push(() => server.stop());
  await startBrokers(server.url);
  const completions = new Map<string, number>();
  await agentsOn(server, completions);
  const client = await connectNats({ servers: server.url, name: 'client' });
  cleanup.push(() => client.close());
  return { server, completions, client };
}

describe('reliability over NATS', () => {
  it('SIGKILL of the broker in the middle of 1,000 tasks: every task completes exactly once', async () => {
    let broker: ChildProcess | undefined;
    const { server, completions, client } = await startRun(async (url) => {
      broker = startBrokerProcess(url);
    });
    cleanup.push(async () => void broker?.kill('SIGKILL'));

    const ids = Array.from({ length: 1000 }, (_, i) => `kill-${i}`);
    let answered = 0;
    const all = Promise.all(
      ids.map((id) =>
        requestUntilAnswered(client, id, 2_000_000 /* 2 s at speedup 1000 */).then((r) => {
          answered++;
          return r;
        }),
      ),
    );
    await eventually(() => answered >= 300, 30_000, '300 leases before the kill');
    broker!.kill('SIGKILL');
    await new Promise((r) => broker!.once('exit', r));
    broker = startBrokerProcess(server.url);
    const replies = await all;
    expect(replies.filter((r) => !r.ok)).toEqual([]);
    await eventually(
      () => ids.every((id) => (completions.get(id) ?? 0) >= 1),
      60_000,
      'every task completed',
    );
    await new Promise((r) => setTimeout(r, 5 * HEARTBEAT_MS));
    expect(ids.filter((id) => completions.get(id) !== 1)).toEqual([]);
  }, 120_000);

  it('nats-server restarted mid-run: broker and agents reconnect and nothing is lost', async () => {
    const { server, completions, client } = await startRun(async (url) => {
      const broker = startBrokerProcess(url);
      cleanup.push(async () => void broker.kill('SIGKILL'));
    });

    const first = Array.from({ length: 200 }, (_, i) => `before-${i}`);
    await Promise.all(first.map((id) => requestUntilAnswered(client, id, 1_500_000)));
    await server.restart();
    const second = Array.from({ length: 200 }, (_, i) => `after-${i}`);
    const replies = await Promise.all(second.map((id) => requestUntilAnswered(client, id, 100_000)));
    expect(replies.every((r) => r.ok)).toBe(true);
    const ids = [...first, ...second];
    await eventually(
      () => ids.every((id) => (completions.get(id) ?? 0) >= 1),
      20_000,
      'every task completed',
    ).catch(async (e) => {
      const missing = ids.filter((id) => !completions.get(id));
      const r = await client.request(subjects.admin('requests'), encodeJson({ limit: 1000 }), {
        timeoutMs: 3000,
      });
      const all = (
        decodeJson(r.data) as {
          requests: { requestId: string; state: string; reason?: string; leaseId?: string }[];
        }
      ).requests;
      const l = await client.request(subjects.admin('leases'), encodeJson({ limit: 5000 }), {
        timeoutMs: 3000,
      });
      const leases = (
        decodeJson(l.data) as { leases: { leaseId: string; state: string; node: string; cluster: string }[] }
      ).leases;
      console.log(
        'DBG',
        missing.length,
        JSON.stringify(
          missing.slice(0, 3).map((id) => {
            const q = all.find((x) => x.requestId === id);
            return [q, leases.find((x) => x.leaseId === q?.leaseId)];
          }),
        ),
      );
      throw e;
    });
    expect(ids.filter((id) => completions.get(id) !== 1)).toEqual([]);
  }, 120_000);

  it('two brokers: one leads; when it dies the other takes over and the work finishes', async () => {
    let first: ChildProcess | undefined;
    const { completions, client } = await startRun(async (url) => {
      first = startBrokerProcess(url);
      await new Promise((r) => setTimeout(r, 1500)); // the first one wins the election
      const second = startBrokerProcess(url);
      cleanup.push(async () => void second.kill('SIGKILL'));
    });
    cleanup.push(async () => void first?.kill('SIGKILL'));

    const before = Array.from({ length: 100 }, (_, i) => `lead-${i}`);
    expect(
      (await Promise.all(before.map((id) => requestUntilAnswered(client, id, 1_000_000)))).every((r) => r.ok),
    ).toBe(true);
    first!.kill('SIGKILL');
    const after = Array.from({ length: 100 }, (_, i) => `standby-${i}`);
    const replies = await Promise.all(after.map((id) => requestUntilAnswered(client, id, 100_000)));
    expect(replies.every((r) => r.ok)).toBe(true);
    const ids = [...before, ...after];
    await eventually(
      () => ids.every((id) => (completions.get(id) ?? 0) >= 1),
      30_000,
      'every task completed',
    );
    expect(ids.filter((id) => completions.get(id) !== 1)).toEqual([]);
  }, 120_000);
});
