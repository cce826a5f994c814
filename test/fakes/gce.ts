/**
 * A fake Compute Engine API for integration tests: a real `node:http` server on a free loopback port
 * that speaks the part of Compute v1 REST that the GCE provisioner uses, the way `@google-cloud/compute`
 * (REST transport) calls it:
 *
 *   POST   /compute/v1/projects/{project}/zones/{zone}/instances            → Operation (insert)
 *   GET    /compute/v1/projects/{project}/zones/{zone}/instances?filter=…   → InstanceList
 *   GET    /compute/v1/projects/{project}/zones/{zone}/instances/{name}     → Instance
 *   DELETE /compute/v1/projects/{project}/zones/{zone}/instances/{name}     → Operation (delete)
 *   GET    /compute/v1/projects/{project}/zones/{zone}/operations/{op}      → Operation
 *   POST   /compute/v1/projects/{project}/zones/{zone}/operations/{op}/wait → Operation, once DONE
 *
 * State is in memory. An insert's operation finishes after `operationDelayMs`: DONE with an error when the
 * machine type is stocked out or the quota is used up, else DONE with the instance PROVISIONING; it is
 * STAGING, then RUNNING `launchDelayMs` later. Errors have the API's shape,
 * `{ error: { code, message, errors: [{ domain, reason, message }] } }`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Where the real API puts its resources; self links and URLs in responses use it, like the real API. */
const API_BASE = 'https://www.googleapis.com/compute/v1';

/** An instance as the fake keeps it and returns it. */
export interface FakeInstance {
  kind: 'compute#instance';
  id: string;
  name: string;
  zone: string;
  status: 'PROVISIONING' | 'STAGING' | 'RUNNING' | 'STOPPING' | 'TERMINATED';
  machineType: string;
  labels: Record<string, string>;
  scheduling: Record<string, unknown>;
  selfLink: string;
  creationTimestamp: string;
  /** The instance template named at insert, if any (the real API copies its settings; the fake records it). */
  sourceInstanceTemplate?: string;
  disks?: unknown[];
  networkInterfaces?: unknown[];
}

/** A long-running operation, as the API returns it. */
export interface FakeOperation {
  kind: 'compute#operation';
  id: string;
  name: string;
  zone: string;
  operationType: string;
  targetLink: string;
  status: 'PENDING' | 'RUNNING' | 'DONE';
  selfLink: string;
  insertTime: string;
  error?: { errors: { code: string; message: string }[] };
}

/** One request the fake answered, for assertions. */
export interface FakeRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  status: number;
}

/** Options of {@link startFakeGce}. */
export interface FakeGceOptions {
  /** The only project the fake knows; others get 404. Default `test-project`. */
  project?: string;
  /** PROVISIONING → RUNNING, ms. Default 30. Can be changed later through the handle. */
  launchDelayMs?: number;
  /** How long inserts and deletes stay RUNNING before they are DONE, ms. Default 5. */
  operationDelayMs?: number;
}

/** A running fake and the handles tests drive it with. */
export interface FakeGce {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  readonly project: string;
  /** PROVISIONING → RUNNING for instances inserted from now on, ms. */
  launchDelayMs: number;
  /** Every instance, any zone, any status. */
  instances(): FakeInstance[];
  /** Every instance ever inserted, deleted ones too (what the bill lists), oldest first. */
  created(): FakeInstance[];
  /** Every request answered so far, oldest first. */
  requests(): FakeRequest[];
  /** Inserts of this machine type (e.g. `a3-highgpu-8g`) fail with ZONE_RESOURCE_POOL_EXHAUSTED while on. */
  setStockout(machineType: string, on: boolean): void;
  /**
   * At most `limit` instances may exist (undefined: no limit). Past it an insert's operation fails with
   * QUOTA_EXCEEDED, or — `via: 'http'` — the insert itself is refused with HTTP 403 `quotaExceeded`.
   */
  setQuota(limit: number | undefined, via?: 'operation' | 'http'): void;
  /** The next `count` inserts are refused with HTTP 403 `rateLimitExceeded` (API throttling). */
  throttleInserts(count: number): void;
  /** The next `count` inserts are carried out but answered with HTTP 503, as if the answer was lost. */
  loseInsertAnswers(count: number): void;
  /** Reclaims a spot instance: TERMINATED now, deleted shortly after (its termination action is DELETE). */
  preempt(name: string): void;
  /** Deletes an instance behind the provisioner's back, as someone in the console would. */
  deleteInstance(name: string): void;
  /** Called whenever an instance reaches RUNNING. */
  onInstanceRunning(listener: (instance: FakeInstance) => void): void;
  close(): Promise<void>;
}

interface ApiError {
  status: number;
  reason: string;
  message: string;
  domain?: string;
}

class HttpError extends Error {
  override name = 'HttpError';
  constructor(readonly error: ApiError) {
    super(error.message);
  }
}

/**
 * Starts a fake Compute Engine API on a free loopback port.
 *
 * @example
 * const gce = await startFakeGce({ launchDelayMs: 10 });
 * const client = new InstancesClient({ apiEndpoint: '127.0.0.1', port: gce.port, protocol: 'http', authClient });
 */
export async function startFakeGce(opts: FakeGceOptions = {}): Promise<FakeGce> {
  const project = opts.project ?? 'test-project';
  const operationDelayMs = opts.operationDelayMs ?? 5;
  const instances = new Map<string, FakeInstance>();
  const created: FakeInstance[] = [];
  const operations = new Map<string, FakeOperation>();
  const waiters = new Map<string, (() => void)[]>();
  const timers = new Set<NodeJS.Timeout>();
  const log: FakeRequest[] = [];
  const runningListeners: ((i: FakeInstance) => void)[] = [];
  const stockouts = new Set<string>();
  let quota: { limit: number; via: 'operation' | 'http' } | undefined;
  let throttled = 0;
  let lostAnswers = 0;
  let ids = 1_000_000_000_000;

  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };
  const zoneUrl = (zone: string) => `${API_BASE}/projects/${project}/zones/${zone}`;
  const key = (zone: string, name: string) => `${zone}/${name}`;

  function newOperation(zone: string, operationType: string, target: string): FakeOperation {
    const op: FakeOperation = {
      kind: 'compute#operation',
      id: String(ids++),
      name: `operation-${Date.now()}-${ids}`,
      zone: zoneUrl(zone),
      operationType,
      targetLink: `${zoneUrl(zone)}/instances/${target}`,
      status: 'RUNNING',
      selfLink: '',
      insertTime: new Date().toISOString(),
    };
    op.selfLink = `${zoneUrl(zone)}/operations/${op.name}`;
    operations.set(key(zone, op.name), op);
    return op;
  }

  function finish(zone: string, op: FakeOperation, error?: { code: string; message: string }): void {
    op.status = 'DONE';
    if (error) op.error = { errors: [error] };
    const k = key(zone, op.name);
    for (const wake of waiters.get(k) ?? []) wake();
    waiters.delete(k);
  }

  function setRunningLater(inst: FakeInstance, launchDelayMs: number): void {
    later(launchDelayMs / 2, () => {
      if (inst.status === 'PROVISIONING') inst.status = 'STAGING';
    });
    later(launchDelayMs, () => {
      if (inst.status !== 'STAGING' && inst.status !== 'PROVISIONING') return;
      inst.status = 'RUNNING';
      runningListeners.forEach((l) => l(inst));
    });
  }

  function live(): FakeInstance[] {
    return [...instances.values()].filter((i) => i.status !== 'TERMINATED');
  }

  function quotaError(zone: string): string {
    const region = zone.replace(/-[a-z]$/, '');
    return `Quota 'INSTANCES' exceeded.  Limit: ${quota?.limit.toFixed(1)} in region ${region}.`;
  }

  function insert(zone: string, body: Record<string, unknown>, query: Record<string, string>): FakeOperation {
    if (throttled > 0) {
      throttled--;
      throw new HttpError({ status: 403, reason: 'rateLimitExceeded', message: 'Rate Limit Exceeded' });
    }
    const name = typeof body.name === 'string' ? body.name : '';
    if (!/^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/.test(name))
      throw new HttpError({
        status: 400,
        reason: 'invalid',
        message: `Invalid value for field 'resource.name': '${name}'.`,
      });
    const machineType = typeof body.machineType === 'string' ? body.machineType : '';
    const type = machineType.split('/').pop() ?? '';
    if (!machineType.includes(`zones/${zone}/machineTypes/`) || !/^[a-z][-a-z0-9]*$/.test(type))
      throw new HttpError({
        status: 400,
        reason: 'invalid',
        message: `Invalid value for field 'resource.machineType': '${machineType}'.`,
      });
    if (instances.has(key(zone, name)))
      throw new HttpError({
        status: 409,
        reason: 'alreadyExists',
        message: `The resource '${zoneUrl(zone)}/instances/${name}' already exists`,
      });
    if (quota?.via === 'http' && live().length >= quota.limit)
      throw new HttpError({
        status: 403,
        reason: 'quotaExceeded',
        message: quotaError(zone),
        domain: 'usageLimits',
      });

    const op = newOperation(zone, 'insert', name);
    const launchDelayMs = handle.launchDelayMs;
    later(operationDelayMs, () => {
      if (stockouts.has(type))
        return finish(zone, op, {
          code: 'ZONE_RESOURCE_POOL_EXHAUSTED',
          message: `The zone '${zoneUrl(zone)}' does not have enough resources available to fulfill the request.  Try a different zone, or try again later.`,
        });
      if (quota && live().length >= quota.limit)
        return finish(zone, op, { code: 'QUOTA_EXCEEDED', message: quotaError(zone) });
      const inst: FakeInstance = {
        kind: 'compute#instance',
        id: String(ids++),
        name,
        zone: zoneUrl(zone),
        status: 'PROVISIONING',
        machineType: `${API_BASE}/projects/${project}/${machineType.replace(/^.*?(zones\/)/, '$1')}`,
        labels: isStringRecord(body.labels) ? body.labels : {},
        scheduling: {
          provisioningModel: 'STANDARD',
          automaticRestart: true,
          onHostMaintenance: 'MIGRATE',
          ...asRecord(body.scheduling),
        },
        selfLink: `${zoneUrl(zone)}/instances/${name}`,
        creationTimestamp: new Date().toISOString(),
        ...(query.sourceInstanceTemplate ? { sourceInstanceTemplate: query.sourceInstanceTemplate } : {}),
        ...(Array.isArray(body.disks) ? { disks: body.disks } : {}),
        ...(Array.isArray(body.networkInterfaces) ? { networkInterfaces: body.networkInterfaces } : {}),
      };
      instances.set(key(zone, name), inst);
      created.push(inst);
      finish(zone, op);
      setRunningLater(inst, launchDelayMs);
    });
    return op;
  }

  function remove(zone: string, name: string): FakeOperation {
    const inst = instances.get(key(zone, name));
    if (!inst) throw notFound(zone, name);
    inst.status = 'STOPPING';
    const op = newOperation(zone, 'delete', name);
    later(operationDelayMs, () => {
      instances.delete(key(zone, name));
      finish(zone, op);
    });
    return op;
  }

  function notFound(zone: string, name: string): HttpError {
    return new HttpError({
      status: 404,
      reason: 'notFound',
      message: `The resource '${zoneUrl(zone)}/instances/${name}' was not found`,
    });
  }

  function list(zone: string, filter: string | undefined): { kind: string; items: FakeInstance[] } {
    const match = parseFilter(filter);
    const items = [...instances.values()].filter((i) => i.zone === zoneUrl(zone) && match(i));
    return { kind: 'compute#instanceList', items };
  }

  async function waitDone(zone: string, opName: string): Promise<FakeOperation> {
    const op = operations.get(key(zone, opName));
    if (!op)
      throw new HttpError({
        status: 404,
        reason: 'notFound',
        message: `The resource 'operations/${opName}' was not found`,
      });
    if (op.status === 'DONE') return op;
    // Like the real `wait`, return when DONE or after a while (the real API: up to 2 minutes), maybe not DONE.
    await new Promise<void>((resolve) => {
      const k = key(zone, opName);
      const t = setTimeout(resolve, 1000);
      waiters.set(k, [...(waiters.get(k) ?? []), () => (clearTimeout(t), resolve())]);
    });
    return op;
  }

  async function route(req: IncomingMessage, url: URL, body: string): Promise<unknown> {
    const m = url.pathname.match(
      /^\/compute\/v1\/projects\/([^/]+)\/zones\/([^/]+)\/(instances|operations)(?:\/([^/]+))?(\/wait)?$/,
    );
    if (!m)
      throw new HttpError({ status: 404, reason: 'notFound', message: `no such path: ${url.pathname}` });
    const [, proj, zone = '', collection, name, wait] = m;
    if (proj !== project)
      throw new HttpError({
        status: 404,
        reason: 'notFound',
        message: `The resource 'projects/${proj}' was not found`,
      });
    if (!req.headers.authorization?.startsWith('Bearer '))
      throw new HttpError({ status: 401, reason: 'required', message: 'Login Required.' });
    const query = Object.fromEntries(url.searchParams);
    const route = `${req.method} ${collection}${name ? '/:name' : ''}${wait ?? ''}`;
    switch (route) {
      case 'POST instances': {
        const op = insert(zone, asRecord(JSON.parse(body || '{}')), query);
        if (lostAnswers === 0) return op;
        lostAnswers--;
        throw new HttpError({ status: 503, reason: 'backendError', message: 'Backend Error' });
      }
      case 'GET instances':
        return list(zone, query.filter);
      case 'GET instances/:name': {
        const inst = instances.get(key(zone, name ?? ''));
        if (!inst) throw notFound(zone, name ?? '');
        return inst;
      }
      case 'DELETE instances/:name':
        return remove(zone, name ?? '');
      case 'GET operations/:name':
      case 'POST operations/:name/wait': {
        if (!wait) {
          const op = operations.get(key(zone, name ?? ''));
          if (!op)
            throw new HttpError({
              status: 404,
              reason: 'notFound',
              message: `operation ${name} was not found`,
            });
          return op;
        }
        return waitDone(zone, name ?? '');
      }
      default:
        throw new HttpError({
          status: 405,
          reason: 'methodNotAllowed',
          message: `the fake does not serve ${route}`,
        });
    }
  }

  async function handleRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body = '';
    for await (const chunk of req) body += chunk;
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    let status = 200;
    let payload: unknown;
    try {
      payload = await route(req, url, body);
    } catch (err) {
      const e: ApiError =
        err instanceof HttpError ? err.error : { status: 500, reason: 'backendError', message: String(err) };
      status = e.status;
      const detail = { domain: e.domain ?? 'global', reason: e.reason, message: e.message };
      payload = { error: { code: e.status, message: e.message, errors: [detail] } };
    }
    log.push({
      method: req.method ?? '',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      status,
    });
    res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8' });
    res.end(JSON.stringify(payload));
  }

  const server = createServer((req, res) => void handleRequest(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;

  const find = (name: string) => [...instances.entries()].find(([, i]) => i.name === name);

  const handle: FakeGce = {
    url: `http://127.0.0.1:${port}`,
    port,
    project,
    launchDelayMs: opts.launchDelayMs ?? 30,
    instances: () => [...instances.values()].map((i) => structuredClone(i)),
    created: () => created.map((i) => structuredClone(i)),
    requests: () => [...log],
    setStockout(machineType, on) {
      if (on) stockouts.add(machineType);
      else stockouts.delete(machineType);
    },
    setQuota(limit, via = 'operation') {
      quota = limit === undefined ? undefined : { limit, via };
    },
    throttleInserts(count) {
      throttled = count;
    },
    loseInsertAnswers(count) {
      lostAnswers = count;
    },
    preempt(name) {
      const found = find(name);
      if (!found) throw new Error(`no instance ${name}`);
      const [k, inst] = found;
      if (inst.scheduling.provisioningModel !== 'SPOT' && inst.scheduling.preemptible !== true)
        throw new Error(`instance ${name} is not spot: only spot instances are preempted`);
      inst.status = 'TERMINATED';
      const zone = inst.zone.split('/').pop() ?? '';
      finish(zone, newOperation(zone, 'compute.instances.preempted', name));
      if (inst.scheduling.instanceTerminationAction === 'DELETE')
        later(operationDelayMs, () => instances.delete(k));
    },
    deleteInstance(name) {
      const found = find(name);
      if (!found) throw new Error(`no instance ${name}`);
      instances.delete(found[0]);
    },
    onInstanceRunning(listener) {
      runningListeners.push(listener);
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const wakes of waiters.values()) wakes.forEach((w) => w());
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return handle;
}

/**
 * Compiles the filters the fake understands: `labels.<key>=<value>` terms (value optionally quoted), joined
 * by `AND`. Anything else is a 400, so that a provisioner using a filter the fake cannot honour fails loudly.
 */
function parseFilter(filter: string | undefined): (i: FakeInstance) => boolean {
  if (!filter) return () => true;
  const terms = filter.split(/\s+AND\s+/).map((term) => {
    const m = term.trim().match(/^\(?labels\.([a-z0-9_-]+)\s*=\s*"?([a-z0-9_-]*)"?\)?$/);
    if (!m)
      throw new HttpError({
        status: 400,
        reason: 'invalid',
        message: `the fake cannot evaluate filter '${filter}'`,
      });
    return { label: m[1] ?? '', value: m[2] ?? '' };
  });
  return (i) => terms.every((t) => i.labels[t.label] === t.value);
}

function asRecord(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

function isStringRecord(v: unknown): v is Record<string, string> {
  return (
    Object.values(asRecord(v)).every((x) => typeof x === 'string') && typeof v === 'object' && v !== null
  );
}
