/**
 * The EC2 provisioner against a fake EC2 (test/fakes/ec2.ts) through the real `@aws-sdk/client-ec2`:
 * what it asks EC2 for, and what it reports back.
 */
import { EC2Client } from '@aws-sdk/client-ec2';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Cluster, Pool } from '../policies/index.ts';
import { startFakeEc2, type FakeEc2 } from '../test/fakes/ec2.ts';
import {
  createEc2Provisioner,
  DEFAULT_EC2_RETRY_AFTER,
  EC2_TAGS,
  type Ec2Provisioner,
  Ec2ProvisionerError,
  LAUNCH_TEMPLATE_LABEL,
  refreshSpotPrices,
} from './ec2-provisioner.ts';
import { createProvisionerCore, MAX_NODES_RETRY_AFTER_MS } from './node-core.ts';
import type { NodeEvent } from './provisioner.ts';

const REGION = 'us-east-1';

function makePool(name: string, over: Partial<Pool> = {}): Pool {
  return {
    id: `train/${name}`,
    cluster: 'train',
    name,
    provider: 'aws',
    cloud: 'aws',
    region: REGION,
    zone: undefined,
    instanceType: 'g5.xlarge',
    capacityType: 'spot',
    cpuMilli: 4000,
    memoryMiB: 16 * 1024,
    gpuModel: 'A10G',
    gpuCount: 1,
    price: 0.4,
    minNodes: 0,
    maxNodes: 10,
    nodes: 0,
    interruptionRate: 0.05,
    idleTtlSeconds: 300,
    launchDelaySeconds: 90,
    nodeLabels: { [LAUNCH_TEMPLATE_LABEL]: 'gantry-gpu' },
    taints: [],
    ...over,
  };
}

function makeCluster(pools: Pool[]): Cluster {
  return { name: 'train', provider: 'aws', cloud: 'aws', region: REGION, labels: {}, pools };
}

const spotPool = makePool('gpu-spot');
const onDemandPool = makePool('gpu-od', { capacityType: 'on-demand' });
const reservedPool = makePool('gpu-rsv', {
  capacityType: 'reserved',
  nodeLabels: { [LAUNCH_TEMPLATE_LABEL]: 'lt-0abc' },
});
const smallPool = makePool('cpu-small', {
  instanceType: 'm7i.large',
  capacityType: 'on-demand',
  maxNodes: 3,
});
const cluster = makeCluster([spotPool, onDemandPool, reservedPool, smallPool]);

let ec2: FakeEc2;
let client: EC2Client;
const provisioners: Ec2Provisioner[] = [];

beforeEach(async () => {
  ec2 = await startFakeEc2({ region: REGION, launchDelayMs: 30 });
  client = new EC2Client({
    region: REGION,
    endpoint: ec2.url,
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
});

/** Replaces the suite's fake EC2 (and its client) with one started with `opts`. */
async function restartEc2(opts: Parameters<typeof startFakeEc2>[0]): Promise<void> {
  client.destroy();
  await ec2.close();
  ec2 = await startFakeEc2({ region: REGION, ...opts });
  client = new EC2Client({
    region: REGION,
    endpoint: ec2.url,
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
}

afterEach(async () => {
  await Promise.all(provisioners.splice(0).map((p) => p.close()));
  client.destroy();
  await ec2.close();
});

/**
 * A provisioner on the fake, polling every 20 ms, behind the core as the agent runs it (the core
 * counts pools' maximums and planned ids), with the events it reports.
 */
function start(): { provisioner: Ec2Provisioner; events: NodeEvent[] } {
  const cloud = createEc2Provisioner(cluster, { client, pollMs: 20 });
  const provisioner = Object.assign(createProvisionerCore(cloud), { refresh: cloud.refresh });
  provisioners.push(provisioner);
  const events: NodeEvent[] = [];
  provisioner.onEvent((e) => events.push(e));
  return { provisioner, events };
}

type NodeChange = Extract<NodeEvent, { node: unknown }>;
type Exhaustion = Extract<NodeEvent, { type: 'exhausted' }>;

const changes = (events: NodeEvent[], type: NodeChange['type']) =>
  events.filter((e): e is NodeChange => e.type === type);
const exhaustions = (events: NodeEvent[]) => events.filter((e): e is Exhaustion => e.type === 'exhausted');

const waitUntil = (check: () => void) => vi.waitFor(check, { timeout: 5000, interval: 10 });

describe('add', () => {
  it('launches one tagged spot instance per planned id and reports each ready by its DNS name', async () => {
    const { provisioner, events } = start();
    const running: string[] = [];
    ec2.onInstanceRunning((i) => running.push(i.privateDnsName));

    await provisioner.add(spotPool, ['p1', 'p2', 'p3']);

    const instances = ec2.instances();
    expect(instances.map((i) => [i.instanceType, i.lifecycle])).toEqual([
      ['g5.xlarge', 'spot'],
      ['g5.xlarge', 'spot'],
      ['g5.xlarge', 'spot'],
    ]);
    expect(instances.map((i) => i.tags)).toEqual(
      ['p1', 'p2', 'p3'].map((plannedId) => ({
        [EC2_TAGS.cluster]: 'train',
        [EC2_TAGS.pool]: 'gpu-spot',
        [EC2_TAGS.plannedId]: plannedId,
      })),
    );
    await waitUntil(() => expect(changes(events, 'ready')).toHaveLength(3));
    const names = instances.map((i) => i.privateDnsName);
    expect(changes(events, 'ready').map((e) => e.node.name)).toEqual(names);
    expect(running).toEqual(names);
    expect(provisioner.list().map((n) => [n.name, n.plannedId, n.ready, n.capacityType])).toEqual([
      [names[0], 'p1', true, 'spot'],
      [names[1], 'p2', true, 'spot'],
      [names[2], 'p3', true, 'spot'],
    ]);
  });

  it('lists the nodes, not ready yet, as soon as add returns', async () => {
    // Pending for good: with the suite's 30 ms, a slow describe after the launch could see it running.
    await restartEc2({ launchDelayMs: 3_600_000 });
    const { provisioner } = start();
    await provisioner.add(spotPool, ['p1']);
    expect(provisioner.list()).toMatchObject([
      { name: ec2.instances()[0]!.privateDnsName, plannedId: 'p1', ready: false },
    ]);
  });

  it.each([
    {
      pool: spotPool,
      expected: {
        'TargetCapacitySpecification.DefaultTargetCapacityType': 'spot',
        'TargetCapacitySpecification.SpotTargetCapacity': '2',
        'SpotOptions.AllocationStrategy': 'price-capacity-optimized',
        'LaunchTemplateConfigs.1.LaunchTemplateSpecification.LaunchTemplateName': 'gantry-gpu',
      },
      absent: 'OnDemandOptions.',
      lifecycle: 'spot',
    },
    {
      pool: onDemandPool,
      expected: {
        'TargetCapacitySpecification.DefaultTargetCapacityType': 'on-demand',
        'TargetCapacitySpecification.OnDemandTargetCapacity': '2',
        'OnDemandOptions.AllocationStrategy': 'lowest-price',
      },
      absent: 'SpotOptions.',
      lifecycle: 'on-demand',
    },
    {
      pool: reservedPool,
      expected: {
        'TargetCapacitySpecification.DefaultTargetCapacityType': 'on-demand',
        'OnDemandOptions.AllocationStrategy': 'lowest-price',
        'OnDemandOptions.CapacityReservationOptions.UsageStrategy': 'use-capacity-reservations-first',
        'LaunchTemplateConfigs.1.LaunchTemplateSpecification.LaunchTemplateId': 'lt-0abc',
      },
      absent: 'SpotOptions.',
      lifecycle: 'on-demand',
    },
  ])('asks a $pool.capacityType pool for an instant fleet of its kind', async (c) => {
    const { provisioner } = start();
    await provisioner.add(c.pool, ['a', 'b']);

    const [fleet, ...more] = ec2.requests('CreateFleet');
    expect(more).toEqual([]);
    expect(fleet!.params).toMatchObject({
      Type: 'instant',
      'TargetCapacitySpecification.TotalTargetCapacity': '2',
      'LaunchTemplateConfigs.1.LaunchTemplateSpecification.Version': '$Default',
      'LaunchTemplateConfigs.1.Overrides.1.InstanceType': 'g5.xlarge',
      ...c.expected,
    });
    expect(Object.keys(fleet!.params).filter((k) => k.startsWith(c.absent))).toEqual([]);
    expect(ec2.instances().map((i) => i.lifecycle)).toEqual([c.lifecycle, c.lifecycle]);
  });

  it('succeeds when EC2 throttles, launching the fleet once', async () => {
    const { provisioner, events } = start();
    await provisioner.refresh();
    ec2.throttleNext(2);

    await provisioner.add(onDemandPool, ['a', 'b']);

    expect(ec2.requests().filter((r) => r.status === 503)).toHaveLength(2);
    expect(ec2.instances()).toHaveLength(2);
    const tokens = new Set(ec2.requests('CreateFleet').map((r) => r.params.ClientToken));
    expect(tokens.size).toBe(1);
    await waitUntil(() => expect(changes(events, 'ready')).toHaveLength(2));
    expect(exhaustions(events)).toEqual([]);
  });

  it('never asks for more than the pool has room for', async () => {
    const { provisioner, events } = start();
    await provisioner.add(smallPool, ['a', 'b']);
    await provisioner.add(smallPool, ['c', 'd', 'e']);

    expect(
      ec2.requests('CreateFleet').map((r) => r.params['TargetCapacitySpecification.TotalTargetCapacity']),
    ).toEqual(['2', '1']);
    expect(ec2.instances()).toHaveLength(3);
    expect(exhaustions(events)).toEqual([
      expect.objectContaining({
        pool: 'cpu-small',
        plannedIds: ['d', 'e'],
        kind: 'max-nodes',
        retryAfterMs: MAX_NODES_RETRY_AFTER_MS,
      }),
    ]);
  });

  it('counts launches under way against the maximum', async () => {
    const { provisioner } = start();
    await Promise.all([provisioner.add(smallPool, ['a', 'b']), provisioner.add(smallPool, ['c', 'd'])]);
    expect(ec2.instances()).toHaveLength(3);
  });

  it('launches a planned id once, however often it is asked for', async () => {
    const { provisioner } = start();
    await provisioner.add(spotPool, ['a', 'b']);
    await provisioner.add(spotPool, ['a', 'b', 'c']);
    expect(ec2.instances().map((i) => i.tags[EC2_TAGS.plannedId])).toEqual(['a', 'b', 'c']);
  });
});

describe('when EC2 cannot launch', () => {
  it('reports the pool exhausted, with the planned ids and the code, when there is no capacity', async () => {
    const { provisioner, events } = start();
    ec2.setCapacity('g5.xlarge', 0);

    await provisioner.add(spotPool, ['p1', 'p2']);

    expect(ec2.instances()).toEqual([]);
    expect(provisioner.list()).toEqual([]);
    const exhausted = exhaustions(events);
    expect(exhausted).toHaveLength(1);
    expect(exhausted[0]).toMatchObject({
      pool: 'gpu-spot',
      plannedIds: ['p1', 'p2'],
      retryAfterMs: DEFAULT_EC2_RETRY_AFTER.capacityMs,
    });
    expect(exhausted[0]!.reason).toMatch(/^InsufficientInstanceCapacity: /);
  });

  it('keeps what a partly fulfilled fleet launched and reports the rest', async () => {
    const { provisioner, events } = start();
    ec2.setCapacity('g5.xlarge', 1);

    await provisioner.add(onDemandPool, ['p1', 'p2', 'p3']);

    expect(ec2.instances().map((i) => i.tags[EC2_TAGS.plannedId])).toEqual(['p1']);
    expect(provisioner.list().map((n) => n.plannedId)).toEqual(['p1']);
    expect(exhaustions(events)).toMatchObject([{ pool: 'gpu-od', plannedIds: ['p2', 'p3'] }]);
  });

  it.each([
    { code: 'VcpuLimitExceeded', retryAfterMs: DEFAULT_EC2_RETRY_AFTER.limitMs },
    { code: 'MaxSpotInstanceCountExceeded', retryAfterMs: DEFAULT_EC2_RETRY_AFTER.limitMs },
    { code: 'SpotMaxPriceTooLow', retryAfterMs: DEFAULT_EC2_RETRY_AFTER.capacityMs },
  ])('reports $code as exhausted for $retryAfterMs ms', async ({ code, retryAfterMs }) => {
    const kind = retryAfterMs === DEFAULT_EC2_RETRY_AFTER.limitMs ? 'quota' : 'capacity';
    const { provisioner, events } = start();
    await provisioner.refresh();
    ec2.failNext(code, 'you cannot have it', 400, 'CreateFleet');

    await provisioner.add(spotPool, ['p1']);

    expect(exhaustions(events)).toEqual([
      {
        type: 'exhausted',
        pool: 'gpu-spot',
        plannedIds: ['p1'],
        kind,
        reason: `${code}: you cannot have it`,
        retryAfterMs,
      },
    ]);
    expect(ec2.instances()).toEqual([]);
  });

  it('throws other errors, with their code, and gives the node up', async () => {
    const { provisioner, events } = start();
    await provisioner.refresh();
    ec2.failNext('InvalidLaunchTemplateName.NotFoundException', 'no template gantry-gpu', 400, 'CreateFleet');

    const err = await provisioner.add(spotPool, ['p1']).catch((e: unknown) => e);

    expect(err).toBeInstanceOf(Ec2ProvisionerError);
    expect((err as Ec2ProvisionerError).data).toMatchObject({
      code: 'InvalidLaunchTemplateName.NotFoundException',
      pool: 'gpu-spot',
    });
    // The core gives the planned node up as data, so the broker stops counting it.
    expect(exhaustions(events)).toMatchObject([{ plannedIds: ['p1'], kind: 'error' }]);
    expect(exhaustions(events)[0]!.reason).toMatch(/no template gantry-gpu/);
  });
});

describe('nodes going away', () => {
  async function readyNodes(provisioner: Ec2Provisioner, events: NodeEvent[], pool: Pool, ids: string[]) {
    await provisioner.add(pool, ids);
    await waitUntil(() => expect(changes(events, 'ready')).toHaveLength(ids.length));
    return ec2.instances();
  }

  it('reports a reclaimed spot node as preempted', async () => {
    const { provisioner, events } = start();
    const [instance] = await readyNodes(provisioner, events, spotPool, ['p1']);

    ec2.reclaim(instance!.instanceId);

    await waitUntil(() => expect(changes(events, 'preempted')).toHaveLength(1));
    expect(changes(events, 'preempted')[0]!.node).toMatchObject({
      name: instance!.privateDnsName,
      plannedId: 'p1',
    });
    expect(provisioner.list()).toEqual([]);
  });

  it('reports an on-demand node terminated behind its back as gone', async () => {
    const { provisioner, events } = start();
    const [instance] = await readyNodes(provisioner, events, onDemandPool, ['p1']);

    ec2.terminate(instance!.instanceId);

    await waitUntil(() => expect(changes(events, 'gone')).toHaveLength(1));
    expect(changes(events, 'gone')[0]!.node.name).toBe(instance!.privateDnsName);
    expect(changes(events, 'preempted')).toEqual([]);
  });

  it.each([
    { pool: spotPool, type: 'preempted' },
    { pool: onDemandPool, type: 'gone' },
  ] as const)('reports a $pool.capacityType node that vanished from EC2 as $type', async ({ pool, type }) => {
    const { provisioner, events } = start();
    const [instance] = await readyNodes(provisioner, events, pool, ['p1']);

    ec2.terminate(instance!.instanceId);
    ec2.purgeTerminated();

    await waitUntil(() => expect(events.filter((e) => e.type !== 'ready')).toHaveLength(1));
    expect(changes(events, type).map((e) => e.node.name)).toEqual([instance!.privateDnsName]);
  });

  it('terminates a removed node and reports it gone, once', async () => {
    const { provisioner, events } = start();
    const [first, second] = await readyNodes(provisioner, events, spotPool, ['p1', 'p2']);

    await provisioner.remove(first!.privateDnsName);

    expect(ec2.requests('TerminateInstances').map((r) => r.params)).toEqual([
      { Action: 'TerminateInstances', Version: '2016-11-15', 'InstanceId.1': first!.instanceId },
    ]);
    expect(changes(events, 'gone').map((e) => e.node.name)).toEqual([first!.privateDnsName]);
    expect(provisioner.list().map((n) => n.name)).toEqual([second!.privateDnsName]);
    await waitUntil(() => expect(ec2.instances()[0]!.state).toBe('terminated'));
    await provisioner.refresh();
    expect(events.filter((e) => e.type !== 'ready')).toHaveLength(1);
  });

  it('removes a node by its planned id too', async () => {
    const { provisioner, events } = start();
    const [instance] = await readyNodes(provisioner, events, onDemandPool, ['p1']);
    await provisioner.remove('p1');
    expect(ec2.requests('TerminateInstances')[0]!.params['InstanceId.1']).toBe(instance!.instanceId);
  });
});

describe('restart', () => {
  it('adopts the instances the cluster already has, without reporting them again', async () => {
    const first = start();
    await first.provisioner.add(spotPool, ['p1', 'p2']);
    await waitUntil(() => expect(changes(first.events, 'ready')).toHaveLength(2));
    await first.provisioner.close();

    const second = start();
    await second.provisioner.refresh();

    expect(
      second.provisioner.list().map((n) => [n.name, n.pool, n.plannedId, n.ready, n.capacityType]),
    ).toEqual(
      ec2.instances().map((i) => [i.privateDnsName, 'gpu-spot', i.tags[EC2_TAGS.plannedId], true, 'spot']),
    );
    expect(second.events).toEqual([]);
  });

  it('reports an adopted node when it comes up', async () => {
    // Pending until the test says so: with the suite's 30 ms, a slow refresh could see it running.
    await restartEc2({ launchDelayMs: 3_600_000 });
    const first = start();
    await first.provisioner.add(onDemandPool, ['p1']);
    await first.provisioner.close();

    const second = start();
    await second.provisioner.refresh();
    expect(second.provisioner.list()).toMatchObject([{ plannedId: 'p1', ready: false }]);

    ec2.runPending();
    await waitUntil(() => expect(changes(second.events, 'ready')).toHaveLength(1));
    expect(changes(second.events, 'ready')[0]!.node).toMatchObject({
      name: ec2.instances()[0]!.privateDnsName,
      ready: true,
    });
  });

  it('counts adopted instances against the maximum', async () => {
    const first = start();
    await first.provisioner.add(smallPool, ['a', 'b', 'c']);
    await first.provisioner.close();

    const second = start();
    await second.provisioner.add(smallPool, ['d']);

    expect(ec2.instances()).toHaveLength(3);
    expect(exhaustions(second.events)).toMatchObject([{ plannedIds: ['d'] }]);
  });
});

describe('configuration', () => {
  it('refuses a pool without a launch template, naming it', () => {
    const bare = makeCluster([makePool('gpu-spot', { nodeLabels: {} })]);
    expect(() => createEc2Provisioner(bare, { client })).toThrow(/no launch template for pool\(s\) gpu-spot/);
  });
});

describe('refreshSpotPrices', () => {
  it('returns the lowest current Linux price of each type across zones', async () => {
    ec2.setSpotPrice('g5.xlarge', 'us-east-1a', 0.52);
    ec2.setSpotPrice('g5.xlarge', 'us-east-1b', 0.41);
    ec2.setSpotPrice('g5.xlarge', 'us-east-1c', 0.47);
    ec2.setSpotPrice('p4d.24xlarge', 'us-east-1a', 9.8);
    ec2.setSpotPrice('m7i.large', 'us-east-1a', 0.03);

    const prices = await refreshSpotPrices(client, ['g5.xlarge', 'p4d.24xlarge', 'p5.48xlarge']);

    expect(prices).toEqual(
      new Map([
        ['g5.xlarge', 0.41],
        ['p4d.24xlarge', 9.8],
      ]),
    );
    expect(ec2.requests('DescribeSpotPriceHistory')[0]!.params).toMatchObject({
      'ProductDescription.1': 'Linux/UNIX',
      'InstanceType.1': 'g5.xlarge',
    });
  });

  it('asks EC2 nothing for no types', async () => {
    expect(await refreshSpotPrices(client, [])).toEqual(new Map());
    expect(ec2.requests()).toEqual([]);
  });
});

describe('ping (the agent’s /readyz)', () => {
  it('answers from its last successful poll, and says why once EC2 has stopped answering', async () => {
    let now = 1_000_000;
    const provisioner = createEc2Provisioner(cluster, { client, pollMs: 20, clock: () => now });
    provisioners.push(provisioner);
    await waitUntil(() => expect(provisioner.ping!()).resolves.toBeUndefined());
    for (let i = 0; i < 1000; i++) ec2.failNext('UnauthorizedOperation', 'You are not authorized', 403);
    await provisioner.refresh().catch(() => undefined);
    // Three polls' worth and more without an answer.
    now += 6000;
    await expect(provisioner.ping!()).rejects.toThrow(
      /^EC2 DescribeInstances: no poll has succeeded for 6s \(last error: .*not authorized/,
    );
  });
});
