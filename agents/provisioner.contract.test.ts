/**
 * One contract for every NodeProvisioner, run through the core the agent puts in front of it: the
 * simulated cloud, EC2 and GCE (their test servers, real SDK clients) and Kubernetes-managed nodes.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadPlatform, type Pool } from '../policies/index.ts';
import { ec2TestCloud, gceTestCloud, kubeTestCluster } from '../test/cloud-system.ts';
import { createKubeExecutor } from './kube-executor.ts';
import { createKubeNodeProvisioner } from './kube-nodes.ts';
import { createProvisionerCore, MAX_NODES_RETRY_AFTER_MS, type ProvisionerCore } from './node-core.ts';
import type { NodeEvent } from './provisioner.ts';
import { createProvisioner } from './provisioner-registry.ts';

const { platform } = loadPlatform(['test/fixtures/cloud-platform']);
const aws = platform.clusters.find((c) => c.name === 'aws-use1')!;
const gcp = platform.clusters.find((c) => c.name === 'gcp-usc1')!;

/** A provisioner under test, how many instances its cloud has launched so far, and how to stop it. */
interface Subject {
  provisioner: ProvisionerCore;
  pool: Pool;
  /** Instances the cloud holds now, not ended. */
  live(): number;
  close(): Promise<void>;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Each buying provisioner, made through the registry as the agent makes it; pools of 2 nodes at most. */
const buying: [string, () => Promise<Subject>][] = [
  [
    'simulated cloud',
    async () => {
      const inner = await createProvisioner(aws, 'sim', { speedup: 1000 });
      return {
        provisioner: createProvisionerCore(inner),
        pool: { ...aws.pools[0]!, maxNodes: 2 },
        live: () => inner.list().length,
        close: () => inner.close(),
      };
    },
  ],
  [
    'EC2',
    async () => {
      const { ec2, client } = await ec2TestCloud(20);
      const inner = await createProvisioner(aws, 'ec2', { ec2: { client, pollMs: 20 } });
      return {
        provisioner: createProvisionerCore(inner),
        pool: { ...aws.pools[0]!, maxNodes: 2 },
        live: () =>
          ec2.instances().filter((i) => i.state !== 'terminated' && i.state !== 'shutting-down').length,
        async close() {
          await inner.close();
          client.destroy();
          await ec2.close();
        },
      };
    },
  ],
  [
    'GCE',
    async () => {
      const cloud = await gceTestCloud(20);
      const inner = await createProvisioner(gcp, 'gce', {
        gce: { project: cloud.gce.project, pollMs: 20, backoffMs: 5, ...cloud.clients },
      });
      return {
        provisioner: createProvisionerCore(inner),
        pool: { ...gcp.pools[0]!, maxNodes: 2 },
        live: () => cloud.gce.instances().filter((i) => i.status !== 'TERMINATED').length,
        async close() {
          await inner.close();
          await cloud.close();
        },
      };
    },
  ],
];

const waitFor = (check: () => void) => vi.waitFor(check, { timeout: 5000, interval: 10 });

describe.each(buying)('NodeProvisioner contract: %s', (_, make) => {
  async function start() {
    const subject = await make();
    cleanups.push(() => subject.close());
    const events: NodeEvent[] = [];
    subject.provisioner.onEvent((e) => events.push(e));
    return { ...subject, events };
  }
  const of = (events: NodeEvent[], type: NodeEvent['type']) => events.filter((e) => e.type === type);

  it('lists planned nodes at once, then reports each ready exactly once', async () => {
    const { provisioner, pool, events, live } = await start();
    const adding = provisioner.add(pool, ['a', 'b']);
    expect(provisioner.list().map((n) => [n.plannedId, n.ready])).toEqual([
      ['a', false],
      ['b', false],
    ]);
    await adding;
    await waitFor(() => expect(of(events, 'ready')).toHaveLength(2));
    expect(
      provisioner
        .list()
        .map((n) => [n.plannedId, n.ready])
        .sort(),
    ).toEqual([
      ['a', true],
      ['b', true],
    ]);
    expect(live()).toBe(2);
    expect(provisioner.planned()).toEqual([]);
  });

  it('answers planned nodes past the maximum with max-nodes, and launches none of them', async () => {
    const { provisioner, pool, events, live } = await start();
    await provisioner.add(pool, ['a']);
    await provisioner.add(pool, ['b', 'c', 'd']);
    expect(of(events, 'exhausted')).toEqual([
      {
        type: 'exhausted',
        pool: pool.name,
        plannedIds: ['c', 'd'],
        kind: 'max-nodes',
        reason: `pool ${pool.name} is at its maximum of 2 nodes`,
        retryAfterMs: MAX_NODES_RETRY_AFTER_MS,
      },
    ]);
    expect(live()).toBe(2);
    expect(provisioner.list()).toHaveLength(2);
  });

  it('launches a planned id once however often it is asked for', async () => {
    const { provisioner, pool, live } = await start();
    await Promise.all([provisioner.add(pool, ['a']), provisioner.add(pool, ['a', 'a'])]);
    await provisioner.add(pool, ['a']);
    expect(live()).toBe(1);
  });

  it('removes a node: it is reported gone once and its instance ends', async () => {
    const { provisioner, pool, events, live } = await start();
    await provisioner.add(pool, ['a']);
    await waitFor(() => expect(of(events, 'ready')).toHaveLength(1));
    await provisioner.remove(provisioner.list()[0]!.name);
    expect(of(events, 'gone')).toHaveLength(1);
    expect(provisioner.list()).toEqual([]);
    await waitFor(() => expect(live()).toBe(0));
  });
});

describe('NodeProvisioner contract: Kubernetes-managed nodes', () => {
  it('lists the nodes Kubernetes has and answers a request for more with managed', async () => {
    const { platform: kubePlatform } = loadPlatform(['test/fixtures/kube-platform']);
    const cluster = kubePlatform.clusters[0]!;
    const { kube, kubeConfig } = await kubeTestCluster({});
    const executor = createKubeExecutor({ kubeConfig, cluster, image: 'gantry:test' });
    await executor.watch();
    cleanups.push(() => executor.close());
    const inner = createKubeNodeProvisioner(executor, { pollMs: 20 });
    cleanups.push(() => inner.close());
    const provisioner = createProvisionerCore(inner);
    const events: NodeEvent[] = [];
    provisioner.onEvent((e) => events.push(e));
    await vi.waitFor(() =>
      expect(provisioner.list().map((n) => [n.name, n.pool, n.ready])).toEqual([
        ['ip-10-0-0-1', 'cpu-spot', true],
      ]),
    );
    await provisioner.add(cluster.pools[0]!, ['a']);
    expect(events).toMatchObject([{ type: 'exhausted', plannedIds: ['a'], kind: 'managed' }]);
    expect(provisioner.list()).toHaveLength(1);
    expect(kube.nodes()).toHaveLength(1);
  });
});
