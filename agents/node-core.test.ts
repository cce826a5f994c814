/**
 * The provisioner core in front of a cloud whose `add` is slow (as EC2's and GCE's are): planned nodes
 * are listed at once, counted once, and given up as data.
 */
import { describe, expect, it } from 'vitest';
import type { Pool } from '../policies/index.ts';
import { loadPlatform } from '../policies/index.ts';
import { createProvisionerCore, MAX_NODES_RETRY_AFTER_MS } from './node-core.ts';
import type { NodeEvent, NodeProvisioner, ProvisionedNode } from './provisioner.ts';

const { platform } = loadPlatform(['test/fixtures/platform']);
const pool: Pool = { ...platform.pools.find((p) => p.name === 'cpu-spot')!, maxNodes: 3 };

/** A cloud whose `add` waits for `release()`; `drop` makes it launch nothing for those ids. */
function slowCloud(adopted: ProvisionedNode[] = []) {
  const nodes: ProvisionedNode[] = [];
  const listeners: ((e: NodeEvent) => void)[] = [];
  let release!: () => void;
  let listed!: () => void;
  const gate = () => new Promise<void>((r) => (release = r));
  const firstList = new Promise<void>((r) => (listed = r));
  const calls: string[][] = [];
  const drop = new Set<string>();
  const cloud: NodeProvisioner = {
    kind: 'slow',
    list: () => [...nodes],
    whenListed: () => firstList,
    async add(p, ids) {
      calls.push([...ids]);
      await gate();
      for (const id of ids)
        if (!drop.has(id))
          nodes.push({
            name: `vm-${id}`,
            pool: p.name,
            ready: false,
            capacityType: p.capacityType,
            plannedId: id,
            createdAt: 0,
          });
    },
    async remove(name) {
      const i = nodes.findIndex((n) => n.name === name);
      if (i >= 0) nodes.splice(i, 1);
    },
    onEvent: (l) => void listeners.push(l),
    async close() {},
  };
  return {
    cloud,
    calls,
    drop,
    release: () => release(),
    list: () => {
      nodes.push(...adopted);
      listed();
    },
  };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('provisioner core', () => {
  it('lists planned nodes before the cloud has, then counts each once', async () => {
    const slow = slowCloud();
    const core = createProvisionerCore(slow.cloud);
    const adding = core.add(pool, ['p1', 'p2']);
    expect(core.list().map((n) => [n.name, n.plannedId, n.ready])).toEqual([
      ['p1', 'p1', false],
      ['p2', 'p2', false],
    ]);
    slow.list();
    await tick();
    slow.release();
    await adding;
    expect(core.list().map((n) => n.name)).toEqual(['vm-p1', 'vm-p2']);
    expect(core.planned()).toEqual([]);
  });

  it('answers planned nodes past the maximum with max-nodes, counting adopted instances', async () => {
    const adopted = {
      name: 'old',
      pool: pool.name,
      ready: true,
      capacityType: pool.capacityType,
      createdAt: 0,
    };
    const slow = slowCloud([adopted]);
    const core = createProvisionerCore(slow.cloud);
    const events: NodeEvent[] = [];
    core.onEvent((e) => events.push(e));
    const adding = core.add(pool, ['p1', 'p2', 'p3']);
    slow.list();
    await tick();
    expect(slow.calls).toEqual([['p1', 'p2']]);
    expect(events).toEqual([
      {
        type: 'exhausted',
        pool: pool.name,
        plannedIds: ['p3'],
        kind: 'max-nodes',
        reason: `pool ${pool.name} is at its maximum of 3 nodes`,
        retryAfterMs: MAX_NODES_RETRY_AFTER_MS,
      },
    ]);
    slow.release();
    await adding;
    expect(core.list()).toHaveLength(3);
  });

  it('gives up, as data, a planned node the cloud neither launched nor reported', async () => {
    const slow = slowCloud();
    slow.drop.add('p2');
    const core = createProvisionerCore(slow.cloud, { errorRetryAfterMs: 5000 });
    const events: NodeEvent[] = [];
    core.onEvent((e) => events.push(e));
    const adding = core.add(pool, ['p1', 'p2']);
    slow.list();
    await tick();
    slow.release();
    await adding;
    expect(events).toMatchObject([
      { type: 'exhausted', plannedIds: ['p2'], kind: 'error', retryAfterMs: 5000 },
    ]);
    expect(core.list().map((n) => n.name)).toEqual(['vm-p1']);
  });

  it('asks the cloud once for a planned id however often it comes', async () => {
    const slow = slowCloud();
    const core = createProvisionerCore(slow.cloud);
    const first = core.add(pool, ['p1']);
    const again = core.add(pool, ['p1', 'p1']);
    slow.list();
    await tick();
    slow.release();
    await Promise.all([first, again]);
    expect(slow.calls).toEqual([['p1']]);
  });

  it('terminates a planned node removed before the cloud listed it, once it does', async () => {
    const slow = slowCloud();
    const core = createProvisionerCore(slow.cloud);
    const events: NodeEvent[] = [];
    core.onEvent((e) => events.push(e));
    const adding = core.add(pool, ['p1']);
    slow.list();
    await tick();
    await core.remove('p1');
    expect(events).toMatchObject([{ type: 'gone', node: { name: 'p1', plannedId: 'p1' } }]);
    slow.release();
    await adding;
    expect(core.list()).toEqual([]);
    expect(slow.cloud.list()).toEqual([]);
  });
});

describe('provisioner core removals', () => {
  it('calls the cloud once for a node removed again while its removal is under way', async () => {
    const calls: string[] = [];
    let finish!: () => void;
    const cloud: NodeProvisioner = {
      kind: 'slow',
      list: () => [],
      async add() {},
      remove: (name) => {
        calls.push(name);
        return new Promise<void>((r) => (finish = r));
      },
      onEvent: () => undefined,
      async close() {},
    };
    const core = createProvisionerCore(cloud);
    const first = core.remove('vm-1');
    const again = core.remove('vm-1');
    finish();
    await Promise.all([first, again]);
    expect(calls).toEqual(['vm-1']);
    // Once it is done, a new removal calls the cloud again.
    const later = core.remove('vm-1');
    finish();
    await later;
    expect(calls).toEqual(['vm-1', 'vm-1']);
  });
});
