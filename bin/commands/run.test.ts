import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type TaskUsage, usageCost } from '../../broker/index.ts';
import { openLocalStore } from '../../protocol/index.ts';
import { runGantry } from '../../test/cli.ts';
import { readLedger } from './report.ts';

const INPUT = '{"source":"s3://bucket/clicks","rows":1000,"epochs":1}';

describe('gantry run and gantry lineage', () => {
  it('runs the example workflow embedded, prints placements and cost, and records its lineage', async () => {
    const state = mkdtempSync(join(tmpdir(), 'gantry-run-'));
    const run = await runGantry(
      'run',
      'examples/workflows/train.ts',
      '--team',
      'research',
      '--input',
      INPUT,
      '--state',
      state,
      '--speedup',
      '2000',
    );
    expect(run.err).toBe('');
    expect(run.code).toBe(0);
    expect(run.out.split('\n')[0]).toMatch(
      /\(embedded, 2000× simulated time, platform from -f examples \(the default\)\)$/,
    );
    expect(run.out).toMatch(/placed {5}preprocess {5}→ aws-use1\/cpu-spot spot \$0\.12\/h/);
    // Small data: one GPU, no override.
    expect(run.out).toMatch(/placed {5}train {10}→ [a-z0-9-]+\/h100-[a-z]+ /);
    expect(run.out).not.toContain('override');
    // Eight evaluations on L4s (spot, unless a simulated reclaim moved one to on-demand).
    expect(run.out).toMatch(/^evaluate +aws-use1\/l4-(spot|od) \((spot|on-demand), 1× L4\) +[1-8] /m);
    const runId = /run (run-[\w-]+) succeeded/.exec(run.out)![1]!;

    const text = await runGantry('lineage', runId, '--state', state);
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/^train-pipeline \[.+\] ok .* driver/m);
    expect(text.out).toMatch(/^ {2}train \[.+\] ok .*h100/m);
    expect(text.out.match(/^ {2}evaluate \[/gm)).toHaveLength(8);

    const json = await runGantry('lineage', runId, '--state', state, '-o', 'json');
    const graph = JSON.parse(json.out) as { executions: { task: string; run: string }[] };
    expect(graph.executions).toHaveLength(11);
    expect(new Set(graph.executions.map((e) => e.run))).toEqual(new Set([runId]));
    expect((await runGantry('lineage', runId, '--state', state, '-o', 'dot')).out).toMatch(
      /^digraph lineage/,
    );
    // An artifact by the 12 hex digits the tree prints; nothing consumed an evaluation's score.
    const score = /^ {2}evaluate \[.+\] ok {2}in [0-9a-f]{12} → out ([0-9a-f]{12}) /m.exec(text.out)![1]!;
    const upstream = await runGantry('lineage', score, '--state', state);
    expect(upstream.code).toBe(0);
    expect(upstream.out).toMatch(new RegExp(`^ *evaluate \\[.+\\] ok .* → out ${score} `, 'm'));
    const down = await runGantry('lineage', `sha256:${score}`, '--downstream', '--state', state);
    expect(down).toMatchObject({ code: 0, out: '' });
    expect(down.err).toMatch(
      new RegExp(
        `^nothing was made from sha256:${score}[0-9a-f]{52}: no recorded execution took it as input`,
      ),
    );
    expect((await runGantry('lineage', 'abc', '--state', state)).code).toBe(2);
    expect(await runGantry('lineage', 'run-nope', '--state', state)).toMatchObject({
      code: 2,
      err: expect.stringContaining("no run or artifact 'run-nope' in the lineage"),
    });
  }, 60_000);

  it('costs the same at --speedup 60 and 600: tasks are charged for their simulated time', async () => {
    // The example platform without random spot reclaims: a reclaim would rightly cost more.
    const platform = mkdtempSync(join(tmpdir(), 'gantry-run-platform-'));
    for (const dir of ['clusters', 'policies', 'profiles'])
      cpSync(join('examples', dir), join(platform, dir), { recursive: true });
    const gcp = join(platform, 'clusters', 'gcp-us-central1.yaml');
    writeFileSync(gcp, readFileSync(gcp, 'utf8').replace(/^\s*interruptionRate:.*\n/gm, ''));
    const cost = async (speedup: string) => {
      const state = mkdtempSync(join(tmpdir(), 'gantry-run-'));
      const r = await runGantry(
        ...['run', 'examples/workflows/train.ts', '--team', 'research', '--input', INPUT],
        ...['-f', platform, '--state', state, '--speedup', speedup, '-q'],
      );
      expect(r.err).toBe('');
      const m = new RegExp(
        `succeeded in [\\d.]+s, cost \\$([\\d.]+) in ${speedup}× simulated time$`,
        'm',
      ).exec(r.out);
      expect(m, r.out).not.toBeNull();
      // What the broker's ledger charged the run's tasks (what reports and budgets read).
      const store = await openLocalStore(join(state, 'broker'));
      const usages = (await readLedger(store)).filter((e): e is TaskUsage => e.kind === 'usage');
      await store.close();
      return { printed: Number(m![1]), ledger: usages.reduce((a, u) => a + usageCost(u), 0) };
    };
    const at60 = await cost('60');
    const at600 = await cost('600');
    expect(at60.printed).toBeGreaterThan(0.1);
    // Before, the tasks slept on the wall clock: $0.15 at 60×, $1.50 at 600×.
    expect(Math.abs(at600.printed - at60.printed) / at60.printed).toBeLessThanOrEqual(0.01);
    // The ledger too: each lease is charged its simulated run time, not the wall clock's overhead
    // (messages, loading the module) times the speedup.
    expect(Math.abs(at600.ledger - at60.ledger) / at60.ledger).toBeLessThanOrEqual(0.01);
    expect(Math.abs(at600.ledger - at600.printed) / at600.printed).toBeLessThanOrEqual(0.01);
  }, 60_000);

  it.each([
    [['--input', '{bad'], '--input is not JSON'],
    [['--input', '{"source":"s3://x","rows":-1}'], 'ValidationError: train-pipeline: input.rows: Too small'],
    [['--team', 'nobody'], "PolicyRefusedError: preprocess: team 'nobody' has no ResourcePolicy"],
    [['--task', 'nope'], "exports no task named 'nope'"],
    [['--speedup', 'fast'], '--speedup must be a positive number'],
  ])(
    'bad input %j fails with one clear line',
    async (flags, message) => {
      const state = mkdtempSync(join(tmpdir(), 'gantry-run-bad-'));
      const args = [
        'run',
        'examples/workflows/train.ts',
        '--state',
        state,
        '--team',
        'research',
        '--input',
        INPUT,
        ...flags,
      ];
      const r = await runGantry(...args);
      expect(r.code).toBeGreaterThan(0);
      expect(r.err).toContain(message);
      expect(r.err).not.toMatch(/\n\s+at /);
    },
    30_000,
  );

  it('names a missing workflow file', async () => {
    const r = await runGantry('run', 'examples/workflows/nope.ts', '--team', 'research');
    expect(r).toMatchObject({ code: 2, err: 'gantry: no workflow file examples/workflows/nope.ts\n' });
  });
});

describe('gantry demo', () => {
  it('overrides to 8 GPUs, recovers from the preemption and prints the cost', async () => {
    const state = mkdtempSync(join(tmpdir(), 'gantry-demo-'));
    const r = await runGantry('demo', '--state', state, '--speedup', '3000');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(
      /placed {5}train {10}→ gcp-usc1\/h100-spot spot .*override gpu=H100:8 cpu=96 memory=1Ti/,
    );
    expect(r.out).toMatch(/PREEMPTED {2}train/);
    expect(r.out).toMatch(/placed {5}train {10}→ aws-use1\/h100-od on-demand .*placed again/);
    expect(r.out).toMatch(/^train +aws-use1\/h100-od \(on-demand, 8× H100\) +1 +1 +\$\d+/m);
    expect(r.out).toMatch(/succeeded in [\d.]+s, cost \$\d+/);
  }, 60_000);
});

describe('gantry run, while nodes launch', () => {
  it('says which placed task is waiting for its node', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gantry-slow-'));
    writeFileSync(
      join(dir, 'platform.yaml'),
      `apiVersion: gantry.dev/v1alpha1
kind: Cluster
metadata: { name: slow }
spec:
  provider: sim
  cloud: aws
  region: us-east-1
  pools:
    - { name: cpu, instanceType: m7i.2xlarge, capacityType: on-demand, minNodes: 0, maxNodes: 2, launchDelay: 7s }
---
apiVersion: gantry.dev/v1alpha1
kind: ResourcePolicy
metadata: { name: ml }
spec:
  teams: [ml]
  defaults: { cpu: 1, memory: 1Gi, duration: 10m }
`,
    );
    const r = await runGantry(
      'run',
      'test/fixtures/workflows/suite.ts',
      '--task',
      'big-pipeline',
      '--team',
      'ml',
      '--input',
      '{"n":3}',
      '-f',
      dir,
      '--state',
      join(dir, 'state'),
      '--speedup',
      '1',
    );
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^ {2}placed {5}make-big +→ slow\/cpu on-demand/m);
    expect(r.out).toMatch(
      /^ {2}waiting {4}make-big +for slow\/cpu: node launching or task starting, \d+ s$/m,
    );
    expect(r.out.indexOf('waiting')).toBeLessThan(r.out.indexOf('  done       make-big'));
    expect(r.out.split('\n')[0]).toMatch(/\(embedded, 1× simulated time\)$/);

    const defaulted = await runGantry(
      'run',
      'examples/workflows/nope.ts',
      '--team',
      'research',
      '--state',
      join(dir, 's2'),
    );
    expect(defaulted.code).toBe(2);
    expect(defaulted.err).toBe('gantry: no workflow file examples/workflows/nope.ts\n');
  }, 30_000);
});

describe('gantry run --nats', () => {
  it('runs a workflow against a broker and agents over NATS, and reads its lineage there', async () => {
    const { startSystem } = await import('../../test/system.ts');
    const system = await startSystem('nats', {
      platformDir: 'test/fixtures/runtime-platform',
      speedup: 1000,
    });
    try {
      const url = system.server!.url;
      const run = await runGantry(
        'run',
        'test/fixtures/workflows/suite.ts',
        '--task',
        'big-pipeline',
        '--team',
        'ml',
        '--input',
        '{"n":3000}',
        '--nats',
        url,
        '-o',
        'json',
      );
      expect(run.err).toBe('');
      const result = JSON.parse(run.out) as {
        runId: string;
        ok: boolean;
        output: { count: number };
        executions: number;
      };
      expect(result).toMatchObject({ ok: true, output: { count: 3000 }, executions: 3 });
      const state = mkdtempSync(join(tmpdir(), 'gantry-lineage-'));
      const lineage = await runGantry('lineage', result.runId, '--nats', url, '--state', state);
      expect(lineage.code).toBe(0);
      expect(lineage.out).toMatch(/^ {2}make-big \[/m);
      expect(lineage.out).toMatch(/^ {2}count-rows \[/m);

      // Warm workers outlive the run that started them: the next run finds them and starts none.
      const fanout = () =>
        runGantry(
          'run',
          'test/fixtures/workflows/suite.ts',
          '--task',
          'fanout',
          '--team',
          'ml',
          '--input',
          '{"n":50,"cold":0}',
          '--nats',
          url,
          '--no-progress',
        );
      const first = await fanout();
      expect(first.code, first.err).toBe(0);
      expect(first.out).toMatch(/warm worker 1 of 1–2/);
      const second = await fanout();
      expect(second.code, second.err).toBe(0);
      expect(second.out).toMatch(/^square +sim-aws\/cpu-spot \(spot\) +50 /m);
      expect(second.out).not.toMatch(/warm worker/);
    } finally {
      await system.stop();
    }
  }, 60_000);
});
