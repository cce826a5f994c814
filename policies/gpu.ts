/**
 * GPU model names as people and clouds write them, normalised to one canonical spelling.
 *
 * Canonical names are what the solver compares: a pool with `A100-80GB` GPUs never satisfies a task that
 * asks for `A100` (the 40 GB part), and vice versa, unless the task lists both as alternatives.
 */

/** Canonical GPU models Gantry knows, with the memory of one device in GiB. */
export const GPU_MODELS = {
  H200: { memoryGiB: 141 },
  H100: { memoryGiB: 80 },
  'A100-80GB': { memoryGiB: 80 },
  A100: { memoryGiB: 40 },
  L40S: { memoryGiB: 48 },
  L4: { memoryGiB: 24 },
  A10G: { memoryGiB: 24 },
  A10: { memoryGiB: 24 },
  T4: { memoryGiB: 16 },
  'V100-32GB': { memoryGiB: 32 },
  V100: { memoryGiB: 16 },
  P100: { memoryGiB: 16 },
} as const;

/** A canonical GPU model name. */
export type GpuModel = keyof typeof GPU_MODELS;

// Keys are compared after lower-casing and dropping spaces, dashes and underscores.
const ALIASES: Record<string, GpuModel> = {
  h200: 'H200',
  h200141gb: 'H200',
  h100: 'H100',
  h10080gb: 'H100',
  h100sxm: 'H100',
  h100mega: 'H100',
  nvidiah100: 'H100',
  nvidiah10080gbhbm3: 'H100',
  a10080gb: 'A100-80GB',
  a100sxm480gb: 'A100-80GB',
  nvidiaa10080gb: 'A100-80GB',
  a100: 'A100',
  a10040gb: 'A100',
  a100sxm440gb: 'A100',
  nvidiaa100: 'A100',
  nvidiateslaa100: 'A100',
  l40s: 'L40S',
  nvidial40s: 'L40S',
  l4: 'L4',
  nvidial4: 'L4',
  a10g: 'A10G',
  nvidiaa10g: 'A10G',
  a10: 'A10',
  nvidiaa10: 'A10',
  t4: 'T4',
  teslat4: 'T4',
  nvidiateslat4: 'T4',
  v10032gb: 'V100-32GB',
  v100m32: 'V100-32GB',
  teslav10032gb: 'V100-32GB',
  v100: 'V100',
  v10016gb: 'V100',
  v100m16: 'V100',
  teslav100: 'V100',
  nvidiateslav100: 'V100',
  p100: 'P100',
  teslap100: 'P100',
};

function aliasKey(name: string): string {
  return name.toLowerCase().replace(/[\s_\-]/g, '');
}

/**
 * Returns the canonical model for a name or alias, or `undefined` when the name is not a known GPU.
 *
 * @example
 * normalizeGpuModel('nvidia-tesla-t4'); // 'T4'
 * normalizeGpuModel('a100-80gb');       // 'A100-80GB'
 */
export function normalizeGpuModel(name: string): GpuModel | undefined {
  return ALIASES[aliasKey(name)];
}

/** Whether `name` is already a canonical model name. */
export function isGpuModel(name: string): name is GpuModel {
  return Object.hasOwn(GPU_MODELS, name);
}

/** Every canonical model name, largest memory first. */
export const gpuModelNames: readonly GpuModel[] = (Object.keys(GPU_MODELS) as GpuModel[]).sort(
  (a, b) => GPU_MODELS[b].memoryGiB - GPU_MODELS[a].memoryGiB,
);
