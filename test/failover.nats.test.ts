/**
 * Failover through what users run (`gantry broker`, `gantry agent` and `gantry run` as processes):
 * a 3-server NATS cluster with every stream at R3 losing the server that leads the broker's state
 * bucket, and the leading broker killed with SIGKILL while a standby waits. Every task runs exactly
 * once and the run finishes with the right answer; the longest stall and the recovery timeline are
 * printed. And a broker killed right after answering a request: the standby has the request's lease.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  decodeJson,
  encodeJson,
  leaseStatusReply,
  leaseStatusSubjects,
  parseMessage,
  requestReply,
  subjects,
} from '../protocol/index.ts';
import { connectNats, type NatsTransport } from '../protocol/nats-index.ts';
import { askBroker } from '../runtime/broker-request.ts';
import { LeaseWatch } from '../runtime/lease-watch.ts';
import { describeRecovery, type FaultKind, runFault } from './fault-scenarios.ts';
import { type FaultStack, startFaultStack } from './fault-stack.ts';
import { type NatsServer, startNatsServer } from './nats/server.ts';
import { sleep } from './nats/wait.ts';

let stack: FaultStack | undefined;
let servers: NatsServer[] = [];
afterEach(async () => {
  await stack?.stop();
  for (const s of servers) await s[Symbol.asyncDispose]();
  stack = undefined;
  servers = [];
});

/** Runs `gantry run` through the fault and checks it: exit 0, the right sum, each task exactly once. */
async function survives(kind: FaultKind) {
  const r = await runFault(kind);
  console.log([describeRecovery(r), ...r.timeline].join('\n  '));
  expect(r.code, r.output).toBe(0);
  expect({ lost: r.lost, twice: r.twice }).toEqual({ lost: [], twice: [] });
  expect(r.answer).toBe(r.n * (r.n - 1));
  return r;
}

describe('failover', () => {
  it('3-server NATS cluster, R3: the server leading the broker state is killed mid-run', async () => {
    await survives('r3-leader-sigkill');
  }, 240_000);

  it('the leading broker is killed with SIGKILL mid-run: the standby takes over', async () => {
    const r = await survives('broker-sigkill');
    expect(r.standbyOutput).not.toMatch(/could not start serving/);
  }, 180_000);

  it('broker SIGKILL: a request answered just before is known to the standby; one never answered is asked again', async () => {
    const server = await startNatsServer();
    servers = [server];
    stack = await startFaultStack(server.url);
    await sleep(1500); // the first broker wins the election
    stack.broker();
    const t = await connectNats({ servers: server.url });
    try {
      const body = (requestId: string) => ({
        requestId,
        team: 'ml',
        resources: { cpu: 1, memory: '1Gi', spot: 'never' },
        work: { kind: 'sim', durationMs: 600_000, outcome: 'succeeded' },
      });
      // Answered: the broker replies with the lease once it is durable.
      const reply = await t.request(subjects.request('ml'), encodeJson(body('answered-1')), {
        timeoutMs: 10_000,
      });
      const answered = parseMessage(requestReply, reply.data);
      if (!answered.ok || !answered.value.ok)
        throw new Error(`no lease: ${JSON.stringify(decodeJson(reply.data))}`);
      // Never answered: the broker is frozen before the request reaches it, then killed.
      void stack.brokers[0]!.kill('SIGSTOP');
      const killedAt = Date.now();
      const watch = new LeaseWatch(t);
      const asked = askBroker(t, body('unanswered-1'), 'unanswered', 600_000, undefined, watch);
      await t.flush();
      await stack.brokers[0]!.kill('SIGKILL');
      // The standby takes over and knows the answered request, with the lease its requester holds.
      let known = await statusOf(t, 'answered-1');
      for (let i = 0; i < 150 && !known; i++) {
        await sleep(200);
        known = await statusOf(t, 'answered-1');
      }
      expect(known?.leaseId).toBe(answered.value.lease.leaseId);
      expect(['placed', 'launching', 'running']).toContain(known?.state);
      // The unanswered one is asked again (the standby never heard it) and gets a lease.
      const lease = await asked;
      console.log(
        `broker SIGKILL: the unanswered request got its lease ${Date.now() - killedAt} ms after the kill ` +
          `(it would have waited ${600} s for its reply)`,
      );
      expect(lease.requestId).toBe('unanswered-1');
      expect(await statusOf(t, 'unanswered-1')).toMatchObject({ leaseId: lease.leaseId });
    } finally {
      await t.close();
    }
  }, 120_000);
});

/** The broker's answer for one request of team ml, or undefined while no broker answers. */
async function statusOf(t: NatsTransport, requestId: string) {
  try {
    const reply = await t.request(leaseStatusSubjects.team('ml'), encodeJson({ requestIds: [requestId] }), {
      timeoutMs: 2000,
    });
    const p = parseMessage(leaseStatusReply, reply.data);
    const s = p.ok ? p.value.states[0] : undefined;
    return s && s.state !== 'unknown' ? s : undefined;
  } catch {
    return undefined;
  }
}
