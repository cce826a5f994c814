/**
 * A local Kubernetes API server for tests: the subset the Kubernetes executor uses, over plain HTTP,
 * with state. Nodes and pods with list and watch (resourceVersion; `410 Gone` once history is
 * compacted), pod create (`409` when it exists) and delete (`404` when it does not), and a built-in
 * scheduler and kubelet: pods bind to a Ready node that matches their node selector, tolerates its
 * taints and has room, then run through a `runner` — by default the container's command as a local
 * process, with the memory limit as its heap limit, so a task that allocates too much is `OOMKilled`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { V1ConfigMap, V1Node, V1Pod, V1Taint } from '@kubernetes/client-node';

/** How a container ended. */
export interface RunOutcome {
  exitCode: number;
  reason?: string;
  message?: string;
}

/** Runs a pod's container; resolves when it ends. `signal` aborts when the pod or its node goes away. */
export type PodRunner = (pod: V1Pod, signal: AbortSignal) => Promise<RunOutcome>;

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

/** Options of {@link startFakeKube}. */
export interface FakeKubeOptions {
  runner?: PodRunner;
  /** Repository root, to run `node bin/gantry.js` for the Gantry image. Default: the working directory. */
  root?: string;
  /** The image whose `worker` command runs `node bin/gantry.js`. Default `gantry:test`. */
  gantryImage?: string;
  /** Extra environment for containers run locally. */
  env?: Record<string, string>;
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

function qty(q: string | undefined): number {
  if (!q) return 0;
  const m = /^([0-9.]+)([A-Za-z]*)$/.exec(q);
  if (!m) return 0;
  const units: Record<string, number> = {
    '': 1,
    m: 1e-3,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    Ki: 1024,
    Mi: 1024 ** 2,
    Gi: 1024 ** 3,
    Ti: 1024 ** 4,
  };
  return Number(m[1]) * (units[m[2]!] ?? 1);
}

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
  const runner = opts.runner ?? localRunner(opts);

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
      for (const c of p.spec?.containers ?? []) {
        cpu -= qty(c.resources?.requests?.cpu);
        mem -= qty(c.resources?.requests?.memory);
        gpu -= qty(c.resources?.requests?.['nvidia.com/gpu']);
      }
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
    const r = pod.spec!.containers[0]!.resources?.requests ?? {};
    return qty(r.cpu) <= f.cpu + 1e-9 && qty(r.memory) <= f.mem && qty(r['nvidia.com/gpu']) <= f.gpu;
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
      queueMicrotask(() => kubelet(pod));
    }
  }

  function kubelet(pod: V1Pod) {
    const image = pod.spec!.containers[0]!.image ?? '';
    if (bad.has(image)) {
      pod.status!.containerStatuses = [
        {
          name: 'task',
          image,
          imageID: '',
          ready: false,
          restartCount: 0,
          state: {
            waiting: { reason: 'ErrImagePull', message: `failed to pull image "${image}": not found` },
          },
        },
      ];
      setPod(pod);
      return;
    }
    const ac = new AbortController();
    running.set(key(pod), ac);
    pod.status = {
      ...pod.status,
      phase: 'Running',
      startTime: new Date(),
      containerStatuses: [
        {
          name: 'task',
          image,
          imageID: '',
          ready: true,
          restartCount: 0,
          state: { running: { startedAt: new Date() } },
        },
      ],
    };
    setPod(pod);
    runner(structuredClone(pod), ac.signal).then(
      (out) => finish(pod, out, ac),
      (err: Error) => finish(pod, { exitCode: 128, reason: 'StartError', message: err.message }, ac),
    );
  }

  function finish(pod: V1Pod, out: RunOutcome, ac: AbortController) {
    running.delete(key(pod));
    if (ac.signal.aborted || !pods.has(key(pod))) return;
    pod.status = {
      ...pod.status,
      phase: out.exitCode === 0 ? 'Succeeded' : 'Failed',
      containerStatuses: [
        {
          name: 'task',
          image: pod.spec!.containers[0]!.image ?? '',
          imageID: '',
          ready: false,
          restartCount: 0,
          state: {
            terminated: {
              exitCode: out.exitCode,
              reason: out.reason ?? (out.exitCode === 0 ? 'Completed' : 'Error'),
              ...(out.message ? { message: out.message } : {}),
            },
          },
        },
      ],
    };
    setPod(pod);
    schedule();
  }

  function removePod(k: string) {
    const pod = pods.get(k);
    if (!pod) return undefined;
    running.get(k)?.abort();
    running.delete(k);
    pods.delete(k);
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

  return {
    url,
    requests,
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
    },
  };
}

/**
 * Runs containers as local processes: the Gantry image's `worker` as `node bin/gantry.js worker`, with
 * the memory limit as the V8 heap limit (a heap overflow is reported as `OOMKilled`); anything else by
 * its command.
 */
export function localRunner(opts: FakeKubeOptions = {}): PodRunner {
  const root = opts.root ?? process.cwd();
  const gantryImage = opts.gantryImage ?? 'gantry:test';
  return (pod, signal) =>
    new Promise((resolve) => {
      const c = pod.spec!.containers[0]!;
      const env: Record<string, string> = { ...process.env, ...opts.env } as Record<string, string>;
      for (const e of c.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
      const memMiB = Math.floor(qty(c.resources?.limits?.memory) / 2 ** 20);
      let child: ChildProcess;
      if (c.image === gantryImage) {
        child = spawn(
          process.execPath,
          [`--max-old-space-size=${Math.max(64, memMiB)}`, 'bin/gantry.js', ...(c.args ?? [])],
          {
            cwd: root,
            env,
            stdio: ['ignore', 'ignore', 'pipe'],
          },
        );
      } else {
        const [cmd, ...args] = [...(c.command ?? []), ...(c.args ?? [])];
        child = spawn(cmd!, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
      }
      let tail = '';
      child.stderr!.on('data', (d: Buffer) => (tail = (tail + d.toString()).slice(-4000)));
      const kill = () => child.kill('SIGKILL');
      signal.addEventListener('abort', kill);
      child.once('error', (err) => resolve({ exitCode: 128, reason: 'StartError', message: err.message }));
      child.once('exit', (code, sig) => {
        signal.removeEventListener('abort', kill);
        if (/heap out of memory/i.test(tail)) resolve({ exitCode: 137, reason: 'OOMKilled' });
        else
          resolve({
            exitCode: code ?? (sig ? 137 : 1),
            ...(code ? { message: tail.trim().split('\n').pop() ?? '' } : {}),
          });
      });
    });
}
