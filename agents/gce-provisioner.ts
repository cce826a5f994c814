/**
 * The GCE adapter of the node-provisioner core: one Compute Engine instance per planned node, labelled
 * with its cluster, pool and planned id, listed by the cluster's label, deleted; it says why an insert
 * failed. Watching, adoption after a restart, spot reclaims and planned-node bookkeeping are the
 * core's (node-core.ts).
 *
 * Where things come from:
 * - the project: the `project` option, else `GOOGLE_CLOUD_PROJECT`;
 * - a pool's zone: its `topology.kubernetes.io/zone` node label, else the cluster's `zone`, else the
 *   `zone` option — the most specific wins; a pool with none is a configuration error at creation;
 * - credentials: the standard ones (ADC, workload identity) unless clients are passed in.
 *
 * Adds that fail for want of capacity (`ZONE_RESOURCE_POOL_EXHAUSTED[_WITH_DETAILS]`) or quota
 * (`QUOTA_EXCEEDED`, HTTP 403 `quotaExceeded`) are reported as one `exhausted` event per pool and cause;
 * API throttling (HTTP 429, 403 `rateLimitExceeded`) and 5xx answers are retried with backoff.
 */
import type { Logger } from 'pino';
import type { Cluster, Pool } from '../policies/index.ts';
import {
  apiErrorDetails,
  failure,
  GceApi,
  GceApiError,
  type GceClientOptions,
  GceConfigError,
  gceInstanceName,
  gceLabelValue,
  type Instance,
  instanceSpec,
  makeClients,
  statusCode,
} from './gce-api.ts';
import { type CloudProvisioner, createCloudProvisioner } from './node-core.ts';
import type { CloudAdapter, CloudInstance, LaunchOutcome, LaunchRefusal } from './provisioner.ts';

export { GceApiError, GceConfigError, GceError, gceInstanceName, gceLabelValue } from './gce-api.ts';

/** How long the broker should plan around a pool after a stockout (10 min) or a quota error (30 min). */
export const GCE_RETRY_AFTER_MS = { stockout: 10 * 60_000, quota: 30 * 60_000 } as const;

/** The node label a pool may name its zone with. */
export const ZONE_LABEL = 'topology.kubernetes.io/zone';

/** Options of {@link createGceProvisioner}. */
export interface GceProvisionerOptions extends GceClientOptions {
  /** GCP project id; default `GOOGLE_CLOUD_PROJECT`. */
  project?: string;
  /** Zone of the pools that name none (see the module comment). */
  zone?: string;
  /**
   * Instance template the nodes are made from (`global/instanceTemplates/<name>`): boot image, disks,
   * network, service account and the start-up script that joins the cluster. Without one, nodes get a
   * Debian boot disk on the `default` network — enough to exist, not to join a cluster.
   */
  instanceTemplate?: string;
  /** How often instances are listed, ms. Default 5000. */
  pollMs?: number;
  /** First delay before a throttled or failed call is retried, ms; doubles each time, 5 tries. Default 1000. */
  backoffMs?: number;
  clock?: () => number;
  logger?: Logger;
}

/** The GCE provisioner, with a handle to reconcile with the cloud now. */
export interface GceProvisioner extends CloudProvisioner {
  /** Lists the cluster's instances now and updates the view (emitting events); the same as `refresh`. */
  sync(): Promise<void>;
}

/**
 * Creates the GCE provisioner of one cluster and starts tracking its instances; instances already
 * labelled with the cluster are adopted (and reported `ready` once RUNNING).
 *
 * @example
 * const provisioner = createGceProvisioner(cluster, { project: 'my-project', zone: 'us-central1-a' });
 * provisioner.onEvent((e) => console.log(e.type));
 * await provisioner.add(cluster.pools[0], ['h100-spot-c1n0']);
 */
export function createGceProvisioner(cluster: Cluster, opts: GceProvisionerOptions = {}): GceProvisioner {
  const project = opts.project || process.env.GOOGLE_CLOUD_PROJECT;
  if (!project)
    throw new GceConfigError(
      `cluster ${cluster.name}: no GCP project — pass the project option or set GOOGLE_CLOUD_PROJECT`,
      cluster.name,
    );
  const poolZones = new Map(cluster.pools.map((p) => [p.name, poolZone(cluster, p, opts.zone)]));
  const api = new GceApi(project, makeClients(opts), opts.backoffMs ?? 1000);
  const provisioner = createCloudProvisioner(cluster, gceAdapter(cluster, poolZones, api, opts), opts);
  return Object.assign(provisioner, { sync: provisioner.refresh });
}

/** The zone of a pool (see the module comment), checked against the cluster's region. */
function poolZone(cluster: Cluster, pool: Pool, fallback: string | undefined): string {
  const zone = pool.nodeLabels[ZONE_LABEL] ?? pool.zone ?? fallback;
  if (!zone)
    throw new GceConfigError(
      `pool ${cluster.name}/${pool.name}: no zone — set the cluster's zone, the pool's ${ZONE_LABEL} label or the zone option`,
      cluster.name,
      pool.name,
    );
  if (cluster.region && !zone.startsWith(`${cluster.region}-`))
    throw new GceConfigError(
      `pool ${cluster.name}/${pool.name}: zone ${zone} is not in the cluster's region ${cluster.region}`,
      cluster.name,
      pool.name,
    );
  return zone;
}

const ENDED = new Set(['STOPPING', 'STOPPED', 'SUSPENDING', 'SUSPENDED', 'TERMINATED']);

/**
 * Compute Engine as the core sees it: `instances.list` by the cluster label in each pool's zone, one
 * insert per planned node (named after it, so a retried insert finds it), delete.
 */
function gceAdapter(
  cluster: Cluster,
  poolZones: Map<string, string>,
  api: GceApi,
  opts: GceProvisionerOptions,
): CloudAdapter {
  const zones = [...new Set(poolZones.values())];
  const byLabel = new Map(cluster.pools.map((p) => [gceLabelValue(p.name), p.name]));
  const filter = `labels.gantry-cluster=${gceLabelValue(cluster.name)}`;

  function toCloudInstance(inst: Instance): CloudInstance[] {
    if (!inst.name) return [];
    const labels = inst.labels ?? {};
    const status = String(inst.status ?? '');
    const created = Date.parse(inst.creationTimestamp ?? '');
    const plannedId = labels['gantry-planned-id'];
    const zone = inst.zone?.split('/').pop();
    return [
      {
        id: inst.name,
        name: inst.name,
        pool: byLabel.get(labels['gantry-pool'] ?? ''),
        ...(plannedId ? { plannedId } : {}),
        state: status === 'RUNNING' ? 'running' : ENDED.has(status) ? 'ended' : 'starting',
        spot: inst.scheduling?.provisioningModel === 'SPOT' || inst.scheduling?.preemptible === true,
        ...(Number.isNaN(created) ? {} : { createdAt: created }),
        ...(zone ? { zone } : {}),
      },
    ];
  }

  /** One insert per planned node, all at once; one refusal per cause, other failures reject `add`. */
  async function launch(pool: Pool, plannedIds: string[]): Promise<LaunchOutcome> {
    const zone = poolZones.get(pool.name);
    if (!zone) throw new GceConfigError(`pool ${pool.name} is not in cluster ${cluster.name}`, cluster.name);
    const outcomes = await Promise.all(
      plannedIds.map(async (plannedId) => {
        const name = gceInstanceName(cluster.name, pool.name, plannedId);
        const spec = instanceSpec(cluster, pool, zone, name, plannedId, opts.instanceTemplate);
        const problem = await api
          .insert(zone, spec, opts.instanceTemplate)
          .catch((err: unknown) => failure('INTERNAL', apiErrorDetails(err).message));
        return { plannedId, name, problem };
      }),
    );
    const launched: CloudInstance[] = outcomes
      .filter((o) => !o.problem)
      .map((o) => ({
        id: o.name,
        name: o.name,
        pool: pool.name,
        plannedId: o.plannedId,
        state: 'starting',
        spot: pool.capacityType === 'spot',
        zone,
      }));
    const refused: LaunchRefusal[] = [];
    for (const kind of ['stockout', 'quota'] as const) {
      const these = outcomes.filter((o) => o.problem?.kind === kind);
      const first = these[0]?.problem;
      if (!first) continue;
      refused.push({
        plannedIds: these.map((o) => o.plannedId),
        kind: kind === 'stockout' ? 'capacity' : 'quota',
        reason: `${first.code}: ${first.message}`,
        retryAfterMs: GCE_RETRY_AFTER_MS[kind],
      });
    }
    const errors = outcomes.filter((o) => o.problem?.kind === 'error');
    const first = errors[0]?.problem;
    if (!first) return { launched, refused };
    const failed = new GceApiError(
      `could not add ${errors.length} node(s) to pool ${cluster.name}/${pool.name}: ${first.code}: ${first.message}`,
      first.code,
      { pool: pool.name, plannedIds: errors.map((o) => o.plannedId) },
    );
    return { launched, refused, failed };
  }

  return {
    kind: 'gce',
    listCall: 'Compute Engine instances.list',
    async list() {
      try {
        const listed = await Promise.all(zones.map((zone) => api.list(zone, filter)));
        return listed.flat().flatMap(toCloudInstance);
      } catch (err) {
        throw new GceApiError(
          apiErrorDetails(err).message,
          statusCode(apiErrorDetails(err)),
          {},
          { cause: err },
        );
      }
    },
    launch,
    async terminate(instance: CloudInstance) {
      await api.delete(instance.zone ?? zones[0]!, instance.name);
    },
    close: () => api.close(),
  };
}
