/**
 * Every identity `gantry cluster onboard` writes (the broker, each team's runtime, each cluster's agent
 * and task pods), on a nats-server enforcing that authorization, tried against every subject and
 * request it must not use: the server refuses the subjects (a permissions violation, nothing
 * delivered), the broker refuses the requests (`forbidden`), and the runtime ignores a forged result.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../agents/index.ts';
import { simAgent } from '../bin/embedded.ts';
import { authorizationBlock, type NatsUser } from '../bin/credentials.ts';
import { onboardingUsers } from '../bin/onboarding.ts';
import { type Broker, createBroker } from '../broker/index.ts';
import { loadPlatform } from '../policies/index.ts';
import {
  batchSubjects,
  decodeJson,
  encodeJson,
  openLocalStore,
  subjects,
  type TaskStateMsg,
  type TaskStatesMsg,
} from '../protocol/index.ts';
import { connectNats, type NatsTransport } from '../protocol/nats-index.ts';
import { Runtime, runWorkflow } from '../runtime/index.ts';
import { contentRef } from '../runtime/artifacts.ts';
import { openJetStreamArtifacts } from '../runtime/nats-artifacts.ts';
import * as slow from './fixtures/workflows/slow.ts';
import { type NatsServer, startNatsServer } from './nats/server.ts';

const MODULE = fileURLToPath(new URL('./fixtures/workflows/slow.ts', import.meta.url));
let server: NatsServer;
let broker: Broker;
const agents: Agent[] = [];
const conns: NatsTransport[] = [];
const as = new Map<string, NatsTransport>();
let users: NatsUser[];
let observer: NatsTransport;

const inbox = (name: string) => `_INBOX_${users.find((u) => u.name === name)!.nkey}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  const creds = mkdtempSync(join(tmpdir(), 'gantry-creds-'));
  const { platform } = loadPlatform(['test/fixtures/runtime-platform']);
  users = onboardingUsers(creds, ['ml', 'local'], platform.clusters);
  // The observer is the test's, not onboarding's: it sees whatever gets through.
  const config = authorizationBlock(users).replace(
    '  users: [\n',
    '  users: [\n    { user: observer, password: observer, permissions: { publish: ">", subscribe: ">" } },\n',
  );
  server = await startNatsServer({ config });
  observer = await connectNats({ servers: server.url, user: 'observer', pass: 'observer' });
  conns.push(observer);
  for (const u of users) {
    const c = await connectNats({
      servers: server.url,
      name: u.name,
      creds: join(creds, `${u.name}.nk`),
      onHandlerError: () => undefined,
    });
    conns.push(c);
    as.set(u.name, c);
  }
  broker = createBroker({
    transport: as.get('gantry-broker')!,
    store: await openLocalStore(mkdtempSync(join(tmpdir(), 'gantry-sec-'))),
    platform,
    heartbeatMs: 200,
  });
  await broker.start();
  for (const cluster of platform.clusters) {
    const conn = await connectNats({
      servers: server.url,
      name: `agent-${cluster.name}-serving`,
      creds: join(creds, `agent-${cluster.name}.nk`),
    });
    conns.push(conn);
    const { agent } = simAgent(conn, cluster, 1000, 200, {
      transport: conn,
      artifacts: await openJetStreamArtifacts(conn.connection),
      timeScale: 1000,
      forwardStderr: false,
    });
    await agent.start();
    agents.push(agent);
  }
}, 60_000);

afterAll(async () => {
  for (const a of agents) await a.stop();
  await broker?.stop();
  for (const c of conns) await c.close();
  await server?.stop();
});

/** A concrete subject matching a subscription pattern, for the observer to publish on. */
const concrete = (pattern: string) =>
  pattern
    .split('.')
    .map((t) => (t === '*' ? 'x' : t === '>' ? 'x.y' : t))
    .join('.');

interface Check {
  who: string;
  verb: 'publish' | 'subscribe';
  subject: string;
}

/** Subjects each identity must not publish on or subscribe to (the 41 checks, and more). */
function forbidden(): Check[] {
  const pub = (who: string, ...ss: string[]) =>
    ss.map((subject) => ({ who, verb: 'publish' as const, subject }));
  const sub = (who: string, ...ss: string[]) =>
    ss.map((subject) => ({ who, verb: 'subscribe' as const, subject }));
  return [
    // A team's runtime: nothing of another team's, no agent's, no result or state forging, no admin.
    ...pub(
      'runtime-ml',
      'gantry.v1.team.local.request',
      'gantry.v1.team.local.requests',
      // Answers to batches come from the broker alone: a runtime cannot forge its own leases.
      'gantry.v1.team.ml.batch.b1.leases',
      'gantry.v1.agent.sim-aws.request',
      'gantry.v1.agent.sim-aws.heartbeat',
      'gantry.v1.agent.workstation.launch',
      'gantry.v1.team.ml.exec.e1.result.sim-aws',
      'gantry.v1.team.ml.run.r1.states',
      'gantry.v1.team.local.worker.p.invoke',
      'gantry.v1.broker.admin.apply',
      `${inbox('gantry-broker')}.x`,
      '$KV.gantry-state.requests',
      '$JS.API.STREAM.DELETE.KV_gantry-state',
      // The brokers' leadership: a runtime cannot depose the leader or lead.
      '$KV.gantry-leader.broker.leader',
    ),
    ...sub(
      'runtime-ml',
      'gantry.v1.team.local.>',
      'gantry.v1.team.*.request',
      '_INBOX.>',
      `${inbox('runtime-local')}.>`,
      'gantry.v1.agent.>',
      '$KV.gantry-state.>',
      'gantry.v1.team.local.exec.*.result.*',
    ),
    // A cluster's agent: not another cluster's subjects, results signed as another cluster, task
    // states, team requests, admin, anyone's inbox, the broker's state.
    ...pub(
      'agent-workstation',
      'gantry.v1.agent.sim-aws.heartbeat',
      'gantry.v1.agent.sim-aws.request',
      'gantry.v1.agent.sim-aws.events',
      'gantry.v1.team.ml.request',
      'gantry.v1.team.ml.requests',
      'gantry.v1.team.ml.batch.b1.leases',
      'gantry.v1.team.ml.exec.e1.result.sim-aws',
      'gantry.v1.team.ml.run.r1.states',
      'gantry.v1.broker.admin.drain',
      `${inbox('runtime-ml')}.x`,
      '$KV.gantry-state.leases',
      '$KV.gantry-leader.broker.leader',
    ),
    ...sub(
      'agent-workstation',
      '_INBOX.>',
      `${inbox('runtime-ml')}.>`,
      'gantry.v1.agent.sim-aws.>',
      'gantry.v1.team.ml.request',
      'gantry.v1.team.ml.batch.*.leases',
      'gantry.v1.broker.admin.>',
      '$KV.gantry-state.>',
    ),
    // Task pods: not their agent's own subjects, not another cluster's results, no team requests.
    ...pub(
      'tasks-sim-aws',
      'gantry.v1.agent.sim-aws.heartbeat',
      'gantry.v1.agent.sim-aws.events',
      'gantry.v1.team.ml.request',
      'gantry.v1.team.ml.requests',
      'gantry.v1.team.ml.exec.e1.result.workstation',
      'gantry.v1.broker.admin.stats',
    ),
    ...sub('tasks-sim-aws', 'gantry.v1.agent.sim-aws.launch', '_INBOX.>', 'gantry.v1.team.ml.request'),
  ];
}

describe('every credential against what it must not do', () => {
  it('the server refuses every subject outside an identity’s permissions, and delivers nothing', async () => {
    const checks = forbidden();
    const seen: string[] = [];
    // Each forged message carries its check's number, so the real traffic on the same subjects
    // (the agents' heartbeats) does not count.
    const spy = observer.subscribe('>', (msg) => {
      const body = decodeJson(msg.data) as { forged?: number };
      if (typeof body?.forged === 'number') seen.push(`${body.forged} ${msg.subject}`);
    });
    const got = new Map<Check, number>();
    for (const [i, c] of checks.entries()) {
      const t = as.get(c.who)!;
      if (c.verb === 'publish') t.publish(c.subject, encodeJson({ forged: i }));
      else {
        got.set(c, 0);
        t.subscribe(c.subject, () => got.set(c, got.get(c)! + 1));
      }
    }
    for (const t of as.values()) await t.flush().catch(() => undefined);
    await sleep(300);
    spy.unsubscribe();
    for (const c of checks) if (c.verb === 'subscribe') observer.publish(concrete(c.subject), encodeJson({}));
    await observer.flush();
    await sleep(300);
    const log = server.log();
    const rows = checks.map((c, i) => {
      const violation = log.includes(`Subject "${c.subject}"`) && /Violation/.test(log);
      const leaked = c.verb === 'publish' ? seen.includes(`${i} ${c.subject}`) : got.get(c)! > 0;
      return { ...c, refused: violation && !leaked };
    });
    console.log(
      `permission checks: ${rows.filter((r) => r.refused).length} of ${rows.length} refused\n` +
        rows
          .map(
            (r) =>
              `  ${r.refused ? 'refused' : 'ESCAPED'}  ${r.who.padEnd(18)} ${r.verb.padEnd(9)} ${r.subject}`,
          )
          .join('\n'),
    );
    expect(rows.length).toBeGreaterThanOrEqual(41);
    expect(rows.filter((r) => !r.refused)).toEqual([]);
  });

  it('the broker refuses requests for another team, process work, and agents asking as teams with no work there', async () => {
    const ask = async (who: string, subject: string, body: Record<string, unknown>) => {
      const reply = await as.get(who)!.request(subject, encodeJson(body), { timeoutMs: 5000 });
      return decodeJson(reply.data) as { ok: boolean; error?: { code: string; field?: string } };
    };
    const shell = { kind: 'process', command: '/bin/sh', args: ['-c', 'id > /tmp/gantry-pwned'] };
    const sim = { kind: 'sim', durationMs: 10 };
    const cases: [string, string, Record<string, unknown>, string][] = [
      ['runtime-ml', subjects.request('ml'), { requestId: 'f1', team: 'local', work: sim }, 'team'],
      [
        'runtime-local',
        subjects.request('local'),
        { requestId: 'f2', team: 'local', work: shell },
        'work.kind',
      ],
      ['runtime-ml', subjects.request('ml'), { requestId: 'f3', team: 'ml', work: shell }, 'work.kind'],
      [
        'agent-workstation',
        subjects.agentRequest('workstation'),
        { requestId: 'f4', team: 'local', work: shell },
        'work.kind',
      ],
      [
        'agent-sim-aws',
        subjects.agentRequest('sim-aws'),
        { requestId: 'f5', team: 'ml', work: sim },
        'work.kind',
      ],
      [
        'agent-sim-aws',
        subjects.agentRequest('sim-aws'),
        {
          requestId: 'f6',
          team: 'local',
          work: { kind: 'worker', module: MODULE, pool: 'p', team: 'local', idleTtlMs: 1000 },
        },
        'team',
      ],
      [
        'tasks-sim-aws',
        subjects.agentRequest('sim-aws'),
        { requestId: 'f7', team: 'ml', work: shell },
        'work.kind',
      ],
    ];
    const answers = await Promise.all(cases.map(([who, subject, body]) => ask(who, subject, body)));
    expect(answers.map((a) => [a.ok, a.error?.code, a.error?.field])).toEqual(
      cases.map(([, , , field]) => [false, 'forbidden', field]),
    );
    // Nothing of it was queued.
    expect(cases.every(([, , b]) => !broker.state.requests.has(b.requestId as string))).toBe(true);
    // In a batch, each request is the subject's team's or refused on its own.
    const batch = await as
      .get('runtime-ml')!
      .request(
        batchSubjects.requests('ml'),
        encodeJson({ batch: 'b1', requests: [{ requestId: 'f8', team: 'local', work: sim }] }),
        { timeoutMs: 5000 },
      );
    expect(decodeJson(batch.data)).toMatchObject({
      accepted: 0,
      results: [{ requestId: 'f8', ok: false, error: { code: 'forbidden', field: 'team' } }],
    });
    expect(broker.state.requests.has('f8')).toBe(false);
  });

  it('a result forged by another cluster’s agent is ignored; the output is the task’s', async () => {
    const runtime = new Runtime({
      transport: as.get('runtime-ml')!,
      artifacts: await openJetStreamArtifacts(as.get('runtime-ml')!.connection),
      progress: false,
    });
    // The rogue agent learns the execution from the task states it may read, and answers for it
    // with a well-formed result whose hash matches its value, signed as its own cluster (the only
    // name its credentials may sign with).
    const rogue = as.get('agent-workstation')!;
    const forged = 'forged';
    let forgedCount = 0;
    rogue.subscribe(subjects.taskStates('ml', '*'), (msg) => {
      for (const s of (decodeJson(msg.data) as TaskStatesMsg).states) forge(s);
    });
    const forge = (s: TaskStateMsg) => {
      if (s.state !== 'running') return;
      forgedCount++;
      const result = {
        ok: true,
        execution: s.requestId,
        output: { inline: forged, hash: contentRef(JSON.stringify(forged)) },
        startedAt: Date.now(),
        endedAt: Date.now(),
      };
      rogue.publish(subjects.result('ml', s.requestId, 'workstation'), encodeJson(result));
      rogue.publish(subjects.result('ml', s.requestId, 'sim-aws'), encodeJson(result));
    };
    await rogue.flush();
    const run = await runWorkflow(slow.echoTwice, 'genuine', { runtime, team: 'ml', module: MODULE });
    expect(forgedCount).toBeGreaterThan(0);
    expect(run.error).toBeUndefined();
    expect(run.output).toBe('genuine');
    expect(server.log()).toMatch(/Publish Violation.*gantry\.v1\.team\.ml\.exec\.[^"]+\.result\.sim-aws/);
  }, 30_000);
});
