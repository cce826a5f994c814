/**
 * Nodes as bins during packing: free capacity per resource and per GPU device, and what was put there.
 * Shared by the LP packer and the greedy baseline so both are feasible node by node in the same sense.
 */
import { emptyNode, type Group, type Option, tasksThatFit } from './groups.ts';
import type { PoolState } from './types.ts';

/** One node being filled: an existing node, or a new one the plan adds. */
export interface Bin {
  /** Existing node name, or `new:<pool id>#<n>`. */
  id: string;
  pool: number;
  existing: boolean;
  /** Longest planned duration this node is bought for (Infinity for existing nodes). */
  bucket: number;
  cpuMilli: number;
  memoryMiB: number;
  gpuMilli: number[];
  tasks: number;
  /** Devices a task took whole (so a task moved off the node gives back the right ones). */
  wholeTaken?: boolean[];
}

/** Bins for a pool's running nodes. */
export function existingBins(pool: PoolState, poolIndex: number): Bin[] {
  return pool.nodes.map((n) => ({
    id: n.name,
    pool: poolIndex,
    existing: true,
    bucket: Infinity,
    cpuMilli: n.freeCpuMilli,
    memoryMiB: n.freeMemoryMiB,
    gpuMilli: [...n.freeGpuMilli],
    tasks: 0,
  }));
}

/** A new, empty node of the pool bought for `bucket` seconds. */
export function newBin(pool: PoolState, poolIndex: number, ordinal: number, bucket: number): Bin {
  return {
    id: `new:${pool.id}#${ordinal}`,
    pool: poolIndex,
    existing: false,
    bucket,
    ...emptyNode(pool),
    tasks: 0,
  };
}

/** How many tasks of the option fit in the bin now. */
export function fitsIn(bin: Bin, g: Group, o: Option): number {
  if (!bin.existing && bin.bucket < g.durationSeconds) return 0;
  return tasksThatFit(bin, g.cpuMilli, g.memoryMiB, o.gpuMilli / 1000);
}

/** Puts `k` tasks of the option into the bin (the caller checked they fit). */
export function put(bin: Bin, g: Group, o: Option, k: number): void {
  bin.cpuMilli -= g.cpuMilli * k;
  bin.memoryMiB -= g.memoryMiB * k;
  bin.tasks += k;
  if (o.gpuMilli <= 0) return;
  for (let i = 0; i < k; i++) takeGpus(bin, o.gpuMilli);
}

/**
 * Takes `k` tasks of the option off the bin. Only tasks without a GPU or with whole GPUs can be taken
 * off (a shared device does not record whose share is whose); {@link movable} says which.
 */
export function unput(bin: Bin, g: Group, o: Option, k: number): void {
  bin.cpuMilli += g.cpuMilli * k;
  bin.memoryMiB += g.memoryMiB * k;
  bin.tasks -= k;
  if (o.gpuMilli <= 0) return;
  let give = (o.gpuMilli / 1000) * k;
  const taken = bin.wholeTaken ?? [];
  for (let d = 0; d < bin.gpuMilli.length && give > 0; d++) {
    if (taken[d]) {
      taken[d] = false;
      bin.gpuMilli[d] = 1000;
      give--;
    }
  }
}

/** Whether tasks of the option can be taken off a node again ({@link unput}). */
export function movable(o: Option): boolean {
  return o.gpuMilli <= 0 || o.gpuMilli % 1000 === 0;
}

function takeGpus(bin: Bin, milli: number): void {
  const devices = bin.gpuMilli;
  if (milli >= 1000) {
    let need = milli / 1000;
    bin.wholeTaken ??= devices.map(() => false);
    for (let d = 0; d < devices.length && need > 0; d++) {
      if (devices[d]! >= 1000) {
        devices[d] = 0;
        bin.wholeTaken[d] = true;
        need--;
      }
    }
    return;
  }
  // A shared device: the fullest one that still has room (best fit), so whole devices stay whole.
  let best = -1;
  for (let d = 0; d < devices.length; d++) {
    const f = devices[d]!;
    if (f >= milli && (best < 0 || f < devices[best]!)) best = d;
  }
  if (best >= 0) devices[best] = devices[best]! - milli;
}

/** Size used to order tasks for first-fit-decreasing: GPUs first, then cpu, then memory. */
export function taskSize(g: Group, o: Option): number {
  return o.gpuMilli * 1e9 + g.cpuMilli * 1e3 + g.memoryMiB / 1024;
}
