/**
 * Tasks of the runtime benchmarks, in their own module: workers import it to find them.
 */
import { map, task, z } from '../index.ts';

const reuse = { replicas: [2, 4] as [number, number], concurrency: 256, idleTtl: '2m' };

/** Does nothing, on warm workers. */
export const noop = task(
  { name: 'noop', input: z.int(), output: z.int(), resources: { cpu: 1, memory: '1Gi' }, reuse },
  async (n) => n,
);

/** Answers at once, on one warm worker: the latency probe. */
export const echo = task(
  {
    name: 'echo',
    input: z.int(),
    output: z.int(),
    resources: { cpu: 0.5, memory: '512Mi' },
    reuse: { replicas: 1, concurrency: 8, idleTtl: '2m' },
  },
  async (n) => n,
);

/** Maps `noop` over `items` numbers; returns how many came back in order. */
export const fanout = task(
  { name: 'bench-fanout', input: z.object({ items: z.int().positive() }), output: z.int() },
  async ({ items }) => {
    const out = await map(
      noop,
      Array.from({ length: items }, (_, i) => i),
      { label: 'noop' },
    );
    let inOrder = 0;
    for (let i = 0; i < out.length; i++) if (out[i] === i) inOrder++;
    return inOrder;
  },
);

/** Calls `echo` `calls` times one after another; returns each round trip in ms. */
export const latency = task(
  { name: 'bench-latency', input: z.object({ calls: z.int().positive() }), output: z.array(z.number()) },
  async ({ calls }) => {
    const times: number[] = [];
    for (let i = 0; i < calls; i++) {
      const t0 = performance.now();
      const v = await echo(i);
      times.push(performance.now() - t0);
      if (v !== i) throw new Error(`echo(${i}) returned ${v}`);
    }
    return times;
  },
);
