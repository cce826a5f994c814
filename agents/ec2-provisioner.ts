/**
 * The EC2 node provisioner: adds nodes to a pool with instant EC2 fleets, finds them again by their
 * `gantry.dev/*` tags, and watches them by polling DescribeInstances — pending, running, then gone or,
 * for spot, reclaimed. An agent that restarts adopts the instances its cluster already has.
 */
import { randomUUID } from 'node:crypto';
import {
  CreateFleetCommand,
  type CreateFleetCommandInput,
  type CreateFleetError,
  CreateTagsCommand,
  EC2Client,
  type EC2ClientConfig,
  type Instance,
  type _InstanceType,
  type InstanceStateName,
  paginateDescribeInstances,
  paginateDescribeSpotPriceHistory,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { pino, type Logger } from 'pino';
import type { Cluster, Pool } from '../policies/index.ts';
import { atMaximum } from './node-core.ts';
import {
  type ExhaustedKind,
  type NodeEvent,
  type NodeProvisioner,
  PollHealth,
  type ProvisionedNode,
} from './provisioner.ts';

/** The tags that mark an instance as a node of a Gantry cluster and pool, and the plan it came for. */
export const EC2_TAGS = {
  cluster: 'gantry.dev/cluster',
  pool: 'gantry.dev/pool',
  plannedId: 'gantry.dev/planned-id',
} as const;

/**
 * The pool node label naming its launch template: an id (`lt-…`) or a name, launched at its default
 * version. It overrides {@link Ec2ProvisionerOptions.launchTemplate}.
 */
export const LAUNCH_TEMPLATE_LABEL = 'gantry.dev/launch-template';

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

/** Options of {@link createEc2Provisioner}. */
export interface Ec2ProvisionerOptions {
  /** The client to use; by default one for the cluster's region, with the standard credential chain. */
  client?: EC2Client;
  /** Settings of the default client (its region is always the cluster's). */
  clientConfig?: EC2ClientConfig;
  /** The launch template of pools without a {@link LAUNCH_TEMPLATE_LABEL} label. */
  launchTemplate?: string;
  /** How often instances are polled, ms. Default 5000. */
  pollMs?: number;
  retryAfter?: Partial<Ec2RetryAfter>;
  clock?: () => number;
  logger?: Logger;
}

/** The EC2 provisioner, with a handle to read the cluster's instances now. */
export interface Ec2Provisioner extends NodeProvisioner {
  /** Polls now (after any poll under way) and reports what changed. */
  refresh(): Promise<void>;
}

/** A launch template, a cloud call or the configuration failed; `code` is EC2's error code when there is one. */
export class Ec2ProvisionerError extends Error {
  override name = 'Ec2ProvisionerError';
  constructor(
    message: string,
    readonly data: { cluster: string; code?: string; pool?: string; instanceId?: string },
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

type FailureKind = keyof Ec2RetryAfter;

const EXHAUSTED_KIND: Record<FailureKind, ExhaustedKind> = {
  capacityMs: 'capacity',
  limitMs: 'quota',
  throttledMs: 'throttled',
};

const FAILURE_KINDS: Record<string, FailureKind> = {
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

const SPOT_TERMINATION = 'Server.SpotInstanceTermination';
/** EC2 lists terminated instances for about an hour. */
const FORGET_TERMINATED_MS = 2 * 3_600_000;
const WATCHED_STATES: InstanceStateName[] = [
  'pending',
  'running',
  'shutting-down',
  'stopping',
  'stopped',
  'terminated',
];

/** What the provisioner knows of one of its instances. */
interface Tracked {
  instanceId: string;
  spot: boolean;
  /** A poll has listed it: only then does its absence from a poll mean it is gone (EC2 is eventually consistent). */
  listed: boolean;
  node: ProvisionedNode;
}

/**
 * Creates the EC2 provisioner of one cluster. Every pool needs a launch template (label or option); the
 * first poll starts at once, and `add` waits for it so that adopted instances count against `maxNodes`.
 *
 * @example
 * const provisioner = createEc2Provisioner(cluster, { launchTemplate: 'gantry-gpu-node' });
 * await provisioner.add(pool, ['plan-1', 'plan-2']);
 */
export function createEc2Provisioner(cluster: Cluster, opts: Ec2ProvisionerOptions = {}): Ec2Provisioner {
  const templates = launchTemplates(cluster, opts.launchTemplate);
  const ownsClient = !opts.client;
  const client =
    opts.client ?? new EC2Client({ maxAttempts: 5, ...opts.clientConfig, region: cluster.region });
  const pollMs = opts.pollMs ?? 5000;
  const retryAfter = { ...DEFAULT_EC2_RETRY_AFTER, ...opts.retryAfter };
  const clock = opts.clock ?? Date.now;
  const log = opts.logger ?? pino({ level: 'silent' });
  const pools = new Map(cluster.pools.map((p) => [p.name, p]));
  const tracked = new Map<string, Tracked>();
  /** Instances we terminate, and when: polls must neither adopt nor lose them. */
  const terminating = new Map<string, number>();
  /** Planned ids being launched, per pool: they count against `maxNodes` until they are tracked. */
  const launching = new Map<string, Set<string>>();
  const listeners: ((e: NodeEvent) => void)[] = [];
  const warned = new Set<string>();
  let synced = false;
  // Three polls missed in a row, and EC2 is taken not to answer.
  const health = new PollHealth('EC2 DescribeInstances', 3 * pollMs + 5000, clock);
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let polls: Promise<void> = Promise.resolve();

  function emit(event: NodeEvent): void {
    for (const listener of listeners) {
      try {
        listener(event);
      } catch (err) {
        log.error({ err: (err as Error).message, event: event.type }, 'node event listener failed');
      }
    }
  }

  function fail(
    code: string | undefined,
    message: string,
    data: { pool?: string; instanceId?: string },
    cause?: unknown,
  ) {
    return new Ec2ProvisionerError(
      message,
      { cluster: cluster.name, ...data, ...(code ? { code } : {}) },
      { cause },
    );
  }

  // --- Watching instances ---

  /** Starts tracking an instance we did not launch in this process; undefined if its pool is unknown. */
  function adopt(instance: Instance, instanceId: string): Tracked | undefined {
    const poolName = tagOf(instance, EC2_TAGS.pool) ?? '';
    const pool = pools.get(poolName);
    if (!pool) {
      if (!warned.has(instanceId))
        log.warn({ instanceId, pool: poolName }, 'instance of an unknown pool; ignored');
      warned.add(instanceId);
      return undefined;
    }
    const plannedId = tagOf(instance, EC2_TAGS.plannedId);
    const node: ProvisionedNode = {
      name: nodeName(instance, instanceId),
      pool: pool.name,
      ready: false,
      capacityType: pool.capacityType,
      ...(plannedId ? { plannedId } : {}),
      createdAt: clock(),
    };
    const t = { instanceId, spot: instance.InstanceLifecycle === 'spot', listed: false, node };
    tracked.set(instanceId, t);
    return t;
  }

  /** Applies what EC2 says of one instance. `announce`: report nodes that come up (not on the first poll). */
  function observe(instance: Instance, announce: boolean): void {
    const id = instance.InstanceId;
    if (!id || terminating.has(id)) return;
    const state = instance.State?.Name;
    let t = tracked.get(id);
    if (state !== 'pending' && state !== 'running') {
      if (t) lose(t, instance);
      return;
    }
    t ??= adopt(instance, id);
    if (!t) return;
    t.spot ||= instance.InstanceLifecycle === 'spot';
    // Until it is ready nothing runs on the node, so it may still take its DNS name (see recordLaunched).
    if (!t.node.ready) t.node.name = nodeName(instance, id);
    if (state === 'running' && !t.node.ready) {
      t.node.ready = true;
      if (announce) emit({ type: 'ready', node: t.node });
    }
  }

  /** The instance went away without us: reclaimed when it was spot, gone otherwise. */
  function lose(t: Tracked, instance?: Instance): void {
    tracked.delete(t.instanceId);
    const reclaimed = t.spot || instance?.StateReason?.Code === SPOT_TERMINATION;
    log.info(
      { node: t.node.name, instanceId: t.instanceId, reason: instance?.StateReason?.Message },
      'node lost',
    );
    emit({ type: reclaimed ? 'preempted' : 'gone', node: t.node });
  }

  async function pollOnce(): Promise<void> {
    if (closed) return;
    const before = new Set(tracked.keys());
    const filters = [
      { Name: `tag:${EC2_TAGS.cluster}`, Values: [cluster.name] },
      { Name: 'instance-state-name', Values: WATCHED_STATES },
    ];
    const instances = await describeInstances(client, { Filters: filters });
    if (closed) return;
    const seen = new Set(instances.map((i) => i.InstanceId));
    for (const instance of instances) {
      observe(instance, synced);
      const t = tracked.get(instance.InstanceId ?? '');
      if (t) t.listed = true;
    }
    // Only instances known when the poll began can be missing from it: later ones were launched since.
    for (const id of before) {
      const t = tracked.get(id);
      if (t && !seen.has(id) && t.listed && !terminating.has(id)) lose(t);
    }
    forgetTerminated(instances);
    synced = true;
    health.ok();
  }

  /** Our terminations end once EC2 says `terminated` (or after it stopped listing them for long). */
  function forgetTerminated(instances: Instance[]): void {
    for (const i of instances)
      if (i.InstanceId && i.State?.Name === 'terminated') terminating.delete(i.InstanceId);
    for (const [id, at] of terminating) if (clock() - at > FORGET_TERMINATED_MS) terminating.delete(id);
  }

  function refresh(): Promise<void> {
    const next = polls.then(pollOnce);
    polls = next.catch((err: unknown) => health.failed(err));
    return next;
  }

  function schedule(delayMs: number): void {
    if (closed) return;
    timer = setTimeout(() => {
      refresh()
        .catch((err: Error) => log.warn({ cluster: cluster.name, err: err.message }, 'could not poll EC2'))
        .finally(() => schedule(pollMs));
    }, delayMs);
    timer.unref();
  }

  // --- Launching ---

  /** The pool's nodes, with those being launched (a launched node is in both until `add` returns). */
  function countIn(pool: string): number {
    const planned = new Set(launching.get(pool));
    let unplanned = 0;
    for (const t of tracked.values()) {
      if (t.node.pool !== pool) continue;
      if (t.node.plannedId) planned.add(t.node.plannedId);
      else unplanned++;
    }
    return planned.size + unplanned;
  }

  function isKnown(plannedId: string): boolean {
    for (const ids of launching.values()) if (ids.has(plannedId)) return true;
    for (const t of tracked.values()) if (t.node.plannedId === plannedId) return true;
    return false;
  }

  function exhausted(pool: Pool, plannedIds: string[], reason: string, kind: FailureKind): void {
    log.warn({ pool: pool.name, nodes: plannedIds.length, reason }, 'pool exhausted');
    emit({
      type: 'exhausted',
      pool: pool.name,
      plannedIds,
      kind: EXHAUSTED_KIND[kind],
      reason,
      retryAfterMs: retryAfter[kind],
    });
  }

  /** Tracks the instances of a fleet at once, so that `list()` shows them as soon as `add` returns. */
  async function recordLaunched(
    pool: Pool,
    launched: [instanceId: string, plannedId: string][],
  ): Promise<void> {
    for (const [instanceId, plannedId] of launched) {
      // A poll that ran during the launch may have adopted it already, without its planned id.
      const known = tracked.get(instanceId);
      if (known) known.node.plannedId = plannedId;
      else tracked.set(instanceId, launchedNode(pool, instanceId, plannedId));
    }
    // The fleet's answer has ids only; the DNS name (the Kubernetes node name) comes with a describe. A
    // failure here is fine: EC2 is eventually consistent, and the next poll names them.
    try {
      const ids = launched.map(([id]) => id);
      for (const instance of await describeInstances(client, { InstanceIds: ids })) observe(instance, true);
    } catch (err) {
      log.debug({ pool: pool.name, err: (err as Error).message }, 'new instances not described yet');
    }
  }

  /**
   * One instant fleet for all the planned ids, so that EC2 picks the zone (and, for spot, the capacity
   * pool) itself and reports partial failure in one answer. An instant fleet returns instance ids
   * without saying which is which, so each gets its planned id in a CreateTags after the launch. One
   * RunInstances per planned id would tag at launch, but gives up the allocation strategy and makes N
   * calls. Should the agent die between the two calls, its instances are adopted without a planned id.
   */
  async function launch(pool: Pool, plannedIds: string[]): Promise<void> {
    const input = fleetRequest(cluster.name, pool, templates.get(pool.name)!, plannedIds.length);
    let instanceIds: string[];
    let errors: CreateFleetError[];
    try {
      const out = await client.send(new CreateFleetCommand(input));
      instanceIds = (out.Instances ?? []).flatMap((i) => i.InstanceIds ?? []).slice(0, plannedIds.length);
      errors = out.Errors ?? [];
    } catch (err) {
      const { code, message } = describeError(err);
      const kind = code ? FAILURE_KINDS[code] : undefined;
      if (!kind)
        throw fail(code, `could not launch ${pool.name} nodes: ${message}`, { pool: pool.name }, err);
      return exhausted(pool, plannedIds, `${code}: ${message}`, kind);
    }
    const launched = instanceIds.map((id, i): [string, string] => [id, plannedIds[i]!]);
    await recordLaunched(pool, launched);
    await tagPlanned(pool, launched);
    const missing = plannedIds.slice(launched.length);
    if (missing.length > 0) {
      const { reason, kind } = fleetFailure(errors, launched.length, plannedIds.length);
      exhausted(pool, missing, reason, kind);
    }
  }

  async function tagPlanned(pool: Pool, launched: [string, string][]): Promise<void> {
    const tag = ([id, plannedId]: [string, string]) =>
      client.send(
        new CreateTagsCommand({ Resources: [id], Tags: [{ Key: EC2_TAGS.plannedId, Value: plannedId }] }),
      );
    const results = await Promise.allSettled(launched.map(tag));
    results.forEach((r, i) => {
      if (r.status === 'rejected')
        log.warn(
          { pool: pool.name, instanceId: launched[i]![0], err: describeError(r.reason).message },
          'could not tag planned id',
        );
    });
  }

  function launchedNode(pool: Pool, instanceId: string, plannedId: string): Tracked {
    const node: ProvisionedNode = {
      name: instanceId,
      pool: pool.name,
      ready: false,
      capacityType: pool.capacityType,
      plannedId,
      createdAt: clock(),
    };
    return { instanceId, spot: pool.capacityType === 'spot', listed: false, node };
  }

  function find(nodeName: string): Tracked | undefined {
    for (const t of tracked.values())
      if (t.node.name === nodeName || t.node.plannedId === nodeName || t.instanceId === nodeName) return t;
    return undefined;
  }

  schedule(0);

  return {
    kind: 'ec2',
    list: () => [...tracked.values()].map((t) => t.node),
    refresh,
    whenListed: () => (synced ? Promise.resolve() : refresh()),
    async add(pool: Pool, plannedIds: readonly string[]) {
      if (!templates.has(pool.name))
        throw fail(undefined, `pool ${pool.name} is not in cluster ${cluster.name}`, { pool: pool.name });
      if (!synced) await refresh();
      const fresh = [...new Set(plannedIds)].filter((id) => !isKnown(id));
      const room = Math.max(0, pool.maxNodes - countIn(pool.name));
      const over = fresh.slice(room);
      // Not a cloud failure: the pool is full (the agent's core counts first; this covers direct use).
      if (over.length > 0) emit(atMaximum(pool, over));
      const wanted = fresh.slice(0, room);
      if (wanted.length === 0) return;
      const inFlight = launching.get(pool.name) ?? new Set<string>();
      launching.set(pool.name, inFlight);
      wanted.forEach((id) => inFlight.add(id));
      try {
        await launch(pool, wanted);
      } finally {
        wanted.forEach((id) => inFlight.delete(id));
      }
    },
    async remove(nodeName: string) {
      const t = find(nodeName);
      if (!t) return;
      terminating.set(t.instanceId, clock());
      try {
        await client.send(new TerminateInstancesCommand({ InstanceIds: [t.instanceId] }));
      } catch (err) {
        const { code, message } = describeError(err);
        if (code !== 'InvalidInstanceID.NotFound') {
          terminating.delete(t.instanceId);
          throw fail(
            code,
            `could not terminate node ${t.node.name} (${t.instanceId}): ${message}`,
            { instanceId: t.instanceId },
            err,
          );
        }
      }
      if (tracked.delete(t.instanceId)) emit({ type: 'gone', node: t.node });
    },
    onEvent(listener) {
      listeners.push(listener);
    },
    async ping() {
      health.check();
    },
    async close() {
      closed = true;
      clearTimeout(timer);
      await polls;
      if (ownsClient) client.destroy();
    },
  };
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

/** Each pool's launch template; throws naming every pool that has none. */
function launchTemplates(cluster: Cluster, fallback: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  const missing: string[] = [];
  for (const pool of cluster.pools) {
    const template = pool.nodeLabels[LAUNCH_TEMPLATE_LABEL] ?? fallback;
    if (template) out.set(pool.name, template);
    else missing.push(pool.name);
  }
  if (!cluster.region)
    throw new Ec2ProvisionerError(`cluster ${cluster.name} has no region`, { cluster: cluster.name });
  if (missing.length > 0) {
    const message = `no launch template for pool(s) ${missing.join(', ')} of cluster ${cluster.name}: set the node label ${LAUNCH_TEMPLATE_LABEL} or the launchTemplate option`;
    throw new Ec2ProvisionerError(message, { cluster: cluster.name });
  }
  return out;
}

/** The CreateFleet request of `count` nodes of a pool. */
function fleetRequest(cluster: string, pool: Pool, template: string, count: number): CreateFleetCommandInput {
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
function fleetFailure(
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

async function describeInstances(
  client: EC2Client,
  input: { Filters?: { Name: string; Values: string[] }[]; InstanceIds?: string[] },
): Promise<Instance[]> {
  const out: Instance[] = [];
  for await (const page of paginateDescribeInstances({ client }, input))
    for (const r of page.Reservations ?? []) out.push(...(r.Instances ?? []));
  return out;
}

/** The Kubernetes node name on EKS (the private DNS name), or the instance id until there is one. */
function nodeName(instance: Instance, instanceId: string): string {
  return instance.PrivateDnsName || instanceId;
}

function tagOf(instance: Instance, key: string): string | undefined {
  return instance.Tags?.find((t) => t.Key === key)?.Value;
}

/** EC2's error code (the SDK's error name) and message, for any thrown value. */
function describeError(err: unknown): { code?: string; message: string } {
  if (err instanceof Error && '$metadata' in err) return { code: err.name, message: err.message };
  return { message: err instanceof Error ? err.message : String(err) };
}
