/**
 * The Kubernetes executor: each lease runs as a Pod on the node the broker chose, with the lease's cpu,
 * memory and `nvidia.com/gpu` as requests and limits, the pool's node labels as its node selector, and
 * tolerations for the pool's taints. A watch on the pods (list, then watch from its resourceVersion,
 * listing again after `410 Gone`) turns pod phases into lease states: `OOMKilled` → an out-of-memory
 * failure, a pod lost with its node → preempted, image pull errors and pods that cannot be scheduled →
 * failures that say why. Workflow code (`task` and `worker` leases) runs in the Gantry image as
 * `gantry worker`, connecting to NATS with the credentials Secret named in the options. A run's pods are
 * owned by one ConfigMap, `gantry-run-<run>`: deleting it cleans up the run.
 */
import { createHash } from 'node:crypto';
import {
  CoreV1Api,
  type KubeConfig,
  makeInformer,
  type V1Node,
  type V1Pod,
  type V1Toleration,
} from '@kubernetes/client-node';
import { pino, type Logger } from 'pino';
import type { Cluster, Pool } from '../policies/index.ts';
import type { LeaseMsg } from '../protocol/index.ts';
import type { Executor, ExecutorReport, NodeCapacity } from './executor.ts';
import { containerTaskSpec, PROGRAM_CONTAINER } from './kube-container-pod.ts';

/** Options of {@link createKubeExecutor}. */
export interface KubeExecutorOptions {
  kubeConfig: KubeConfig;
  cluster: Cluster;
  /** Where task pods run. Default `gantry-tasks`. */
  namespace?: string;
  /** The Gantry image, for `task` and `worker` leases (`gantry worker`). */
  image: string;
  /** Image for `sim` leases (a shell that sleeps). Default `busybox:1.36`. */
  simImage?: string;
  /** What `gantry worker` pods connect to: the NATS URL and the Secret with their nkey seed (key `creds.nk`). */
  nats?: { url: string; credsSecret?: string; credsKey?: string };
  /**
   * The service account of container task pods, whose token only their outputs sidecar gets: it reads
   * its own pod and the task container's log (`get` on pods and pods/log in `namespace`,
   * deploy/kubernetes/task-rbac.yaml). Default: the namespace's `default` account.
   */
  taskServiceAccount?: string;
  /** A pod that cannot be scheduled this long fails. Default 120 s. */
  unschedulableAfterMs?: number;
  clock?: () => number;
  logger?: Logger;
}

/** A node of the cluster as Kubernetes sees it, with what is free on it for Gantry. */
export interface KubeNode extends NodeCapacity {
  name: string;
  pool: string;
  capacityType: Pool['capacityType'];
}

/** The Kubernetes executor, with the cluster's nodes as Kubernetes sees them. */
export interface KubeExecutor extends Executor {
  /** Lists pods and nodes and starts watching them; call before the agent starts. */
  watch(): Promise<void>;
  /** The cluster's nodes that belong to one of its pools. */
  kubeNodes(): KubeNode[];
  capacity(node: string): NodeCapacity | undefined;
}

const MANAGED_BY = 'app.kubernetes.io/managed-by';
const LEASE = 'gantry.dev/lease';
const POOL = 'gantry.dev/pool';
const GPU = 'nvidia.com/gpu';
const PULL_ERRORS = new Set(['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'ErrImageNeverPull']);
const CONFIG_ERRORS = new Set(['CreateContainerConfigError', 'CreateContainerError', 'RunContainerError']);

/** A valid object name from any id: lower-case, `[a-z0-9-]`, at most 63, unique by hash. */
export function podName(leaseId: string): string {
  const clean = leaseId
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .replace(/^-+|-+$/g, '');
  const hash = createHash('sha256').update(leaseId).digest('hex').slice(0, 8);
  return `gantry-${clean.slice(0, 45)}-${hash}`.replace(/-+/g, '-');
}

/** A valid label value (at most 63 of `[A-Za-z0-9._-]`, alphanumeric at both ends). */
export function labelValue(value: string): string {
  return value
    .replace(/[^A-Za-z0-9._-]/g, '_')
    .slice(0, 63)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
}

/** The labels that pick a pool's nodes: its `nodeLabels`, else its instance type. */
export function poolSelector(pool: Pool): Record<string, string> {
  return Object.keys(pool.nodeLabels).length > 0
    ? { ...pool.nodeLabels }
    : { 'node.kubernetes.io/instance-type': pool.instanceType };
}

/** The pool a node belongs to: its `gantry.dev/pool` label, else the first pool whose selector matches. */
export function poolOf(cluster: Cluster, labels: Record<string, string> | undefined): Pool | undefined {
  const l = labels ?? {};
  const named = l[POOL] ? cluster.pools.find((p) => p.name === l[POOL]) : undefined;
  return named ?? cluster.pools.find((p) => Object.entries(poolSelector(p)).every(([k, v]) => l[k] === v));
}

/** A lease that cannot be made into a pod; the reason is for people. */
export class PodSpecError extends Error {
  override name = 'PodSpecError';
}

/** The pod for a lease; throws {@link PodSpecError} when the lease cannot run as one. */
export function leasePod(lease: LeaseMsg, node: string, pool: Pool, opts: KubeExecutorOptions): V1Pod {
  const work = lease.work;
  const requests: Record<string, string> = {
    cpu: `${Math.max(1, Math.round(lease.cpuMilli))}m`,
    memory: `${Math.max(1, Math.round(lease.memoryMiB))}Mi`,
  };
  // Kubernetes schedules whole GPUs; a fractional lease gets one device.
  if (lease.gpuMilli > 0) requests[GPU] = String(Math.ceil(lease.gpuMilli / 1000));
  const labels: Record<string, string> = {
    [MANAGED_BY]: 'gantry',
    'gantry.dev/cluster': labelValue(lease.cluster),
    [POOL]: labelValue(lease.pool),
    [LEASE]: labelValue(lease.leaseId),
    'gantry.dev/request': labelValue(lease.requestId),
  };
  if (work.kind === 'task') {
    labels['gantry.dev/run'] = labelValue(work.run);
    labels['gantry.dev/task'] = labelValue(work.task);
  }
  const tolerations: V1Toleration[] = pool.taints.map((t) => ({
    key: t.key,
    operator: t.value === undefined ? 'Exists' : 'Equal',
    ...(t.value !== undefined ? { value: t.value } : {}),
    effect: t.effect,
  }));
  const resources = { requests, limits: requests };
  const container = { name: PROGRAM_CONTAINER, resources, ...command(lease, node, opts) };
  const name = podName(lease.leaseId);
  const namespace = opts.namespace ?? 'gantry-tasks';
  const volumes = credsVolume(lease, opts)?.volumes ?? [];
  const program = work.kind === 'task' ? work.program : undefined;
  // A container task runs its own image; the Gantry image only brings its inputs and takes its outputs.
  const containerTask = program?.image
    ? containerTaskSpec(
        lease,
        { ...program, image: program.image },
        container,
        resources,
        { name, namespace, serviceAccount: opts.taskServiceAccount },
        volumes,
      )
    : undefined;
  if (containerTask && !containerTask.ok) throw new PodSpecError(containerTask.reason);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace,
      labels,
      annotations: { 'gantry.dev/lease-id': lease.leaseId, 'gantry.dev/why': lease.why.slice(0, 1000) },
    },
    spec: {
      restartPolicy: 'Never',
      nodeSelector: { ...poolSelector(pool), 'kubernetes.io/hostname': node },
      tolerations,
      ...(containerTask?.ok
        ? containerTask.spec
        : { containers: [container], ...(volumes.length > 0 ? { volumes } : {}) }),
    },
  };
}

function command(lease: LeaseMsg, node: string, opts: KubeExecutorOptions) {
  const work = lease.work;
  const env = [
    { name: 'GANTRY_LEASE_ID', value: lease.leaseId },
    { name: 'GANTRY_NODE', value: node },
  ];
  switch (work.kind) {
    case 'sim':
      return {
        image: opts.simImage ?? 'busybox:1.36',
        command: [
          'sh',
          '-c',
          `sleep ${(work.durationMs / 1000).toFixed(3)}${work.outcome === 'succeeded' ? '' : '; exit 1'}`,
        ],
        env,
      };
    case 'process':
      return {
        image: work.env.GANTRY_IMAGE ?? opts.image,
        command: [work.command, ...work.args],
        env: [...env, ...Object.entries(work.env).map(([name, value]) => ({ name, value }))],
      };
    case 'task':
    case 'worker':
      return {
        image: opts.image,
        args: ['worker'],
        env: [
          ...env,
          { name: 'GANTRY_LEASE', value: JSON.stringify(lease) },
          ...(opts.nats ? [{ name: 'GANTRY_NATS_URL', value: opts.nats.url }] : []),
          ...(opts.nats?.credsSecret
            ? [{ name: 'GANTRY_NATS_CREDS', value: '/var/run/gantry/nats/creds.nk' }]
            : []),
        ],
        ...(opts.nats?.credsSecret
          ? { volumeMounts: [{ name: 'nats-creds', mountPath: '/var/run/gantry/nats', readOnly: true }] }
          : {}),
      };
  }
}

function credsVolume(lease: LeaseMsg, opts: KubeExecutorOptions) {
  if ((lease.work.kind !== 'task' && lease.work.kind !== 'worker') || !opts.nats?.credsSecret)
    return undefined;
  return {
    volumes: [
      {
        name: 'nats-creds',
        secret: {
          secretName: opts.nats.credsSecret,
          items: [{ key: opts.nats.credsKey ?? 'creds.nk', path: 'creds.nk' }],
        },
      },
    ],
  };
}

/** What a pod's status says about its lease, if anything new. */
export function podOutcome(
  pod: V1Pod,
  now: number,
  unschedulableAfterMs: number,
):
  | { state: 'running' | 'succeeded' | 'failed' | 'preempted'; exitCode?: number; reason?: string }
  | undefined {
  const status = pod.status ?? {};
  const statuses = status.containerStatuses ?? [];
  const inits = status.initContainerStatuses ?? [];
  // The main container first: a container task's helpers only report what it did.
  const main = statuses.find((c) => c.name === PROGRAM_CONTAINER) ?? statuses[0];
  const disruption = status.conditions?.find((c) => c.type === 'DisruptionTarget' && c.status === 'True');
  if (status.phase === 'Succeeded')
    return { state: 'succeeded', exitCode: main?.state?.terminated?.exitCode ?? 0 };
  if (disruption || status.reason === 'NodeLost' || status.reason === 'Evicted')
    return {
      state: 'preempted',
      reason: `pod lost with its node${pod.spec?.nodeName ? ` ${pod.spec.nodeName}` : ''} (${disruption?.reason ?? status.reason})`,
    };
  if (status.phase === 'Failed') {
    const failed = [main, ...statuses, ...inits].find(
      (c) => c?.state?.terminated && c.state.terminated.exitCode !== 0,
    );
    const term = failed?.state?.terminated ?? main?.state?.terminated;
    if (term?.reason === 'OOMKilled') return { state: 'failed', exitCode: 137, reason: 'OOMKilled' };
    const which = failed && failed !== main ? `container ${failed.name}: ` : '';
    return {
      state: 'failed',
      exitCode: term?.exitCode ?? 1,
      reason: `${which}${term?.reason ?? status.reason ?? 'Error'}: exit code ${term?.exitCode ?? '?'}${term?.message ? ` (${term.message.slice(0, 300)})` : ''}`,
    };
  }
  for (const c of [...inits, ...statuses]) {
    const waiting = c.state?.waiting;
    if (waiting?.reason && (PULL_ERRORS.has(waiting.reason) || CONFIG_ERRORS.has(waiting.reason)))
      return {
        state: 'failed',
        exitCode: 1,
        reason:
          `${c === main ? '' : `container ${c.name}: `}${waiting.reason}: ${waiting.message ?? ''}`.trim(),
      };
  }
  const scheduled = status.conditions?.find((c) => c.type === 'PodScheduled');
  if (status.phase === 'Pending' && scheduled?.status === 'False' && scheduled.reason === 'Unschedulable') {
    const since = pod.metadata?.creationTimestamp ? new Date(pod.metadata.creationTimestamp).getTime() : now;
    if (now - since >= unschedulableAfterMs)
      return {
        state: 'failed',
        exitCode: 1,
        reason: `Unschedulable: ${scheduled.message ?? 'no node fits'}`,
      };
  }
  if (status.phase === 'Running') return { state: 'running' };
  return undefined;
}

/** What other workloads' pods request, per node. */
export type NodeRequests = ReadonlyMap<string, { cpuMilli: number; memoryMiB: number; gpus: number }>;

/**
 * What the pods that are not Gantry's request on each node (Gantry's own pods are the broker's
 * leases: it counts them itself). Finished pods hold nothing.
 */
export function otherRequests(pods: readonly V1Pod[]): NodeRequests {
  const out = new Map<string, { cpuMilli: number; memoryMiB: number; gpus: number }>();
  for (const p of pods) {
    const node = p.spec?.nodeName;
    if (!node || p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed') continue;
    if (p.metadata?.labels?.[MANAGED_BY] === 'gantry') continue;
    let used = out.get(node);
    if (!used) out.set(node, (used = { cpuMilli: 0, memoryMiB: 0, gpus: 0 }));
    for (const c of p.spec?.containers ?? []) {
      const r = c.resources?.requests ?? {};
      used.cpuMilli += quantityMilli(r.cpu ?? '0');
      used.memoryMiB += quantityMiB(r.memory ?? '0');
      used.gpus += Number(r[GPU] ?? 0);
    }
  }
  return out;
}

/** What is free on a node for Gantry: allocatable minus other workloads' requests, and whether it is Ready. */
export function nodeCapacity(node: V1Node, requests: NodeRequests): NodeCapacity {
  const alloc = node.status?.allocatable ?? {};
  const used = requests.get(node.metadata?.name ?? '') ?? { cpuMilli: 0, memoryMiB: 0, gpus: 0 };
  const ready = node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
  const unschedulable = node.spec?.unschedulable === true;
  return {
    cpuMilli: Math.max(0, quantityMilli(alloc.cpu ?? '0') - used.cpuMilli),
    memoryMiB: Math.max(0, quantityMiB(alloc.memory ?? '0') - used.memoryMiB),
    gpuCount: Math.max(0, Math.floor(Number(alloc[GPU] ?? 0) - used.gpus)),
    ready: ready && !unschedulable,
  };
}

const BINARY: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50 };
const DECIMAL: Record<string, number> = { k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, m: 1e-3, '': 1 };

/** A Kubernetes quantity in bytes (or units). */
function quantity(q: string): number {
  const m = /^([0-9.]+)([A-Za-z]*)$/.exec(q.trim());
  if (!m) return 0;
  const n = Number(m[1]);
  const unit = m[2]!;
  return n * (BINARY[unit] ?? DECIMAL[unit] ?? 1);
}
const quantityMilli = (q: string) => Math.round(quantity(q) * 1000);
const quantityMiB = (q: string) => Math.floor(quantity(q) / 2 ** 20);

/**
 * Creates the Kubernetes executor. Call `start()` to list and watch before the agent starts.
 *
 * @example
 * const kc = new KubeConfig(); kc.loadFromDefault();
 * const executor = createKubeExecutor({ kubeConfig: kc, cluster, image: 'ghcr.io/gantry/gantry:0.1' });
 * await executor.start();
 */
export function createKubeExecutor(opts: KubeExecutorOptions): KubeExecutor {
  const namespace = opts.namespace ?? 'gantry-tasks';
  const api = opts.kubeConfig.makeApiClient(CoreV1Api);
  const clock = opts.clock ?? Date.now;
  const log = opts.logger ?? pino({ level: 'silent' });
  const unschedulableAfterMs = opts.unschedulableAfterMs ?? 120_000;
  const pools = new Map(opts.cluster.pools.map((p) => [p.name, p]));
  const selector = `${MANAGED_BY}=gantry,gantry.dev/cluster=${labelValue(opts.cluster.name)}`;
  /** Leases this executor runs, by pod name. */
  const running = new Map<string, { lease: LeaseMsg; report: ExecutorReport; last?: string }>();
  const stopping = new Set<string>();
  const podInformer = makeInformer<V1Pod>(
    opts.kubeConfig,
    `/api/v1/namespaces/${namespace}/pods`,
    () => api.listNamespacedPod({ namespace, labelSelector: selector }),
    selector,
  );
  const nodeInformer = makeInformer<V1Node>(opts.kubeConfig, '/api/v1/nodes', () => api.listNode());
  // Every pod, for the capacity other workloads take on each node (read on demand, cached).
  const allPods = makeInformer<V1Pod>(opts.kubeConfig, '/api/v1/pods', () => api.listPodForAllNamespaces());
  // Summed once per change of the pods, not once per node and heartbeat.
  let requested: NodeRequests | undefined;
  const forget = () => {
    requested = undefined;
  };
  for (const event of ['add', 'update', 'delete'] as const) allPods.on(event, forget);
  const others = () => (requested ??= otherRequests(allPods.list()));
  let closed = false;
  let sweep: NodeJS.Timeout | undefined;

  const onPod = (pod: V1Pod) => {
    const entry = running.get(pod.metadata?.name ?? '');
    if (!entry) return;
    const outcome = podOutcome(pod, clock(), unschedulableAfterMs);
    if (!outcome) return;
    const key = `${outcome.state}|${outcome.reason ?? ''}`;
    if (entry.last === key) return;
    entry.last = key;
    if (outcome.state === 'running') return entry.report('running');
    running.delete(pod.metadata!.name!);
    const { state, ...info } = outcome;
    entry.report(state, info);
    // Failed before running (image, scheduling): the pod would sit there; remove it.
    if (state === 'failed' && pod.status?.phase === 'Pending') void deletePod(pod.metadata!.name!);
  };
  const onPodDeleted = (pod: V1Pod) => {
    const name = pod.metadata?.name ?? '';
    const entry = running.get(name);
    if (!entry || stopping.delete(name)) return;
    running.delete(name);
    entry.report('preempted', {
      reason: `pod ${name} was deleted (its node${pod.spec?.nodeName ? ` ${pod.spec.nodeName}` : ''} went away?)`,
    });
  };
  podInformer.on('add', onPod);
  podInformer.on('update', onPod);
  podInformer.on('delete', onPodDeleted);
  for (const inf of [podInformer, nodeInformer, allPods]) {
    // A watch that fails for another reason than 410 (which the informer handles) starts again.
    inf.on('error', (err: unknown) => {
      if (closed) return;
      log.warn({ err: String(err) }, 'kubernetes watch failed; restarting');
      setTimeout(() => !closed && void inf.start().catch(() => undefined), 1000).unref();
    });
  }

  async function deletePod(name: string): Promise<void> {
    try {
      await api.deleteNamespacedPod({ name, namespace });
    } catch (err) {
      if (statusCode(err) !== 404) log.warn({ pod: name, err: String(err) }, 'could not delete pod');
    }
  }

  /** The ConfigMap that owns a run's pods (created once per run): deleting it deletes them. */
  const owners = new Map<string, Promise<string>>();
  function runOwner(run: string): Promise<string> {
    const name = `gantry-run-${labelValue(run)
      .toLowerCase()
      .replace(/[^a-z0-9-]/g, '-')}`
      .slice(0, 63)
      .replace(/-+$/, '');
    let uid = owners.get(name);
    if (!uid) {
      uid = api
        .createNamespacedConfigMap({
          namespace,
          body: {
            metadata: { name, labels: { [MANAGED_BY]: 'gantry', 'gantry.dev/run': labelValue(run) } },
            data: { run },
          },
        })
        .catch((err: unknown) => {
          if (statusCode(err) !== 409) throw err;
          return api.readNamespacedConfigMap({ name, namespace });
        })
        .then((cm) => cm.metadata!.uid!);
      uid.catch(() => owners.delete(name));
      owners.set(name, uid);
    }
    return uid.then((u) => `${name}/${u}`);
  }

  async function launch(lease: LeaseMsg, node: string, report: ExecutorReport): Promise<void> {
    const pool = pools.get(lease.pool);
    if (!pool) return report('failed', { reason: `no pool ${lease.pool} in cluster ${opts.cluster.name}` });
    let body: V1Pod;
    try {
      body = leasePod(lease, node, pool, opts);
    } catch (err) {
      if (err instanceof PodSpecError) return report('failed', { exitCode: 1, reason: err.message });
      throw err;
    }
    const name = body.metadata!.name!;
    running.set(name, { lease, report });
    try {
      if (lease.work.kind === 'task') {
        // Without an owner the pod still runs; cleanup is then per pod.
        const owner = await runOwner(lease.work.run).catch((err: unknown) => {
          log.warn(
            { run: lease.work.kind === 'task' ? lease.work.run : '', err: kubeMessage(err) },
            'no run owner',
          );
          return undefined;
        });
        if (owner) {
          const [ownerName, uid] = owner.split('/') as [string, string];
          body.metadata!.ownerReferences = [{ apiVersion: 'v1', kind: 'ConfigMap', name: ownerName, uid }];
        }
      }
      await api.createNamespacedPod({ namespace, body });
    } catch (err) {
      // 409: the pod exists (a launch repeated after an agent restart); the watch reports its state.
      const code = statusCode(err);
      if (code !== 409) {
        running.delete(name);
        const reason = `could not create pod ${name}: ${kubeMessage(err)}`;
        // The API server busy or unreachable is not the task's fault: the broker places it again.
        const transient = code === undefined || code === 429 || code >= 500;
        return report(transient ? 'lost' : 'failed', { reason });
      }
    }
    // Stopped while the pod was being created: it must not run.
    if (!running.has(name)) return void deletePod(name);
    const existing = podInformer.get(name, namespace);
    if (existing) onPod(existing);
  }

  return {
    kind: 'kubernetes',
    start(lease: LeaseMsg, node: string, report: ExecutorReport) {
      void launch(lease, node, report);
    },
    async watch(): Promise<void> {
      await Promise.all([podInformer.start(), nodeInformer.start(), allPods.start()]);
      // Unschedulable pods change no status when their grace runs out: look again now and then.
      sweep = setInterval(
        () => {
          for (const pod of podInformer.list(namespace)) onPod(pod);
        },
        Math.min(5000, unschedulableAfterMs),
      ).unref();
    },
    stop(leaseId: string) {
      // Always delete: the pod may be an earlier agent's (a restart), or still being created.
      const name = podName(leaseId);
      if (running.delete(name)) stopping.add(name);
      void deletePod(name);
    },
    capacity(node: string): NodeCapacity | undefined {
      const n = nodeInformer.get(node);
      return n ? nodeCapacity(n, others()) : undefined;
    },
    async ping(): Promise<void> {
      try {
        await api.listNamespacedPod({ namespace, labelSelector: selector, limit: 1 });
      } catch (err) {
        throw new Error(`the Kubernetes API does not answer: ${kubeMessage(err)}`, { cause: err });
      }
    },
    kubeNodes(): KubeNode[] {
      return nodeInformer.list().flatMap((n) => {
        const pool = poolOf(opts.cluster, n.metadata?.labels);
        return pool && n.metadata?.name
          ? [
              {
                name: n.metadata.name,
                pool: pool.name,
                capacityType: pool.capacityType,
                ...nodeCapacity(n, others()),
              },
            ]
          : [];
      });
    },
    async close() {
      closed = true;
      clearInterval(sweep);
      await Promise.all([podInformer.stop(), nodeInformer.stop(), allPods.stop()]);
    },
  };
}

function statusCode(err: unknown): number | undefined {
  const e = err as { code?: number; statusCode?: number; body?: unknown };
  return e.code ?? e.statusCode;
}

function kubeMessage(err: unknown): string {
  const e = err as { body?: unknown; message?: string };
  try {
    const body =
      typeof e.body === 'string'
        ? (JSON.parse(e.body) as { message?: string })
        : (e.body as { message?: string });
    if (body?.message) return body.message;
  } catch {
    // not JSON
  }
  return e.message ?? String(err);
}
