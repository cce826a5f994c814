import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runGantry } from '../../test/cli.ts';

describe('gantry logs', () => {
  it("runs the Python example and prints its training step's log", async () => {
    const state = mkdtempSync(join(tmpdir(), 'gantry-logs-'));
    const run = await runGantry(
      'run',
      'examples/workflows/python-train.ts',
      '--team',
      'research',
      '--input',
      '{"rows":2000}',
      '--state',
      state,
      '-o',
      'json',
    );
    expect(run.err).toBe('');
    const result = JSON.parse(run.out) as { runId: string; output: { a: number; b: number; mse: number } };
    expect(result.output.a).toBeCloseTo(2.5, 1);
    expect(result.output.b).toBeCloseTo(1, 1);
    expect(result.output.mse).toBeLessThan(0.01);

    const logs = await runGantry('logs', result.runId, 'train-py', '--state', state);
    expect(logs.code).toBe(0);
    const lines = logs.out.split('\n');
    expect(lines[0]).toMatch(
      new RegExp(`^==> train-py ${result.runId}-\\w+ attempt 1 on \\S+: succeeded <==$`),
    );
    expect(lines[1]).toBe('training on 2000 rows for 200 epochs (GANTRY_ATTEMPT=0)');
    expect(lines).toContain('epoch 200: loss 0.0034');

    const all = await runGantry('logs', result.runId, '--state', state);
    expect(all.out).toBe(logs.out);
    const ts = await runGantry('logs', result.runId, 'py-evaluate', '--state', state);
    expect([ts.code, ts.err]).toEqual([
      0,
      'no logs for py-evaluate: logs are kept for container and command tasks\n',
    ]);
    const none = await runGantry('logs', result.runId, 'nope', '--state', state);
    expect([none.code, none.err]).toEqual([
      2,
      `gantry: run ${result.runId} has no task 'nope' (it ran: py-preprocess, train-py, py-evaluate, python-train)\n`,
    ]);
  }, 60_000);
});
