/**
 * An ML pipeline: preprocess on CPU spot, train on H100 — on all 8 GPUs of a node when the data turns
 * out large — and evaluate shards on L4s. Run it with
 *
 *   node bin/gantry.js run examples/workflows/train.ts --team research \
 *     --input '{"source":"s3://bucket/clicks","rows":80000000,"epochs":3}'
 *
 * or `npm run demo`, which also reclaims the spot node under training to show the recovery.
 */
import { map, task, z } from '../../runtime/index.ts';

const Dataset = z.object({
  uri: z.string(),
  rows: z.int().positive(),
  sizeGiB: z.number(),
  shards: z.array(z.string()),
});
const Model = z.object({ uri: z.string(), gpus: z.int(), trainedOn: z.string(), loss: z.number() });

export const preprocess = task(
  {
    name: 'preprocess',
    input: z.object({ source: z.string(), rows: z.int().positive() }),
    output: Dataset,
    // Spot is required: cheap, and preprocessing can simply start again if the node is reclaimed.
    resources: { profile: 'cpu-prep', spot: 'required' },
    retries: 2,
  },
  // Every task here sleeps for the time its work would take, on its cluster's clock: `ctx.sleep`
  // runs faster on simulated clusters (`--speedup`) and the task is charged for the simulated time.
  async ({ source, rows }, ctx) => {
    await ctx.sleep(90_000);
    const shards = Array.from({ length: 8 }, (_, i) => `${source}/clean/shard-${i}.parquet`);
    return { uri: `${source}/clean`, rows, sizeGiB: Math.round((rows * 2.5) / 1e6), shards };
  },
);

export const train = task(
  {
    name: 'train',
    input: z.object({ data: Dataset, epochs: z.int().positive() }),
    output: Model,
    resources: { gpu: 'H100:1', cpu: 12, memory: '128Gi', duration: '2h' },
    retries: 2,
  },
  async ({ data, epochs }, ctx) => {
    const gpus = ctx.placement.gpuMilli / 1000;
    await ctx.sleep((180_000 * epochs) / Math.max(1, gpus / 2));
    const where = `${ctx.placement.cluster}/${ctx.placement.pool}`;
    return {
      uri: `${data.uri}/model-e${epochs}`,
      gpus,
      trainedOn: where,
      loss: 0.9 / (epochs * Math.sqrt(gpus)),
    };
  },
);

export const evaluate = task(
  {
    name: 'evaluate',
    input: z.object({ model: z.string(), shard: z.string() }),
    output: z.object({ shard: z.string(), accuracy: z.number() }),
    resources: { profile: 'l4-eval' },
    retries: 1,
  },
  async ({ model, shard }, ctx) => {
    await ctx.sleep(24_000);
    const seed = [...`${model}${shard}`].reduce((a, c) => (a * 31 + c.charCodeAt(0)) % 1000, 7);
    return { shard, accuracy: 0.9 + seed / 20_000 };
  },
);

export default task(
  {
    name: 'train-pipeline',
    input: z.object({ source: z.string(), rows: z.int().positive(), epochs: z.int().positive().default(3) }),
    output: z.object({ model: Model, accuracy: z.number() }),
  },
  async ({ source, rows, epochs }) => {
    const data = await preprocess({ source, rows });
    // Decided at run time, from what preprocessing found: large data trains on a whole 8-GPU node.
    const model =
      data.sizeGiB > 100
        ? await train.override({ gpu: 'H100:8', cpu: 96, memory: '1Ti' })({ data, epochs })
        : await train({ data, epochs });
    const scores = await map(
      evaluate,
      data.shards.map((shard) => ({ model: model.uri, shard })),
      { concurrency: 4 },
    );
    const accuracy = scores.reduce((a, s) => a + s.accuracy, 0) / scores.length;
    return { model, accuracy: Math.round(accuracy * 10_000) / 10_000 };
  },
);
