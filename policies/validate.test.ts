import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatProblem, validatePaths } from './index.ts';

const HEAD = 'apiVersion: gantry.dev/v1alpha1';

/** A valid platform the bad documents sit beside, so that references can resolve. */
const BASE = `${HEAD}
kind: Cluster
metadata: { name: aws-use1 }
spec:
  provider: aws
  region: us-east-1
  pools:
    - { name: cpu, instanceType: m7i.2xlarge, capacityType: spot, maxNodes: 10 }
---
${HEAD}
kind: ResourceProfile
metadata: { name: gpu-train }
spec: { gpu: "H100:8", memory: 1Ti }
`;

function validate(text: string) {
  const dir = mkdtempSync(join(tmpdir(), 'gantry-validate-'));
  writeFileSync(join(dir, '00-platform.yaml'), BASE);
  writeFileSync(join(dir, 'bad.yaml'), text);
  return validatePaths([dir], undefined).problems.map((p) => ({ ...p, file: p.file.replace(/.*[\\/]/, '') }));
}

const cluster = (pool: string, extra = '') => `${HEAD}
kind: Cluster
metadata: { name: c1 }
spec:
  provider: aws
  region: us-east-1${extra}
  pools:
    - ${pool}
`;
const policy = (spec: string) => `${HEAD}
kind: ResourcePolicy
metadata: { name: p1 }
spec:
  teams: [t1]
${spec}
`;
const profile = (spec: string) => `${HEAD}
kind: ResourceProfile
metadata: { name: prof }
spec: ${spec}
`;
const okPool = '{ name: a, instanceType: m7i.large, maxNodes: 3 }';

// [name, document, expected `line:col  path`, expected message (exact, or a /regex/)]
const BAD: [string, string, string | RegExp, string | RegExp][] = [
  [
    'unknown field in a pool',
    cluster('{ name: a, instanceType: m7i.large, maxNode: 3 }'),
    '8:43  spec.pools[0].maxNode',
    /^unknown field 'maxNode' \(did you mean 'maxNodes'\?\)$/,
  ],
  [
    'missing maxNodes',
    cluster('{ name: a, instanceType: m7i.large }'),
    '8:7  spec.pools[0]',
    "missing required field 'maxNodes'",
  ],
  [
    'maxNodes is a string',
    cluster('{ name: a, instanceType: m7i.large, maxNodes: ten }'),
    '8:43  spec.pools[0].maxNodes',
    'expected number, received string',
  ],
  [
    'maxNodes negative',
    cluster('{ name: a, instanceType: m7i.large, maxNodes: -1 }'),
    '8:43  spec.pools[0].maxNodes',
    /expected number to be >=0/,
  ],
  [
    'maxNodes fractional',
    cluster('{ name: a, instanceType: m7i.large, maxNodes: 1.5 }'),
    '8:43  spec.pools[0].maxNodes',
    /expected int/,
  ],
  [
    'min greater than max',
    cluster('{ name: a, instanceType: m7i.large, minNodes: 5, maxNodes: 3 }'),
    '8:43  spec.pools[0].minNodes',
    'minNodes (5) is greater than maxNodes (3)',
  ],
  [
    'nodes greater than max',
    cluster('{ name: a, instanceType: m7i.large, nodes: 5, maxNodes: 3 }'),
    '8:43  spec.pools[0].nodes',
    'nodes (5) is greater than maxNodes (3)',
  ],
  [
    'instance type not in catalog',
    cluster('{ name: a, instanceType: p5.48xlage, maxNodes: 3 }'),
    '8:18  spec.pools[0].instanceType',
    /^instance type 'p5\.48xlage' is not in the aws catalog for us-east-1 \(did you mean p5\.48xlarge\?\)$/,
  ],
  [
    'gcp type in an aws cluster',
    cluster('{ name: a, instanceType: a3-highgpu-8g, maxNodes: 3 }'),
    '8:18  spec.pools[0].instanceType',
    /^instance type 'a3-highgpu-8g' is not in the aws catalog/,
  ],
  [
    'bad capacity type',
    cluster('{ name: a, instanceType: m7i.large, capacityType: spotty, maxNodes: 3 }'),
    '8:43  spec.pools[0].capacityType',
    "must be one of spot, on-demand, reserved (did you mean 'spot'?)",
  ],
  [
    'bad provider',
    `${HEAD}\nkind: Cluster\nmetadata: { name: c1 }\nspec:\n  provider: azure\n  pools:\n    - ${okPool}\n`,
    '5:3  spec.provider',
    'must be one of kubernetes, aws, gcp, local, sim',
  ],
  [
    'aws cluster without region',
    `${HEAD}\nkind: Cluster\nmetadata: { name: c1 }\nspec:\n  provider: aws\n  pools:\n    - ${okPool}\n`,
    '4:1  spec',
    /^missing required field 'region'/,
  ],
  [
    'no pools',
    `${HEAD}\nkind: Cluster\nmetadata: { name: c1 }\nspec:\n  provider: aws\n  region: us-east-1\n  pools: []\n`,
    '7:3  spec.pools',
    'a cluster needs at least one pool',
  ],
  [
    'duplicate pool',
    `${HEAD}\nkind: Cluster\nmetadata: { name: c1 }\nspec:\n  provider: aws\n  region: us-east-1\n  pools:\n    - ${okPool}\n    - ${okPool}\n`,
    '9:9  spec.pools[1].name',
    "duplicate pool 'a' in cluster 'c1'",
  ],
  [
    'memory in GB',
    cluster('{ name: a, instanceType: x1, maxNodes: 3, shape: { cpu: 4, memory: 16GB } }'),
    '8:66  spec.pools[0].shape.memory',
    "'16GB' has no memory unit Gantry knows: did you mean 16Gi?",
  ],
  [
    'memory without unit',
    profile('{ memory: 16 }'),
    '4:9  spec.memory',
    "'16' has no memory unit Gantry knows: did you mean 16Gi?",
  ],
  [
    'bad cpu',
    profile('{ cpu: 4 cores }'),
    '4:9  spec.cpu',
    "'4 cores' is not a cpu quantity: write cores (4, 0.5) or millicores (500m)",
  ],
  ['zero cpu', profile('{ cpu: 0 }'), '4:9  spec.cpu', "'0' is not a valid cpu: it must be positive"],
  [
    'unknown GPU model',
    profile('{ gpu: "H900:8" }'),
    '4:9  spec.gpu',
    /^unknown GPU model 'H900' \(did you mean H200\?\)/,
  ],
  [
    'bad GPU count',
    profile('{ gpu: "H100:eight" }'),
    '4:9  spec.gpu',
    "'H100:eight' has a bad GPU count 'eight': write a positive number",
  ],
  [
    'fractional multi-GPU count',
    profile('{ gpu: "H100:1.5" }'),
    '4:9  spec.gpu',
    "'H100:1.5' asks for 1.5 GPUs: above one device, GPU counts are whole numbers",
  ],
  [
    'empty any-of list',
    profile('{ gpu: [] }'),
    '4:9  spec.gpu',
    'an any-of GPU list needs at least one entry',
  ],
  [
    'bad duration',
    profile('{ duration: 2 hours }'),
    '4:9  spec.duration',
    "'2 hours' is not a duration: write it like 90s, 30m, 2h or 1h30m",
  ],
  [
    'bad spot preference',
    profile('{ spot: sometimes }'),
    '4:9  spec.spot',
    'must be one of never, allowed, preferred, required',
  ],
  [
    'unknown kind',
    `${HEAD}\nkind: Clustr\nmetadata: { name: x }\nspec: {}\n`,
    '2:1  kind',
    /^unknown kind 'Clustr' \(did you mean Cluster\?\)/,
  ],
  [
    'wrong apiVersion',
    `apiVersion: gantry.dev/v1\nkind: Cluster\nmetadata: { name: x }\nspec: {}\n`,
    '1:1  apiVersion',
    'apiVersion must be gantry.dev/v1alpha1',
  ],
  ['missing kind', `${HEAD}\nmetadata: { name: x }\n`, '1:1  (document)', /^missing kind: one of Cluster, /],
  [
    'name with capitals',
    profile('{ cpu: 1 }').replace('name: prof', 'name: Prof'),
    '3:13  metadata.name',
    /must be lower-case letters/,
  ],
  [
    'duplicate profile name',
    profile('{ cpu: 1 }').replace('name: prof', 'name: gpu-train'),
    '3:13  metadata.name',
    /^duplicate ResourceProfile 'gpu-train' \(first defined at .*00-platform\.yaml:12\)$/,
  ],
  ['YAML syntax error', 'kind: Cluster\nspec: [1, 2\n', /^3:1  \(document\)$/, /^YAML: /],
  [
    'not a mapping',
    '- a\n- b\n',
    '1:1  (document)',
    'a document must be a mapping with apiVersion, kind, metadata and spec',
  ],
  [
    'policy names an unknown cluster',
    policy('  allowed: { clusters: [aws-use2] }'),
    '6:25  spec.allowed.clusters[0]',
    "unknown cluster 'aws-use2' (did you mean 'aws-use1'?); known: aws-use1",
  ],
  [
    'policy default profile unknown',
    policy('  defaults: { profile: gpu-trian }'),
    '6:15  spec.defaults.profile',
    "unknown profile 'gpu-trian' (did you mean 'gpu-train'?); known: gpu-train",
  ],
  [
    'fallback names an unknown cluster',
    policy('  fallbacks:\n    - { gpu: H100, cluster: gcp-x }'),
    '7:20  spec.fallbacks[0].cluster',
    "unknown cluster 'gcp-x'; known: aws-use1",
  ],
  [
    'quota on unknown resource',
    policy('  quotas:\n    - { resource: disk, nominal: 8 }'),
    '7:9  spec.quotas[0].resource',
    'must be one of cpu, memory, gpu',
  ],
  [
    'quota with a bad memory',
    policy('  quotas:\n    - { resource: memory, nominal: 4TB }'),
    '7:27  spec.quotas[0].nominal',
    "'4TB' has no memory unit Gantry knows: did you mean 4Ti?",
  ],
  [
    'two quotas for one resource',
    policy('  quotas:\n    - { resource: cpu, nominal: 8 }\n    - { resource: cpu, nominal: 9 }'),
    '8:7  spec.quotas[1]',
    'a second quota for cpu',
  ],
  [
    'allowed GPU model unknown',
    policy('  allowed: { gpuModels: [L4, K80] }'),
    '6:30  spec.allowed.gpuModels[1]',
    /^unknown GPU model 'K80'/,
  ],
  [
    'negative budget',
    policy('  budget: { perHour: -5 }'),
    '6:13  spec.budget.perHour',
    /expected number to be >=0/,
  ],
  [
    'no teams',
    `${HEAD}\nkind: ResourcePolicy\nmetadata: { name: p1 }\nspec:\n  teams: []\n`,
    '5:3  spec.teams',
    'name at least one team',
  ],
  [
    'on-prem pool without a price',
    cluster(
      '{ name: a, instanceType: x1, capacityType: spot, maxNodes: 3, shape: { cpu: 4, memory: 16Gi } }',
    ).replace('provider: aws', 'provider: kubernetes'),
    '8:69  spec.pools[0].shape',
    "the catalog has no price for it: set the pool's price",
  ],
  [
    'workload with unknown profile and team',
    `${HEAD}\nkind: Workload\nmetadata: { name: w }\nspec:\n  groups:\n    - { name: g, team: nobody, profile: gpu-train, count: 2 }\n`,
    '6:18  spec.groups[0].team',
    /^unknown team \(no ResourcePolicy names it\) 'nobody'/,
  ],
  [
    'price entry for a new type without a shape',
    `${HEAD}\nkind: PriceCatalog\nmetadata: { name: rates }\nspec:\n  entries:\n    - { cloud: onprem, instanceType: box, region: dc1, onDemand: 2 }\n`,
    '6:7  spec.entries[0]',
    /^onprem box in dc1: /,
  ],
];

describe('gantry validate: bad documents', () => {
  it('has at least 30 cases', () => expect(BAD.length).toBeGreaterThanOrEqual(30));

  it.each(BAD)('%s', (_name, text, where, message) => {
    const problems = validate(text);
    expect(problems.length, problems.map(formatProblem).join('\n')).toBeGreaterThan(0);
    // The expected problem must be reported exactly; others may accompany it (e.g. a missing field).
    const shown = problems.map(
      (p) => `${p.file}  ${p.line}:${p.col}  ${p.path || '(document)'}  ${p.message}`,
    );
    const match = problems.find((p) => {
      const at = `${p.line}:${p.col}  ${p.path || '(document)'}`;
      const atOk = typeof where === 'string' ? at === where : where.test(at);
      const msgOk = typeof message === 'string' ? p.message === message : message.test(p.message);
      return p.file === 'bad.yaml' && atOk && msgOk;
    });
    expect(match, shown.join('\n')).toBeDefined();
  });
});

describe('gantry validate: examples', () => {
  it('accepts every example and resolves pool shapes and prices from the catalog', () => {
    const { problems, platform, docs } = validatePaths(['examples']);
    expect(problems.map(formatProblem)).toEqual([]);
    expect(docs.length).toBeGreaterThanOrEqual(10);
    const p5 = platform.pools.find((p) => p.id === 'aws-use1/h100-od');
    expect(p5).toMatchObject({ gpuModel: 'H100', gpuCount: 8, cpuMilli: 192_000, capacityType: 'on-demand' });
    const a100 = platform.pools.find((p) => p.id === 'onprem/dgx-a100');
    expect(a100).toMatchObject({ gpuModel: 'A100', gpuCount: 8, price: 0, nodes: 4, memoryMiB: 1024 * 1024 });
    expect(platform.policyFor('product-eval')?.name).toBe('product');
  });
});
