/**
 * The workflow suite, run embedded and over a real nats-server: typed values, values by reference,
 * overrides, policy refusals, out-of-memory escalation, preemption, typed errors, lineage across runs
 * and a 10K-item map.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJson, subjects } from '../protocol/index.ts';
import {
  lineageGraph,
  NonRetriableError,
  readLineage,
  type RunEvent,
  Runtime,
  runWorkflow,
  storeCache,
  type Task,
} from '../runtime/index.ts';
import * as suite from './fixtures/workflows/suite.ts';
import { startSystem, type TestSystem } from './system.ts';

const MODULE = fileURLToPath(new URL('./fixtures/workflows/suite.ts', import.meta.url));

describe.each(['embedded', 'nats'] as const)('workflows (%s)', (mode) => {
  let system: TestSystem;
  let runtime: Runtime;

  beforeAll(async () => {
    system = await startSystem(mode, { platformDir: 'test/fixtures/runtime-platform', speedup: 1000 });
    runtime = new Runtime({
      transport: system.transport,
      artifacts: system.artifacts,
      timeScale: system.speedup,
      progress: false,
      cache: storeCache(system.runtimeStore),
    });
  }, 60_000);
  afterAll(async () => {
    runtime?.stopWorkers();
    await system?.stop();
  });

  const run = (workflow: Task, input: unknown, team = 'ml') =>
    runWorkflow(workflow, input, { runtime, team, module: MODULE, store: system.runtimeStore });

  it('round-trips typed values through a remote task', async () => {
    const when = '2026-11-25T10:00:00Z';
    const r = await run(suite.enrich, { name: 'a', count: 21, tags: ['x'], when });
    expect(r.ok).toBe(true);
    // The workflow itself is `enrich` here: it ran in the driver. Call it as a child too.
    const wf = suite.overridePipeline;
    expect(wf.taskName).toBe('override-pipeline');
    expect(r.output).toEqual({ name: 'a', count: 21, tags: ['x', 'seen'], when, doubled: 42 });
  });

  it('sends large values by reference and the task receives them whole', async () => {
    const r = await run(suite.bigPipeline, { n: 2000 });
    expect(r.error).toBeUndefined();
    expect(r.output).toEqual({ count: 2000, first: `row-0-${'x'.repeat(40)}` });
    const { records } = await readLineage(system.runtimeStore);
    const made = records.find((x) => x.run === r.runId && x.task === 'make-big')!;
    const counted = records.find((x) => x.run === r.runId && x.task === 'count-rows')!;
    // The big output went to the artifact store, and the same artifact was count-rows' input.
    expect(made.output).toMatch(/^sha256:/);
    expect(counted.input).toBe(made.output);
    expect((await system.artifacts.get(made.output!)).byteLength).toBeGreaterThan(16 * 1024);
  });

  it('an override reaches the broker marked as one and lands on the pool it asks for', async () => {
    const r = await run(suite.overridePipeline, { gpu: 'L4:1' });
    expect(r.error).toBeUndefined();
    expect(r.output).toEqual([expect.stringMatching(/^sim-aws\/cpu-(spot|od)$/), 'sim-aws/l4/L4']);
    const { records } = await readLineage(system.runtimeStore);
    const wheres = records.filter((x) => x.run === r.runId && x.task === 'where');
    expect(wheres.map((w) => w.override).sort()).toEqual([false, true]);
    expect(wheres.find((w) => w.override)!.asked).toMatchObject({ gpu: 'L4:1', memory: '8Gi' });
    expect(wheres.find((w) => w.override)!.placement).toMatchObject({ pool: 'l4', gpuModel: 'L4' });
  });

  it("an override beyond the team's policy fails with the policy's name", async () => {
    const r = await run(suite.greedyPipeline, {});
    expect(r.ok).toBe(false);
    expect((r.error as Error).name).toBe('PolicyRefusedError');
    expect((r.error as Error).message).toMatch(/ml-team/);
    expect((r.error as Error).message).toMatch(/memory/);
  });

  it('a workflow can catch a policy refusal and fall back', async () => {
    const r = await run(suite.fallbackPipeline, {});
    expect(r.error).toBeUndefined();
    expect((r.output as { refusedBy: string }).refusedBy).toMatch(/ml-team/);
    expect((r.output as { pool: string }).pool).toMatch(/^cpu-/);
  });

  it('out of memory in a worker process escalates memory until it fits', async () => {
    const r = await run(suite.oomPipeline, { mib: 600 }, 'local');
    expect(r.error).toBeUndefined();
    // 600 MiB of arrays fit in neither 256Mi nor 512Mi, but do in 1Gi.
    expect(r.output).toEqual({ mib: 600, heapLimitMiB: 1024 });
    const { records } = await readLineage(system.runtimeStore);
    const hogs = records
      .filter((x) => x.run === r.runId && x.task === 'hog')
      .sort((a, b) => a.attempt - b.attempt);
    expect(hogs.map((h) => h.error?.name ?? 'ok')).toEqual(['OutOfMemoryError', 'OutOfMemoryError', 'ok']);
    expect(hogs.map((h) => h.placement?.memoryMiB)).toEqual([256, 512, 1024]);
  }, 60_000);

  it('a task whose spot node is reclaimed finishes on another pool', async () => {
    const events: RunEvent[] = [];
    const runId = `run-spot-${mode}`;
    const sub = system.transport.subscribe(subjects.runEvents('ml', runId), (msg) => {
      const ev = decodeJson(msg.data) as RunEvent;
      events.push(ev);
      if (ev.type === 'running' && ev.task === 'long-spot' && ev.placement?.capacityType === 'spot')
        system.clouds.get(ev.placement.cluster)!.reclaimNode(ev.placement.node);
    });
    await system.transport.flush();
    const r = await runWorkflow(
      suite.spotPipeline,
      { ms: 300 },
      { runtime, team: 'ml', module: MODULE, store: system.runtimeStore, runId },
    );
    sub.unsubscribe();
    expect(r.error).toBeUndefined();
    expect(r.output).toEqual({ capacityType: 'on-demand', pool: 'cpu-od' });
    expect(events.map((e) => e.type)).toContain('preempted');
    const { records } = await readLineage(system.runtimeStore);
    const rec = records.find((x) => x.run === runId && x.task === 'long-spot')!;
    expect(rec.preemptions).toBe(1);
    expect(rec.placement?.pool).toBe('cpu-od');
  }, 30_000);

  it("a workflow catches a child's typed error and decides itself", async () => {
    const r = await run(suite.catcher, {});
    expect(r.error).toBeUndefined();
    expect(r.output).toMatchObject({ caught: 'NonRetriableError: bad shard', code: 42, isTaskError: true });
    const { records } = await readLineage(system.runtimeStore);
    // The non-retriable failure ran once; the rate-limited task three times.
    expect(records.filter((x) => x.run === r.runId && x.task === 'refuse')).toHaveLength(1);
    expect(
      records.filter((x) => x.run === r.runId && x.task === 'flaky').map((x) => x.error?.name ?? 'ok'),
    ).toEqual(['RetryAfterError', 'RetryAfterError', 'ok']);
  });

  it('a task output that breaks its own schema fails with the field', async () => {
    const r = await runWorkflow(
      suite.overridePipeline.override === undefined ? suite.liar : suite.liar,
      {},
      { runtime, team: 'ml', module: MODULE },
    );
    expect(r.ok).toBe(false);
    expect((r.error as Error).message).toBe('liar: output.n: expected number, received string');
  });

  it('lineage links outputs to inputs across two runs', async () => {
    const first = await run(suite.produceRun, { seed: 5 });
    const second = await run(suite.consumeRun, first.output);
    expect(second.output).toBe(18);
    const { records } = await readLineage(system.runtimeStore);
    const out = records.find((x) => x.run === second.runId && x.task === 'consume')!.output!;
    const graph = lineageGraph(records, out)!;
    const seen = graph.executions.map(
      (e) => `${e.run === first.runId ? 'first' : e.run === second.runId ? 'second' : 'other'}:${e.task}`,
    );
    expect(seen).toEqual(expect.arrayContaining(['first:produce', 'second:consume']));
    const down = lineageGraph(
      records,
      records.find((x) => x.run === first.runId && x.task === 'produce')!.output!,
      { downstream: true },
    )!;
    expect(down.executions.map((e) => e.task)).toEqual(expect.arrayContaining(['consume', 'consume-run']));
  });

  it('a 10K-item map on warm workers returns every result in order', async () => {
    const r = await run(suite.fanout, { n: 10_000, cold: 200 });
    expect(r.error).toBeUndefined();
    const out = r.output as { squares: number[]; cubes: number[] };
    expect(out.squares).toHaveLength(10_000);
    expect(out.squares.every((v, i) => v === i * i)).toBe(true);
    expect(out.cubes).toEqual(Array.from({ length: 200 }, (_, i) => i ** 3));
    const { records } = await readLineage(system.runtimeStore);
    const mine = records.filter((x) => x.run === r.runId);
    expect(mine.filter((x) => x.task === 'square' && x.warm)).toHaveLength(10_000);
    expect(mine.filter((x) => x.task === 'cube' && !x.warm)).toHaveLength(200);
  }, 60_000);

  it('a nested fan-out of 3,000 returns with all its lineage', async () => {
    const r = await run(suite.nestedPipeline, { n: 3000 });
    expect(r.error).toBeUndefined();
    expect(r.output).toBe(Array.from({ length: 3000 }, (_, i) => i * i).reduce((a, b) => a + b, 0));
    const { records } = await readLineage(system.runtimeStore);
    const mine = records.filter((x) => x.run === r.runId);
    const parent = mine.find((x) => x.task === 'nested-fanout')!;
    const squares = mine.filter((x) => x.task === 'square');
    expect(squares).toHaveLength(3000);
    expect(new Set(squares.map((x) => x.parent))).toEqual(new Set([parent.execution]));
  }, 60_000);

  it("a user's error class comes back as itself and is not retried", async () => {
    const r = await run(suite.qualityPipeline, { id: `${mode}-dq` });
    expect(r.output).toEqual({
      isOwnClass: true,
      nonRetriable: true,
      name: 'DataQualityError',
      column: 'price',
    });
    expect(suite.qualityRuns.filter((id) => id === `${mode}-dq`)).toHaveLength(1);
  });

  it('ctx.attempt counts the runtime retries, cold and warm', async () => {
    const r = await run(suite.attemptsPipeline, { id: mode });
    expect(r.output).toEqual([2, 2]);
    expect(suite.attemptsSeen.get(`${mode}-cold`)).toEqual([0, 1, 2]);
    expect(suite.attemptsSeen.get(`${mode}-warm`)).toEqual([0, 1, 2]);
  });

  it('a Python command task reads its inputs from files, writes its outputs and keeps its log', async () => {
    const r = await run(suite.fitPipeline, { mode: 'fit' });
    expect(r.error).toBeUndefined();
    expect(r.output).toEqual({ slope: 3, model: 'y = 3.0 * x + 1.0\n' });
    const { records } = await readLineage(system.runtimeStore);
    const rec = records.find((x) => x.run === r.runId && x.task === 'fit')!;
    const log = new TextDecoder().decode(await system.artifacts.get(rec.logs!));
    expect(log).toBe('fit.py attempt 0 mode fit\nfitted a=3.000 b=1.000 on 20 points\n');
  });

  it('a Python task over its memory is killed (137) and retried with twice the memory', async () => {
    const r = await run(suite.fitPipeline, { mode: 'hog', mib: 300 });
    expect(r.error).toBeUndefined();
    const { records } = await readLineage(system.runtimeStore);
    const fits = records.filter((x) => x.run === r.runId && x.task === 'fit');
    expect(fits.map((x) => [x.error?.name ?? 'ok', x.asked.memory])).toEqual([
      ['OutOfMemoryError', '256Mi'],
      ['ok', '512Mi'],
    ]);
  }, 30_000);

  it('exit code 65 fails at once; error.json raises the typed error it names', async () => {
    const bad = await run(suite.fitPipeline, { mode: 'bad-data' });
    expect(bad.error).toBeInstanceOf(NonRetriableError);
    expect((bad.error as Error).message).toBe(
      'python3 exited with code 65:\nfit.py attempt 0 mode bad-data\ncolumn price has nulls',
    );
    const typed = await run(suite.fitPipeline, { mode: 'typed' });
    expect(typed.error).toBeUndefined();
    const { records } = await readLineage(system.runtimeStore);
    expect(records.filter((x) => x.run === bad.runId && x.task === 'fit')).toHaveLength(1);
    expect(
      records.filter((x) => x.run === typed.runId && x.task === 'fit').map((x) => x.error?.name ?? 'ok'),
    ).toEqual(['RetryAfterError', 'ok']);
  });

  it('returnExceptions puts each failure in its item’s place', async () => {
    const r = await run(suite.partial, { n: 6 });
    expect(r.output).toEqual([
      'ok:0',
      'error:NonRetriableError',
      'ok:2',
      'error:NonRetriableError',
      'ok:4',
      'error:NonRetriableError',
    ]);
  });

  it('a non-retriable failure on a warm worker is not run again', async () => {
    suite.warmRuns.clear();
    const r = await run(suite.warmPartial, { n: 8 });
    expect(r.output).toEqual(['ok', 'error', 'ok', 'error', 'ok', 'error', 'ok', 'error']);
    expect([...suite.warmRuns.values()]).toEqual(Array(8).fill(1));
  });

  it("a task's timeout aborts its signal, and the caller gets a TimeoutError", async () => {
    const id = `t-${mode}`;
    const r = await run(suite.sleepyPipeline, { id });
    expect(r.output).toBe('TimeoutError');
    expect(suite.timeoutsSeen).toContain(id);
  });

  it('a cached task is not run again for the same input and code', async () => {
    const first = await run(suite.produceRun, { seed: 100 });
    expect(first.ok).toBe(true);
    const { records } = await readLineage(system.runtimeStore);
    expect(records.filter((x) => x.run === first.runId && x.cached)).toHaveLength(0);
  });
});
