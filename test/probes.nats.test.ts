/**
 * The probes as Kubernetes uses them, on real processes over a real nats-server: `gantry agent` and two
 * `gantry broker`s with `--metrics-port`. `/healthz` answers as soon as a process runs; `/readyz` waits
 * for what each needs (an agent its registration, a broker to lead or to stand by with the state store
 * answering) and turns 503 when NATS goes away; the standby exports no fleet gauges, so that sums over
 * both brokers count the fleet once.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, type NatsServer, startNatsServer } from './nats/server.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const children: ChildProcess[] = [];

/** Starts `gantry ...args` as its own process; its stderr is kept for failure messages. */
function gantry(...args: string[]): { child: ChildProcess; log: () => string } {
  const child = spawn(process.execPath, ['bin/gantry.js', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, GANTRY_LOG: 'warn' },
  });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
  children.push(child);
  return { child, log: () => log };
}

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`);
    return { status: res.status, body: await res.text() };
  } catch {
    return { status: 0, body: '' };
  }
}

/** Polls `path` until its status is `status`; returns the last answer. */
async function until(
  port: number,
  path: string,
  status: number,
  timeoutMs = 20_000,
): Promise<{ status: number; body: string }> {
  const end = Date.now() + timeoutMs;
  let last = await get(port, path);
  while (last.status !== status && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 100));
    last = await get(port, path);
  }
  return last;
}

describe('health and readiness probes of gantry broker and gantry agent', () => {
  let nats: NatsServer;
  const ports = { agent: 0, brokerA: 0, brokerB: 0 };
  let agentLog: () => string;

  beforeAll(async () => {
    nats = await startNatsServer();
    for (const k of Object.keys(ports) as (keyof typeof ports)[]) ports[k] = await freePort();
    agentLog = gantry(
      ...['agent', '-f', 'test/fixtures/platform', '--cluster', 'sim-aws', '--nats', nats.url],
      ...['--metrics-port', String(ports.agent), '--heartbeat', '200', '--speedup', '100'],
    ).log;
  });

  afterAll(async () => {
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            c.once('exit', () => resolve());
            c.kill('SIGKILL');
          }),
      ),
    );
    await nats?.stop();
  });

  it('an agent is alive at once, and not ready until a broker accepts its registration', async () => {
    expect(await until(ports.agent, '/healthz', 200)).toEqual({ status: 200, body: 'ok\n' });
    const waiting = await get(ports.agent, '/readyz');
    expect(waiting).toEqual({ status: 503, body: 'registering cluster sim-aws with the broker\n' });
    expect((await get(ports.agent, '/metrics')).body).toMatch(
      /^gantry_agent_registered\{cluster="sim-aws"\} 0$/m,
    );
  });

  it('two brokers are ready, one leading and one standing by; the agent is ready once registered', async () => {
    for (const port of [ports.brokerA, ports.brokerB])
      gantry(
        'broker',
        '-f',
        'test/fixtures/platform',
        '--nats',
        nats.url,
        '--metrics-port',
        String(port),
        '--heartbeat',
        '200',
      );
    // Until the election settles, a broker about to win can still say it stands by: wait for one leader.
    const roles = async () => {
      const answers = await Promise.all([ports.brokerA, ports.brokerB].map((p) => get(p, '/readyz')));
      return answers.map((r) => `${r.status} ${r.body.split(' ')[0]}`).sort();
    };
    const end = Date.now() + 20_000;
    let seen = await roles();
    while (seen.join() !== '200 leading,200 standby' && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 100));
      seen = await roles();
    }
    expect(seen).toEqual(['200 leading', '200 standby']);
    const ready = await until(ports.agent, '/readyz', 200);
    expect(ready, agentLog()).toEqual({
      status: 200,
      body: 'cluster sim-aws: registered; executor sim and provisioner sim answer\n',
    });
    expect((await get(ports.agent, '/metrics')).body).toMatch(
      /^gantry_agent_registered\{cluster="sim-aws"\} 1$/m,
    );
  });

  it('only the leader exports the fleet; both export their counters from 0', async () => {
    const leaderPort = (await get(ports.brokerA, '/readyz')).body.startsWith('leading')
      ? ports.brokerA
      : ports.brokerB;
    const standbyPort = leaderPort === ports.brokerA ? ports.brokerB : ports.brokerA;
    const leader = (await get(leaderPort, '/metrics')).body;
    const standby = (await get(standbyPort, '/metrics')).body;
    expect(leader).toMatch(/^gantry_broker_leader 1$/m);
    expect(standby).toMatch(/^gantry_broker_leader 0$/m);
    expect(leader).toMatch(/^gantry_nodes\{cluster="sim-aws",pool="cpu-od",state="idle"\} 1$/m);
    expect(leader).toMatch(/^gantry_team_spend_month_dollars\{team="ml"\} 0$/m);
    expect(standby).not.toMatch(/^gantry_(nodes|cluster_healthy|team_spend_month_dollars|requests_held)\{/m);
    for (const text of [leader, standby]) {
      expect(text).toMatch(/^gantry_requests_refused_total\{code="policy"\} 0$/m);
      expect(text).toMatch(/^process_resident_memory_bytes \d+/m);
    }
  });

  it('without NATS, brokers and the agent are alive but not ready', async () => {
    await nats.stop();
    for (const port of [ports.brokerA, ports.brokerB, ports.agent]) {
      const r = await until(port, '/readyz', 503, 15_000);
      expect(r.status, `${port}: ${r.body}`).toBe(503);
      expect((await get(port, '/healthz')).status).toBe(200);
    }
    const details = await Promise.all(
      [ports.brokerA, ports.brokerB].map(async (p) => (await get(p, '/readyz')).body),
    );
    for (const d of details)
      expect(d).toMatch(/^(not connected to NATS|standby: no answer from the state store for \d+s)\n$/);
  }, 60_000);
});
