/**
 * `describe` as people read it: a cluster's health, pools and nodes as labelled lines and small tables,
 * the way `kubectl describe` prints an object (`-o json|yaml` prints the broker's answer instead).
 */
import { formatCpu, formatMemory, type Pool } from '../../policies/index.ts';
import { table } from '../table.ts';

/** A cluster as `gantry cluster list` gets it from the broker. */
export interface ClusterSummary {
  name: string;
  provider: string;
  region?: string;
  healthy: boolean;
  draining: boolean;
  agentId?: string;
  lastHeartbeat?: number;
  nodes: number;
  pools: string[];
}

/** A node as an agent reports it. */
export interface NodeReport {
  name: string;
  pool: string;
  cpuMilli: number;
  memoryMiB: number;
  gpuCount: number;
  ready: boolean;
  capacityType: string;
  plannedId?: string;
  readyAt?: number;
}

/** A cluster as `gantry cluster describe` gets it from the broker. */
export interface ClusterDescription extends Omit<ClusterSummary, 'nodes' | 'pools'> {
  pools: Pool[];
  nodes: NodeReport[];
  planned: string[];
  activeLeases: number;
}

const ago = (at: number | undefined, now: number) => {
  if (at === undefined) return 'never';
  const s = Math.max(0, Math.round((now - at) / 1000));
  return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
};

const indent = (text: string) =>
  text
    .trimEnd()
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');

/** The text of `gantry cluster describe`; `wide` adds labels, taints and each node's planned id. */
export function describeCluster(c: ClusterDescription, wide: boolean, now: number): string {
  const gpu = (p: Pool) => (p.gpuCount > 0 && p.gpuModel ? `${p.gpuCount}× ${p.gpuModel}` : '-');
  const lines = [
    `Name:           ${c.name}`,
    `Provider:       ${c.provider}${c.region ? ` (${c.region})` : ''}`,
    `Health:         ${c.healthy ? 'healthy' : 'UNHEALTHY'}, ${c.agentId ? `agent ${c.agentId}, last heartbeat ${ago(c.lastHeartbeat, now)}` : 'no agent has registered'}`,
    `Draining:       ${c.draining ? 'yes: no new placements' : 'no'}`,
    `Active leases:  ${c.activeLeases}`,
    `Nodes planned:  ${c.planned.length === 0 ? 'none' : c.planned.join(', ')}`,
    '',
    `Pools (${c.pools.length}):`,
    indent(
      table(
        [
          'NAME',
          'INSTANCE TYPE',
          'CAPACITY',
          'CPU',
          'MEMORY',
          'GPU',
          '$/HOUR',
          'NODES MIN-MAX',
          ...(wide ? ['ZONE', 'IDLE TTL', 'LABELS', 'TAINTS'] : []),
        ],
        c.pools.map((p) => [
          p.name,
          p.instanceType,
          p.capacityType,
          formatCpu(p.cpuMilli),
          formatMemory(p.memoryMiB),
          gpu(p),
          `$${p.price.toFixed(4)}`,
          `${p.minNodes}-${p.maxNodes}`,
          ...(wide
            ? [
                p.zone ?? '',
                `${p.idleTtlSeconds}s`,
                Object.entries(p.nodeLabels ?? {})
                  .map(([k, v]) => `${k}=${v}`)
                  .join(','),
                (p.taints ?? []).map((t) => `${t.key}=${t.value ?? ''}:${t.effect}`).join(','),
              ]
            : []),
        ]),
      ),
    ),
    '',
    `Nodes (${c.nodes.length}):`,
  ];
  if (c.nodes.length === 0) lines.push('  none running');
  else
    lines.push(
      indent(
        table(
          [
            'NAME',
            'POOL',
            'CAPACITY',
            'READY',
            'CPU',
            'MEMORY',
            'GPUS',
            ...(wide ? ['PLANNED AS', 'UP SINCE'] : []),
          ],
          c.nodes.map((n) => [
            n.name,
            n.pool,
            n.capacityType,
            n.ready ? 'yes' : 'no',
            formatCpu(n.cpuMilli),
            formatMemory(n.memoryMiB),
            String(n.gpuCount),
            ...(wide ? [n.plannedId ?? '', n.readyAt ? new Date(n.readyAt).toISOString() : ''] : []),
          ]),
        ),
      ),
    );
  return `${lines.join('\n')}\n`;
}
