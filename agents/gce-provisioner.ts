/**
 * The GCE node provisioner: one Compute Engine instance per planned node, labelled with its cluster,
 * pool and planned id, and tracked by polling `instances.list` for the cluster's label.
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
import { createHash } from 'node:crypto';
import type { InstancesClient, protos, ZoneOperationsClient } from '@google-cloud/compute';
import { pino, type Logger } from 'pino';
import { z } from 'zod';
import type { Cluster, Pool } from '../policies/index.ts';
import { atMaximum } from './node-core.ts';
import { type NodeEvent, type NodeProvisioner, PollHealth, type ProvisionedNode } from './provisioner.ts';

type Instance = protos.google.cloud.compute.v1.IInstance;
type Operation = protos.google.cloud.compute.v1.IOperation;
type ClientOptions = NonNullable<ConstructorParameters<typeof InstancesClient>[0]>;

/** How long the broker should plan around a pool after a stockout (10 min) or a quota error (30 min). */
export const GCE_RETRY_AFTER_MS = { stockout: 10 * 60_000, quota: 30 * 60_000 } as const;

/** The node label a pool may name its zone with. */
export const ZONE_LABEL = 'topology.kubernetes.io/zone';

/** Options of {@link createGceProvisioner}. */
export interface GceProvisionerOptions {
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
  /** Clients to use; by default made from `clientOptions` with the standard credentials. */
  instancesClient?: InstancesClient;
  zoneOperationsClient?: ZoneOperationsClient;
  /** Options of the default clients (merged over `{ fallback: 'rest' }`). */
  clientOptions?: ClientOptions;
  /** How often instances are listed, ms. Default 5000. */
  pollMs?: number;
  /** First delay before a throttled or failed call is retried, ms; doubles each time, 5 tries. Default 1000. */
  backoffMs?: number;
  clock?: () => number;
  logger?: Logger;
}

/** The GCE provisioner, with a handle to reconcile with the cloud now. */
export interface GceProvisioner extends NodeProvisioner {
  /** Lists the cluster's instances now and updates the view (emitting events); resolves when done. */
  sync(): Promise<void>;
}

/** Base of the GCE provisioner's errors. */
export class GceError extends Error {
  override name = 'GceError';
}

/** The provisioner cannot be set up: no project, or a pool without a zone. */
export class GceConfigError extends GceError {
  override name = 'GceConfigError';
  constructor(
    message: string,
    readonly cluster: string,
    readonly pool?: string,
  ) {
    super(message);
  }
}

/** The Compute Engine API refused a change for a reason other than capacity or quota. */
export class GceApiError extends GceError {
  override name = 'GceApiError';
  readonly pool: string | undefined;
  /** The planned nodes that will not come, when adding failed. */
  readonly plannedIds: string[];
  constructor(
    message: string,
    /** The operation error code or HTTP error reason, e.g. `invalid`. */
    readonly code: string,
    at: { pool?: string; plannedIds?: string[] } = {},
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.pool = at.pool;
    this.plannedIds = at.plannedIds ?? [];
  }
}

/**
 * The instance name of a planned node: `<cluster>-<pool>-<planned id>` (the pool once when the planned
 * id already starts with it), made a valid GCE name — lower case, `[a-z]([-a-z0-9]{0,61}[a-z0-9])?`.
 * When that changes the text or it is too long, a hash of the original keeps names distinct.
 *
 * @example
 * gceInstanceName('gcp-usc1', 'l4', 'l4-c3n0'); // 'gcp-usc1-l4-c3n0'
 */
export function gceInstanceName(cluster: string, pool: string, plannedId: string): string {
  const raw = plannedId.startsWith(`${pool}-`)
    ? `${cluster}-${plannedId}`
    : `${cluster}-${pool}-${plannedId}`;
  let name = raw
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-|-$/g, '');
  if (!/^[a-z]/.test(name)) name = `g-${name}`;
  if (name === raw && name.length <= 63) return name;
  const hash = createHash('sha256').update(raw).digest('hex').slice(0, 8);
  return `${name.slice(0, 54).replace(/-$/, '')}-${hash}`;
}

/**
 * A GCE label value: lower-case letters, digits, `-` and `_`, at most 63 characters. Names Gantry makes
 * (DNS names, the broker's planned ids) pass unchanged; anything else is folded.
 *
 * @example
 * gceLabelValue('H100 Spot'); // 'h100_spot'
 */
export function gceLabelValue(value: string): string {
  return value
    .toLowerCase()
    .replace(/[^a-z0-9_-]/g, '_')
    .slice(0, 63);
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
  const clients = makeClients(opts);
  const api = new GceApi(project, clients, opts.backoffMs ?? 1000);
  return new GceTracker(cluster, poolZones, api, opts).provisioner;
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

interface Clients {
  instances: InstancesClient;
  operations: ZoneOperationsClient;
  /** Made here, so closed here. */
  owned: boolean;
}

/**
 * The clients, made on first use so that importing this module does not load the Compute SDK. Compute
 * speaks only HTTP/JSON: the library defaults to its REST transport, and `fallback: 'rest'` says so.
 */
async function makeClients(opts: GceProvisionerOptions): Promise<Clients> {
  if (opts.instancesClient && opts.zoneOperationsClient)
    return { instances: opts.instancesClient, operations: opts.zoneOperationsClient, owned: false };
  const compute = await import('@google-cloud/compute');
  const options: ClientOptions = { fallback: 'rest', ...opts.clientOptions };
  return {
    instances: opts.instancesClient ?? new compute.InstancesClient(options),
    operations: opts.zoneOperationsClient ?? new compute.ZoneOperationsClient(options),
    owned: true,
  };
}

/** Why an instance could not be added: out of capacity, out of quota, or anything else. */
interface Failure {
  kind: 'stockout' | 'quota' | 'error';
  code: string;
  message: string;
}

const STOCKOUT_CODES = new Set(['ZONE_RESOURCE_POOL_EXHAUSTED', 'ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS']);
const QUOTA_CODES = new Set(['QUOTA_EXCEEDED', 'quotaExceeded']);
const THROTTLE_REASONS = new Set(['rateLimitExceeded', 'userRateLimitExceeded']);

/** Classifies an operation error code or an HTTP error reason. */
function failure(code: string, message: string): Failure {
  const kind = STOCKOUT_CODES.has(code) ? 'stockout' : QUOTA_CODES.has(code) ? 'quota' : 'error';
  return { kind, code, message };
}

/**
 * An HTTP error body as Google APIs send it. The REST transport of the installed library lets gaxios
 * throw on a non-2xx answer, so the body arrives as the error's message, JSON text; a decoded
 * GoogleError carries `errors` itself. Both are read.
 */
const httpErrorBody = z.object({
  error: z.object({
    code: z.number().optional(),
    message: z.string().optional(),
    errors: z.array(z.object({ reason: z.string().optional(), message: z.string().optional() })).optional(),
  }),
});
const errorLike = z.object({
  status: z.number().optional(),
  code: z.union([z.number(), z.string()]).optional(),
  message: z.string().optional(),
  errors: httpErrorBody.shape.error.shape.errors,
});

/** What an API call's rejection says: HTTP status (if known), reasons and message. */
interface ApiErrorDetails {
  status?: number;
  reasons: string[];
  message: string;
}

function apiErrorDetails(err: unknown): ApiErrorDetails {
  const e = errorLike.safeParse(err);
  if (!e.success) return { reasons: [], message: String(err) };
  const { status, code, message = String(err), errors = [] } = e.data;
  const httpStatus = status ?? (typeof code === 'number' && code >= 100 ? code : undefined);
  let body: z.infer<typeof httpErrorBody> | undefined;
  try {
    const parsed = httpErrorBody.safeParse(JSON.parse(message));
    if (parsed.success) body = parsed.data;
  } catch {
    // Not JSON: the message is the message.
  }
  const reasons = (body?.error.errors ?? errors).flatMap((r) => (r.reason ? [r.reason] : []));
  return { status: httpStatus ?? body?.error.code, reasons, message: body?.error.message ?? message };
}

/** `HTTP 503`, or `UNKNOWN` when the error had no status (a network failure). */
function statusCode(d: ApiErrorDetails): string {
  return d.status ? `HTTP ${d.status}` : 'UNKNOWN';
}

function isThrottledOrTransient(d: ApiErrorDetails): boolean {
  return d.status === 429 || (d.status ?? 0) >= 500 || d.reasons.some((r) => THROTTLE_REASONS.has(r));
}

/** The Compute Engine calls the provisioner makes, with retries and operation waiting. */
class GceApi {
  closed = false;
  constructor(
    readonly project: string,
    private readonly clients: Promise<Clients>,
    private readonly backoffMs: number,
  ) {
    // A failure here (no SDK) surfaces on the first call; do not leave the promise unhandled meanwhile.
    clients.catch(() => {});
  }

  /** Runs `call`, retrying throttling and 5xx answers after 1, 2, 4, 8 × backoffMs. */
  async retrying<T>(call: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await call();
      } catch (err) {
        if (attempt >= 4 || this.closed || !isThrottledOrTransient(apiErrorDetails(err))) throw err;
        await new Promise((r) => setTimeout(r, this.backoffMs * 2 ** attempt));
      }
    }
  }

  async list(zone: string, filter: string): Promise<Instance[]> {
    const { instances } = await this.clients;
    const [items] = await this.retrying(() => instances.list({ project: this.project, zone, filter }));
    return items;
  }

  /** Inserts an instance and waits for the operation: undefined when it exists, else why not. */
  async insert(zone: string, instance: Instance, template?: string): Promise<Failure | undefined> {
    const { instances } = await this.clients;
    const request = { project: this.project, zone, instanceResource: instance };
    try {
      const [lro] = await this.retrying(() =>
        instances.insert(template ? { ...request, sourceInstanceTemplate: template } : request),
      );
      return operationFailure(await this.waitDone(zone, lro.latestResponse.name));
    } catch (err) {
      const d = apiErrorDetails(err);
      // A retried insert that had gone through, or a node a previous agent asked for: it exists.
      if (d.status === 409 || d.reasons.includes('alreadyExists')) return undefined;
      return failure(d.reasons.find((r) => QUOTA_CODES.has(r)) ?? d.reasons[0] ?? statusCode(d), d.message);
    }
  }

  /** Deletes an instance and waits for the operation; false if there was no such instance. */
  async delete(zone: string, name: string): Promise<boolean> {
    const { instances } = await this.clients;
    let op: Operation;
    try {
      const request = { project: this.project, zone, instance: name };
      const [lro] = await this.retrying(() => instances.delete(request));
      op = await this.waitDone(zone, lro.latestResponse.name);
    } catch (err) {
      const d = apiErrorDetails(err);
      if (d.status === 404 || d.reasons.includes('notFound')) return false;
      const code = d.reasons[0] ?? statusCode(d);
      throw new GceApiError(`could not delete ${name}: ${d.message}`, code, {}, { cause: err });
    }
    const problem = operationFailure(op);
    if (problem)
      throw new GceApiError(`could not delete ${name}: ${problem.code}: ${problem.message}`, problem.code);
    return true;
  }

  /** Waits until an operation is DONE (`wait` returns early at times, as the API allows). */
  async waitDone(zone: string, operation: string): Promise<Operation> {
    const { operations } = await this.clients;
    for (;;) {
      if (this.closed) throw new GceError(`closed while waiting for operation ${operation}`);
      const [op] = await this.retrying(() => operations.wait({ project: this.project, zone, operation }));
      if (op.status === 'DONE') return op;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const c = await this.clients.catch(() => undefined);
    if (c?.owned) await Promise.all([c.instances.close(), c.operations.close()]);
  }
}

/** The first capacity or quota error of a DONE operation, else its first error, else none. */
function operationFailure(op: Operation): Failure | undefined {
  const errors = (op.error?.errors ?? []).map((e) => failure(e.code ?? 'UNKNOWN', e.message ?? ''));
  return errors.find((f) => f.kind !== 'error') ?? errors[0];
}

/** What the provisioner knows of one node. */
interface Tracked {
  node: ProvisionedNode;
  zone: string;
  /** The insert, while it is in flight. */
  inserting?: Promise<unknown>;
  /** The delete, while it is in flight. */
  removing?: Promise<void>;
}

/** A planned node that could not be added, and why. */
type LaunchFailure = Failure & { plannedId: string; node: ProvisionedNode };

const STARTING = new Set(['PROVISIONING', 'STAGING']);
const ENDED = new Set(['STOPPING', 'STOPPED', 'SUSPENDING', 'SUSPENDED', 'TERMINATED']);

/** The local view of the cluster's nodes, kept in step with the cloud by polling. */
class GceTracker {
  readonly provisioner: GceProvisioner;
  private readonly nodes = new Map<string, Tracked>();
  private readonly listeners: ((e: NodeEvent) => void)[] = [];
  /**
   * Polls are numbered; a name changed locally while poll n was in flight (`changedAt ≥ n`) is not
   * judged by it, since its listing may predate the change (an insert just confirmed, a delete just done).
   */
  private readonly changedAt = new Map<string, number>();
  private polls = 0;
  private chain: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly firstSync: Promise<void>;
  private readonly zones: string[];
  private readonly pools: Map<string, Pool>;
  private readonly clock: () => number;
  private readonly log: Logger;
  private readonly pollMs: number;
  private readonly health: PollHealth;

  constructor(
    private readonly cluster: Cluster,
    private readonly poolZones: Map<string, string>,
    private readonly api: GceApi,
    private readonly opts: GceProvisionerOptions,
  ) {
    this.zones = [...new Set(poolZones.values())];
    this.pools = new Map(cluster.pools.map((p) => [gceLabelValue(p.name), p]));
    this.clock = opts.clock ?? Date.now;
    this.log = opts.logger ?? pino({ level: 'silent' });
    this.pollMs = opts.pollMs ?? 5000;
    // Three polls missed in a row, and Compute Engine is taken not to answer.
    this.health = new PollHealth('Compute Engine instances.list', 3 * this.pollMs + 5000, this.clock);
    this.firstSync = this.poll().then(() => this.schedule());
    this.provisioner = {
      kind: 'gce',
      list: () => [...this.nodes.values()].map((t) => t.node),
      add: (pool, plannedIds) => this.add(pool, plannedIds),
      remove: (name) => this.remove(name),
      onEvent: (listener) => void this.listeners.push(listener),
      ping: async () => this.health.check(),
      whenListed: () => this.firstSync,
      sync: () => this.poll(),
      close: () => this.close(),
    };
  }

  private emit(e: NodeEvent): void {
    for (const l of this.listeners) l(e);
  }

  private touch(name: string): void {
    this.changedAt.set(name, this.polls);
  }

  private schedule(): void {
    if (this.closed) return;
    this.timer = setTimeout(() => void this.poll().then(() => this.schedule()), this.pollMs);
    this.timer.unref();
  }

  /** Queues one poll after any running one (polls never overlap). */
  private poll(): Promise<void> {
    this.chain = this.chain
      .then(() => this.pollOnce())
      .catch((err: unknown) =>
        this.log.error({ cluster: this.cluster.name, err: String(err) }, 'poll failed'),
      );
    return this.chain;
  }

  private async pollOnce(): Promise<void> {
    if (this.closed) return;
    const n = ++this.polls;
    const filter = `labels.gantry-cluster=${gceLabelValue(this.cluster.name)}`;
    let instances: Instance[];
    try {
      instances = (await Promise.all(this.zones.map((zone) => this.api.list(zone, filter)))).flat();
    } catch (err) {
      this.health.failed(new Error(apiErrorDetails(err).message));
      // One zone unlisted would make its nodes look gone: keep the view as it is until the next poll.
      this.log.warn(
        { cluster: this.cluster.name, err: apiErrorDetails(err).message },
        'could not list instances',
      );
      return;
    }
    if (this.closed) return;
    this.health.ok();
    this.reconcile(instances, n);
    for (const [name, at] of this.changedAt) if (at < n) this.changedAt.delete(name);
  }

  private reconcile(instances: Instance[], n: number): void {
    const listed = new Set<string>();
    for (const inst of instances) {
      if (!inst.name) continue;
      listed.add(inst.name);
      if ((this.changedAt.get(inst.name) ?? 0) >= n) continue;
      const status = String(inst.status ?? '');
      const known = this.nodes.get(inst.name);
      if (ENDED.has(status)) {
        if (known && !known.removing) this.lose(known, inst);
        continue;
      }
      const tracked = known ?? this.adopt(inst);
      if (tracked && status === 'RUNNING' && !tracked.node.ready) {
        tracked.node.ready = true;
        this.emit({ type: 'ready', node: tracked.node });
      }
    }
    for (const t of [...this.nodes.values()]) {
      if (listed.has(t.node.name) || t.inserting || t.removing) continue;
      if ((this.changedAt.get(t.node.name) ?? 0) >= n) continue;
      this.lose(t);
    }
  }

  /** Takes in a labelled instance this provisioner did not add (a previous agent's). */
  private adopt(inst: Instance): Tracked | undefined {
    const labels = inst.labels ?? {};
    const pool = this.pools.get(labels['gantry-pool'] ?? '');
    const live = STARTING.has(String(inst.status)) || inst.status === 'RUNNING';
    if (!pool || !inst.name || !live) return undefined;
    const created = Date.parse(inst.creationTimestamp ?? '');
    const plannedId = labels['gantry-planned-id'];
    const node: ProvisionedNode = {
      name: inst.name,
      pool: pool.name,
      ready: false,
      capacityType: pool.capacityType,
      ...(plannedId ? { plannedId } : {}),
      createdAt: Number.isNaN(created) ? this.clock() : created,
    };
    const tracked: Tracked = {
      node,
      zone: inst.zone?.split('/').pop() ?? this.poolZones.get(pool.name) ?? '',
    };
    this.nodes.set(node.name, tracked);
    this.log.info({ node: node.name, pool: pool.name }, 'adopted instance');
    return tracked;
  }

  /** A node went away without our asking: reclaimed if it was spot, else gone. */
  private lose(t: Tracked, inst?: Instance): void {
    this.nodes.delete(t.node.name);
    const spot =
      t.node.capacityType === 'spot' ||
      inst?.scheduling?.provisioningModel === 'SPOT' ||
      inst?.scheduling?.preemptible === true;
    this.emit({ type: spot ? 'preempted' : 'gone', node: t.node });
  }

  private async add(pool: Pool, plannedIds: readonly string[]): Promise<void> {
    // Count the pool only once existing instances are known; after that, no await until the nodes are
    // in the view, so that a launch for a planned id right after `add` finds its node.
    await this.firstSync;
    const zone = this.poolZones.get(pool.name);
    if (!zone)
      throw new GceConfigError(`pool ${pool.name} is not in cluster ${this.cluster.name}`, this.cluster.name);
    const nodes = [...this.nodes.values()].map((t) => t.node);
    const fresh = plannedIds.filter((id) => !nodes.some((n) => n.plannedId === id));
    const room = Math.max(0, pool.maxNodes - nodes.filter((n) => n.pool === pool.name).length);
    // The agent's core counts first; this covers direct use, with the same answer.
    if (fresh.length > room) this.emit(atMaximum(pool, fresh.slice(room)));
    const outcomes = await Promise.all(fresh.slice(0, room).map((id) => this.launch(pool, zone, id)));
    this.report(
      pool,
      outcomes.filter((o) => o !== undefined),
    );
  }

  /** Puts the node in the view, inserts its instance and waits; removes it again if that failed. */
  private async launch(pool: Pool, zone: string, plannedId: string): Promise<LaunchFailure | undefined> {
    const name = gceInstanceName(this.cluster.name, pool.name, plannedId);
    const node: ProvisionedNode = {
      name,
      pool: pool.name,
      ready: false,
      capacityType: pool.capacityType,
      plannedId,
      createdAt: this.clock(),
    };
    const tracked: Tracked = { node, zone };
    const inserting = this.api.insert(
      zone,
      this.instanceSpec(pool, zone, name, plannedId),
      this.opts.instanceTemplate,
    );
    tracked.inserting = inserting;
    this.nodes.set(name, tracked);
    this.touch(name);
    const problem = await inserting.catch((err: unknown) =>
      failure('INTERNAL', apiErrorDetails(err).message),
    );
    tracked.inserting = undefined;
    this.touch(name);
    if (!problem) return undefined;
    if (this.nodes.get(name) === tracked) this.nodes.delete(name);
    return { ...problem, plannedId, node };
  }

  /** The instance to insert; an instance template, when given, supplies everything else. */
  private instanceSpec(pool: Pool, zone: string, name: string, plannedId: string): Instance {
    const spot = pool.capacityType === 'spot';
    const scheduling = spot
      ? {
          provisioningModel: 'SPOT',
          instanceTerminationAction: 'DELETE',
          onHostMaintenance: 'TERMINATE',
          automaticRestart: false,
        }
      : pool.gpuCount > 0
        ? { onHostMaintenance: 'TERMINATE' } // GPU VMs cannot live-migrate
        : undefined;
    const defaults: Instance = this.opts.instanceTemplate
      ? {}
      : {
          disks: [
            {
              boot: true,
              autoDelete: true,
              initializeParams: { sourceImage: 'projects/debian-cloud/global/images/family/debian-12' },
            },
          ],
          networkInterfaces: [{ network: 'global/networks/default' }],
        };
    return {
      name,
      machineType: `zones/${zone}/machineTypes/${pool.instanceType}`,
      labels: {
        'gantry-cluster': gceLabelValue(this.cluster.name),
        'gantry-pool': gceLabelValue(pool.name),
        'gantry-planned-id': gceLabelValue(plannedId),
      },
      ...(scheduling ? { scheduling } : {}),
      ...defaults,
    };
  }

  /** One `exhausted` event per cause; other failures are `gone` and make `add` reject. */
  private report(pool: Pool, failed: LaunchFailure[]): void {
    for (const kind of ['stockout', 'quota'] as const) {
      const these = failed.filter((f) => f.kind === kind);
      const first = these[0];
      if (!first) continue;
      this.emit({
        type: 'exhausted',
        pool: pool.name,
        plannedIds: these.map((f) => f.plannedId),
        kind: kind === 'stockout' ? 'capacity' : 'quota',
        reason: `${first.code}: ${first.message}`,
        retryAfterMs: GCE_RETRY_AFTER_MS[kind],
      });
    }
    const errors = failed.filter((f) => f.kind === 'error');
    const first = errors[0];
    if (!first) return;
    for (const f of errors) this.emit({ type: 'gone', node: f.node });
    throw new GceApiError(
      `could not add ${errors.length} node(s) to pool ${this.cluster.name}/${pool.name}: ${first.code}: ${first.message}`,
      first.code,
      { pool: pool.name, plannedIds: errors.map((f) => f.plannedId) },
    );
  }

  /** Deletes a node (by name or planned id), waiting for its insert first if that is still running. */
  private async remove(nameOrPlannedId: string): Promise<void> {
    const t =
      this.nodes.get(nameOrPlannedId) ??
      [...this.nodes.values()].find((x) => x.node.plannedId === nameOrPlannedId);
    if (!t) return;
    if (t.removing) return t.removing;
    t.removing = (async () => {
      await t.inserting?.catch(() => {}); // a failed insert is reported by `add`
      if (this.nodes.get(t.node.name) !== t) return;
      try {
        await this.api.delete(t.zone, t.node.name);
      } catch (err) {
        t.removing = undefined;
        throw err;
      }
      this.nodes.delete(t.node.name);
      this.touch(t.node.name);
      this.emit({ type: 'gone', node: t.node });
    })();
    return t.removing;
  }

  private async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.chain;
    await this.api.close();
  }
}
