/**
 * The check by hand of a usage agrees with its schema: every record it lets through the schema accepts
 * as well, and it lets through every one the schema accepts, over a table of each field's values.
 */
import { describe, expect, it } from 'vitest';
import { executionStartRecord, lineageRecord } from '../protocol/index.ts';
import { isPlainExecution, isPlainUsage, parseEntry, usageRecord } from './records.ts';

const usage: Record<string, unknown> = {
  kind: 'usage',
  at: 1_700_000_000_000,
  cluster: 'aws',
  pool: 'h100',
  node: 'h100-1',
  instanceType: 'p5.48xlarge',
  capacityType: 'spot',
  gpuModel: 'H100',
  lease: 'l-1',
  request: 'r-1',
  gpus: 1,
  cpuMilli: 4000,
  memoryMiB: 16384,
  share: 0.125,
  nodePricePerHour: 98.32,
  team: 'research',
  workflow: 'train',
  run: 'run-1',
  task: 't0',
  attempt: 0,
  start: 1_699_999_000_000,
  end: 1_700_000_000_000,
  ended: 'succeeded',
  timeScale: 60,
};

const VALUES: unknown[] = [undefined, null, '', 'x', 0, -1, 1.5, 2 ** 53, NaN, Infinity, true, {}, []];
const mutations = Object.keys(usage).flatMap((field) =>
  VALUES.map((v): [string, unknown, Record<string, unknown>] => {
    const r = { ...usage, [field]: v };
    if (v === undefined) delete r[field];
    return [field, v, r];
  }),
);

describe('isPlainUsage', () => {
  it('lets a well-formed usage through, with or without the optional fields and with more', () => {
    expect(isPlainUsage(usage)).toBe(true);
    const { workflow: _w, run: _r, task: _t, timeScale: _s, ...bare } = usage;
    expect(isPlainUsage({ ...bare, gpuModel: null })).toBe(true);
    expect(isPlainUsage({ ...usage, extra: 1 })).toBe(true);
    expect(isPlainUsage([usage])).toBe(false);
    expect(isPlainUsage(null)).toBe(false);
  });

  it.each(mutations)('agrees with the schema when %s is %o', (_field, _value, record) => {
    expect(isPlainUsage(record)).toBe(usageRecord.safeParse(record).success);
  });

  it('leaves the refusal to the schema, which names the field', () => {
    const bad = { ...usage, share: -1 };
    const data = new TextEncoder().encode(JSON.stringify([usage, bad]));
    const [a, b] = parseEntry('broker', data);
    expect(a).toEqual({ ok: true, record: usage });
    expect(b).toMatchObject({ ok: false, error: expect.stringMatching(/^share: /) });
  });
});

const lineage: Record<string, unknown> = {
  run: 'run-1',
  execution: 'run-1-0',
  parent: 'run-1-w',
  task: 'train',
  codeHash: 'c0ffee',
  attempt: 1,
  input: `sha256:${'a'.repeat(64)}`,
  output: `sha256:${'b'.repeat(64)}`,
  refs: { input: [`sha256:${'c'.repeat(64)}`], output: [] },
  stored: [{ hash: `sha256:${'b'.repeat(64)}`, bytes: 2048 }],
  error: { name: 'TaskError', message: 'no' },
  asked: {
    profile: 'gpu',
    cpu: 4,
    memory: '16Gi',
    gpu: ['H100', 1],
    spot: 'allowed',
    duration: '1h',
    nodes: 2,
  },
  override: false,
  placement: {
    cluster: 'aws',
    pool: 'h100',
    node: 'h100-1',
    capacityType: 'spot',
    pricePerHour: 98.32,
    cpuMilli: 4000,
    memoryMiB: 16384,
    gpuMilli: 1000,
    gpuModel: 'H100',
  },
  preemptions: 0,
  logs: `sha256:${'d'.repeat(64)}`,
  startedAt: 1_700_000_000_000,
  endedAt: 1_700_000_060_000,
  costUsd: 1.5,
  cached: false,
  warm: true,
};
const START_FIELDS = [
  'run',
  'execution',
  'parent',
  'task',
  'codeHash',
  'attempt',
  'input',
  'asked',
  'override',
  'placement',
  'startedAt',
];
const start: Record<string, unknown> = {
  kind: 'start',
  ...Object.fromEntries(START_FIELDS.map((f) => [f, lineage[f]])),
};

/** A copy of `record` with the field at `path` (dots between keys) set to `v`, or removed when undefined. */
function withField(record: Record<string, unknown>, path: string, v: unknown): Record<string, unknown> {
  const out = structuredClone(record);
  const keys = path.split('.');
  let at = out as Record<string, unknown>;
  for (const k of keys.slice(0, -1)) at = at[k] as Record<string, unknown>;
  const last = keys.at(-1)!;
  if (v === undefined) delete at[last];
  else at[last] = v;
  return out;
}

const NESTED = [
  'refs.input',
  'refs.output',
  'refs.input.0',
  'refs.extra',
  'stored.0',
  'stored.0.hash',
  'stored.0.bytes',
  'stored.0.extra',
  'error.name',
  'error.message',
  'asked.profile',
  'asked.cpu',
  'asked.memory',
  'asked.gpu',
  'asked.gpu.0',
  'asked.spot',
  'asked.duration',
  'asked.nodes',
  'asked.extra',
  'placement.cluster',
  'placement.pricePerHour',
  'placement.gpuModel',
  'placement.gpuMilli',
];
const LONG = ['x'.repeat(201), 'x'.repeat(301)];
const executionMutations = (record: Record<string, unknown>, paths: string[]) =>
  paths.flatMap((path) =>
    [...VALUES, ...LONG, 'allowed', 'start', 'run'].map((v): [string, unknown, Record<string, unknown>] => [
      path,
      v,
      withField(record, path, v),
    ]),
  );

describe('isPlainExecution', () => {
  it('lets well-formed starts and ends through, with or without the optional fields', () => {
    expect(isPlainExecution(lineage)).toBe(true);
    expect(isPlainExecution(start)).toBe(true);
    const {
      parent: _p,
      output: _o,
      refs: _r,
      stored: _s,
      error: _e,
      placement: _l,
      logs: _g,
      ...bare
    } = lineage;
    expect(isPlainExecution({ ...bare, asked: {} })).toBe(true);
    expect(isPlainExecution({ ...lineage, kind: 'run' })).toBe(false);
    expect(isPlainExecution([lineage])).toBe(false);
  });

  it.each(executionMutations(lineage, [...Object.keys(lineage), ...NESTED]))(
    'agrees with the lineage schema when %s is %o',
    (_field, _value, record) => {
      const plain = isPlainExecution(record);
      expect(plain).toBe(lineageRecord.safeParse(record).success && !('kind' in record));
    },
  );

  it.each(
    executionMutations(start, [...Object.keys(start), ...NESTED.filter((p) => /^(asked|placement)/.test(p))]),
  )('agrees with the start schema when %s is %o', (_field, _value, record) => {
    expect(isPlainExecution(record)).toBe(executionStartRecord.safeParse(record).success);
  });

  it('checks each record against the schema of its kind, which names the field', () => {
    const bad = { ...lineage, attempt: -1 };
    const badStart = { ...start, input: '' };
    const data = new TextEncoder().encode(
      JSON.stringify([lineage, start, bad, badStart, { not: 'a record' }]),
    );
    const [a, b, c, d, e] = parseEntry('runtime', data);
    expect(a).toEqual({ ok: true, record: lineage });
    expect(b).toEqual({ ok: true, record: start });
    expect(c).toMatchObject({ ok: false, error: expect.stringMatching(/^attempt: /) });
    expect(d).toMatchObject({ ok: false, error: expect.stringMatching(/^input: /) });
    expect(e).toMatchObject({ ok: false, error: expect.stringMatching(/^run: /) });
  });
});
