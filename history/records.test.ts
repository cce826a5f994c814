/**
 * The check by hand of a usage agrees with its schema: every record it lets through the schema accepts
 * as well, and it lets through every one the schema accepts, over a table of each field's values.
 */
import { describe, expect, it } from 'vitest';
import { isPlainUsage, parseEntry, usageRecord } from './records.ts';

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
