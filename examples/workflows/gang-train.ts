/**
 * Distributed training on a gang: `train` asks for 2 nodes × 8 H100, placed together in one pool of one
 * cluster or not at all. Each member gets its rank and the rendezvous (`ctx.gang`; a command task gets
 * MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK and NODE_RANK in its environment, what `torchrun` reads).
 * Run it with
 *
 *   node bin/gantry.js run examples/workflows/gang-train.ts --team research --input '{"nodes":2}'
 *
 * The example research policy's H100 quota (16 + 8 borrowable) holds a 4-node gang (32 H100) whole:
 * `--input '{"nodes":4}'` prints `held … (quota)` instead of starting part of it.
 */
import { gangEnv, task, z } from '../../runtime/index.ts';

/** One member of the gang: here it reports what a training script would be started with. */
export const train = task(
  {
    name: 'gang-train',
    input: z.object({ steps: z.int().positive() }),
    output: z.object({ env: z.record(z.string(), z.string()), node: z.string(), pool: z.string() }),
    resources: { gpu: 'H100:8', cpu: 96, memory: '1000Gi', nodes: 2, duration: '2h' },
  },
  async (_, ctx) => ({ env: gangEnv(ctx.gang!), node: ctx.placement.node, pool: ctx.placement.pool }),
);

export default task(
  {
    name: 'gang-pipeline',
    input: z.object({ nodes: z.int().min(2).max(8).default(2) }),
    output: z.object({ env: z.record(z.string(), z.string()), node: z.string(), pool: z.string() }),
  },
  // The call's output is rank 0's; `override` asks for another gang size for this call.
  async ({ nodes }) => train.override({ nodes })({ steps: 100 }),
);
