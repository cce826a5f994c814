/**
 * The GCE provisioner against a fake Compute Engine API (test/fakes/gce.ts), through the real
 * `@google-cloud/compute` clients over HTTP/JSON. Events are awaited with `vi.waitFor`; nothing is timed.
 */
import { InstancesClient, ZoneOperationsClient } from '@google-cloud/compute';
import { OAuth2Client } from 'google-auth-library';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Cluster, Pool } from '../policies/index.ts';
import { gceClients } from '../test/cloud-system.ts';
import { startFakeGce, type FakeGce } from '../test/fakes/gce.ts';
import {
  createGceProvisioner,
  GCE_RETRY_AFTER_MS,
  GceApiError,
  GceConfigError,
  gceInstanceName,
  gceLabelValue,
  type GceProvisioner,
  type GceProvisionerOptions,
} from './gce-provisioner.ts';
import { createProvisionerCore } from './node-core.ts';
import type { NodeEvent } from './provisioner.ts';

const ZONE = 'us-central1-a';
const GCE_NAME = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;

function makePool(name: string, over: Partial<Pool> = {}): Pool {
  return {
    id: `gcp-usc1/${name}`,
    cluster: 'gcp-usc1',
    name,
    provider: 'gcp',
    cloud: 'gcp',
    region: 'us-central1',
    zone: ZONE,
    instanceType: 'g2-standard-8',
    capacityType: 'on-demand',
    cpuMilli: 8000,
    memoryMiB: 32 * 1024,
    gpuModel: 'L4',
    gpuCount: 1,
    price: 0.85,
    minNodes: 0,
    maxNodes: 10,
    nodes: 0,
    interruptionRate: 0,
    idleTtlSeconds: 300,
    launchDelaySeconds: 90,
    nodeLabels: {},
    taints: [],
    ...over,
  };
}

const h100 = makePool('h100-spot', {
  instanceType: 'a3-highgpu-8g',
  capacityType: 'spot',
  gpuModel: 'H100',
  gpuCount: 8,
});
const l4 = makePool('l4', { maxNodes: 2 });

function makeCluster(name = 'gcp-usc1', pools: Pool[] = [h100, l4]): Cluster {
  return { name, provider: 'gcp', cloud: 'gcp', region: 'us-central1', labels: {}, pools };
}

let gce: FakeGce;
const cleanups: (() => Promise<void>)[] = [];

beforeEach(async () => {
  gce = await startFakeGce({ launchDelayMs: 20 });
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await gce.close();
});

/** Real Compute clients pointed at the fake, with a fixed token so no real credentials are looked up. */
function clients() {
  const { instancesClient, zoneOperationsClient } = gceClients(gce.port);
  cleanups.push(async () => {
    await instancesClient.close();
    await zoneOperationsClient.close();
  });
  return { instancesClient, zoneOperationsClient };
}

/** A provisioner on the fake, polling every 20 ms, with every event it emits. */
function start(cluster = makeCluster(), opts: GceProvisionerOptions = {}) {
  const cloud = createGceProvisioner(cluster, {
    project: gce.project,
    pollMs: 20,
    backoffMs: 5,
    ...clients(),
    ...opts,
  });
  // Behind the core, as the agent runs it: the core counts pools' maximums and planned ids.
  const provisioner = Object.assign(createProvisionerCore(cloud), { sync: cloud.sync });
  const events: NodeEvent[] = [];
  provisioner.onEvent((e) => events.push(e));
  cleanups.push(() => provisioner.close());
  return { provisioner, events };
}

type NodeChange = Extract<NodeEvent, { node: unknown }>;
type Exhausted = Extract<NodeEvent, { type: 'exhausted' }>;

/** The events of one type. (`Extract` by `type` alone would miss the member typed with a union.) */
function of(events: NodeEvent[], type: 'exhausted'): Exhausted[];
function of(events: NodeEvent[], type: NodeChange['type']): NodeChange[];
function of(events: NodeEvent[], type: NodeEvent['type']): NodeEvent[] {
  return events.filter((e) => e.type === type);
}

const nodeNames = (events: NodeEvent[], type: 'ready' | 'gone' | 'preempted') =>
  of(events, type)
    .map((e) => e.node.name)
    .sort();

async function addReady(
  p: Pick<GceProvisioner, 'add'>,
  events: NodeEvent[],
  pool: Pool,
  ids: string[],
): Promise<void> {
  const before = of(events, 'ready').length;
  await p.add(pool, ids);
  await vi.waitFor(() => expect(of(events, 'ready').length).toBe(before + ids.length));
}

describe('add', () => {
  it('creates spot instances with labels and machine type, and reports them ready', async () => {
    const { provisioner, events } = start();
    await addReady(provisioner, events, h100, ['h100-spot-c1n0', 'h100-spot-c1n1']);

    const instances = gce.instances().sort((a, b) => a.name.localeCompare(b.name));
    expect(instances.map((i) => i.name)).toEqual(['gcp-usc1-h100-spot-c1n0', 'gcp-usc1-h100-spot-c1n1']);
    for (const [k, inst] of instances.entries()) {
      expect(inst.status).toBe('RUNNING');
      expect(inst.machineType).toMatch(/\/zones\/us-central1-a\/machineTypes\/a3-highgpu-8g$/);
      expect(inst.labels).toEqual({
        'gantry-cluster': 'gcp-usc1',
        'gantry-pool': 'h100-spot',
        'gantry-planned-id': `h100-spot-c1n${k}`,
      });
      expect(inst.scheduling).toMatchObject({
        provisioningModel: 'SPOT',
        instanceTerminationAction: 'DELETE',
      });
    }
    expect(nodeNames(events, 'ready')).toEqual(['gcp-usc1-h100-spot-c1n0', 'gcp-usc1-h100-spot-c1n1']);
    expect(provisioner.list().sort((a, b) => a.name.localeCompare(b.name))).toMatchObject([
      {
        name: 'gcp-usc1-h100-spot-c1n0',
        pool: 'h100-spot',
        ready: true,
        capacityType: 'spot',
        plannedId: 'h100-spot-c1n0',
      },
      {
        name: 'gcp-usc1-h100-spot-c1n1',
        pool: 'h100-spot',
        ready: true,
        capacityType: 'spot',
        plannedId: 'h100-spot-c1n1',
      },
    ]);
  });

  it('shows a node in list() as soon as add is called, not ready until RUNNING', async () => {
    gce.launchDelayMs = 60_000;
    const { provisioner, events } = start();
    await provisioner.sync();
    const adding = provisioner.add(l4, ['l4-c1n0']);
    await vi.waitFor(() => expect(provisioner.list()).toHaveLength(1));
    expect(provisioner.list()[0]).toMatchObject({ plannedId: 'l4-c1n0', ready: false });
    await adding;
    await provisioner.sync();
    expect(gce.instances()[0]?.status).not.toBe('RUNNING');
    expect(provisioner.list()[0]).toMatchObject({ plannedId: 'l4-c1n0', ready: false });
    expect(of(events, 'ready')).toEqual([]);
  });

  it('asks on-demand instances for the standard model, with GPU VMs terminating on host maintenance', async () => {
    const { provisioner, events } = start();
    await addReady(provisioner, events, l4, ['l4-c1n0']);
    expect(gce.instances()[0]?.scheduling).toMatchObject({
      provisioningModel: 'STANDARD',
      onHostMaintenance: 'TERMINATE',
    });
  });

  it('lists with the cluster label filter, through the REST paths of Compute v1', async () => {
    const { provisioner } = start();
    await provisioner.sync();
    const list = gce.requests().find((r) => r.method === 'GET');
    expect(list).toMatchObject({
      path: `/compute/v1/projects/${gce.project}/zones/${ZONE}/instances`,
      query: { filter: 'labels.gantry-cluster=gcp-usc1' },
      status: 200,
    });
  });

  it('respects maxNodes within one call (l4 has 2)', async () => {
    const { provisioner, events } = start();
    await provisioner.add(l4, ['l4-c1n0', 'l4-c1n1', 'l4-c1n2']);
    await vi.waitFor(() => expect(of(events, 'ready')).toHaveLength(2));
    expect(
      gce
        .instances()
        .map((i) => i.labels['gantry-planned-id'])
        .sort(),
    ).toEqual(['l4-c1n0', 'l4-c1n1']);
    expect(provisioner.list()).toHaveLength(2);
  });

  it('respects maxNodes across calls, and does not ask twice for a planned id', async () => {
    const { provisioner, events } = start();
    await addReady(provisioner, events, l4, ['l4-c1n0', 'l4-c1n1']);
    await provisioner.add(l4, ['l4-c2n0']);
    await provisioner.add(l4, ['l4-c1n0']);
    const inserts = gce.requests().filter((r) => r.method === 'POST' && r.path.endsWith('/instances'));
    expect(inserts).toHaveLength(2);
    expect(gce.instances()).toHaveLength(2);
  });

  it('retries an insert the API throttled (403 rateLimitExceeded)', async () => {
    const { provisioner, events } = start();
    gce.throttleInserts(2);
    await addReady(provisioner, events, l4, ['l4-c1n0']);
    const inserts = gce.requests().filter((r) => r.method === 'POST' && r.path.endsWith('/instances'));
    expect(inserts.map((r) => r.status)).toEqual([403, 403, 200]);
    expect(of(events, 'exhausted')).toEqual([]);
  });

  it('takes a retried insert answered 409 alreadyExists as done (the first answer was lost)', async () => {
    const { provisioner, events } = start();
    gce.loseInsertAnswers(1);
    await addReady(provisioner, events, l4, ['l4-c1n0']);
    const inserts = gce.requests().filter((r) => r.method === 'POST' && r.path.endsWith('/instances'));
    expect(inserts.map((r) => r.status)).toEqual([503, 409]);
    expect(gce.instances().map((i) => i.name)).toEqual(['gcp-usc1-l4-c1n0']);
    expect(provisioner.list()).toMatchObject([
      { name: 'gcp-usc1-l4-c1n0', plannedId: 'l4-c1n0', ready: true },
    ]);
    expect(of(events, 'gone')).toEqual([]);
  });

  it('rejects, and gives the nodes up, when the API refuses for another reason', async () => {
    const bad = makePool('bad', { instanceType: 'Not A Type!' });
    const { provisioner, events } = start(makeCluster('gcp-usc1', [bad]));
    const err = await provisioner.add(bad, ['bad-c1n0']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GceApiError);
    expect(err).toMatchObject({ code: 'invalid', pool: 'bad', plannedIds: ['bad-c1n0'] });
    // The core gives the planned node up as data, so the broker stops counting it.
    expect(of(events, 'exhausted')).toMatchObject([{ plannedIds: ['bad-c1n0'], kind: 'error' }]);
    expect(provisioner.list()).toEqual([]);
  });
});

describe('exhausted pools', () => {
  it.each([
    {
      scenario: 'stockout',
      setup: () => gce.setStockout('a3-highgpu-8g', true),
      code: 'ZONE_RESOURCE_POOL_EXHAUSTED',
      retryAfterMs: GCE_RETRY_AFTER_MS.stockout,
    },
    {
      scenario: 'quota, reported in the operation',
      setup: () => gce.setQuota(0),
      code: 'QUOTA_EXCEEDED',
      retryAfterMs: GCE_RETRY_AFTER_MS.quota,
    },
    {
      scenario: 'quota, refused with HTTP 403',
      setup: () => gce.setQuota(0, 'http'),
      code: 'quotaExceeded',
      retryAfterMs: GCE_RETRY_AFTER_MS.quota,
    },
  ])(
    '$scenario → one exhausted event naming the pool, planned ids and code',
    async ({ setup, code, retryAfterMs }) => {
      const { provisioner, events } = start();
      setup();
      await provisioner.add(h100, ['h100-spot-c1n0', 'h100-spot-c1n1']);

      const exhausted = of(events, 'exhausted');
      expect(exhausted).toHaveLength(1);
      expect(exhausted[0]).toMatchObject({ pool: 'h100-spot', retryAfterMs });
      expect(exhausted[0]?.plannedIds.sort()).toEqual(['h100-spot-c1n0', 'h100-spot-c1n1']);
      expect(exhausted[0]?.reason).toMatch(new RegExp(`^${code}: \\S`));
      expect(provisioner.list()).toEqual([]);
      expect(gce.instances()).toEqual([]);
    },
  );

  it('names only the planned ids that were not launched', async () => {
    const { provisioner, events } = start();
    gce.setQuota(1);
    await provisioner.add(h100, ['h100-spot-c1n0', 'h100-spot-c1n1']);
    await vi.waitFor(() => expect(of(events, 'ready')).toHaveLength(1));

    const launched = gce.instances().map((i) => i.labels['gantry-planned-id']);
    const [exhausted] = of(events, 'exhausted');
    expect(launched).toHaveLength(1);
    expect(exhausted?.plannedIds).toHaveLength(1);
    expect([...launched, ...(exhausted?.plannedIds ?? [])].sort()).toEqual([
      'h100-spot-c1n0',
      'h100-spot-c1n1',
    ]);
    expect(exhausted?.reason).toMatch(/^QUOTA_EXCEEDED: Quota 'INSTANCES' exceeded/);
  });
});

describe('nodes going away', () => {
  it('reports a reclaimed spot node preempted', async () => {
    const { provisioner, events } = start();
    await addReady(provisioner, events, h100, ['h100-spot-c1n0', 'h100-spot-c1n1']);
    gce.preempt('gcp-usc1-h100-spot-c1n0');

    await vi.waitFor(() => expect(of(events, 'preempted')).toHaveLength(1));
    expect(of(events, 'preempted')[0]?.node).toMatchObject({
      name: 'gcp-usc1-h100-spot-c1n0',
      plannedId: 'h100-spot-c1n0',
    });
    expect(provisioner.list().map((n) => n.name)).toEqual(['gcp-usc1-h100-spot-c1n1']);
    expect(of(events, 'gone')).toEqual([]);
  });

  it('reports an on-demand node deleted behind its back gone', async () => {
    const { provisioner, events } = start();
    await addReady(provisioner, events, l4, ['l4-c1n0']);
    gce.deleteInstance('gcp-usc1-l4-c1n0');
    await vi.waitFor(() => expect(nodeNames(events, 'gone')).toEqual(['gcp-usc1-l4-c1n0']));
    expect(of(events, 'preempted')).toEqual([]);
  });

  it('remove deletes the instance and reports the node gone, once', async () => {
    const { provisioner, events } = start();
    await addReady(provisioner, events, h100, ['h100-spot-c1n0']);
    await provisioner.remove('gcp-usc1-h100-spot-c1n0');

    expect(gce.instances()).toEqual([]);
    expect(
      gce
        .requests()
        .filter((r) => r.method === 'DELETE')
        .map((r) => r.path),
    ).toEqual([`/compute/v1/projects/${gce.project}/zones/${ZONE}/instances/gcp-usc1-h100-spot-c1n0`]);
    expect(nodeNames(events, 'gone')).toEqual(['gcp-usc1-h100-spot-c1n0']);
    expect(provisioner.list()).toEqual([]);
    await provisioner.sync();
    expect(of(events, 'gone')).toHaveLength(1);
    expect(of(events, 'preempted')).toEqual([]);
  });

  it('remove by planned id before its insert is done: gone at once, the instance deleted once it exists', async () => {
    const { provisioner, events } = start();
    await provisioner.sync();
    const adding = provisioner.add(l4, ['l4-c1n0']);
    await vi.waitFor(() => expect(provisioner.list()).toHaveLength(1));
    await provisioner.remove('l4-c1n0');
    expect(provisioner.list()).toEqual([]);
    await adding;
    await vi.waitFor(() => expect(gce.instances()).toEqual([]));
    expect(nodeNames(events, 'gone')).toEqual(['l4-c1n0']);
    expect(of(events, 'ready')).toEqual([]);
  });
});

describe('adoption', () => {
  it("a new provisioner takes in the cluster's instances, and only those", async () => {
    const first = start();
    await addReady(first.provisioner, first.events, h100, ['h100-spot-c1n0']);
    await addReady(first.provisioner, first.events, l4, ['l4-c1n0']);
    await first.provisioner.close();
    const other = start(makeCluster('gcp-other'));
    await addReady(other.provisioner, other.events, l4, ['l4-c9n0']);

    const second = start();
    await second.provisioner.sync();
    expect(second.provisioner.list().sort((a, b) => a.name.localeCompare(b.name))).toMatchObject([
      {
        name: 'gcp-usc1-h100-spot-c1n0',
        pool: 'h100-spot',
        capacityType: 'spot',
        plannedId: 'h100-spot-c1n0',
        ready: true,
      },
      { name: 'gcp-usc1-l4-c1n0', pool: 'l4', capacityType: 'on-demand', plannedId: 'l4-c1n0', ready: true },
    ]);
    // Listed at once, ready: nothing changed for them, so nothing is reported.
    expect(second.events).toEqual([]);

    // Adopted nodes count against maxNodes (l4 has 2) and are not asked for again.
    await second.provisioner.add(l4, ['l4-c1n0', 'l4-c2n0', 'l4-c2n1']);
    expect(gce.instances().filter((i) => i.labels['gantry-cluster'] === 'gcp-usc1')).toHaveLength(3);
  });
});

describe('configuration', () => {
  it('needs a project, from the option or GOOGLE_CLOUD_PROJECT', () => {
    vi.stubEnv('GOOGLE_CLOUD_PROJECT', '');
    expect(() => createGceProvisioner(makeCluster(), { ...clients() })).toThrow(GceConfigError);
    expect(() => createGceProvisioner(makeCluster(), { ...clients() })).toThrow(/GOOGLE_CLOUD_PROJECT/);
    vi.unstubAllEnvs();
  });

  it('makes its own REST clients from clientOptions, with the project from GOOGLE_CLOUD_PROJECT', async () => {
    vi.stubEnv('GOOGLE_CLOUD_PROJECT', gce.project);
    const authClient = new OAuth2Client();
    authClient.setCredentials({ access_token: 'test-token' });
    const clientOptions = { apiEndpoint: '127.0.0.1', port: gce.port, protocol: 'http', authClient };
    const provisioner = createGceProvisioner(makeCluster(), { clientOptions, pollMs: 20 });
    cleanups.push(() => provisioner.close());
    const events: NodeEvent[] = [];
    provisioner.onEvent((e) => events.push(e));
    await addReady(provisioner, events, l4, ['l4-c1n0']);
    expect(gce.instances().map((i) => i.name)).toEqual(['gcp-usc1-l4-c1n0']);
    vi.unstubAllEnvs();
  });

  it.each([
    {
      scenario: 'the pool label wins',
      pool: { zone: 'us-central1-b', nodeLabels: { 'topology.kubernetes.io/zone': 'us-central1-c' } },
      zone: 'us-central1-c',
    },
    { scenario: "then the cluster's zone", pool: { zone: 'us-central1-b' }, zone: 'us-central1-b' },
    { scenario: 'then the option', pool: { zone: undefined }, zone: 'us-central1-f' },
  ])('zone: $scenario', async ({ pool, zone }) => {
    const p = makePool('l4', pool);
    const { provisioner, events } = start(makeCluster('gcp-usc1', [p]), { zone: 'us-central1-f' });
    await addReady(provisioner, events, p, ['l4-c1n0']);
    expect(gce.instances()[0]?.zone).toMatch(new RegExp(`/zones/${zone}$`));
  });

  it('refuses a pool without a zone, or in another region', () => {
    const noZone = makeCluster('gcp-usc1', [makePool('l4', { zone: undefined })]);
    expect(() => createGceProvisioner(noZone, { project: 'p', ...clients() })).toThrow(
      /pool gcp-usc1\/l4: no zone/,
    );
    const elsewhere = makeCluster('gcp-usc1', [makePool('l4', { zone: 'europe-west4-a' })]);
    expect(() => createGceProvisioner(elsewhere, { project: 'p', ...clients() })).toThrow(
      /not in the cluster's region/,
    );
  });
});

describe('names', () => {
  it.each([
    { cluster: 'gcp-usc1', pool: 'l4', planned: 'l4-c3n0', name: 'gcp-usc1-l4-c3n0' },
    { cluster: 'gcp-usc1', pool: 'l4', planned: 'warm-0', name: 'gcp-usc1-l4-warm-0' },
    { cluster: '1gcp', pool: 'l4', planned: 'l4-c1n0', name: /^g-1gcp-l4-c1n0-[0-9a-f]{8}$/ },
    { cluster: 'gcp', pool: 'l4', planned: 'L4_C1N0', name: /^gcp-l4-l4-c1n0-[0-9a-f]{8}$/ },
    { cluster: 'c'.repeat(60), pool: 'l4', planned: 'l4-c1n0', name: /^c{54}-[0-9a-f]{8}$/ },
  ])('$cluster / $pool / $planned → a valid GCE name', ({ cluster, pool, planned, name }) => {
    const got = gceInstanceName(cluster, pool, planned);
    expect(got).toMatch(GCE_NAME);
    if (typeof name === 'string') expect(got).toBe(name);
    else expect(got).toMatch(name);
  });

  it('keeps names that fold to the same text apart', () => {
    expect(gceInstanceName('gcp', 'l4', 'a_b')).not.toBe(gceInstanceName('gcp', 'l4', 'a-b'));
  });

  it('folds label values to what GCE allows', () => {
    expect(gceLabelValue('H100 Spot.v2')).toBe('h100_spot_v2');
    expect(gceLabelValue('x'.repeat(80))).toHaveLength(63);
  });
});
