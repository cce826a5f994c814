/**
 * Turns validated documents into the platform the solver and broker work with: clusters with priced,
 * shaped pools; policies by team; profiles by name. Cross-document problems (duplicates, dangling
 * references, instance types the catalog lacks, min > max) are reported here with their locations.
 */
import { CatalogEntryError, type PriceCatalog } from './catalog/catalog.ts';
import type { Problem } from './errors.ts';
import type { GpuModel } from './gpu.ts';
import type { CapacityType, ClusterDoc, ResourcePolicyDoc, ResourceProfileDoc } from './kinds.ts';
import type { LoadedDoc } from './load.ts';
import { formatPath } from './load.ts';
import { closest } from './suggest.ts';

/** Spot interruptions per node-hour assumed when a spot pool does not say (about one in 20 hours). */
export const DEFAULT_SPOT_INTERRUPTION_RATE = 0.05;

/** A node pool with everything needed to place work on it and price it. */
export interface Pool {
  /** `cluster/pool`, unique across the platform. */
  id: string;
  cluster: string;
  name: string;
  provider: ClusterDoc['spec']['provider'];
  cloud: string;
  region: string;
  zone: string | undefined;
  instanceType: string;
  capacityType: CapacityType;
  /** Shape of one node. */
  cpuMilli: number;
  memoryMiB: number;
  gpuModel: GpuModel | null;
  gpuCount: number;
  /** $/hour for one node. */
  price: number;
  minNodes: number;
  maxNodes: number;
  /** Nodes running at onboarding. */
  nodes: number;
  interruptionRate: number;
  idleTtlSeconds: number;
  launchDelaySeconds: number;
  nodeLabels: Record<string, string>;
  taints: NonNullable<ClusterDoc['spec']['pools'][number]['taints']>;
}

/** A cluster and its pools. */
export interface Cluster {
  name: string;
  provider: ClusterDoc['spec']['provider'];
  cloud: string;
  region: string;
  labels: Record<string, string>;
  pools: Pool[];
}

/** A policy as the solver reads it. Quotas are in millicores, MiB and GPU devices. */
export type Policy = ResourcePolicyDoc['spec'] & { name: string };

/** A profile as tasks refer to it. */
export type Profile = ResourceProfileDoc['spec'] & { name: string };

/** Everything the platform team declared, resolved against the catalog. */
export interface Platform {
  clusters: Cluster[];
  pools: Pool[];
  policies: Policy[];
  profiles: Map<string, Profile>;
  /** The policy that governs a team, if any. */
  policyFor(team: string): Policy | undefined;
  catalog: PriceCatalog;
}

/**
 * Resolves loaded documents into a platform, reporting every cross-document problem.
 *
 * @example
 * const { docs } = loadDocuments(['examples/']);
 * const { platform, problems } = buildPlatform(docs, loadBuiltinCatalog());
 */
export function buildPlatform(
  docs: readonly LoadedDoc[],
  baseCatalog: PriceCatalog,
): { platform: Platform; problems: Problem[] } {
  const problems: Problem[] = [];
  const report = (doc: LoadedDoc, path: (string | number)[], message: string) =>
    problems.push({ file: doc.file, ...doc.locate(path), path: formatPath(path), message });

  checkDuplicates(docs, report);
  const of = <K extends LoadedDoc['kind']>(kind: K) => docs.filter((d): d is LoadedDoc<K> => d.kind === kind);

  let catalog = baseCatalog;
  for (const doc of of('PriceCatalog')) {
    // Entries one at a time, so that a bad one is reported at its own line and the rest still apply.
    doc.value.spec.entries.forEach((e, i) => {
      try {
        catalog = catalog.withOverrides([
          {
            cloud: e.cloud,
            instanceType: e.instanceType,
            region: e.region,
            onDemand: e.onDemand,
            spot: e.spot,
            vcpu: e.cpu === undefined ? undefined : e.cpu / 1000,
            memoryGiB: e.memory === undefined ? undefined : e.memory / 1024,
            gpu:
              e.gpu?.[0] && e.gpu[0].model !== '*'
                ? { model: e.gpu[0].model, count: e.gpu[0].count }
                : undefined,
          },
        ]);
      } catch (err) {
        if (!(err instanceof CatalogEntryError)) throw err;
        report(doc, ['spec', 'entries', i], err.message);
      }
    });
  }

  const profiles = new Map<string, Profile>();
  for (const doc of of('ResourceProfile')) profiles.set(doc.name, { ...doc.value.spec, name: doc.name });

  const clusters = of('Cluster').map((doc) => resolveCluster(doc, catalog, report));
  const clusterNames = new Set(clusters.map((c) => c.name));

  const policies: Policy[] = [];
  const teamOwner = new Map<string, LoadedDoc>();
  for (const doc of of('ResourcePolicy')) {
    const spec = doc.value.spec;
    spec.teams.forEach((team, i) => {
      const owner = teamOwner.get(team);
      if (owner)
        report(
          doc,
          ['spec', 'teams', i],
          `team '${team}' already has a policy: ${owner.name} (${owner.file})`,
        );
      else teamOwner.set(team, doc);
    });
    spec.allowed?.clusters?.forEach((name, i) => {
      if (!clusterNames.has(name))
        report(doc, ['spec', 'allowed', 'clusters', i], unknownRef('cluster', name, clusterNames));
    });
    spec.fallbacks.forEach((f, i) => {
      if (f.cluster && !clusterNames.has(f.cluster)) {
        report(doc, ['spec', 'fallbacks', i, 'cluster'], unknownRef('cluster', f.cluster, clusterNames));
      }
    });
    const profile = spec.defaults?.profile;
    if (profile && !profiles.has(profile)) {
      report(doc, ['spec', 'defaults', 'profile'], unknownRef('profile', profile, profiles.keys()));
    }
    const seen = new Set<string>();
    spec.quotas.forEach((q, i) => {
      const key = q.resource === 'gpu' ? `gpu/${q.model ?? '*'}` : q.resource;
      if (seen.has(key)) report(doc, ['spec', 'quotas', i], `a second quota for ${key.replace('/*', '')}`);
      seen.add(key);
    });
    policies.push({ ...spec, name: doc.name });
  }

  for (const doc of of('Workload')) {
    doc.value.spec.groups.forEach((g, i) => {
      if (g.profile && !profiles.has(g.profile)) {
        report(doc, ['spec', 'groups', i, 'profile'], unknownRef('profile', g.profile, profiles.keys()));
      }
      if (!teamOwner.has(g.team)) {
        report(
          doc,
          ['spec', 'groups', i, 'team'],
          unknownRef('team (no ResourcePolicy names it)', g.team, teamOwner.keys()),
        );
      }
    });
  }

  const byTeam = new Map<string, Policy>();
  for (const p of policies) for (const t of p.teams) if (!byTeam.has(t)) byTeam.set(t, p);
  const platform: Platform = {
    clusters,
    pools: clusters.flatMap((c) => c.pools),
    policies,
    profiles,
    policyFor: (team) => byTeam.get(team),
    catalog,
  };
  return { platform, problems };
}

type Report = (doc: LoadedDoc, path: (string | number)[], message: string) => void;

function checkDuplicates(docs: readonly LoadedDoc[], report: Report): void {
  const first = new Map<string, LoadedDoc>();
  for (const doc of docs) {
    const key = `${doc.kind}/${doc.name}`;
    const prior = first.get(key);
    if (prior) {
      const where = `${prior.file}:${prior.locate(['metadata', 'name']).line}`;
      report(doc, ['metadata', 'name'], `duplicate ${doc.kind} '${doc.name}' (first defined at ${where})`);
    } else first.set(key, doc);
  }
}

function unknownRef(what: string, name: string, known: Iterable<string>): string {
  const list = [...known];
  const hint = closest(name, list);
  return `unknown ${what} '${name}'${hint ? ` (did you mean '${hint}'?)` : ''}${list.length ? `; known: ${list.join(', ')}` : ''}`;
}

const CLOUD_OF_PROVIDER: Record<string, string | undefined> = { aws: 'aws', gcp: 'gcp' };

function resolveCluster(doc: LoadedDoc<'Cluster'>, catalog: PriceCatalog, report: Report): Cluster {
  const spec = doc.value.spec;
  const cloud = spec.cloud ?? CLOUD_OF_PROVIDER[spec.provider] ?? 'onprem';
  const region = spec.region ?? '';
  if ((cloud === 'aws' || cloud === 'gcp') && !spec.region) {
    report(doc, ['spec'], `missing required field 'region' (prices for ${cloud} depend on it)`);
  }
  const names = new Set<string>();
  const pools: Pool[] = [];
  spec.pools.forEach((p, i) => {
    const at = (...rest: (string | number)[]) => ['spec', 'pools', i, ...rest];
    if (names.has(p.name)) report(doc, at('name'), `duplicate pool '${p.name}' in cluster '${doc.name}'`);
    names.add(p.name);
    if (p.minNodes > p.maxNodes)
      report(doc, at('minNodes'), `minNodes (${p.minNodes}) is greater than maxNodes (${p.maxNodes})`);
    const nodes = p.nodes ?? p.minNodes;
    if (nodes > p.maxNodes)
      report(doc, at('nodes'), `nodes (${nodes}) is greater than maxNodes (${p.maxNodes})`);

    const entry = catalog.lookup(cloud, p.instanceType, region);
    if (!entry && !p.shape) {
      const hint = catalog.suggestInstanceType(cloud, p.instanceType);
      const where =
        cloud === 'onprem'
          ? 'the catalog (give the pool a shape, or a PriceCatalog entry)'
          : `the ${cloud} catalog for ${region || 'any region'}`;
      report(
        doc,
        at('instanceType'),
        `instance type '${p.instanceType}' is not in ${where}${hint ? ` (did you mean ${hint}?)` : ''}`,
      );
      return;
    }
    const gpu = p.shape?.gpu?.[0];
    if (p.shape?.gpu && (p.shape.gpu.length !== 1 || gpu?.model === '*' || !Number.isInteger(gpu?.count))) {
      report(doc, at('shape', 'gpu'), 'a node shape names one GPU model and a whole count, e.g. A100:8');
      return;
    }
    const catalogPrice = p.capacityType === 'spot' ? entry?.spot : entry?.onDemand;
    let price = p.price ?? (p.capacityType === 'reserved' ? 0 : catalogPrice);
    if (price === undefined || price === null) {
      const why =
        p.capacityType === 'spot' && entry
          ? `has no spot price for ${p.instanceType} in ${region}`
          : 'has no price for it';
      report(doc, at(p.shape ? 'shape' : 'capacityType'), `the catalog ${why}: set the pool's price`);
      price = 0;
    }
    pools.push({
      id: `${doc.name}/${p.name}`,
      cluster: doc.name,
      name: p.name,
      provider: spec.provider,
      cloud,
      region,
      zone: spec.zone,
      instanceType: p.instanceType,
      capacityType: p.capacityType,
      cpuMilli: p.shape ? p.shape.cpu : (entry?.vcpu ?? 0) * 1000,
      memoryMiB: p.shape ? p.shape.memory : (entry?.memoryGiB ?? 0) * 1024,
      gpuModel: p.shape ? ((gpu?.model as GpuModel | undefined) ?? null) : (entry?.gpu?.model ?? null),
      gpuCount: p.shape ? (gpu?.count ?? 0) : (entry?.gpu?.count ?? 0),
      price,
      minNodes: p.minNodes,
      maxNodes: p.maxNodes,
      nodes,
      interruptionRate:
        p.interruptionRate ?? (p.capacityType === 'spot' ? DEFAULT_SPOT_INTERRUPTION_RATE : 0),
      idleTtlSeconds: p.idleTtl,
      launchDelaySeconds:
        p.launchDelay ?? (spec.provider === 'kubernetes' || spec.provider === 'local' ? 0 : 90),
      nodeLabels: p.nodeLabels ?? {},
      taints: p.taints ?? [],
    });
  });
  return { name: doc.name, provider: spec.provider, cloud, region, labels: spec.labels ?? {}, pools };
}
