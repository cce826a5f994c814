/**
 * Test builders for solver inputs, in the style of Kueue's wrappers:
 * `makePool('aws-h100').gpus('H100', 8).price(98.32).obj()`, and for the leases task hosts take.
 */
import type { Policy } from '../policies/index.ts';
import type { LeaseMsg } from '../protocol/index.ts';
import type { NodeState, PoolState, TaskRequest } from '../solver/index.ts';

class PoolBuilder {
  private readonly p: PoolState;
  constructor(id: string) {
    const [cluster = 'c', name = id] = id.includes('/') ? id.split('/') : ['c', id];
    this.p = {
      id: `${cluster}/${name}`,
      cluster,
      name,
      region: 'r1',
      instanceType: name,
      capacityType: 'on-demand',
      cpuMilli: 8000,
      memoryMiB: 32 * 1024,
      gpuModel: null,
      gpuCount: 0,
      price: 1,
      interruptionRate: 0,
      launchDelaySeconds: 0,
      nodes: [],
      maxNewNodes: 100,
    };
  }
  cpu(cores: number): this {
    this.p.cpuMilli = cores * 1000;
    return this;
  }
  memoryGi(gi: number): this {
    this.p.memoryMiB = gi * 1024;
    return this;
  }
  gpus(model: string, count: number): this {
    this.p.gpuModel = model;
    this.p.gpuCount = count;
    return this;
  }
  price(perHour: number): this {
    this.p.price = perHour;
    return this;
  }
  spot(interruptionRate = 0): this {
    this.p.capacityType = 'spot';
    this.p.interruptionRate = interruptionRate;
    return this;
  }
  reserved(): this {
    this.p.capacityType = 'reserved';
    return this;
  }
  region(r: string): this {
    this.p.region = r;
    return this;
  }
  maxNew(n: number): this {
    this.p.maxNewNodes = n;
    return this;
  }
  launchDelay(seconds: number): this {
    this.p.launchDelaySeconds = seconds;
    return this;
  }
  /** Adds `count` running nodes, empty unless `used` says what is taken on each. */
  running(count: number, used: { cpu?: number; memoryGi?: number; gpus?: number } = {}): this {
    const start = this.p.nodes.length;
    const nodes: NodeState[] = Array.from({ length: count }, (_, i) => ({
      name: `${this.p.name}-${start + i}`,
      freeCpuMilli: this.p.cpuMilli - (used.cpu ?? 0) * 1000,
      freeMemoryMiB: this.p.memoryMiB - (used.memoryGi ?? 0) * 1024,
      freeGpuMilli: Array.from({ length: this.p.gpuCount }, (_, d) => (d < (used.gpus ?? 0) ? 0 : 1000)),
    }));
    this.p.nodes = [...this.p.nodes, ...nodes];
    return this;
  }
  obj(): PoolState {
    return { ...this.p, nodes: [...this.p.nodes] };
  }
}

/** A pool builder: 8 cpu, 32Gi, no GPU, $1/hour on-demand, up to 100 new nodes. */
export function makePool(id: string): PoolBuilder {
  return new PoolBuilder(id);
}

/** `count` identical requests `prefix-0 … prefix-(count-1)`; one hour each unless given. */
export function makeTasks(
  prefix: string,
  count: number,
  shape: Partial<TaskRequest> & { team?: string },
): TaskRequest[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `${prefix}-${i}`,
    team: shape.team ?? 'team-a',
    cpuMilli: shape.cpuMilli ?? 1000,
    memoryMiB: shape.memoryMiB ?? 1024,
    durationSeconds: shape.durationSeconds ?? 3600,
    ...(shape.gpu ? { gpu: shape.gpu } : {}),
    ...(shape.spot ? { spot: shape.spot } : {}),
    ...(shape.priority !== undefined ? { priority: shape.priority } : {}),
  }));
}

/** A policy with permissive defaults for `teams`, overridden by `spec`. */
export function makePolicy(name: string, spec: Partial<Policy> = {}): Policy {
  return { name, teams: [name], priority: 0, quotas: [], spot: 'allowed', fallbacks: [], ...spec };
}

/** The work of a lease that runs a workflow task. */
type TaskWork = Extract<LeaseMsg['work'], { kind: 'task' }>;

/**
 * A lease of one workflow task of run `run-1`, team `t`, on an on-demand `cpu` pool at $0.40/hour
 * (1 CPU, 1 GiB unless `memoryMiB` says), for an hour: what a task host is handed.
 */
export function makeTaskLease(o: {
  execution: string;
  task: string;
  module: string;
  input: TaskWork['input'];
  cluster: string;
  node: string;
  leaseId?: string;
  memoryMiB?: number;
}): LeaseMsg {
  return {
    leaseId: o.leaseId ?? `l-${o.execution}`,
    requestId: o.execution,
    cluster: o.cluster,
    pool: 'cpu',
    node: o.node,
    pricePerHour: 0.4,
    cpuMilli: 1000,
    memoryMiB: o.memoryMiB ?? 1024,
    gpuMilli: 0,
    gpuModel: null,
    capacityType: 'on-demand',
    expiresAt: Date.now() + 3_600_000,
    attempt: 0,
    why: 'test',
    work: {
      kind: 'task',
      module: o.module,
      task: o.task,
      execution: o.execution,
      run: 'run-1',
      team: 't',
      input: o.input,
    },
  };
}
