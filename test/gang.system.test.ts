/**
 * Gang tasks on the simulated clusters, embedded and over a real nats-server: a 4-node × 8 H100 task
 * placed whole in one pool of one cluster and launched with ranks; one member's spot node reclaimed →
 * the whole gang stopped and placed again (off spot). Prints the time from request to all members
 * running.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { readLifecycle, type TaskUsage } from '../broker/index.ts';
import { decodeJson, subjects } from '../protocol/index.ts';
import { readLineage, type RunEvent, Runtime, runWorkflow } from '../runtime/index.ts';
import * as gangs from './fixtures/workflows/gang.ts';
import { eventually, startSystem, type TestSystem } from './system.ts';

const MODULE = fileURLToPath(new URL('./fixtures/workflows/gang.ts', import.meta.url));

describe.each(['embedded', 'nats'] as const)('gang tasks (%s)', (mode) => {
  let system: TestSystem;
  let runtime: Runtime;

  beforeAll(async () => {
    system = await startSystem(mode, { platformDir: 'test/fixtures/gang-platform', speedup: 1000 });
    runtime = new Runtime({
      transport: system.transport,
      artifacts: system.artifacts,
      timeScale: system.speedup,
      progress: false,
    });
  }, 60_000);
  afterAll(async () => {
    await system?.stop();
  });
  beforeEach(() => {
    gangs.members.length = 0;
    gangs.gate.hold = false;
  });

  const ledger: TaskUsage[] = [];
  /** The cost ledger's usage entries of a run (read from the broker's log). */
  function usages(runId: string): TaskUsage[] {
    return ledger.filter((u) => u.run === runId);
  }
  async function readLedger(): Promise<void> {
    ledger.length = 0;
    for await (const e of readLifecycle(system.brokerStore)) if (e.kind === 'usage') ledger.push(e);
  }

  /** Runs the gang pipeline, collecting the run's events; `onEvent` may act on them. */
  async function runGang(runId: string, onEvent: (e: RunEvent) => void = () => {}) {
    const events: RunEvent[] = [];
    const sub = system.transport.subscribe(subjects.runEvents('research', runId), (msg) => {
      const e = decodeJson(msg.data) as RunEvent;
      events.push(e);
      onEvent(e);
    });
    await system.transport.flush();
    const started = Date.now();
    const r = await runWorkflow(
      gangs.gangPipeline,
      { steps: 10 },
      { runtime, team: 'research', module: MODULE, store: system.runtimeStore, runId },
    );
    // Over NATS the run's last events may still be in flight when it returns.
    await eventually(
      () => events.filter((e) => e.type === 'running' && e.task === 'gang-train').length >= 4,
      5000,
      "the members' running events",
    ).catch(() => undefined);
    sub.unsubscribe();
    return { r, events, started };
  }

  it('places 4 members on 4 nodes of one pool in one cycle and launches them with ranks', async () => {
    // The members run until all four are running (the time the test prints).
    gangs.gate.hold = true;
    let runningMembers = 0;
    const { r, events, started } = await runGang(`run-gang-${mode}`, (e) => {
      if (e.type === 'running' && e.task === 'gang-train' && ++runningMembers === 4) gangs.gate.hold = false;
    });
    expect(r.error).toBeUndefined();
    const ranks = [...gangs.members].sort((a, b) => a.rank - b.rank);
    expect(ranks.map((m) => m.rank)).toEqual([0, 1, 2, 3]);
    expect(ranks.every((m) => m.worldSize === 4 && m.masterPort === 29500)).toBe(true);
    // One pool (the cheapest that takes all four: spot), four distinct nodes, rank 0's node the master.
    expect(new Set(ranks.map((m) => m.pool))).toEqual(new Set(['h100-spot']));
    expect(new Set(ranks.map((m) => m.node)).size).toBe(4);
    expect(ranks.every((m) => m.masterAddr === ranks[0]!.node)).toBe(true);
    expect(r.output).toEqual({ rank: 0, worldSize: 4, masterAddr: ranks[0]!.node, pool: 'h100-spot' });
    // Every member's lease came from the same cycle, its four nodes asked for together: planned node
    // ids name the cycle that planned them (`…c<cycle>n<k>`).
    const leases = [...system.broker.state.leases.values()].filter((l) => l.gang);
    expect(leases).toHaveLength(4);
    expect(new Set(leases.map((l) => l.gang!.id)).size).toBe(1);
    expect(new Set(leases.map((l) => /c(\d+)n\d+$/.exec(l.node)?.[1])).size).toBe(1);
    expect(leases.every((l) => /c\d+n\d+$/.test(l.node))).toBe(true);
    // Cost per member: each member's lease is priced and the lineage sums them.
    expect(leases.every((l) => l.pricePerHour > 0)).toBe(true);
    const { records } = await readLineage(system.runtimeStore);
    const rec = records.find((x) => x.run === r.runId && x.task === 'gang-train')!;
    expect(rec.costUsd).toBeGreaterThan(0);
    // The cost ledger has one usage per member, each on its own node, priced as a whole p5 node.
    for (let i = 0; i < 50 && usages(r.runId).length < 4; i++) {
      await new Promise((res) => setTimeout(res, 100));
      await readLedger();
    }
    const used = usages(r.runId);
    expect(used.map((u) => u.request.replace(/.*-m/, 'm')).sort()).toEqual(['m0', 'm1', 'm2', 'm3']);
    expect(new Set(used.map((u) => u.node)).size).toBe(4);
    expect(used.every((u) => u.share === 1 && u.gpus === 8 && u.nodePricePerHour > 0)).toBe(true);
    const running = events.filter((e) => e.type === 'running' && e.task === 'gang-train');
    expect(running).toHaveLength(4);
    const allRunning = Math.max(...running.map((e) => e.at)) - started;
    console.log(
      `[gang ${mode}] request → all 4 members running: ${allRunning} ms wall, ` +
        `${((allRunning * system.speedup) / 1000).toFixed(0)} s simulated (4 new p5.48xlarge spot nodes)`,
    );
  }, 60_000);

  it("one member's spot node reclaimed: the whole gang is stopped and placed again off spot", async () => {
    gangs.gate.hold = true;
    let reclaimed = '';
    const { r, events } = await runGang(`run-gang-reclaim-${mode}`, (e) => {
      if (reclaimed || e.type !== 'running' || e.task !== 'gang-train') return;
      if (gangs.members.length === 4) {
        const victim = gangs.members.find((m) => m.rank === 2)!;
        reclaimed = victim.node;
        system.clouds.get('sim-aws')!.reclaimNode(victim.node);
        // The second round runs to the end.
        void eventually(() => gangs.members.length >= 8, 20_000, 'the gang placed again').then(
          () => (gangs.gate.hold = false),
        );
      }
    });
    expect(reclaimed).not.toBe('');
    expect(r.error).toBeUndefined();
    expect(gangs.members).toHaveLength(8);
    const second = gangs.members.slice(4).sort((a, b) => a.rank - b.rank);
    expect(second.map((m) => m.rank)).toEqual([0, 1, 2, 3]);
    // Placed again whole, on one pool off spot, on four nodes; the master is the new rank 0's node.
    expect(new Set(second.map((m) => m.pool))).toEqual(new Set(['h100-od']));
    expect(new Set(second.map((m) => m.node)).size).toBe(4);
    expect(second.every((m) => m.masterAddr === second[0]!.node)).toBe(true);
    expect(r.output).toMatchObject({ rank: 0, pool: 'h100-od' });
    // Every member heard it was preempted (its own node or its gang's), none finished the first round.
    expect(events.filter((e) => e.type === 'preempted' && e.task === 'gang-train')).toHaveLength(4);
    const stopped = [...system.broker.state.leases.values()].filter(
      (l) => l.gang && l.state === 'preempted' && l.reason?.startsWith('gang '),
    );
    expect(stopped).toHaveLength(3);
    expect(stopped[0]!.reason).toContain('member 2 preempted');
  }, 60_000);
});
