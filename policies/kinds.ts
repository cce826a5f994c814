/**
 * The YAML kinds platform teams write: Kubernetes-style documents with `apiVersion`, `kind`,
 * `metadata.name` and `spec`. One zod schema per kind; the TypeScript types are derived from them.
 *
 * Quantities are parsed by the schemas themselves, so a validated document carries cpu in millicores,
 * memory in MiB, GPU requests as options and durations in seconds.
 */
import { z } from 'zod';
import { QuantityError } from './errors.ts';
import { normalizeGpuModel, gpuModelNames, type GpuModel } from './gpu.ts';
import { closest } from './suggest.ts';
import { parseCpu, parseDuration, parseGpu, parseMemory } from './quantities.ts';

/** The only API version this release reads. */
export const API_VERSION = 'gantry.dev/v1alpha1';

function quantity<T>(parse: (v: never) => T, accepts: z.ZodType<string | number | (string | number)[]>) {
  return accepts.transform((value, ctx): T => {
    try {
      return parse(value as never);
    } catch (err) {
      if (!(err instanceof QuantityError)) throw err;
      ctx.addIssue({ code: 'custom', message: err.message });
      return z.NEVER;
    }
  });
}

const scalar = z.union([z.string(), z.number()]);
/** cpu: `4`, `0.5`, `500m` → millicores. */
export const cpuQuantity = quantity(parseCpu, scalar);
/** memory: `512Mi`, `16Gi` → MiB. */
export const memoryQuantity = quantity(parseMemory, scalar);
/** gpu: `H100:8` or `["H100:8", "A100-80GB:8"]` → options. */
export const gpuQuantity = quantity(parseGpu, z.union([scalar, z.array(scalar)]));
/** duration: `30m`, `2h` → seconds. */
export const durationQuantity = quantity(parseDuration, scalar);

/** A canonical GPU model name, accepting aliases (`a100-80gb`, `nvidia-tesla-t4`). */
export const gpuModel = z.string().transform((name, ctx): GpuModel => {
  const model = normalizeGpuModel(name);
  if (!model) {
    const hint = closest(name, gpuModelNames);
    const message = `unknown GPU model '${name}'${hint ? ` (did you mean ${hint}?)` : ''}; known: ${gpuModelNames.join(', ')}`;
    ctx.addIssue({ code: 'custom', message });
    return z.NEVER;
  }
  return model;
});

const DNS_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** A name as Kubernetes allows it (lower-case letters, digits and dashes). */
export const resourceName = z
  .string()
  .regex(
    DNS_NAME,
    'must be lower-case letters, digits and dashes, starting and ending with a letter or digit',
  );

const labels = z.record(z.string(), z.string());
const money = z.number().nonnegative();

/** How a task prefers spot capacity. */
export const spotPreference = z.enum(['never', 'allowed', 'preferred', 'required']);
/** How a pool's nodes are bought. */
export const capacityType = z.enum(['spot', 'on-demand', 'reserved']);

/** Most members a gang may have. */
export const MAX_GANG_NODES = 256;
const gangNodes = z
  .int({ error: 'must be a whole number of nodes' })
  .min(1, 'must be at least 1')
  .max(MAX_GANG_NODES, `must be at most ${MAX_GANG_NODES}`);

/** Resources a task asks for, as written (all optional: profiles and policy defaults fill the rest). */
export const resourcesSpec = z.strictObject({
  profile: resourceName.optional(),
  cpu: cpuQuantity.optional(),
  memory: memoryQuantity.optional(),
  gpu: gpuQuantity.optional(),
  spot: spotPreference.optional(),
  /** Expected run time, used to price the task. */
  duration: durationQuantity.optional(),
  /**
   * A gang: this many nodes at once, one member on each, all in one pool of one cluster (distributed
   * training). `cpu`, `memory` and `gpu` are per member.
   */
  nodes: gangNodes.optional(),
});

const metadata = z.strictObject({
  name: resourceName,
  labels: labels.optional(),
  annotations: labels.optional(),
});

function kind<K extends string, S extends z.ZodType>(name: K, spec: S) {
  return z.strictObject({
    apiVersion: z.literal(API_VERSION, { error: `apiVersion must be ${API_VERSION}` }),
    kind: z.literal(name),
    metadata,
    spec,
  });
}

const taint = z.strictObject({
  key: z.string().min(1),
  value: z.string().optional(),
  effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']),
});

/** A node pool: nodes of one instance type and capacity type that the agent can add and remove. */
export const poolSpec = z.strictObject({
  name: resourceName,
  instanceType: z.string().min(1),
  capacityType: capacityType.default('on-demand'),
  minNodes: z.int().nonnegative().default(0),
  maxNodes: z.int().nonnegative(),
  /** Nodes already running when the cluster is onboarded (on-prem hardware); defaults to minNodes. */
  nodes: z.int().nonnegative().optional(),
  /** $/hour per node, replacing the catalog's price (negotiated rates, amortised on-prem hardware). */
  price: money.optional(),
  /** Node shape when the instance type is not in the catalog (on-prem hardware). */
  shape: z.strictObject({ cpu: cpuQuantity, memory: memoryQuantity, gpu: gpuQuantity.optional() }).optional(),
  /** Expected spot interruptions per node-hour; defaults to a catalog-wide estimate for spot pools. */
  interruptionRate: z.number().nonnegative().max(10).optional(),
  idleTtl: durationQuantity.default(600),
  launchDelay: durationQuantity.optional(),
  nodeLabels: labels.optional(),
  taints: z.array(taint).optional(),
});

/** Onboards a cluster: where it is, how its agent authenticates, and its node pools. */
export const clusterKind = kind(
  'Cluster',
  z.strictObject({
    provider: z.enum(['kubernetes', 'aws', 'gcp', 'local', 'sim']),
    /** Cloud whose prices apply; defaults to the provider for aws/gcp. */
    cloud: z.enum(['aws', 'gcp', 'onprem']).optional(),
    region: z.string().min(1).optional(),
    zone: z.string().min(1).optional(),
    labels: labels.optional(),
    agent: z
      .strictObject({
        auth: z.enum(['nats-creds', 'nkey', 'token', 'none']).default('nats-creds'),
        /** Name of the Secret (or file) holding the agent's credentials; never the secret itself. */
        credentialsRef: z.string().min(1).optional(),
      })
      .optional(),
    pools: z.array(poolSpec).min(1, 'a cluster needs at least one pool'),
  }),
);

const quota = z.discriminatedUnion('resource', [
  z.strictObject({
    resource: z.literal('cpu'),
    nominal: cpuQuantity,
    borrowingLimit: cpuQuantity.optional(),
  }),
  z.strictObject({
    resource: z.literal('memory'),
    nominal: memoryQuantity,
    borrowingLimit: memoryQuantity.optional(),
  }),
  z.strictObject({
    resource: z.literal('gpu'),
    /** Limits one GPU model; without it, all GPUs together. */
    model: gpuModel.optional(),
    nominal: z.number().nonnegative(),
    borrowingLimit: z.number().nonnegative().optional(),
  }),
]);

const fallback = z.strictObject({
  gpu: gpuModel.optional(),
  capacityType: capacityType.optional(),
  cluster: resourceName.optional(),
});

/** A team's quotas, budgets and placement rules. */
export const resourcePolicyKind = kind(
  'ResourcePolicy',
  z.strictObject({
    teams: z
      .array(
        z
          .string()
          .regex(
            /^[A-Za-z0-9_-]{1,100}$/,
            'a team is 1–100 letters, digits, _ or - (it is part of NATS subjects and credential names)',
          ),
      )
      .min(1, 'name at least one team'),
    priority: z.int().default(0),
    /**
     * Whether the team's work may stop running work of lower priority when no pool has room for it
     * (off by default): its own team's (`withinTeam`), other teams' (`lowerPriority`). The work stopped
     * is what loses least (elapsed time × price); it is placed again.
     */
    preemption: z
      .strictObject({
        withinTeam: z.boolean({ error: 'must be true or false' }).default(false),
        lowerPriority: z.boolean({ error: 'must be true or false' }).default(false),
      })
      .optional(),
    /**
     * What the team's runtimes may ask to run. `process` (a command on a cluster's host) only when
     * listed here; agents and tasks can never ask for it (docs/security.md).
     */
    workKinds: z.array(z.enum(['task', 'worker', 'sim', 'process'])).optional(),
    quotas: z.array(quota).default([]),
    budget: z
      .strictObject({
        perHour: money.optional(),
        perMonth: money.optional(),
        alertAt: z.array(z.number().positive().max(10)).default([0.8, 1]),
        /**
         * What happens to a lease that runs past its declared duration under a monthly budget: `extend`
         * (the default) commits more of the budget before the lease could cross it, and stops the lease
         * when the budget has no room left; `stop` stops it at its declared duration.
         */
        onOverrun: z.enum(['extend', 'stop']).default('extend'),
      })
      .optional(),
    /**
     * A request that waits longer than this to be placed fails with MaxQueuedTimeExceededError
     * (held by capacity, quota or budget). Without it a request waits until it can be placed.
     */
    maxQueueTime: durationQuantity.optional(),
    allowed: z
      .strictObject({
        clusters: z.array(resourceName).optional(),
        regions: z.array(z.string().min(1)).optional(),
        gpuModels: z.array(gpuModel).optional(),
        capacityTypes: z.array(capacityType).optional(),
      })
      .optional(),
    spot: spotPreference.default('allowed'),
    /** Ordered preferences, like Kueue's ordered flavours: earlier entries win unless much dearer. */
    fallbacks: z.array(fallback).default([]),
    maxPricePerTaskHour: money.optional(),
    /** Largest single task the team may ask for, overrides included (memory escalation stops here). */
    limits: z
      .strictObject({
        cpu: cpuQuantity.optional(),
        memory: memoryQuantity.optional(),
        gpus: z.number().positive().optional(),
      })
      .optional(),
    defaults: resourcesSpec.optional(),
  }),
);

/** A named preset of resources that tasks refer to (`profile: gpu-train`). */
export const resourceProfileKind = kind(
  'ResourceProfile',
  resourcesSpec.omit({ profile: true }).extend({ description: z.string().optional() }),
);

const catalogOverride = z.strictObject({
  cloud: z.string().min(1),
  instanceType: z.string().min(1),
  region: z.string().min(1),
  onDemand: money.optional(),
  spot: money.optional(),
  cpu: cpuQuantity.optional(),
  memory: memoryQuantity.optional(),
  gpu: gpuQuantity.optional(),
});

/** Negotiated rates and on-prem hardware that the shipped catalog does not know. */
export const priceCatalogKind = kind(
  'PriceCatalog',
  z.strictObject({ entries: z.array(catalogOverride).min(1) }),
);

/** A batch of task groups for what-if planning (`gantry plan --workload`). */
export const workloadKind = kind(
  'Workload',
  z.strictObject({
    groups: z
      .array(
        resourcesSpec.extend({
          name: resourceName,
          team: z.string().min(1),
          count: z.int().positive(),
          priority: z.int().optional(),
        }),
      )
      .min(1),
  }),
);

/** Schemas by `kind`. */
export const KINDS = {
  Cluster: clusterKind,
  ResourcePolicy: resourcePolicyKind,
  ResourceProfile: resourceProfileKind,
  PriceCatalog: priceCatalogKind,
  Workload: workloadKind,
} as const;

export type KindName = keyof typeof KINDS;
export type ClusterDoc = z.output<typeof clusterKind>;
export type PoolSpec = z.output<typeof poolSpec>;
export type ResourcePolicyDoc = z.output<typeof resourcePolicyKind>;
export type ResourceProfileDoc = z.output<typeof resourceProfileKind>;
export type PriceCatalogDoc = z.output<typeof priceCatalogKind>;
export type WorkloadDoc = z.output<typeof workloadKind>;
export type ResourcesSpec = z.output<typeof resourcesSpec>;
export type SpotPreference = z.output<typeof spotPreference>;
export type CapacityType = z.output<typeof capacityType>;
export type Quota = z.output<typeof quota>;
/** Any validated document. */
export type GantryDoc = ClusterDoc | ResourcePolicyDoc | ResourceProfileDoc | PriceCatalogDoc | WorkloadDoc;
