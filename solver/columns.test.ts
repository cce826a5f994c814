import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { dominatedTypes, type NodeType } from './columns.ts';
import { price } from './pricer.ts';

/** Every way of filling one node, by enumeration: the pricer's answer must match it. */
function bruteForce(type: NodeType, pi: Float64Array, demand?: readonly number[]): number {
  let best = 0;
  const taken = new Map<number, number>();
  const walk = (i: number, left: number[], value: number) => {
    best = Math.max(best, value);
    if (i >= type.items.length) return;
    const it = type.items[i]!;
    const w = [it.cpu, it.mem, it.gpu, it.whole];
    const had = taken.get(it.group) ?? 0;
    for (let k = 0; w.every((x, r) => x * k <= left[r]!) && (!demand || had + k <= demand[it.group]!); k++) {
      taken.set(it.group, had + k);
      walk(
        i + 1,
        left.map((l, r) => l - k * w[r]!),
        value + k * (pi[it.group]! - it.cost),
      );
    }
    taken.set(it.group, had);
  };
  walk(0, [type.cpuMilli, type.memoryMiB, type.gpuMilli, type.wholeGpus], 0);
  return best;
}

/**
 * The pricer leaves out tasks worth at most 1e-7 each (and says so in its upper bound): its best may fall
 * short of the enumeration by that much per task that fits (16 at most here).
 */
function expectBest(got: number, best: number): void {
  expect(got).toBeLessThanOrEqual(best + 1e-9);
  expect(got).toBeGreaterThanOrEqual(best - 16e-7 - 1e-9);
}

function nodeType(items: { cpu: number; mem: number; gpus: number; cost: number }[], cost = 1): NodeType {
  return {
    pool: 0,
    bucket: 3600,
    count: 1e6,
    cost,
    cpuMilli: 8000,
    memoryMiB: 32_768,
    gpuMilli: 4000,
    wholeGpus: 4,
    items: items.map((x, i) => ({
      option: i,
      group: i,
      cost: x.cost,
      cpu: x.cpu,
      mem: x.mem,
      gpu: x.gpus * 1000,
      whole: x.gpus,
    })),
  };
}

describe('the node-level pricer', () => {
  it('finds the most valuable node contents, same-shape options collapsed and dominated shapes dropped', () => {
    const item = fc.record({
      cpu: fc.constantFrom(500, 1000, 2000, 4000),
      mem: fc.constantFrom(1024, 4096, 16_384),
      gpus: fc.constantFrom(0, 0, 1, 2),
      cost: fc.constantFrom(0, 0.1),
    });
    fc.assert(
      fc.property(
        fc.array(item, { minLength: 1, maxLength: 7 }),
        fc.array(fc.double({ min: 0, max: 3, noNaN: true }), { minLength: 7, maxLength: 7 }),
        (items, duals) => {
          const t = nodeType(items);
          const pi = Float64Array.from(duals);
          const got = price(t, pi);
          expect(got.exact).toBe(true);
          expectBest(got.value, bruteForce(t, pi));
          // What it returns is the value it claims, and fits one node.
          let v = 0;
          let cpu = 0;
          for (const [oi, k] of got.counts) {
            v += k * (pi[oi]! - t.items[oi]!.cost);
            cpu += k * t.items[oi]!.cpu;
          }
          expect(v).toBeCloseTo(got.value, 9);
          expect(cpu).toBeLessThanOrEqual(t.cpuMilli);
          // Stopped early, the search still bounds the best node from above (the Lagrangian bound's term).
          const cut = price(t, pi, 3);
          expect(cut.upper).toBeGreaterThanOrEqual(bruteForce(t, pi) - 1e-9);
          // A quota's dual charged per option lowers every item's worth by exactly that much.
          const extra = Float64Array.from(items.map((_x, i) => (i % 2) * 0.5));
          const shifted = {
            ...t,
            items: t.items.map((it) => ({ ...it, cost: it.cost + extra[it.option]! })),
          };
          expectBest(price(t, pi, undefined, extra).value, bruteForce(shifted, pi));
        },
      ),
      { numRuns: 150 },
    );
  });

  it('takes no more tasks of a group than the group has, same-shape options best first', () => {
    const item = fc.record({
      cpu: fc.constantFrom(500, 1000, 2000),
      mem: fc.constantFrom(1024, 4096),
      gpus: fc.constantFrom(0, 1),
      cost: fc.constantFrom(0, 0.1),
    });
    fc.assert(
      fc.property(
        fc.array(item, { minLength: 1, maxLength: 6 }),
        fc.array(fc.double({ min: 0, max: 3, noNaN: true }), { minLength: 6, maxLength: 6 }),
        fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 6, maxLength: 6 }),
        (items, duals, demand) => {
          const t = nodeType(items);
          const pi = Float64Array.from(duals);
          const got = price(t, pi, undefined, undefined, demand);
          expect(got.exact).toBe(true);
          expectBest(got.value, bruteForce(t, pi, demand));
          for (const [oi, k] of got.counts) expect(k).toBeLessThanOrEqual(demand[t.items[oi]!.group]!);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('skips a new-node type that another no dearer and no smaller covers, and keeps distinct ones', () => {
    const items = [{ cpu: 1000, mem: 1024, gpus: 0, cost: 0 }];
    const cheap = nodeType(items, 1);
    const dear = nodeType(items, 2);
    const small = { ...nodeType(items, 0.5), cpuMilli: 4000 };
    expect(dominatedTypes([cheap, dear, small], [false, false, false])).toEqual([false, true, false]);
    // A type limited in count is never dropped: its μ makes it a different column.
    expect(dominatedTypes([cheap, dear], [false, true])).toEqual([false, false]);
  });
});
