/**
 * A local Kubernetes API server for tests: the subset the Kubernetes executor uses, over plain HTTP,
 * with state. Nodes and pods with list and watch (resourceVersion; `410 Gone` once history is
 * compacted), pod create (`409` when it exists) and delete (`404` when it does not), and a built-in
 * scheduler and kubelet: pods bind to a Ready node that matches their node selector, tolerates its
 * taints and has room, then the kubelet runs its init containers one after another and then its
 * containers together, through a `runner` — by default each as a local process (./kube-runner.ts) —
 * with `emptyDir` volumes as temporary directories, and reports them as the real one does: phase,
 * `initContainerStatuses` and `containerStatuses` (waiting `PodInitializing`, running, terminated
 * with exit code and reason), and each container's log at `GET …/pods/<name>/log?container=`.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type {
  V1ConfigMap,
  V1Container,
  V1ContainerState,
  V1ContainerStatus,
  V1Node,
  V1Pod,
  V1Taint,
} from '@kubernetes/client-node';
import { type LocalRunnerOptions, localRunner, type PodRunner, qty, type RunOutcome } from './kube-runner.ts';

export { localRunner };
export type { ContainerRun, PodRunner, RunOutcome } from './kube-runner.ts';

type Kind = 'pods' | 'nodes';
interface Watcher {
  kind: Kind;
  namespace?: string | undefined;
  selector: Record<string, string>;
  res: ServerResponse;
}
interface Change {
  rv: number;
  kind: Kind;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: V1Pod | V1Node;
}

/** Options of {@link startFakeKube}: a runner, or how the local one runs containers. */
export interface FakeKubeOptions extends Omit<LocalRunnerOptions, 'kubeconfig'> {
  runner?: PodRunner;
}

/** The running fake. */
export interface FakeKube {
  url: string;
  nodes(): V1Node[];
  pods(namespace?: string): V1Pod[];
  /** Registers a Ready node. */
  addNode(
    name: string,
    labels: Record<string, string>,
    allocatable: Record<string, string>,
    taints?: V1Taint[],
  ): void;
  /** Deletes a node: its pods are marked disrupted and deleted, as pod GC does. */
  deleteNode(name: string): void;
  /** Creates a pod that is not Gantry's (another team's workload) on a node. */
  addForeignPod(namespace: string, name: string, node: string, requests: Record<string, string>): void;
  /** Images that fail to pull. */
  badImage(image: string): void;
  /** Forgets watch history: watches from an older resourceVersion get 410 Gone and must list again. */
  compact(): void;
  /** Ends every open watch (as an API server restart does). */
  dropWatches(): void;
  /** Every request seen, as `METHOD path`. */
  requests: string[];
  /** What a container of a pod wrote (stdout and stderr), as `pods/log` returns it. */
  logs(namespace: string, pod: string, container: string): string;
  /** Deletes a ConfigMap as `kubectl delete` would, with the pods it owns. */
  deleteConfigMap(namespace: string, name: string): Promise<void>;
  close(): Promise<void>;
}

const json = (res: ServerResponse, code: number, body: unknown) => {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};
const status = (res: ServerResponse, code: number, reason: string, message: string) =>
  json(res, code, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    code,
  });

function parseSelector(s: string | null): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (s ?? '').split(',').filter(Boolean)) {
    const [k, v] = part.split('=');
    out[k!] = v ?? '';
  }
  return out;
}
const matches = (labels: Record<string, string> | undefined, selector: Record<string, string>) =>
  Object.entries(selector).every(([k, v]) => labels?.[k] === v);

/**
 * Starts the fake API server on a free loopback port.
 *
 * @example
 * const kube = await startFakeKube();
 * kube.addNode('ip-10-0-0-1', { 'node.kubernetes.io/instance-type': 'm7i.large' }, { cpu: '2', memory: '8Gi' });
 */
export async function startFakeKube(opts: FakeKubeOptions = {}): Promise<FakeKube> {
  let rv = 1;
  const nodes = new Map<string, V1Node>();
  const pods = new Map<string, V1Pod>(); // namespace/name
  const configMaps = new Map<string, V1ConfigMap>();
  let history: Change[] = [];
  let oldest = 1;
  const watchers = new Set<Watcher>();
  const running = new Map<string, AbortController>();
  const bad = new Set<string>();
  const requests: string[] = [];
  const logs = new Map<string, string>(); // namespace/pod/container
  const dir = mkdtempSync(join(tmpdir(), 'gantry-fake-kube-'));
  const kubeconfig = join(dir, 'kubeconfig');
  let runner: PodRunner = opts.runner ?? (() => Promise.reject(new Error('not started')));

  const record = (kind: Kind, type: Change['type'], object: V1Pod | V1Node) => {
    const next = ++rv;
    object.metadata!.resourceVersion = String(next);
    const change: Change = { rv: next, kind, type, object: structuredClone(object) };
    history.push(change);
    for (const w of watchers) send(w, change);
  };
  const send = (w: Watcher, c: Change) => {
    if (c.kind !== w.kind) return;
    if (w.namespace && c.object.metadata?.namespace !== w.namespace) return;
    if (!matches(c.object.metadata?.labels, w.selector)) return;
    w.res.write(`${JSON.stringify({ type: c.type, object: c.object })}\n`);
  };
  const key = (p: V1Pod) => `${p.metadata!.namespace}/${p.metadata!.name}`;

  function setPod(p: V1Pod, type: Change['type'] = 'MODIFIED') {
    pods.set(key(p), p);
    record('pods', type, p);
  }

  function free(node: V1Node) {
    const a = node.status?.allocatable ?? {};
    let cpu = qty(a.cpu);
    let mem = qty(a.memory);
    let gpu = qty(a['nvidia.com/gpu']);
    for (const p of pods.values()) {
      if (
        p.spec?.nodeName !== node.metadata!.name ||
        p.status?.phase === 'Succeeded' ||
        p.status?.phase === 'Failed'
      )
        continue;
      const r = podRequests(p);
      cpu -= r.cpu;
      mem -= r.mem;
      gpu -= r.gpu;
    }
    return { cpu, mem, gpu };
  }

  function fits(pod: V1Pod, node: V1Node): boolean {
    const ready = node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
    if (!ready || !matches(node.metadata?.labels, pod.spec?.nodeSelector ?? {})) return false;
    const tolerated = (node.spec?.taints ?? []).every(
      (t) =>
        t.effect === 'PreferNoSchedule' ||
        (pod.spec?.tolerations ?? []).some(
          (tol) =>
            tol.key === t.key &&
            (tol.operator === 'Exists' || tol.value === t.value) &&
            (!tol.effect || tol.effect === t.effect),
        ),
    );
    if (!tolerated) return false;
    const f = free(node);
    const r = podRequests(pod);
    return r.cpu <= f.cpu + 1e-9 && r.mem <= f.mem && r.gpu <= f.gpu;
  }

  function schedule() {
    for (const pod of pods.values()) {
      if (pod.spec?.nodeName || pod.status?.phase !== 'Pending' || pod.metadata?.deletionTimestamp) continue;
      const node = [...nodes.values()].find((n) => fits(pod, n));
      if (!node) {
        const cond = pod.status.conditions?.find((c) => c.type === 'PodScheduled');
        if (cond?.reason === 'Unschedulable') continue;
        pod.status.conditions = [
          {
            type: 'PodScheduled',
            status: 'False',
            reason: 'Unschedulable',
            message: `0/${nodes.size} nodes are available: ${nodes.size} node(s) didn't match Pod's node affinity/selector.`,
            lastTransitionTime: new Date(),
          },
        ];
        setPod(pod);
        continue;
      }
      pod.spec!.nodeName = node.metadata!.name!;
      pod.status.conditions = [{ type: 'PodScheduled', status: 'True', lastTransitionTime: new Date() }];
      setPod(pod);
      queueMicrotask(() => void kubelet(pod));
    }
  }

  /** The kubelet: init containers one by one, then the containers together; the pod's phase from them. */
  async function kubelet(pod: V1Pod) {
    const k = key(pod);
    const inits = pod.spec!.initContainers ?? [];
    const containers = pod.spec!.containers;
    const pullFailed = [...inits, ...containers].find((c) => bad.has(c.image ?? ''));
    const waiting = (c: V1Container): V1ContainerState =>
      c === pullFailed
        ? { waiting: { reason: 'ErrImagePull', message: `failed to pull image "${c.image}": not found` } }
        : { waiting: { reason: 'PodInitializing' } };
    pod.status = {
      ...pod.status,
      ...(inits.length > 0
        ? { initContainerStatuses: inits.map((c) => containerStatus(c, waiting(c))) }
        : {}),
      containerStatuses: containers.map((c) => containerStatus(c, waiting(c))),
    };
    if (pullFailed) return setPod(pod);
    const ac = new AbortController();
    running.set(k, ac);
    pod.status.startTime = new Date();
    const volumes = new Map(
      (pod.spec!.volumes ?? [])
        .filter((v) => v.emptyDir)
        .map((v) => [v.name, mkdtempSync(join(dir, `${v.name}-`))] as const),
    );
    const gone = () => ac.signal.aborted || pods.get(k) !== pod;
    const run = async (c: V1Container, statuses: V1ContainerStatus[], i: number): Promise<RunOutcome> => {
      statuses[i] = containerStatus(c, { running: { startedAt: new Date() } }, true);
      setPod(pod);
      const mounts = Object.fromEntries(
        (c.volumeMounts ?? []).flatMap((m) =>
          volumes.has(m.name) ? [[m.mountPath, volumes.get(m.name)!]] : [],
        ),
      );
      const logKey = `${k}/${c.name}`;
      logs.set(logKey, '');
      const log = (text: string) => logs.set(logKey, (logs.get(logKey) ?? '') + text);
      const out = await runner({
        pod: structuredClone(pod),
        container: c,
        mounts,
        signal: ac.signal,
        log,
      }).catch((err: Error): RunOutcome => ({ exitCode: 128, reason: 'StartError', message: err.message }));
      if (!gone()) {
        const reason = out.reason ?? (out.exitCode === 0 ? 'Completed' : 'Error');
        statuses[i] = containerStatus(c, {
          terminated: { exitCode: out.exitCode, reason, ...(out.message ? { message: out.message } : {}) },
        });
        setPod(pod);
      }
      return out;
    };
    try {
      for (const [i, c] of inits.entries()) {
        const out = await run(c, pod.status.initContainerStatuses!, i);
        if (gone()) return;
        if (out.exitCode !== 0) return end(pod, 'Failed');
      }
      pod.status.phase = 'Running';
      const outs = await Promise.all(containers.map((c, i) => run(c, pod.status!.containerStatuses!, i)));
      if (gone()) return;
      end(pod, outs.every((o) => o.exitCode === 0) ? 'Succeeded' : 'Failed');
    } finally {
      running.delete(k);
      for (const v of volumes.values()) rmSync(v, { recursive: true, force: true });
    }
  }

  function end(pod: V1Pod, phase: 'Succeeded' | 'Failed') {
    pod.status!.phase = phase;
    setPod(pod);
    schedule();
  }

  function removePod(k: string) {
    const pod = pods.get(k);
    if (!pod) return undefined;
    running.get(k)?.abort();
    running.delete(k);
    pods.delete(k);
    for (const lk of [...logs.keys()]) if (lk.startsWith(`${k}/`)) logs.delete(lk);
    record('pods', 'DELETED', pod);
    schedule();
    return pod;
  }

  function list(kind: Kind, url: URL, namespace?: string) {
    const selector = parseSelector(url.searchParams.get('labelSelector'));
    const items = (kind === 'nodes' ? [...nodes.values()] : [...pods.values()]).filter(
      (o) => (!namespace || o.metadata?.namespace === namespace) && matches(o.metadata?.labels, selector),
    );
    return {
      kind: kind === 'nodes' ? 'NodeList' : 'PodList',
      apiVersion: 'v1',
      metadata: { resourceVersion: String(rv) },
      items,
    };
  }

  function watch(kind: Kind, url: URL, res: ServerResponse, namespace?: string) {
    const from = Number(url.searchParams.get('resourceVersion') || rv);
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    if (from < oldest - 1) {
      res.end(
        `${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: `too old resource version: ${from} (${oldest})`, reason: 'Expired', code: 410 } })}\n`,
      );
      return;
    }
    const w: Watcher = {
      kind,
      namespace,
      selector: parseSelector(url.searchParams.get('labelSelector')),
      res,
    };
    for (const c of history) if (c.rv > from) send(w, c);
    watchers.add(w);
    res.on('close', () => watchers.delete(w));
  }

  async function body(req: IncomingMessage): Promise<unknown> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
  }

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://fake');
    requests.push(`${req.method} ${url.pathname}`);
    const isWatch = url.searchParams.get('watch') === 'true';
    const path = url.pathname;
    let m: RegExpExecArray | null;
    if (req.method === 'GET' && path === '/api/v1/nodes')
      return isWatch ? watch('nodes', url, res) : json(res, 200, list('nodes', url));
    if (req.method === 'GET' && path === '/api/v1/pods')
      return isWatch ? watch('pods', url, res) : json(res, 200, list('pods', url));
    if ((m = /^\/api\/v1\/namespaces\/([^/]+)\/pods$/.exec(path))) {
      const ns = m[1]!;
      if (req.method === 'GET')
        return isWatch ? watch('pods', url, res, ns) : json(res, 200, list('pods', url, ns));
      if (req.method === 'POST')
        return void body(req).then((raw) => {
          const pod = raw as V1Pod;
          const name = pod.metadata?.name ?? '';
          if (pods.has(`${ns}/${name}`))
            return status(res, 409, 'AlreadyExists', `pods "${name}" already exists`);
          pod.metadata = {
            ...pod.metadata,
            namespace: ns,
            uid: `uid-${++rv}`,
            creationTimestamp: new Date(),
          };
          pod.status = { phase: 'Pending' };
          setPod(pod, 'ADDED');
          json(res, 201, pod);
          schedule();
        });
    }
    if ((m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/log$/.exec(path)) && req.method === 'GET') {
      const k = `${m[1]}/${m[2]}`;
      const pod = pods.get(k);
      if (!pod) return status(res, 404, 'NotFound', `pods "${m[2]}" not found`);
      const container = url.searchParams.get('container') ?? pod.spec!.containers[0]!.name;
      const text = logs.get(`${k}/${container}`);
      if (text === undefined)
        return status(
          res,
          400,
          'BadRequest',
          `container "${container}" in pod "${m[2]}" is waiting to start`,
        );
      const tail = Number(url.searchParams.get('tailLines') ?? 0);
      const lines = text.split(/(?<=\n)/);
      res.writeHead(200, { 'content-type': 'text/plain' });
      return void res.end(tail > 0 ? lines.slice(-tail).join('') : text);
    }
    if ((m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)$/.exec(path))) {
      const k = `${m[1]}/${m[2]}`;
      if (req.method === 'GET')
        return pods.has(k)
          ? json(res, 200, pods.get(k))
          : status(res, 404, 'NotFound', `pods "${m[2]}" not found`);
      if (req.method === 'DELETE') {
        const pod = removePod(k);
        return pod ? json(res, 200, pod) : status(res, 404, 'NotFound', `pods "${m[2]}" not found`);
      }
    }
    if ((m = /^\/api\/v1\/namespaces\/([^/]+)\/configmaps$/.exec(path)) && req.method === 'POST') {
      const ns = m[1]!;
      return void body(req).then((raw) => {
        const cm = raw as V1ConfigMap;
        const name = cm.metadata?.name ?? '';
        if (configMaps.has(`${ns}/${name}`))
          return status(res, 409, 'AlreadyExists', `configmaps "${name}" already exists`);
        cm.metadata = { ...cm.metadata, namespace: ns, uid: `uid-${++rv}`, resourceVersion: String(rv) };
        configMaps.set(`${ns}/${name}`, cm);
        json(res, 201, cm);
      });
    }
    if ((m = /^\/api\/v1\/namespaces\/([^/]+)\/configmaps\/([^/]+)$/.exec(path))) {
      const k = `${m[1]}/${m[2]}`;
      const cm = configMaps.get(k);
      if (!cm) return status(res, 404, 'NotFound', `configmaps "${m[2]}" not found`);
      if (req.method === 'GET') return json(res, 200, cm);
      if (req.method === 'DELETE') {
        configMaps.delete(k);
        // The garbage collector: owned pods go with their owner.
        for (const [pk, pod] of [...pods])
          if (pod.metadata?.ownerReferences?.some((o) => o.uid === cm.metadata?.uid)) removePod(pk);
        return json(res, 200, cm);
      }
    }
    status(res, 404, 'NotFound', `the server could not find the requested resource (${req.method} ${path})`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // What the Gantry image's processes reach this server with, as a pod's service account would.
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'fake', cluster: { server: url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'pod', user: { token: 'pod' } }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'pod' } }],
      'current-context': 'fake',
    }),
  );
  runner = opts.runner ?? localRunner({ ...opts, kubeconfig });

  return {
    url,
    requests,
    logs: (namespace, pod, container) => logs.get(`${namespace}/${pod}/${container}`) ?? '',
    nodes: () => [...nodes.values()],
    pods: (namespace) => [...pods.values()].filter((p) => !namespace || p.metadata?.namespace === namespace),
    addNode(name, labels, allocatable, taints) {
      const node: V1Node = {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels }, uid: `uid-${++rv}` },
        spec: taints ? { taints } : {},
        status: { allocatable, capacity: allocatable, conditions: [{ type: 'Ready', status: 'True' }] },
      };
      nodes.set(name, node);
      record('nodes', 'ADDED', node);
      schedule();
    },
    deleteNode(name) {
      const node = nodes.get(name);
      if (!node) return;
      nodes.delete(name);
      record('nodes', 'DELETED', node);
      for (const [k, pod] of [...pods]) {
        if (
          pod.spec?.nodeName !== name ||
          pod.status?.phase === 'Succeeded' ||
          pod.status?.phase === 'Failed'
        )
          continue;
        running.get(k)?.abort();
        pod.status = {
          ...pod.status,
          conditions: [
            ...(pod.status?.conditions ?? []),
            {
              type: 'DisruptionTarget',
              status: 'True',
              reason: 'DeletionByPodGC',
              message: 'PodGC: node no longer exists',
            },
          ],
        };
        setPod(pod);
        removePod(k);
      }
    },
    addForeignPod(namespace, name, node, requests) {
      const pod: V1Pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name,
          namespace,
          labels: { app: name },
          uid: `uid-${++rv}`,
          creationTimestamp: new Date(),
        },
        spec: { nodeName: node, containers: [{ name: 'main', image: 'other:1', resources: { requests } }] },
        status: { phase: 'Running' },
      };
      setPod(pod, 'ADDED');
    },
    badImage: (image) => void bad.add(image),
    async deleteConfigMap(namespace, name) {
      await fetch(`${url}/api/v1/namespaces/${namespace}/configmaps/${name}`, { method: 'DELETE' });
    },
    compact() {
      oldest = rv + 1;
      history = [];
    },
    dropWatches() {
      for (const w of watchers) w.res.end();
      watchers.clear();
    },
    async close() {
      for (const ac of running.values()) ac.abort();
      for (const w of watchers) w.res.end();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function containerStatus(c: V1Container, state: V1ContainerState, ready = false): V1ContainerStatus {
  return { name: c.name, image: c.image ?? '', imageID: '', ready, restartCount: 0, state };
}

/** What a pod asks of its node: its containers together, or its largest init container if more. */
function podRequests(pod: V1Pod): { cpu: number; mem: number; gpu: number } {
  const of = (cs: V1Container[], f: (r: Record<string, string>) => number) =>
    cs.map((c) => f(c.resources?.requests ?? {}));
  const get = (f: (r: Record<string, string>) => number) =>
    Math.max(
      of(pod.spec!.containers, f).reduce((a, b) => a + b, 0),
      ...of(pod.spec!.initContainers ?? [], f),
    );
  return {
    cpu: get((r) => qty(r.cpu)),
    mem: get((r) => qty(r.memory)),
    gpu: get((r) => qty(r['nvidia.com/gpu'])),
  };
}
