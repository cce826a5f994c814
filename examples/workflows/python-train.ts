/**
 * A Python training step between TypeScript preprocessing and evaluation. `train` is a command task:
 * Gantry runs `python3 examples/python/train.py` where the broker places it, with its typed inputs as
 * files and its outputs read back (the data and the model travel by reference). Run it with
 *
 *   node bin/gantry.js run examples/workflows/python-train.ts --team research --input '{"rows":2000}'
 *
 * and read what the Python step printed with `node bin/gantry.js logs <run-id> train`.
 */
import { fileURLToPath } from 'node:url';
import { Artifact, commandTask, task, z } from '../../runtime/index.ts';

const TRAIN_PY = fileURLToPath(new URL('../python/train.py', import.meta.url));
const Model = z.object({ a: z.number(), b: z.number() });

/** Makes a noisy line y = 2.5 x + 1 and stores it as CSV (by reference: it may be large). */
export const preprocess = task(
  {
    name: 'py-preprocess',
    input: z.object({ rows: z.int().positive().max(1_000_000) }),
    output: z.object({ data: Artifact, holdout: z.array(z.tuple([z.number(), z.number()])) }),
    resources: { cpu: 2, memory: '2Gi', spot: 'preferred' },
  },
  async ({ rows }, ctx) => {
    let seed = 42;
    const noise = () => ((seed = (seed * 16807) % 2147483647) / 2147483647 - 0.5) * 0.2;
    const point = (i: number): [number, number] => {
      const x = (i % 1000) / 1000;
      return [x, 2.5 * x + 1 + noise()];
    };
    const csv = Array.from({ length: rows }, (_, i) => point(i).join(',')).join('\n');
    const bytes = new TextEncoder().encode(csv);
    const data = { artifact: await ctx.artifacts.put(bytes), bytes: bytes.length };
    return { data, holdout: Array.from({ length: 100 }, (_, i) => point(rows + i * 7)) };
  },
);

/** The Python step. */
export const train = commandTask({
  name: 'train-py',
  command: 'python3',
  args: [TRAIN_PY],
  inputs: z.object({ data: Artifact, epochs: z.int().positive(), lr: z.number().positive() }),
  outputs: z.object({ model: Artifact, loss: z.number() }),
  resources: { cpu: 4, memory: '1Gi' },
  retries: 2,
});

/** Mean squared error of the model on the held-out points. */
export const evaluate = task(
  {
    name: 'py-evaluate',
    input: z.object({ model: Artifact, holdout: z.array(z.tuple([z.number(), z.number()])) }),
    output: z.object({ a: z.number(), b: z.number(), mse: z.number() }),
    resources: { cpu: 1, memory: '1Gi' },
  },
  async ({ model, holdout }, ctx) => {
    const { a, b } = Model.parse(
      JSON.parse(new TextDecoder().decode(await ctx.artifacts.get(model.artifact))),
    );
    const mse = holdout.reduce((s, [x, y]) => s + (a * x + b - y) ** 2, 0) / holdout.length;
    const round = (v: number) => Math.round(v * 1000) / 1000;
    return { a: round(a), b: round(b), mse: round(mse) };
  },
);

export default task(
  {
    name: 'python-train',
    input: z.object({ rows: z.int().positive().max(1_000_000), epochs: z.int().positive().default(200) }),
    output: z.object({ a: z.number(), b: z.number(), mse: z.number(), trainLoss: z.number() }),
  },
  async ({ rows, epochs }) => {
    const { data, holdout } = await preprocess({ rows });
    const { model, loss } = await train({ data, epochs, lr: 0.5 });
    return { ...(await evaluate({ model, holdout })), trainLoss: Math.round(loss * 1000) / 1000 };
  },
);
