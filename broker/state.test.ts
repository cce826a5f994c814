import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openLocalStore, type LeaseMsg } from '../protocol/index.ts';
import { spendOf } from './lease-spend.ts';
import { loadRecords } from './records.ts';
import { BrokerState } from './state.ts';

async function fresh(clock: { now: number }) {
  const store = await openLocalStore(mkdtempSync(join(tmpdir(), 'gantry-state-')));
  return { store, state: new BrokerState(store, () => clock.now) };
}

function request(id: string) {
  return {
    requestId: id,
    team: 'ml',
    resources: {
      cpuMilli: 2000,
      memoryMiB: 4096,
      gpu: [],
      spot: undefined,
      durationSeconds: 600,
      profile: undefined,
    },
    override: false,
    work: { kind: 'sim' as const, durationMs: 1, outcome: 'succeeded' as const },
    state: 'pending' as const,
    attempt: 0,
    createdAt: 0,
    updatedAt: 0,
  };
}

function lease(id: string, requestId: string, node = 'n1'): LeaseMsg {
  return {
    leaseId: id,
    requestId,
    cluster: 'c1',
    pool: 'p1',
    node,
    pricePerHour: 0.5,
    cpuMilli: 2000,
    memoryMiB: 4096,
    gpuMilli: 1000,
    gpuModel: 'L4',
    capacityType: 'on-demand',
    expiresAt: 1e12,
    attempt: 0,
    why: 'test',
    work: { kind: 'sim', durationMs: 1, outcome: 'succeeded' },
  };
}

describe('BrokerState', () => {
  it('keeps per-node and per-team usage exact through the lifecycle', async () => {
    const clock = { now: 1000 };
    const { state } = await fresh(clock);
    const a = request('a');
    const b = request('b');
    state.addRequest(a);
    state.addRequest(b);
    state.place(a, lease('la', 'a'));
    state.place(b, lease('lb', 'b', 'planned-1'));
    expect(state.nodeUse.get('c1|n1')).toEqual({ cpu: 2000, mem: 4096, gpu: 1000 });
    expect(state.usage().ml).toEqual({
      cpuMilli: 4000,
      memoryMiB: 8192,
      gpus: 2,
      gpusByModel: { L4: 2 },
      spendPerHour: 1,
    });
    // The planned node comes up under its real name: usage moves with the lease.
    state.transition('lb', 'running', { node: 'real-1' });
    expect(state.nodeUse.has('c1|planned-1')).toBe(false);
    expect(state.nodeUse.get('c1|real-1')).toEqual({ cpu: 2000, mem: 4096, gpu: 1000 });
    state.transition('la', 'succeeded', {});
    state.transition('lb', 'preempted', { reason: 'spot' });
    expect([...state.nodeUse]).toEqual([]);
    expect(state.usage().ml).toEqual({
      cpuMilli: 0,
      memoryMiB: 0,
      gpus: 0,
      gpusByModel: { L4: 0 },
      spendPerHour: 0,
    });
    // Preempted: pending again, off spot next time, attempt raised.
    expect(state.requests.get('b')).toMatchObject({
      state: 'pending',
      attempt: 1,
      avoidSpot: true,
      leaseId: undefined,
    });
    // A late report never moves a lease backwards.
    expect(state.transition('la', 'running', {})).toBeUndefined();
    expect(state.leases.get('la')?.state).toBe('succeeded');
  });

  it('keeps the spend of active leases equal to a scan of them, through starts, moves and ends', async () => {
    const clock = { now: 1000 };
    const { state } = await fresh(clock);
    const scan = () => {
      const s = spendOf(state.active(), (l) => state.requests.get(l.requestId)!.team);
      return { count: s.count, byPool: [...s.byPool], started: [...s.started] };
    };
    const kept = () => ({
      count: state.spend.count,
      byPool: [...state.spend.byPool],
      started: [...state.spend.started],
    });
    for (const id of ['a', 'b', 'c', 'd']) {
      state.addRequest(request(id));
      state.place(state.requests.get(id)!, lease(`l${id}`, id, id === 'b' ? 'planned-1' : 'n1'));
    }
    expect(kept()).toEqual(scan());
    expect(state.spend.count).toBe(4);
    clock.now = 5000;
    state.transition('la', 'running', {});
    state.transition('lb', 'running', { node: 'real-1', startedAt: 3000 });
    state.transition('lc', 'launching', {});
    expect(kept()).toEqual(scan());
    expect(state.spend.started.get('ml')).toEqual({ perHour: 1, perHourTimesStart: 0.5 * 5000 + 0.5 * 3000 });
    clock.now = 9000;
    state.transition('la', 'succeeded', {});
    state.transition('lc', 'failed', { reason: 'x' });
    state.transition('lb', 'preempted', { reason: 'spot' });
    expect(kept()).toEqual(scan());
    expect(state.spend.count).toBe(1);
    state.transition('ld', 'lost', { reason: 'gone' });
    expect(kept()).toEqual({ count: 0, byPool: [], started: [] });
  });

  it('writes each request with its current lease, and forgets ended requests after the retention', async () => {
    const clock = { now: 1000 };
    const { store, state } = await fresh(clock);
    const a = request('a');
    state.addRequest(a);
    state.place(a, lease('la', 'a'));
    await state.writer.flush();
    const loaded = await loadRecords(store);
    expect(loaded.requests.map((r) => [r.requestId, r.state, r.leaseId])).toEqual([['a', 'placed', 'la']]);
    expect(loaded.leases.map((l) => l.leaseId)).toEqual(['la']);
    clock.now = 2000;
    state.transition('la', 'succeeded', {});
    expect(state.prune(1500)).toEqual([]);
    expect(state.prune(2500)).toEqual(['req.a']);
    expect(state.requests.size + state.leases.size).toBe(0);
  });

  it("knows which teams' workflow code each cluster hosts, through starts and ends", async () => {
    const { state } = await fresh({ now: 1000 });
    const task = {
      kind: 'task',
      module: 'm.ts',
      task: 't',
      execution: 'e',
      run: 'r',
      team: 'ml',
      input: { inline: 1, hash: 'h' },
    } as const;
    const worker = {
      kind: 'worker',
      module: 'm.ts',
      pool: 'p',
      team: 'ml',
      idleTtlMs: 1000,
      concurrency: 1,
    } as const;
    const t = { ...request('t'), work: task };
    const w = { ...request('w'), work: worker };
    const sim = request('s');
    for (const r of [t, w, sim]) state.addRequest(r);
    state.place(t, { ...lease('lt', 't'), work: task });
    state.place(sim, lease('ls', 's'));
    expect([
      state.hostsWorkOf('c1', 'ml'),
      state.hostsWorkOf('c2', 'ml'),
      state.hostsWorkOf('c1', 'cv'),
    ]).toEqual([true, false, false]);
    state.place(w, { ...lease('lw', 'w'), work: worker });
    state.transition('lt', 'running', {});
    state.transition('lt', 'succeeded', {});
    expect(state.hostsWorkOf('c1', 'ml')).toBe(true);
    state.transition('lw', 'failed', {});
    // Only simulated work is left on c1.
    expect(state.hostsWorkOf('c1', 'ml')).toBe(false);
  });

  it('forgets what ended before the retention in the order it ended: leases of earlier attempts, and loaded records', async () => {
    const clock = { now: 1000 };
    const { store, state } = await fresh(clock);
    const [a, b] = [request('a'), request('b')];
    for (const r of [a, b]) state.addRequest(r);
    state.place(a, lease('la1', 'a'));
    state.place(b, lease('lb', 'b'));
    clock.now = 2000;
    // a's first lease is lost: a is placed again and runs on; b fails for good.
    state.transition('la1', 'lost', { reason: 'gone' });
    state.place(a, lease('la2', 'a'));
    state.transition('lb', 'failed', { reason: 'x' });
    clock.now = 3000;
    expect(state.prune(1500)).toEqual([]);
    expect([...state.leases.keys()].sort()).toEqual(['la1', 'la2', 'lb']);
    expect(state.prune(2500)).toEqual(['req.b']);
    // The lost lease went; the one a runs on stays.
    expect([...state.leases.keys()]).toEqual(['la2']);
    expect([...state.requests.keys()]).toEqual(['a']);
    // Loaded from the store, an ended request is forgotten as well.
    state.transition('la2', 'succeeded', {});
    await state.writer.flush();
    const next = new BrokerState(store, () => clock.now);
    const loaded = await loadRecords(store);
    next.load(loaded.requests, loaded.leases);
    expect(next.prune(3000)).toEqual([]);
    expect(next.prune(3001)).toEqual(['req.a']);
    expect(next.requests.size + next.leases.size).toBe(0);
  });
});
