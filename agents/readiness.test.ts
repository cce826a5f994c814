import { describe, expect, it } from 'vitest';
import { loadPlatform } from '../policies/index.ts';
import { createMemoryTransport, encodeJson, subjects } from '../protocol/index.ts';
import { createAgent } from './agent.ts';
import type { Executor } from './executor.ts';
import { PollHealth } from './provisioner.ts';
import { createSimExecutor } from './sim-executor.ts';
import { createSimProvisioner } from './sim-provisioner.ts';

const { platform } = loadPlatform(['test/fixtures/platform']);
const cluster = platform.clusters.find((c) => c.name === 'sim-aws')!;

/** An agent on the in-process transport; `accept` makes a broker that takes its registration. */
function agentWith(executor: Executor, accept: boolean) {
  const transport = createMemoryTransport();
  if (accept)
    transport.subscribe(subjects.register('sim-aws'), (msg) =>
      transport.respond(msg, encodeJson({ ok: true, heartbeatMs: 1000, brokerId: 'b' })),
    );
  const agent = createAgent({
    transport,
    cluster,
    executor,
    provisioner: createSimProvisioner(cluster),
    pingTimeoutMs: 50,
  });
  return { transport, agent };
}

describe('agent readiness', () => {
  it('waits for the broker to accept its registration', async () => {
    const { agent, transport } = agentWith(createSimExecutor(), false);
    const started = agent.start();
    expect(await agent.readiness()).toEqual({
      ready: false,
      detail: 'registering cluster sim-aws with the broker',
    });
    await agent.stop();
    await started;
    await transport.close();
  });

  it.each([
    [
      'answers',
      async () => undefined,
      { ready: true, detail: 'cluster sim-aws: registered; executor sim and provisioner sim answer' },
    ],
    [
      'fails',
      async () => {
        throw new Error('the Kubernetes API does not answer: connect ECONNREFUSED');
      },
      { ready: false, detail: 'executor sim: the Kubernetes API does not answer: connect ECONNREFUSED' },
    ],
    [
      'hangs',
      () => new Promise<void>(() => undefined),
      { ready: false, detail: 'executor sim did not answer within 0.05s' },
    ],
  ])('once registered, with an executor that %s', async (_, ping, expected) => {
    const { agent, transport } = agentWith({ ...createSimExecutor(), ping }, true);
    await agent.start();
    expect(await agent.readiness()).toEqual(expected);
    const text = await agent.metrics.registry.metrics();
    expect(text).toMatch(/^gantry_agent_registered\{cluster="sim-aws"\} 1$/m);
    expect(text).toMatch(/^gantry_agent_lease_ends_total\{cluster="sim-aws",state="failed"\} 0$/m);
    await agent.stop();
    expect((await agent.readiness()).ready).toBe(false);
    await transport.close();
  });
});

describe('PollHealth', () => {
  it('answers while a poll succeeded recently, and says why not otherwise', () => {
    const clock = { now: 0 };
    const health = new PollHealth('EC2 DescribeInstances', 15_000, () => clock.now);
    expect(() => health.check()).toThrow('EC2 DescribeInstances: no poll has succeeded yet');
    health.failed(new Error('RequestExpired'));
    expect(() => health.check()).toThrow(
      'EC2 DescribeInstances: no poll has succeeded yet (last error: RequestExpired)',
    );
    health.ok();
    clock.now = 15_000;
    expect(() => health.check()).not.toThrow();
    health.failed(new Error('UnauthorizedOperation'));
    clock.now = 20_000;
    expect(() => health.check()).toThrow(
      'EC2 DescribeInstances: no poll has succeeded for 20s (last error: UnauthorizedOperation)',
    );
  });
});
