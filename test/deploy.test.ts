/**
 * The deployment in `deploy/`: every Kubernetes manifest against the API schemas (kubernetes-models),
 * with no field the API does not know, and what must stay true of it — two brokers keeping their state
 * on every NATS server, non-root read-only containers, the agent's exact RBAC, the task pods' Secret,
 * one image at the package's version (task pods' included), a platform Gantry accepts — then the NATS
 * chart values and the Dockerfile.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { Deployment, type IDeployment } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget, type IPodDisruptionBudget } from 'kubernetes-models/policy/v1';
import {
  ClusterRole,
  ClusterRoleBinding,
  Role,
  RoleBinding,
  type IClusterRole,
  type IRoleBinding,
} from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import {
  ConfigMap,
  Namespace,
  Secret,
  Service,
  ServiceAccount,
  type IContainer,
  type ISecret,
  type IService,
  type IServiceAccount,
} from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { validatePaths, type ClusterDoc } from '../policies/index.ts';

const ROOT = resolve(import.meta.dirname, '..');
const KUBE = join(ROOT, 'deploy/kubernetes');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
}
interface Kustomization {
  resources: string[];
  configMapGenerator: { name: string; namespace: string; files: string[] }[];
  images: { name: string; newName: string; newTag: string }[];
  replacements?: {
    source: { kind: string; name: string; fieldPath: string };
    targets: { select: { kind: string; name: string }; fieldPaths: string[] }[];
  }[];
}

type Validatable = { validate(): void };
const model = (cls: unknown) => cls as new (data: object) => Validatable;
/** The model class of each apiVersion/kind the manifests may use; anything else fails. */
const MODELS: Record<string, new (data: object) => Validatable> = {
  'v1/Namespace': model(Namespace),
  'v1/ConfigMap': model(ConfigMap),
  'v1/Secret': model(Secret),
  'v1/Service': model(Service),
  'v1/ServiceAccount': model(ServiceAccount),
  'apps/v1/Deployment': model(Deployment),
  'policy/v1/PodDisruptionBudget': model(PodDisruptionBudget),
  'rbac.authorization.k8s.io/v1/Role': model(Role),
  'rbac.authorization.k8s.io/v1/RoleBinding': model(RoleBinding),
  'rbac.authorization.k8s.io/v1/ClusterRole': model(ClusterRole),
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': model(ClusterRoleBinding),
};
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding']);

type TypeMap = { baseName: string; type: string }[];
const clientModels = k8s as unknown as Record<string, { getAttributeTypeMap?: () => TypeMap } | undefined>;

/**
 * Paths of fields the Kubernetes API does not know. kubernetes-models' schemas allow unknown fields,
 * so a misspelt `readOnlyRootFileSystem` would pass them; the field lists of @kubernetes/client-node's
 * models catch it.
 */
function unknownFields(value: unknown, type: string, path: string): string[] {
  const array = /^Array<(.+)>$/.exec(type);
  if (array)
    return Array.isArray(value) ? value.flatMap((v, i) => unknownFields(v, array[1]!, `${path}[${i}]`)) : [];
  const attributes = clientModels[type]?.getAttributeTypeMap?.();
  if (!attributes || value === null || typeof value !== 'object') return [];
  const types = new Map(attributes.map((a) => [a.baseName, a.type]));
  return Object.entries(value).flatMap(([key, v]) => {
    const t = types.get(key);
    return t === undefined ? [`${path}.${key}`] : unknownFields(v, t, `${path}.${key}`);
  });
}

/** YAML documents of a file, read as Kubernetes reads them (YAML 1.1: `0440` is octal, `on` is true). */
function documents(path: string): Manifest[] {
  return parseAllDocuments(readFileSync(path, 'utf8'), { version: '1.1' }).flatMap((doc) => {
    if (doc.errors.length > 0) throw new Error(`${path}: ${doc.errors[0]!.message}`);
    const value = doc.toJS() as Manifest | null;
    return value ? [value] : [];
  });
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => /\.ya?ml$/.test(f))
    .sort();
}

const kustomization = parse(readFileSync(join(KUBE, 'kustomization.yaml'), 'utf8')) as Kustomization;
const platformFiles = kustomization.configMapGenerator.flatMap((g) => g.files);
/** What `kubectl apply -k` creates: the listed resources and the generated platform ConfigMap. */
const manifests: Manifest[] = [
  ...kustomization.resources.flatMap((f) => documents(join(KUBE, f))),
  ...kustomization.configMapGenerator.map((g) => ({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: g.name, namespace: g.namespace },
    data: Object.fromEntries(g.files.map((f) => [f.split('/').pop()!, readFileSync(join(KUBE, f), 'utf8')])),
  })),
];

function find<T>(kind: string, name: string): T {
  const found = manifests.find((m) => m.kind === kind && m.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name} in deploy/kubernetes`);
  return found as unknown as T;
}
const ofKind = <T>(kind: string) => manifests.filter((m) => m.kind === kind) as unknown as T[];
const deployments = ofKind<IDeployment & Manifest>('Deployment');
const broker = find<IDeployment>('Deployment', 'gantry-broker');
const agent = find<IDeployment>('Deployment', 'gantry-agent-aws-use1');
const podSpec = (d: IDeployment) => d.spec!.template.spec!;
const mainContainer = (d: IDeployment) => podSpec(d).containers[0]!;
/** The value after `flag` in a container's args, or undefined when the flag is absent. */
function argAfter(c: IContainer, flag: string): string | undefined {
  const i = c.args?.indexOf(flag) ?? -1;
  return i < 0 ? undefined : c.args?.[i + 1];
}
const pkg = JSON.parse(read('package.json')) as { version: string };

describe('deploy/kubernetes', () => {
  it('lists every file of the folder in its kustomization', () => {
    const listed = ['kustomization.yaml', ...kustomization.resources, ...platformFiles].sort();
    expect(yamlFiles(KUBE)).toEqual(listed);
  });

  it.each(manifests.map((m) => [`${m.kind} ${m.metadata.name}`, m] as const))(
    '%s is valid against the Kubernetes API',
    (_, m) => {
      const Model = MODELS[`${m.apiVersion}/${m.kind}`];
      if (!Model) throw new Error(`unknown kind ${m.apiVersion}/${m.kind}: add its model to this test`);
      expect(() => new Model(m).validate()).not.toThrow();
      expect(unknownFields(m, `V1${m.kind}`, m.kind)).toEqual([]);
      if (CLUSTER_SCOPED.has(m.kind)) expect(m.metadata.namespace).toBeUndefined();
      else expect(ofKind<Manifest>('Namespace').map((n) => n.metadata.name)).toContain(m.metadata.namespace);
    },
  );

  it('catches a misspelt field that the schemas let through', () => {
    const typo = {
      spec: { template: { spec: { containers: [{ securityContext: { readOnlyRootFileSystem: true } }] } } },
    };
    expect(unknownFields(typo, 'V1Deployment', 'Deployment')).toEqual([
      'Deployment.spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem',
    ]);
  });

  it.each(deployments.map((d) => [d.metadata.name, d] as const))(
    '%s runs as non-root, read-only, capped',
    (_, d) => {
      const pod = podSpec(d);
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001 });
      const volumes = new Map(pod.volumes?.map((v) => [v.name, v]));
      for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
        expect(c.securityContext).toMatchObject({
          runAsNonRoot: true,
          readOnlyRootFilesystem: true,
          allowPrivilegeEscalation: false,
          capabilities: { drop: ['ALL'] },
        });
        expect(c.resources?.requests).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
        expect(c.resources?.limits).toMatchObject({ memory: expect.any(String) });
        const mib = (q: unknown) =>
          Number(/^(\d+)Mi$/.exec(String(q))?.[1] ?? Number(/^(\d+)Gi$/.exec(String(q))?.[1]) * 1024);
        expect(mib(c.resources?.requests?.memory)).toBeLessThanOrEqual(mib(c.resources?.limits?.memory));
        for (const m of c.volumeMounts ?? []) expect(volumes.has(m.name), `volume ${m.name}`).toBe(true);
        // tsx writes its transpile cache to $TMPDIR: on a read-only root it needs an emptyDir there.
        const tmp = c.volumeMounts?.find((m) => m.mountPath === '/tmp');
        expect(tmp && volumes.get(tmp.name)?.emptyDir).toBeDefined();
      }
    },
  );

  it('runs every container from the image the kustomization names, at the package version', () => {
    expect(kustomization.images).toEqual([
      { name: 'gantry', newName: expect.any(String), newTag: pkg.version },
    ]);
    const images = deployments.flatMap((d) => podSpec(d).containers.map((c) => c.image));
    expect(images.length).toBeGreaterThan(0);
    for (const image of images) expect(image).toBe(`gantry:${pkg.version}`);
  });

  it('gives task pods the agent’s own image, rewritten with it', () => {
    const c = mainContainer(agent);
    // GANTRY_IMAGE, not --image: kustomize's `images` rewrite reaches env values only through a replacement.
    expect(argAfter(c, '--image')).toBeUndefined();
    expect(c.env?.find((e) => e.name === 'GANTRY_IMAGE')?.value).toBe(c.image);
    expect(kustomization.replacements).toEqual([
      {
        source: {
          kind: 'Deployment',
          name: agent.metadata!.name,
          fieldPath: `spec.template.spec.containers.[name=${c.name}].image`,
        },
        targets: [
          {
            select: { kind: 'Deployment', name: agent.metadata!.name },
            fieldPaths: [`spec.template.spec.containers.[name=${c.name}].env.[name=GANTRY_IMAGE].value`],
          },
        ],
      },
    ]);
  });

  it.each(deployments.map((d) => [d.metadata.name, d] as const))(
    '%s serves /metrics where Prometheus looks, and has liveness on /healthz and readiness on /readyz',
    (_, d) => {
      const c = mainContainer(d);
      const port = Number(argAfter(c, '--metrics-port'));
      expect(argAfter(c, '--metrics-host')).toBe('0.0.0.0');
      expect(c.ports).toEqual([{ name: 'metrics', containerPort: port, protocol: 'TCP' }]);
      expect(d.spec!.template.metadata?.annotations).toMatchObject({
        'prometheus.io/scrape': 'true',
        'prometheus.io/port': String(port),
        'prometheus.io/path': '/metrics',
      });
      // deploy/prometheus/podmonitor.yaml selects Gantry's pods by this label and scrapes this port.
      expect(d.spec!.template.metadata?.labels?.['app.kubernetes.io/part-of']).toBe('gantry');
      expect(c.startupProbe?.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
      expect(c.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
      expect(c.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
      // A slow readiness check must not look like a dead process: liveness gives it longer.
      const patience = (p: typeof c.livenessProbe) => (p?.periodSeconds ?? 10) * (p?.failureThreshold ?? 3);
      expect(patience(c.livenessProbe)).toBeGreaterThanOrEqual(60);
    },
  );

  it.each(deployments.map((d) => [d.metadata.name, d] as const))(
    '%s reads the platform ConfigMap and its own nkey seed from where its flags say',
    (_, d) => {
      const c = mainContainer(d);
      const volumes = podSpec(d).volumes ?? [];
      const mountOf = (volume: string) => c.volumeMounts?.find((m) => m.name === volume)?.mountPath;
      const platform = volumes.find((v) => v.configMap?.name === 'gantry-platform');
      expect(argAfter(c, '-f')).toBe(mountOf(platform!.name));
      const secretVolume = volumes.find((v) => v.secret)!;
      const secret = find<ISecret>('Secret', secretVolume.secret!.secretName!);
      const key = Object.keys(secret.stringData ?? {})[0]!;
      expect(argAfter(c, '--creds')).toBe(`${mountOf(secretVolume.name)}/${key}`);
      // 0440 and the fsGroup: uid 10001 reads the seed through its group.
      expect(secretVolume.secret!.defaultMode).toBe(0o440);
      expect(podSpec(d).securityContext?.fsGroup).toBe(10001);
      expect(argAfter(c, '--nats')).toBe('nats://nats.gantry.svc:4222');
    },
  );

  it('commits no real nkey seed, only placeholders', () => {
    for (const s of ofKind<ISecret & Manifest>('Secret')) {
      const values = [
        ...Object.values(s.stringData ?? {}),
        ...Object.values(s.data ?? {}).map((v) => Buffer.from(v, 'base64').toString()),
      ];
      expect(values.length, s.metadata.name).toBeGreaterThan(0);
      for (const v of values) expect(v).not.toMatch(/S[A-Z][A-Z2-7]{50,}/);
    }
  });

  it('holds a platform that Gantry accepts, with every agent’s cluster in it', () => {
    const { problems, platform } = validatePaths(platformFiles.map((f) => join(KUBE, f)));
    expect(problems).toEqual([]);
    const clusters = platform.clusters.map((c) => c.name);
    for (const d of deployments.filter((d) => d !== broker))
      expect(clusters).toContain(argAfter(mainContainer(d), '--cluster'));
  });
});

const natsValues = parse(read('deploy/nats/values.yaml')) as {
  config: {
    cluster: { enabled: boolean; replicas: number };
    jetstream: {
      enabled: boolean;
      fileStore: { enabled: boolean; pvc: { enabled: boolean; size: string } };
    };
    merge: Record<string, string>;
  };
};

describe('the broker', () => {
  const c = mainContainer(broker);
  const labels = broker.spec!.template.metadata!.labels!;

  it('runs two replicas that never drop below one, on different nodes', () => {
    expect(broker.spec!.replicas).toBe(2);
    expect(broker.spec!.strategy?.rollingUpdate?.maxUnavailable).toBe(0);
    const pdb = find<IPodDisruptionBudget>('PodDisruptionBudget', 'gantry-broker');
    expect(pdb.spec!.minAvailable).toBe(1);
    expect(labels).toMatchObject(pdb.spec!.selector!.matchLabels!);
    const spread = podSpec(broker).topologySpreadConstraints?.find(
      (t) => t.topologyKey === 'kubernetes.io/hostname',
    );
    expect(spread).toMatchObject({ maxSkew: 1, whenUnsatisfiable: 'DoNotSchedule' });
    expect(labels).toMatchObject(spread!.labelSelector!.matchLabels!);
  });

  it('runs `gantry broker` over NATS with metrics the probes and the Service reach', () => {
    expect(c.args).toEqual([
      'broker',
      ...['-f', '/etc/gantry'],
      ...['--nats', 'nats://nats.gantry.svc:4222'],
      ...['--creds', '/var/run/gantry/nats/gantry-broker.nk'],
      ...['--metrics-port', '9464'],
      ...['--metrics-host', '0.0.0.0'],
      ...['--replicas', '3'],
    ]);
    expect(c.ports).toEqual([{ name: 'metrics', containerPort: 9464, protocol: 'TCP' }]);
    const service = find<IService>('Service', 'gantry-broker-metrics');
    expect(labels).toMatchObject(service.spec!.selector!);
    expect(service.spec!.ports).toEqual([
      { name: 'metrics', port: 9464, targetPort: 'metrics', protocol: 'TCP' },
    ]);
  });

  it('keeps its state on every NATS server', () => {
    expect(argAfter(c, '--replicas')).toBe(String(natsValues.config.cluster.replicas));
  });

  it('has no Kubernetes API access', () => {
    expect(podSpec(broker).automountServiceAccountToken).toBe(false);
    const bound = ofKind<IRoleBinding>('RoleBinding')
      .concat(ofKind<IRoleBinding>('ClusterRoleBinding'))
      .flatMap((b) => b.subjects ?? []);
    expect(bound.map((s) => s.name)).not.toContain(podSpec(broker).serviceAccountName);
  });
});

describe('the agent of aws-use1', () => {
  const c = mainContainer(agent);
  const account = podSpec(agent).serviceAccountName!;

  /** Every `namespace group/resource verb` the bindings give a ServiceAccount (`*` = cluster-wide). */
  function grants(serviceAccount: string): string[] {
    const bindings = ofKind<IRoleBinding & Manifest>('RoleBinding').concat(
      ofKind<IRoleBinding & Manifest>('ClusterRoleBinding'),
    );
    return bindings
      .filter((b) => b.subjects?.some((s) => s.kind === 'ServiceAccount' && s.name === serviceAccount))
      .flatMap((b) => {
        const role = find<IClusterRole>(b.roleRef.kind, b.roleRef.name);
        const where = b.kind === 'RoleBinding' ? b.metadata.namespace! : '*';
        return (role.rules ?? []).flatMap((r) =>
          (r.apiGroups ?? []).flatMap((g) =>
            (r.resources ?? []).flatMap((res) => r.verbs.map((v) => `${where} ${g}/${res} ${v}`)),
          ),
        );
      })
      .sort();
  }

  it('is one replica at a time, under its own ServiceAccount', () => {
    expect(agent.spec!.replicas).toBe(1);
    expect(agent.spec!.strategy).toEqual({ type: 'Recreate' });
    expect(account).toBe('gantry-agent-aws-use1');
    expect(find<IServiceAccount>('ServiceAccount', account).metadata?.namespace).toBe('gantry');
    expect(podSpec(agent).automountServiceAccountToken).toBe(true);
  });

  it('runs `gantry agent` for its cluster with the Kubernetes executor', () => {
    expect(argAfter(c, '--metrics-host')).toBe('0.0.0.0');
    expect(c.args?.slice(0, 5)).toEqual(['agent', '-f', '/etc/gantry', '--cluster', 'aws-use1']);
    expect(argAfter(c, '--executor')).toBe('kubernetes');
    expect(argAfter(c, '--provisioner')).toBe('ec2');
    expect(argAfter(c, '--task-creds-secret')).toBe('gantry-task-nats');
  });

  it("names container task pods' account: in their namespace, no token of its own, get on pods and logs only", () => {
    const namespace = argAfter(c, '--namespace') ?? 'gantry-tasks';
    const name = argAfter(c, '--task-service-account')!;
    const account = find<IServiceAccount & Manifest>('ServiceAccount', name);
    expect(account.metadata.namespace).toBe(namespace);
    expect(account.automountServiceAccountToken).toBe(false);
    const binding = manifests.find(
      (m) =>
        m.kind === 'RoleBinding' &&
        (m as unknown as { subjects: { name: string }[] }).subjects.some((s) => s.name === name),
    ) as unknown as { metadata: { namespace: string }; roleRef: { name: string } };
    expect(binding.metadata.namespace).toBe(namespace);
    const role = manifests.find(
      (m) => m.kind === 'Role' && m.metadata.name === binding.roleRef.name,
    ) as unknown as {
      rules: unknown[];
    };
    expect(role.rules).toEqual([{ apiGroups: [''], resources: ['pods', 'pods/log'], verbs: ['get'] }]);
  });

  it('names a task Secret with the key task pods read, in their namespace, and does not mount it', () => {
    const namespace = argAfter(c, '--namespace') ?? 'gantry-tasks';
    const secret = find<ISecret & Manifest>('Secret', argAfter(c, '--task-creds-secret')!);
    expect(secret.metadata.namespace).toBe(namespace);
    expect(Object.keys(secret.stringData ?? {})).toEqual(['creds.nk']);
    const mounted = podSpec(agent).volumes?.flatMap((v) => (v.secret ? [v.secret.secretName] : []));
    expect(mounted).not.toContain(secret.metadata.name);
  });

  it('mounts the Secret its Cluster names as credentialsRef', () => {
    const { docs } = validatePaths(platformFiles.map((f) => join(KUBE, f)));
    const cluster = docs.find((d) => d.kind === 'Cluster' && d.name === 'aws-use1')?.value as ClusterDoc;
    const secrets = podSpec(agent).volumes?.flatMap((v) => (v.secret ? [v.secret.secretName] : []));
    expect(secrets).toEqual([cluster.spec.agent?.credentialsRef]);
  });

  it('gets EC2 access through IRSA, with no cloud secret', () => {
    const sa = find<IServiceAccount>('ServiceAccount', account);
    expect(sa.metadata?.annotations?.['eks.amazonaws.com/role-arn']).toMatch(/^arn:aws:iam::\d{12}:role\/.+/);
    expect(c.env?.map((e) => e.name)).not.toContain('AWS_SECRET_ACCESS_KEY');
  });

  it('is granted exactly: pods and run ConfigMaps in gantry-tasks, and nodes and pods read-only', () => {
    expect(grants(account)).toEqual(
      [
        ...['create', 'delete', 'get', 'list', 'watch'].map((v) => `gantry-tasks /pods ${v}`),
        'gantry-tasks /pods/log get',
        ...['create', 'get'].map((v) => `gantry-tasks /configmaps ${v}`),
        ...['list', 'watch'].map((v) => `gantry-tasks /events ${v}`),
        ...['get', 'list', 'watch'].map((v) => `* /nodes ${v}`),
        // The capacity other workloads take on each node: every namespace's pods, read-only.
        ...['list', 'watch'].map((v) => `* /pods ${v}`),
      ].sort(),
    );
  });

  it('has no wildcard and no access to secrets in any role', () => {
    for (const role of ofKind<IClusterRole>('Role').concat(ofKind<IClusterRole>('ClusterRole')))
      for (const r of role.rules ?? []) {
        for (const field of [r.apiGroups, r.resources, r.verbs]) expect(field ?? []).not.toContain('*');
        expect(r.resources ?? []).not.toContain('secrets');
        if (r.resources?.includes('nodes'))
          expect(['get', 'list', 'watch']).toEqual(expect.arrayContaining(r.verbs));
      }
  });
});

describe('deploy/nats/values.yaml', () => {
  const values = natsValues;

  it('runs a three-server cluster with JetStream on disk', () => {
    expect(values.config.cluster).toMatchObject({ enabled: true, replicas: 3 });
    expect(values.config.jetstream).toMatchObject({
      enabled: true,
      fileStore: { enabled: true, pvc: { enabled: true } },
    });
    expect(values.config.jetstream.fileStore.pvc.size).toMatch(/^\d+Gi$/);
  });

  it('includes the authorization block that the README fills from `gantry cluster onboard`', () => {
    const include = values.config.merge.$include;
    expect(include).toMatch(/\.conf$/);
    const readme = read('deploy/README.md');
    expect(readme).toContain(`--set-file 'configMap.merge.data.${include!.replaceAll('.', '\\.')}=`);
    // The Service the broker and agents dial: release `nats` in namespace `gantry`.
    expect(readme).toContain('helm install nats nats/nats -n gantry');
  });
});

describe('deploy/Dockerfile', () => {
  // One line per instruction, continuations joined.
  const lines = read('deploy/Dockerfile')
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .filter((l) => /^[A-Z]+ /.test(l));
  const instruction = (name: string) =>
    lines.filter((l) => l.startsWith(`${name} `)).map((l) => l.slice(name.length + 1));

  it('is node 20 slim, entry `node bin/gantry.js`, as the uid the pods run as', () => {
    expect(instruction('FROM')).toEqual(['node:20-bookworm-slim']);
    expect(JSON.parse(instruction('ENTRYPOINT')[0]!)).toEqual(['node', 'bin/gantry.js']);
    expect(JSON.parse(instruction('CMD')[0]!)).toEqual(['--help']);
    expect(instruction('USER').at(-1)).toBe('10001:10001');
  });

  it('installs production dependencies before it copies sources', () => {
    const ci = lines.findIndex((l) => l.startsWith('RUN ') && l.includes('npm ci --omit=dev'));
    const manifests = lines.indexOf('COPY package.json package-lock.json ./');
    const firstSource = lines.findIndex((l) => l.startsWith('COPY ') && !l.includes('package'));
    expect(manifests).toBeGreaterThan(-1);
    expect([manifests < ci, ci < firstSource]).toEqual([true, true]);
    expect(instruction('COPY').some((a) => /^test\b/.test(a))).toBe(false);
  });

  it('copies every folder the CLI imports, and the context admits only those', () => {
    const copied = instruction('COPY').map((a) => a.split(' ')[0]!);
    const ignore = read('.dockerignore')
      .split('\n')
      .filter((l) => l && !l.startsWith('#'));
    expect(ignore[0]).toBe('*');
    for (const folder of importedFolders('bin/gantry.js')) {
      expect(copied).toContain(folder);
      expect(ignore).toContain(`!${folder}/`);
    }
  });
});

/** Top-level folders reached from `entry` through relative imports. */
function importedFolders(entry: string): string[] {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const m of readFileSync(join(ROOT, file), 'utf8').matchAll(
      /(?:from|import\()\s*'(\.\.?\/[^']+)'/g,
    )) {
      const target = resolve(ROOT, dirname(file), m[1]!);
      // Paths in JSDoc examples need not exist; tsc checks the real imports.
      if (existsSync(target)) visit(relative(ROOT, target));
    }
  };
  visit(entry);
  const folders = [...new Set([...seen].map((f) => f.split('/')[0]!))].sort();
  expect(folders, 'the CLI must not import tests').not.toContain('test');
  return folders;
}
