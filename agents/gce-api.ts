/**
 * The Compute Engine calls of the GCE adapter: instances list, insert and delete through the
 * `@google-cloud/compute` REST clients, retried when throttled or answered 5xx, waiting for their
 * operations; what an error answer means (capacity, quota, anything else); the instance to insert.
 */
import { createHash } from 'node:crypto';
import type { InstancesClient, protos, ZoneOperationsClient } from '@google-cloud/compute';
import type { Cluster, Pool } from '../policies/index.ts';
import { z } from 'zod';

export type Instance = protos.google.cloud.compute.v1.IInstance;
type Operation = protos.google.cloud.compute.v1.IOperation;
export type ClientOptions = NonNullable<ConstructorParameters<typeof InstancesClient>[0]>;

/** The clients to use, or the options to make them with. */
export interface GceClientOptions {
  /** Clients to use; by default made from `clientOptions` with the standard credentials. */
  instancesClient?: InstancesClient;
  zoneOperationsClient?: ZoneOperationsClient;
  /** Options of the default clients (merged over `{ fallback: 'rest' }`). */
  clientOptions?: ClientOptions;
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

export interface Clients {
  instances: InstancesClient;
  operations: ZoneOperationsClient;
  /** Made here, so closed here. */
  owned: boolean;
}

/**
 * The clients, made on first use so that importing this module does not load the Compute SDK. Compute
 * speaks only HTTP/JSON: the library defaults to its REST transport, and `fallback: 'rest'` says so.
 */
export async function makeClients(opts: GceClientOptions): Promise<Clients> {
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
export interface Failure {
  kind: 'stockout' | 'quota' | 'error';
  code: string;
  message: string;
}

const STOCKOUT_CODES = new Set(['ZONE_RESOURCE_POOL_EXHAUSTED', 'ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS']);
const QUOTA_CODES = new Set(['QUOTA_EXCEEDED', 'quotaExceeded']);
const THROTTLE_REASONS = new Set(['rateLimitExceeded', 'userRateLimitExceeded']);

/** Classifies an operation error code or an HTTP error reason. */
export function failure(code: string, message: string): Failure {
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

export function apiErrorDetails(err: unknown): ApiErrorDetails {
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
export function statusCode(d: ApiErrorDetails): string {
  return d.status ? `HTTP ${d.status}` : 'UNKNOWN';
}

function isThrottledOrTransient(d: ApiErrorDetails): boolean {
  return d.status === 429 || (d.status ?? 0) >= 500 || d.reasons.some((r) => THROTTLE_REASONS.has(r));
}

/** The Compute Engine calls the provisioner makes, with retries and operation waiting. */
export class GceApi {
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

/** The instance to insert; an instance template, when given, supplies everything else. */
export function instanceSpec(
  cluster: Cluster,
  pool: Pool,
  zone: string,
  name: string,
  plannedId: string,
  template: string | undefined,
): Instance {
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
  const defaults: Instance = template
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
      'gantry-cluster': gceLabelValue(cluster.name),
      'gantry-pool': gceLabelValue(pool.name),
      'gantry-planned-id': gceLabelValue(plannedId),
    },
    ...(scheduling ? { scheduling } : {}),
    ...defaults,
  };
}
