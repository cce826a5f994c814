/** The shapes of the server's answers that the pages read (the server's types, as JSON). */

export interface RunRecord {
  run: string;
  workflow: string;
  module: string;
  team: string;
  status: 'running' | 'succeeded' | 'failed' | 'cancelled' | 'abandoned';
  startedAt: number;
  endedAt?: number;
  input: string;
  output?: string;
  error?: string;
  costUsd: number;
  executions: number;
}

export interface CostRow {
  key: Record<string, string>;
  costUsd: number;
  idleUsd: number;
  onDemandUsd: number;
  executions: number;
  gpuHours: number;
}

export interface CostReport {
  since: number;
  until: number;
  by: string[];
  rows: CostRow[];
  stepMs: number;
  buckets: { start: number; values: Record<string, number> }[];
  byGpu: Record<string, number>;
  totals: {
    costUsd: number;
    taskUsd: number;
    idleUsd: number;
    onDemandUsd: number;
    spotSavingsUsd: number;
    unpricedUsd: number;
    greedyUsd?: number;
    plannedUsd?: number;
    executions: number;
    nodes: number;
  };
}

export interface Budget {
  team: string;
  policy: string;
  perHour: number | null;
  perMonth: number | null;
  spent: number;
}

export interface LiveBudget {
  team: string;
  policy: string;
  perHour?: { cap: number; usedPerHour: number };
  perMonth?: { cap: number; month: string; spent: number; committed: number; remaining: number };
  held?: string;
}

export interface ClusterSummary {
  name: string;
  provider: string;
  region?: string;
  healthy: boolean;
  draining: boolean;
  lastHeartbeat?: number;
  nodes: number;
  pools: string[];
}

export interface LineageRecord {
  run: string;
  execution: string;
  parent?: string;
  task: string;
  attempt: number;
  input: string;
  output?: string;
  error?: { name: string; message: string };
  placement?: { cluster: string; pool: string; node: string; capacityType: string; pricePerHour: number };
  costUsd: number;
  cached?: boolean;
  preemptions: number;
  startedAt: number;
  endedAt: number;
}

export interface LineageGraph {
  root: string;
  executions: LineageRecord[];
  edges: { from: string; to: string; kind: 'input' | 'output' | 'call'; whole?: boolean }[];
}
