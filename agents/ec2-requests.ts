/**
 * The EC2 calls of the EC2 adapter and what their answers mean: the instant-fleet request of a pool,
 * which error codes are capacity, account limits or throttling, paged DescribeInstances, and spot prices.
 */
import { randomUUID } from 'node:crypto';
import {
  type CreateFleetCommandInput,
  type CreateFleetError,
  type EC2Client,
  type Instance,
  type _InstanceType,
  paginateDescribeInstances,
  paginateDescribeSpotPriceHistory,
} from '@aws-sdk/client-ec2';
import type { Pool } from '../policies/index.ts';
import type { LaunchRefusal } from './provisioner.ts';

/** The tags that mark an instance as a node of a Gantry cluster and pool, and the plan it came for. */
export const EC2_TAGS = {
  cluster: 'gantry.dev/cluster',
  pool: 'gantry.dev/pool',
  plannedId: 'gantry.dev/planned-id',
} as const;

/** How long the broker should plan around a pool after each kind of launch failure, ms. */
export interface Ec2RetryAfter {
  /** No capacity for the instance type, or the spot price is above the maximum. */
  capacityMs: number;
  /** An account limit: instances, vCPUs, spot requests. */
  limitMs: number;
  /** EC2 kept throttling after the SDK's own retries. */
  throttledMs: number;
}

/** 10 minutes for capacity, 30 for account limits, 1 for throttling. */
export const DEFAULT_EC2_RETRY_AFTER: Ec2RetryAfter = {
  capacityMs: 10 * 60_000,
  limitMs: 30 * 60_000,
  throttledMs: 60_000,
};

export type FailureKind = keyof Ec2RetryAfter;

export const EXHAUSTED_KIND: Record<FailureKind, LaunchRefusal['kind']> = {
  capacityMs: 'capacity',
  limitMs: 'quota',
  throttledMs: 'throttled',
};

export const FAILURE_KINDS: Record<string, FailureKind> = {
  InsufficientInstanceCapacity: 'capacityMs',
  InsufficientCapacity: 'capacityMs',
  SpotMaxPriceTooLow: 'capacityMs',
  UnfulfillableCapacity: 'capacityMs',
  MaxSpotInstanceCountExceeded: 'limitMs',
  InstanceLimitExceeded: 'limitMs',
  VcpuLimitExceeded: 'limitMs',
  RequestLimitExceeded: 'throttledMs',
  Throttling: 'throttledMs',
};

/** The CreateFleet request of `count` nodes of a pool. */
export function fleetRequest(
  cluster: string,
  pool: Pool,
  template: string,
  count: number,
): CreateFleetCommandInput {
  const spot = pool.capacityType === 'spot';
  const capacity = spot ? { SpotTargetCapacity: count } : { OnDemandTargetCapacity: count };
  return {
    Type: 'instant',
    // The SDK retries throttled calls with the same token: EC2 launches the fleet once.
    ClientToken: randomUUID(),
    LaunchTemplateConfigs: [
      {
        LaunchTemplateSpecification: {
          ...(template.startsWith('lt-') ? { LaunchTemplateId: template } : { LaunchTemplateName: template }),
          Version: '$Default',
        },
        Overrides: [
          {
            InstanceType: pool.instanceType as _InstanceType,
            ...(pool.zone ? { AvailabilityZone: pool.zone } : {}),
          },
        ],
      },
    ],
    TargetCapacitySpecification: {
      TotalTargetCapacity: count,
      DefaultTargetCapacityType: spot ? 'spot' : 'on-demand',
      ...capacity,
    },
    ...(spot
      ? { SpotOptions: { AllocationStrategy: 'price-capacity-optimized' } }
      : {
          OnDemandOptions: {
            AllocationStrategy: 'lowest-price',
            // Reserved pools run on the account's capacity reservations when it has them.
            ...(pool.capacityType === 'reserved'
              ? { CapacityReservationOptions: { UsageStrategy: 'use-capacity-reservations-first' } }
              : {}),
          },
        }),
    TagSpecifications: [
      {
        ResourceType: 'instance',
        Tags: [
          { Key: EC2_TAGS.cluster, Value: cluster },
          { Key: EC2_TAGS.pool, Value: pool.name },
        ],
      },
    ],
  };
}

/** Why an instant fleet launched fewer instances than asked, from the errors in its answer. */
export function fleetFailure(
  errors: CreateFleetError[],
  launched: number,
  wanted: number,
): { reason: string; kind: FailureKind } {
  if (errors.length === 0)
    return {
      reason: `UnfulfillableCapacity: EC2 launched ${launched} of ${wanted} instances`,
      kind: 'capacityMs',
    };
  const reasons = [
    ...new Set(errors.map((e) => `${e.ErrorCode ?? 'Unknown'}: ${e.ErrorMessage ?? ''}`.trim())),
  ];
  const kinds = errors.map((e) => FAILURE_KINDS[e.ErrorCode ?? ''] ?? 'capacityMs');
  // An account limit outlasts a capacity shortage: the longer wait wins.
  const kind = kinds.includes('limitMs') ? 'limitMs' : kinds[0]!;
  return { reason: reasons.join('; '), kind };
}

export async function describeInstances(
  client: EC2Client,
  input: { Filters?: { Name: string; Values: string[] }[]; InstanceIds?: string[] },
): Promise<Instance[]> {
  const out: Instance[] = [];
  for await (const page of paginateDescribeInstances({ client }, input))
    for (const r of page.Reservations ?? []) out.push(...(r.Instances ?? []));
  return out;
}

/** EC2's error code (the SDK's error name) and message, for any thrown value. */
export function describeError(err: unknown): { code?: string; message: string } {
  if (err instanceof Error && '$metadata' in err) return { code: err.name, message: err.message };
  return { message: err instanceof Error ? err.message : String(err) };
}

/**
 * The lowest current spot price of each instance type across the region's zones, $/hour (Linux). Types
 * EC2 has no price for are left out.
 *
 * @example
 * const prices = await refreshSpotPrices(new EC2Client({ region: 'us-east-1' }), ['g5.xlarge', 'p4d.24xlarge']);
 * prices.get('g5.xlarge'); // 0.4123
 */
export async function refreshSpotPrices(
  client: EC2Client,
  instanceTypes: readonly string[],
  opts: { clock?: () => number } = {},
): Promise<Map<string, number>> {
  // No types would ask EC2 for the price of every type.
  if (instanceTypes.length === 0) return new Map();
  const input = {
    InstanceTypes: instanceTypes.map((t) => t as _InstanceType),
    ProductDescriptions: ['Linux/UNIX'],
    StartTime: new Date((opts.clock ?? Date.now)()),
  };
  // The latest price in each zone, then the lowest zone.
  const latest = new Map<string, { at: number; price: number; type: string }>();
  for await (const page of paginateDescribeSpotPriceHistory({ client }, input)) {
    for (const p of page.SpotPriceHistory ?? []) {
      const price = Number(p.SpotPrice);
      if (!p.InstanceType || !Number.isFinite(price)) continue;
      const key = `${p.InstanceType}|${p.AvailabilityZone}`;
      const at = p.Timestamp?.getTime() ?? 0;
      if ((latest.get(key)?.at ?? -Infinity) <= at) latest.set(key, { at, price, type: p.InstanceType });
    }
  }
  const lowest = new Map<string, number>();
  for (const { type, price } of latest.values())
    lowest.set(type, Math.min(price, lowest.get(type) ?? Infinity));
  return lowest;
}

// --- Helpers ---
