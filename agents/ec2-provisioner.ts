/**
 * The EC2 adapter of the node-provisioner core: it launches a pool's nodes as instant EC2 fleets, lists
 * the cluster's instances by their `gantry.dev/*` tags, terminates them, and says why EC2 refused a
 * launch (capacity, an account limit, throttling). Watching, adoption after a restart, spot reclaims
 * and planned-node bookkeeping are the core's (node-core.ts).
 */
import {
  CreateFleetCommand,
  type CreateFleetError,
  CreateTagsCommand,
  EC2Client,
  type EC2ClientConfig,
  type Instance,
  type InstanceStateName,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { pino, type Logger } from 'pino';
import type { Cluster, Pool } from '../policies/index.ts';
import {
  DEFAULT_EC2_RETRY_AFTER,
  describeError,
  describeInstances,
  EC2_TAGS,
  type Ec2RetryAfter,
  EXHAUSTED_KIND,
  FAILURE_KINDS,
  type FailureKind,
  fleetFailure,
  fleetRequest,
} from './ec2-requests.ts';
import { type CloudProvisioner, createCloudProvisioner } from './node-core.ts';
import type { CloudAdapter, CloudInstance, LaunchOutcome, LaunchRefusal } from './provisioner.ts';

export { DEFAULT_EC2_RETRY_AFTER, EC2_TAGS, refreshSpotPrices } from './ec2-requests.ts';
export type { Ec2RetryAfter } from './ec2-requests.ts';

/**
 * The pool node label naming its launch template: an id (`lt-…`) or a name, launched at its default
 * version. It overrides {@link Ec2ProvisionerOptions.launchTemplate}.
 */
export const LAUNCH_TEMPLATE_LABEL = 'gantry.dev/launch-template';

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

/** The EC2 provisioner, with a handle to read the cluster's instances now (`refresh`). */
export type Ec2Provisioner = CloudProvisioner;

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

const SPOT_TERMINATION = 'Server.SpotInstanceTermination';
const WATCHED_STATES: InstanceStateName[] = [
  'pending',
  'running',
  'shutting-down',
  'stopping',
  'stopped',
  'terminated',
];

/**
 * Creates the EC2 provisioner of one cluster: the core's watch of the cluster's instances over the EC2
 * adapter. Every pool needs a launch template (label or option); the first listing starts at once, and
 * `add` waits for it so that adopted instances count against `maxNodes`.
 *
 * @example
 * const provisioner = createEc2Provisioner(cluster, { launchTemplate: 'gantry-gpu-node' });
 * await provisioner.add(pool, ['plan-1', 'plan-2']);
 */
export function createEc2Provisioner(cluster: Cluster, opts: Ec2ProvisionerOptions = {}): Ec2Provisioner {
  return createCloudProvisioner(cluster, ec2Adapter(cluster, opts), opts);
}

/** EC2 as the core sees it: DescribeInstances by cluster tag, an instant fleet per launch, TerminateInstances. */
function ec2Adapter(cluster: Cluster, opts: Ec2ProvisionerOptions): CloudAdapter {
  const templates = launchTemplates(cluster, opts.launchTemplate);
  const ownsClient = !opts.client;
  const client =
    opts.client ?? new EC2Client({ maxAttempts: 5, ...opts.clientConfig, region: cluster.region });
  const retryAfter = { ...DEFAULT_EC2_RETRY_AFTER, ...opts.retryAfter };
  const log = opts.logger ?? pino({ level: 'silent' });
  const fail = (
    code: string | undefined,
    message: string,
    data: { pool?: string; instanceId?: string },
    cause?: unknown,
  ) =>
    new Ec2ProvisionerError(
      message,
      { cluster: cluster.name, ...data, ...(code ? { code } : {}) },
      { cause },
    );
  const refusal = (plannedIds: string[], reason: string, kind: FailureKind): LaunchRefusal => ({
    plannedIds,
    kind: EXHAUSTED_KIND[kind],
    reason,
    retryAfterMs: retryAfter[kind],
  });

  /**
   * One instant fleet for all the planned ids, so that EC2 picks the zone (and, for spot, the capacity
   * pool) itself and reports partial failure in one answer. An instant fleet returns instance ids
   * without saying which is which, so each gets its planned id in a CreateTags after the launch. One
   * RunInstances per planned id would tag at launch, but gives up the allocation strategy and makes N
   * calls. Should the agent die between the two calls, its instances are adopted without a planned id.
   */
  async function launch(pool: Pool, plannedIds: string[]): Promise<LaunchOutcome> {
    const template = templates.get(pool.name);
    if (!template)
      throw fail(undefined, `pool ${pool.name} is not in cluster ${cluster.name}`, { pool: pool.name });
    let instanceIds: string[];
    let errors: CreateFleetError[];
    try {
      const out = await client.send(
        new CreateFleetCommand(fleetRequest(cluster.name, pool, template, plannedIds.length)),
      );
      instanceIds = (out.Instances ?? []).flatMap((i) => i.InstanceIds ?? []).slice(0, plannedIds.length);
      errors = out.Errors ?? [];
    } catch (err) {
      const { code, message } = describeError(err);
      const kind = code ? FAILURE_KINDS[code] : undefined;
      if (!kind)
        throw fail(code, `could not launch ${pool.name} nodes: ${message}`, { pool: pool.name }, err);
      return { launched: [], refused: [refusal(plannedIds, `${code}: ${message}`, kind)] };
    }
    const planned = new Map(instanceIds.map((id, i) => [id, plannedIds[i]!]));
    await tagPlanned(pool, planned);
    const launched = await describeLaunched(pool, planned);
    const missing = plannedIds.slice(instanceIds.length);
    if (missing.length === 0) return { launched, refused: [] };
    const { reason, kind } = fleetFailure(errors, instanceIds.length, plannedIds.length);
    return { launched, refused: [refusal(missing, reason, kind)] };
  }

  /**
   * The fleet's answer has ids only; the DNS name (the Kubernetes node name) comes with a describe. A
   * failure here is fine: EC2 is eventually consistent, and the next listing names them.
   */
  async function describeLaunched(pool: Pool, planned: Map<string, string>): Promise<CloudInstance[]> {
    const described = new Map<string, CloudInstance>();
    try {
      for (const i of await describeInstances(client, { InstanceIds: [...planned.keys()] })) {
        const inst = toCloudInstance(i);
        if (inst) described.set(inst.id, inst);
      }
    } catch (err) {
      log.debug({ pool: pool.name, err: (err as Error).message }, 'new instances not described yet');
    }
    return [...planned].map(([id, plannedId]) => ({
      ...(described.get(id) ?? {
        id,
        name: id,
        state: 'starting' as const,
        spot: pool.capacityType === 'spot',
      }),
      pool: pool.name,
      plannedId,
    }));
  }

  async function tagPlanned(pool: Pool, planned: Map<string, string>): Promise<void> {
    const tag = ([id, plannedId]: [string, string]) =>
      client.send(
        new CreateTagsCommand({ Resources: [id], Tags: [{ Key: EC2_TAGS.plannedId, Value: plannedId }] }),
      );
    const results = await Promise.allSettled([...planned].map(tag));
    results.forEach((r, i) => {
      if (r.status === 'rejected')
        log.warn(
          { pool: pool.name, instanceId: [...planned.keys()][i], err: describeError(r.reason).message },
          'could not tag planned id',
        );
    });
  }

  return {
    kind: 'ec2',
    listCall: 'EC2 DescribeInstances',
    async list() {
      const filters = [
        { Name: `tag:${EC2_TAGS.cluster}`, Values: [cluster.name] },
        { Name: 'instance-state-name', Values: WATCHED_STATES },
      ];
      return (await describeInstances(client, { Filters: filters })).flatMap((i) => toCloudInstance(i) ?? []);
    },
    launch,
    async terminate(instance: CloudInstance) {
      try {
        await client.send(new TerminateInstancesCommand({ InstanceIds: [instance.id] }));
      } catch (err) {
        const { code, message } = describeError(err);
        if (code === 'InvalidInstanceID.NotFound') return;
        throw fail(
          code,
          `could not terminate node ${instance.name} (${instance.id}): ${message}`,
          { instanceId: instance.id },
          err,
        );
      }
    },
    async close() {
      if (ownsClient) client.destroy();
    },
  };
}

/** An EC2 instance as the core sees it. */
function toCloudInstance(i: Instance): CloudInstance | undefined {
  if (!i.InstanceId) return undefined;
  const state = i.State?.Name;
  const plannedId = tagOf(i, EC2_TAGS.plannedId);
  return {
    id: i.InstanceId,
    name: i.PrivateDnsName || i.InstanceId,
    pool: tagOf(i, EC2_TAGS.pool),
    ...(plannedId ? { plannedId } : {}),
    state: state === 'running' ? 'running' : state === 'pending' ? 'starting' : 'ended',
    spot: i.InstanceLifecycle === 'spot' || i.StateReason?.Code === SPOT_TERMINATION,
  };
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

function tagOf(instance: Instance, key: string): string | undefined {
  return instance.Tags?.find((t) => t.Key === key)?.Value;
}
