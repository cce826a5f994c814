/** Clusters: each cluster's health, pools (type, GPUs, capacity, price, nodes running of maximum) and nodes; drain and undrain. */
import { useState } from 'react';
import { post, useApi } from '../api.ts';
import { perHour, when } from '../format.ts';
import type { Me } from '../main.tsx';
import { Frame, Status, Table } from '../ui.tsx';

interface Pool {
  id: string;
  name: string;
  instanceType?: string;
  capacityType: string;
  price?: number;
  pricePerHour?: number;
  maxNodes?: number;
  minNodes?: number;
  gpuModel: string | null;
  gpuCount: number;
}

interface Node {
  name: string;
  pool: string;
  ready: boolean;
  cpuMilli: number;
  memoryMiB: number;
  gpuMilli?: number;
  free?: { cpuMilli: number; memoryMiB: number; gpuMilli: number };
}

interface Cluster {
  name: string;
  provider: string;
  region?: string;
  healthy: boolean;
  draining: boolean;
  lastHeartbeat?: number;
  pools: Pool[];
  nodes: Node[];
  planned: string[];
  activeLeases: number;
}

const gpus = (p: Pool) => (p.gpuCount ? `${p.gpuModel ?? 'GPU'}:${p.gpuCount}` : '');

export function ClustersPage({ me }: { me: Me | undefined }) {
  const loaded = useApi<{ clusters: Cluster[] }>('/v1/live/clusters');
  const [note, setNote] = useState('');
  const act = (verb: 'drain' | 'undrain', name: string) =>
    post(`/v1/actions/${verb}`, { name }).then(
      () => {
        setNote(`${verb === 'drain' ? 'draining' : 'undrained'} ${name}`);
        loaded.reload();
      },
      (e: Error) => setNote(e.message),
    );
  const canAct = me?.rights.includes('act') ?? false;
  return (
    <>
      <h1>Clusters</h1>
      {note ? (
        <p className="muted" data-testid="action-note">
          {note}
        </p>
      ) : null}
      <Frame loaded={loaded}>
        {({ clusters }) => (
          <>
            {clusters.map((c) => (
              <section key={c.name} className="cluster" data-cluster={c.name}>
                <h2>
                  {c.name}{' '}
                  <span className="muted">
                    {c.provider} {c.region ?? ''}
                  </span>{' '}
                  <Status status={c.healthy ? 'healthy' : 'unhealthy'} />{' '}
                  {c.draining ? <Status status="draining" /> : null}{' '}
                  {canAct ? (
                    <button
                      data-testid={`${c.draining ? 'undrain' : 'drain'}-${c.name}`}
                      onClick={() => act(c.draining ? 'undrain' : 'drain', c.name)}
                    >
                      {c.draining ? 'undrain' : 'drain'}
                    </button>
                  ) : null}
                </h2>
                <p className="muted">
                  last heartbeat {when(c.lastHeartbeat)} · {c.activeLeases} running · {c.planned.length} nodes
                  planned
                </p>
                <Table
                  head={[
                    'pool',
                    'instance type',
                    'GPUs',
                    'capacity type',
                    '$/hour',
                    'nodes running / max',
                    'free CPU',
                    'free GPU',
                  ]}
                  rows={c.pools.map((p) => {
                    const nodes = c.nodes.filter((n) => n.pool === p.name || n.pool === p.id);
                    const free = nodes.reduce(
                      (s, n) => ({
                        cpu: s.cpu + (n.free?.cpuMilli ?? 0),
                        gpu: s.gpu + (n.free?.gpuMilli ?? 0),
                      }),
                      { cpu: 0, gpu: 0 },
                    );
                    return {
                      key: p.name,
                      cells: [
                        p.name,
                        p.instanceType ?? '',
                        gpus(p),
                        p.capacityType,
                        perHour(p.pricePerHour ?? p.price),
                        `${nodes.length} / ${p.maxNodes ?? '∞'}`,
                        (free.cpu / 1000).toFixed(1),
                        (free.gpu / 1000).toFixed(1),
                      ],
                    };
                  })}
                />
                {c.nodes.length > 0 ? (
                  <details>
                    <summary>{c.nodes.length} nodes</summary>
                    <Table
                      head={['node', 'pool', 'ready', 'CPU', 'memory', 'free CPU', 'free GPU']}
                      rows={c.nodes.map((n) => ({
                        key: n.name,
                        cells: [
                          n.name,
                          n.pool,
                          n.ready ? 'yes' : 'launching',
                          (n.cpuMilli / 1000).toFixed(1),
                          `${Math.round(n.memoryMiB / 1024)} Gi`,
                          ((n.free?.cpuMilli ?? 0) / 1000).toFixed(1),
                          ((n.free?.gpuMilli ?? 0) / 1000).toFixed(1),
                        ],
                      }))}
                    />
                  </details>
                ) : null}
              </section>
            ))}
          </>
        )}
      </Frame>
    </>
  );
}
