/**
 * The broker and real agents buying nodes from the EC2 and GCE test servers: Gantry launches the nodes
 * it planned, and no more.
 */
import { afterEach, describe, expect, it } from 'vitest';
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
});
