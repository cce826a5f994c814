/**
 * The broker and real agents buying nodes from the EC2 and GCE test servers: Gantry launches the nodes
 * it planned, and no more.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type CloudSystem, startCloudSystem } from './cloud-system.ts';
import { TestClient } from './system.ts';

let system: CloudSystem | undefined;
afterEach(async () => {
  await system?.stop();
  system = undefined;
});

/** Sends `n` requests of 4 CPUs and 8 GiB for `cluster`, and waits for all of them to succeed. */
async function runTasks(s: CloudSystem, cluster: string, n: number): Promise<TestClient> {
  const client = new TestClient(s.transport);
  const ids = Array.from({ length: n }, (_, i) => `${cluster}-t${i}`);
  const replies = await Promise.all(
    ids.map((id) =>
      client.request(id, {
        resources: { cpu: 4, memory: '8Gi' },
        work: { kind: 'sim', durationMs: 2000 },
      }),
    ),
  );
  expect(replies.map((r) => r.ok)).toEqual(ids.map(() => true));
  await client.finished(ids, 30_000);
  return client;
}

describe('nodes bought for planned work', () => {
  it('EC2: 4 tasks of 4 CPUs on m7i.2xlarge (8 CPUs) launch 2 instances', async () => {
    system = await startCloudSystem({ clusters: ['aws-use1'] });
    const client = await runTasks(system, 'aws-use1', 4);
    expect(system.ec2.instances()).toHaveLength(2);
    const fleets = system.ec2
      .requests('CreateFleet')
      .map((r) => r.params['TargetCapacitySpecification.TotalTargetCapacity']);
    expect(fleets).toEqual(['2']);
    for (let i = 0; i < 4; i++) expect(client.successes(`aws-use1-t${i}`)).toBe(1);
  });

  it('GCE: 4 tasks of 4 CPUs on n2-standard-8 (8 CPUs) insert 2 VMs', async () => {
    system = await startCloudSystem({ clusters: ['gcp-usc1'] });
    await runTasks(system, 'gcp-usc1', 4);
    expect(system.gce.instances()).toHaveLength(2);
  });

  it('EC2: a task that arrives while a node launches takes the room left on it, not a new node', async () => {
    // Instances stay pending until the test runs them.
    system = await startCloudSystem({ clusters: ['aws-use1'], launchDelayMs: 3_600_000 });
    const s = system;
    const client = new TestClient(s.transport);
    const task = { resources: { cpu: 4, memory: '8Gi' }, work: { kind: 'sim', durationMs: 2000 } };
    expect((await client.request('first', task)).ok).toBe(true);
    // The agent lists the instance (pending) and reports it, not ready, under its planned id.
    const cloud = s.provisioners.get('aws-use1')!;
    await vi.waitFor(() => expect(cloud.list()).toMatchObject([{ ready: false }]), { timeout: 10_000 });
    await new Promise((r) => setTimeout(r, 500)); // a few heartbeats: the broker has the report
    const second = await client.request('second', task);
    expect(second).toMatchObject({ ok: true, lease: { node: expect.stringMatching(/^cpu-/) } });
    s.ec2.runPending();
    await client.finished(['first', 'second'], 30_000);

    expect(s.ec2.instances()).toHaveLength(1);
    expect(
      s.ec2.requests('CreateFleet').map((r) => r.params['TargetCapacitySpecification.TotalTargetCapacity']),
    ).toEqual(['1']);
    expect([client.successes('first'), client.successes('second')]).toEqual([1, 1]);
  });
});
