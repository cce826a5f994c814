import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { contentRef, openLocalArtifacts } from './artifacts.ts';
import {
  fromErrorMsg,
  NonRetriableError,
  OutOfMemoryError,
  PolicyRefusedError,
  RetryAfterError,
  TaskError,
  toErrorMsg,
} from './errors.ts';
import { type LineageRecord, lineageDot, lineageGraph, lineageText } from './lineage.ts';
import { formatUsd } from './cost.ts';
import { progressLines } from './progress.ts';
import { map, task } from './index.ts';
import { checkValue, decodeValue, encodeValue, valueHash } from './values.ts';

describe('typed errors on the wire', () => {
  it.each([
    [new OutOfMemoryError('oom', { memoryMiB: 512 }), OutOfMemoryError],
    [new RetryAfterError('slow down', 250), RetryAfterError],
    [new NonRetriableError('bad shard', { shard: 3 }), NonRetriableError],
    [new PolicyRefusedError('refused', { policy: 'ml', field: 'resources.memory' }), PolicyRefusedError],
  ])('%s comes back as its class with its data', (err, Cls) => {
    const back = fromErrorMsg(JSON.parse(JSON.stringify(toErrorMsg(err))), { task: 't', execution: 'e' });
    expect(back).toBeInstanceOf(Cls);
    expect(back).toBeInstanceOf(TaskError);
    expect(back.message).toBe(err.message);
    expect(back.data).toEqual(err.data);
    expect(back.task).toBe('t');
  });

  it('keeps typed accessors', () => {
    expect((fromErrorMsg(toErrorMsg(new RetryAfterError('x', 250))) as RetryAfterError).delayMs).toBe(250);
    expect(
      (fromErrorMsg(toErrorMsg(new OutOfMemoryError('x', { memoryMiB: 64 }))) as OutOfMemoryError).memoryMiB,
    ).toBe(64);
  });

  it("a user's own error keeps its name and message, as a TaskError", () => {
    class ShardError extends Error {
      override name = 'ShardError';
    }
    const back = fromErrorMsg(toErrorMsg(new ShardError('shard 7 is empty')));
    expect(back.name).toBe('ShardError');
    expect(back.message).toBe('shard 7 is empty');
    expect(back).toBeInstanceOf(TaskError);
    expect(fromErrorMsg(toErrorMsg('a string')).message).toBe('a string');
  });
});

describe('values', () => {
  it('small values go inline, large ones by reference, both with a content hash', async () => {
    const artifacts = await openLocalArtifacts(mkdtempSync(join(tmpdir(), 'gantry-art-')));
    const small = await encodeValue({ a: 1 }, artifacts);
    expect(small).toEqual({ inline: { a: 1 }, hash: contentRef('{"a":1}') });
    const bigValue = { rows: 'x'.repeat(20_000) };
    const big = await encodeValue(bigValue, artifacts);
    expect('ref' in big && big.bytes).toBe(JSON.stringify(bigValue).length);
    expect(valueHash(big)).toBe(contentRef(JSON.stringify(bigValue)));
    expect(await decodeValue(big, artifacts)).toEqual(bigValue);
    // Same content, same artifact.
    expect(await encodeValue(bigValue, artifacts)).toEqual(big);
  });

  it('a missing artifact is a clear error', async () => {
    const artifacts = await openLocalArtifacts(mkdtempSync(join(tmpdir(), 'gantry-art-')));
    await expect(decodeValue({ ref: `sha256:${'0'.repeat(64)}`, bytes: 3 }, artifacts)).rejects.toThrow(
      /artifact sha256:0+ is not in the artifact store/,
    );
  });

  it('schema failures name the task, the side and the field', () => {
    const schema = z.object({ data: z.object({ rows: z.int() }) });
    expect(() => checkValue(schema, { data: { rows: 'many' } }, { task: 'train', side: 'input' })).toThrow(
      'train: input.data.rows: expected number, received string',
    );
    expect(checkValue(z.void(), null, { task: 't', side: 'output' })).toBeUndefined();
  });
});

describe('task definitions', () => {
  it('refuses bad names and two different tasks with one name', () => {
    expect(() => task({ name: 'has space', input: z.int(), output: z.int() }, async (n) => n)).toThrow(
      /task name 'has space'/,
    );
    task({ name: 'unique-once', input: z.int(), output: z.int() }, async (n) => n);
    expect(() => task({ name: 'unique-once', input: z.int(), output: z.int() }, async (n) => n + 1)).toThrow(
      /two different tasks are named 'unique-once'/,
    );
  });

  it('calling a task or map outside a workflow says how to run one', async () => {
    const t = task({ name: 'outside', input: z.int(), output: z.int() }, async (n) => n);
    await expect(t(1)).rejects.toThrow(/called outside a workflow/);
    await expect(map(t, [1])).rejects.toThrow(/outside a workflow/);
  });
});

const rec = (over: Partial<LineageRecord>): LineageRecord => ({
  run: 'r1',
  execution: 'x',
  task: 't',
  codeHash: 'c',
  attempt: 0,
  input: 'sha256:in',
  asked: {},
  override: false,
  preemptions: 0,
  startedAt: 0,
  endedAt: 1,
  costUsd: 0,
  cached: false,
  warm: false,
  ...over,
});

describe('lineage graph', () => {
  const records = [
    rec({ run: 'r1', execution: 'a', task: 'load', input: 'sha256:src', output: 'sha256:raw' }),
    rec({
      run: 'r1',
      execution: 'b',
      task: 'clean',
      input: 'sha256:raw',
      output: 'sha256:clean',
      attempt: 0,
      startedAt: 1,
      error: { name: 'OutOfMemoryError', message: 'oom' },
    }),
    rec({
      run: 'r1',
      execution: 'b',
      task: 'clean',
      input: 'sha256:raw',
      output: 'sha256:clean',
      attempt: 1,
      startedAt: 2,
    }),
    rec({
      run: 'r2',
      execution: 'c',
      task: 'train',
      input: 'sha256:clean',
      output: 'sha256:model',
      startedAt: 5,
    }),
    rec({ run: 'r3', execution: 'd', task: 'unrelated', input: 'sha256:other', output: 'sha256:x' }),
  ];

  it('upstream of an artifact crosses runs and keeps the final attempt', () => {
    const g = lineageGraph(records, 'sha256:model')!;
    expect(g.executions.map((e) => `${e.run}:${e.task}:${e.attempt}`)).toEqual([
      'r1:load:0',
      'r1:clean:1',
      'r2:train:0',
    ]);
    expect(g.edges).toContainEqual({ from: 'sha256:raw', to: 'b', kind: 'input', whole: true });
  });

  it('data flows through artifacts inside inputs and outputs, and calls are edges', () => {
    const nested = [
      rec({ run: 'r1', execution: 'w', task: 'pipeline', input: 'sha256:args', output: 'sha256:result' }),
      rec({
        run: 'r1',
        execution: 'ds',
        parent: 'w',
        task: 'dataset',
        input: 'sha256:q',
        output: 'sha256:ds',
        startedAt: 1,
      }),
      // train({ data, lr }): its input is a new value with the dataset inside.
      rec({
        run: 'r1',
        execution: 'tr',
        parent: 'w',
        task: 'train',
        input: 'sha256:data-lr',
        refs: { input: ['sha256:ds'], output: ['sha256:weights'] },
        output: 'sha256:model',
        startedAt: 2,
      }),
      rec({
        run: 'r2',
        execution: 'ev',
        task: 'evaluate',
        input: 'sha256:weights',
        output: 'sha256:score',
        startedAt: 3,
      }),
    ];
    const down = lineageGraph(nested, 'sha256:ds', { downstream: true })!;
    expect(down.executions.map((e) => e.task)).toEqual(['train', 'evaluate']);
    expect(down.edges).toContainEqual({ from: 'sha256:ds', to: 'tr', kind: 'input', whole: false });
    expect(lineageGraph(nested, 'sha256:ds', { downstream: true, depth: 1 })!.executions).toHaveLength(1);
    const up = lineageGraph(nested, 'sha256:score')!;
    expect(up.executions.map((e) => e.task)).toEqual(['dataset', 'train', 'evaluate']);
    const run = lineageGraph(nested, 'r1')!;
    expect(run.edges).toContainEqual({ from: 'w', to: 'tr', kind: 'call' });
    expect(lineageDot(run)).toContain('"w" -> "tr" [style=dashed,label="calls"];');
    expect(lineageDot(run)).toContain('"sha256:ds" -> "tr" [style=dotted];');
  });

  it('downstream follows consumers', () => {
    const g = lineageGraph(records, 'sha256:raw', { downstream: true })!;
    expect(g.executions.map((e) => e.task)).toEqual(['clean', 'train']);
  });

  it('a run id shows its executions and what fed them', () => {
    expect(lineageGraph(records, 'r2')!.executions.map((e) => e.task)).toEqual(['load', 'clean', 'train']);
    expect(lineageGraph(records, 'nothing')).toBeUndefined();
  });

  it('renders as text and DOT', () => {
    const g = lineageGraph(records, 'r2')!;
    expect(lineageText(g)).toContain('train [c] ok  in clean → out model');
    const dot = lineageDot(g);
    expect(dot).toMatch(/^digraph lineage \{/);
    expect(dot).toContain('"sha256:clean" -> "c";');
  });

  it('writes money as the console does: nothing spent is $0', () => {
    const driver = rec({ execution: 'w', task: 'pipeline', input: 'sha256:args', output: 'sha256:out' });
    const paid = rec({ execution: 'p', task: 'fit', parent: 'w', input: 'sha256:args', costUsd: 0.01234 });
    const text = lineageText({ root: 'r1', executions: [driver, paid], edges: [] });
    expect(text).toMatch(/^pipeline \[w\] ok .* driver {2}\$0 {2}run r1$/m);
    expect(text).toMatch(/^ {2}fit \[p\] ok .* driver {2}\$0\.0123 {2}run r1$/m);
    expect([0, 0.00004, 0.5, 12.345, 250.4].map(formatUsd)).toEqual([
      '$0',
      '$0.0000',
      '$0.5000',
      '$12.35',
      '$250',
    ]);
  });
});

describe('progress lines', () => {
  it('prints counts and a final line', () => {
    const lines: string[] = [];
    const p = progressLines('map', 10, (l) => lines.push(l), 0);
    p.tick(4);
    p.tick(6);
    p.done();
    expect(lines[0]).toMatch(/^map: 4\/10 \(40%\)/);
    expect(lines.at(-1)).toMatch(/^map: 10\/10 \(100%\)/);
  });
});
