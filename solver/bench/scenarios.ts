/**
 * Benchmark scenarios built from real data in `data/`: the Alibaba openb GPU cluster trace as
 * an on-prem cluster and its pods as the workload, cloud pools priced from real AWS and GCP prices, and
 * synthetic scale runs. Used by `npm run bench:plan`; never by the product.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadBuiltinCatalog, normalizeGpuModel, type Policy } from '../../policies/index.ts';
import { mulberry32 } from '../../test/random.ts';
import type { GpuAsk, PoolState, TaskRequest } from '../types.ts';

export const DATA = join(import.meta.dirname, '../../data');

export interface BenchScenario {
  name: string;
  pools: PoolState[];
  tasks: TaskRequest[];
  policies: Policy[];
}

function csv(file: string): Record<string, string>[] {
  const [head = '', ...lines] = readFileSync(file, 'utf8').split('\n');
  const cols = head.split(',');
  return lines
    .filter((l) => l.trim())
    .map((l) => {
      const cells = l.split(',');
      return Object.fromEntries(cols.map((c, i) => [c, cells[i] ?? '']));
    });
}

/** openb model names: V100M16/V100M32 are V100 16/32 GB; G1–G3 are undisclosed and kept as they are. */
function openbModel(name: string): string {
  return normalizeGpuModel(name) ?? name;
}

/** The openb cluster's GPU nodes, free, as one reserved pool per node shape. */
export function openbPools(): PoolState[] {
  const shapes = new Map<string, PoolState>();
  for (const n of csv(join(DATA, 'openb/openb_node_list_gpu_node.csv'))) {
    const model = openbModel(n.model ?? '');
    const key = `${model}-${n.gpu}x-${n.cpu_milli}-${n.memory_mib}`;
    let pool = shapes.get(key);
    if (!pool) {
      pool = {
        id: `openb/${key}`,
        cluster: 'openb',
        name: key,
        region: 'openb',
        instanceType: key,
        capacityType: 'reserved',
        cpuMilli: Number(n.cpu_milli),
        memoryMiB: Number(n.memory_mib),
        gpuModel: model,
        gpuCount: Number(n.gpu),
        price: 0,
        interruptionRate: 0,
        launchDelaySeconds: 0,
        nodes: [],
        maxNewNodes: 0,
      };
      shapes.set(key, pool);
    }
    (pool.nodes as PoolState['nodes'][number][]).push({
      name: n.sn ?? '',
      freeCpuMilli: pool.cpuMilli,
      freeMemoryMiB: pool.memoryMiB,
      freeGpuMilli: Array<number>(pool.gpuCount).fill(1000),
    });
  }
  return [...shapes.values()];
}

/** On-demand (and optionally spot) cloud pools for every catalog entry in the given regions. */
export function cloudPools(
  regions: Record<string, string[]>,
  opts: { spot?: boolean; maxNewNodes?: number; launchDelaySeconds?: number; gpuTaint?: boolean } = {},
): PoolState[] {
  const catalog = loadBuiltinCatalog();
  const pools: PoolState[] = [];
  for (const [cloud, list] of Object.entries(regions)) {
    for (const region of list) {
      for (const offer of catalog.find({ cloud, region })) {
        if (offer.capacityType === 'spot' && !opts.spot) continue;
        const kind = offer.capacityType === 'spot' ? 'spot' : 'od';
        pools.push({
          id: `${cloud}-${region}/${offer.instanceType}-${kind}`,
          cluster: `${cloud}-${region}`,
          name: `${offer.instanceType}-${kind}`,
          region,
          instanceType: offer.instanceType,
          capacityType: offer.capacityType,
          cpuMilli: offer.vcpu * 1000,
          memoryMiB: offer.memoryGiB * 1024,
          gpuModel: offer.gpu?.model ?? null,
          gpuCount: offer.gpu?.count ?? 0,
          price: offer.price,
          interruptionRate: offer.capacityType === 'spot' ? 0.05 : 0,
          launchDelaySeconds: opts.launchDelaySeconds ?? 120,
          ...(opts.gpuTaint && offer.gpu
            ? { taints: [{ key: 'nvidia.com/gpu', effect: 'NoSchedule' }] }
            : {}),
          nodes: [],
          maxNewNodes: opts.maxNewNodes ?? 1000,
        });
      }
    }
  }
  return pools;
}

/** openb pods, every one pending at once; `copies` scales the workload; `durationSeconds` fixes every run. */
export function openbTasks(
  file: string,
  copies = 1,
  team = 'openb',
  durationSeconds?: number,
  wholeGpus = false,
): TaskRequest[] {
  const rows = csv(join(DATA, 'openb', file));
  const tasks: TaskRequest[] = [];
  for (let c = 0; c < copies; c++) {
    for (const r of rows) {
      const numGpu = Number(r.num_gpu || 0);
      const milli = Number(r.gpu_milli || 0);
      const shared = numGpu === 1 && milli < 1000 && !wholeGpus;
      const count = numGpu === 0 ? 0 : shared ? milli / 1000 : numGpu;
      const models = (r.gpu_spec ?? '').split('|').filter(Boolean).map(openbModel);
      const gpu: GpuAsk[] =
        count === 0
          ? []
          : models.length === 0
            ? [{ model: '*', count }]
            : [...new Set(models)].map((model) => ({ model, count }));
      const lived = Number(r.deletion_time) - Number(r.creation_time);
      // Planned for how long the pod lived, between 5 minutes and a day (long-lived services are capped).
      const planned =
        durationSeconds ??
        (Number.isFinite(lived) && lived > 0 ? Math.min(Math.max(lived, 300), 86_400) : 3600);
      tasks.push({
        id: `${r.name}${copies > 1 ? `-x${c}` : ''}`,
        team,
        cpuMilli: Number(r.cpu_milli),
        memoryMiB: Number(r.memory_mib),
        durationSeconds: planned,
        ...(gpu.length ? { gpu } : {}),
      });
    }
  }
  return tasks;
}

/** The openb pod lists in `data/openb`, by the name `bench:plan --workload` takes. */
export const OPENB_WORKLOADS = ['default', 'gpuspec33', 'multigpu20'] as const;

/**
 * The trace scenario: every pod of a pod list pending at once, ×`copies`, each for one hour; the 1,213
 * openb nodes free at price 0; on-demand AWS us-east-1 and GCP us-central1 pools that may add any number of
 * nodes (no launch delay, so a node-hour is a task-hour and $ equal $/h); whole GPUs as the trace asks;
 * cloud GPU pools tainted, so CPU-only pods stay off GPU instances.
 */
export function traceScenario(workload: string, copies: number): BenchScenario {
  return {
    name: `${workload} ×${copies}`,
    pools: [
      ...openbPools(),
      ...cloudPools(
        { aws: ['us-east-1'], gcp: ['us-central1'] },
        { maxNewNodes: 1_000_000, launchDelaySeconds: 0, gpuTaint: true },
      ),
    ],
    tasks: openbTasks(`openb_pod_list_${workload}.csv`, copies, 'openb', 3600, true),
    policies: [openPolicy('openb')],
  };
}

/** A policy that allows everything, for the trace runs. */
export function openPolicy(team: string, spec: Partial<Policy> = {}): Policy {
  return { name: team, teams: [team], priority: 0, quotas: [], spot: 'allowed', fallbacks: [], ...spec };
}

/**
 * A synthetic batch of `n` tasks over 24 shapes and three teams, with quotas that bind and GPU models that
 * substitute for each other, on cloud pools plus a small on-prem fleet.
 */
export function syntheticScale(n: number): BenchScenario {
  const random = mulberry32(n);
  const shapes: Omit<TaskRequest, 'id' | 'team'>[] = [];
  const gpuChoices: GpuAsk[][] = [
    [],
    [{ model: 'L4', count: 1 }],
    [
      { model: 'A10G', count: 1 },
      { model: 'L4', count: 1 },
    ],
    [
      { model: 'H100', count: 8 },
      { model: 'A100-80GB', count: 8 },
    ],
    [
      { model: 'H100', count: 1 },
      { model: 'A100', count: 1 },
    ],
    [{ model: 'T4', count: 1 }],
  ];
  for (let i = 0; i < 24; i++) {
    const gpu = gpuChoices[i % gpuChoices.length]!;
    shapes.push({
      cpuMilli: [500, 1000, 2000, 4000, 8000][Math.floor(random() * 5)]!,
      memoryMiB: [1024, 4096, 8192, 16_384][Math.floor(random() * 4)]!,
      durationSeconds: [600, 1800, 3600, 7200][Math.floor(random() * 4)]!,
      ...(gpu.length ? { gpu } : {}),
    });
  }
  const teams = ['research', 'product', 'batch'];
  const tasks: TaskRequest[] = [];
  for (let i = 0; i < n; i++) {
    // Most tasks are small CPU or single-GPU work; big training tasks are rare, as in practice.
    const s = shapes[Math.floor(random() ** 2 * shapes.length)]!;
    tasks.push({ id: `t${i}`, team: teams[i % 3]!, ...s });
  }
  const onprem = openbPools().filter((p) => p.gpuModel === 'T4' || p.gpuModel === 'V100');
  return {
    name: `synthetic ${n >= 1000 ? `${n / 1000}K` : n}`,
    pools: [
      ...onprem,
      ...cloudPools({ aws: ['us-east-1'], gcp: ['us-central1'] }, { spot: true, maxNewNodes: 5000 }),
    ],
    tasks,
    policies: [
      openPolicy('research', {
        quotas: [{ resource: 'gpu', model: 'H100', nominal: Math.ceil(n / 50), borrowingLimit: 8 }],
      }),
      openPolicy('product', { spot: 'preferred' }),
      openPolicy('batch', { spot: 'required' }),
    ],
  };
}
