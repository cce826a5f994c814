/** Ids and placements as the runtime hands them out. */
import { randomBytes } from 'node:crypto';
import type { LeaseMsg } from '../protocol/index.ts';
import type { LineageRecord } from './lineage.ts';
import type { Placement } from './task.ts';

/** A short random id token. */
export function newId(prefix: string): string {
  return `${prefix}${randomBytes(6)
    .toString('base64url')
    .replace(/[^A-Za-z0-9]/g, 'x')}`;
}

/** Where a lease runs, and at what price; `node` once the agent named it. */
export function placementOf(lease: LeaseMsg, node?: string): Placement {
  return {
    cluster: lease.cluster,
    pool: lease.pool,
    node: node ?? lease.node,
    capacityType: lease.capacityType,
    pricePerHour: lease.pricePerHour,
    cpuMilli: lease.cpuMilli,
    memoryMiB: lease.memoryMiB,
    gpuMilli: lease.gpuMilli,
    gpuModel: lease.gpuModel,
    why: lease.why,
  };
}

/** A placement as lineage keeps it (without the solver's explanation). */
export function lineagePlacement(lease: LeaseMsg): NonNullable<LineageRecord['placement']> {
  const { why: _why, ...p } = placementOf(lease);
  return p;
}
