/**
 * Lineage: the graph around a run or an artifact, laid out by dagre — executions as boxes, artifacts
 * as rounded pills, data flow as solid edges and calls as dashed ones. "Everything downstream" of an
 * artifact is one click on it.
 */
import dagre from '@dagrejs/dagre';
import { useState } from 'react';
import { useApi } from '../api.ts';
import { money, short } from '../format.ts';
import type { LineageGraph } from '../types.ts';
import { Frame } from '../ui.tsx';

interface Placed {
  id: string;
  kind: 'execution' | 'artifact';
  label: string;
  sub: string;
  x: number;
  y: number;
  w: number;
  h: number;
}

function layout(g: LineageGraph) {
  const d = new dagre.graphlib.Graph();
  d.setGraph({ rankdir: 'LR', nodesep: 18, ranksep: 60 });
  d.setDefaultEdgeLabel(() => ({}));
  const meta = new Map<string, Omit<Placed, 'x' | 'y'>>();
  for (const e of g.executions)
    meta.set(e.execution, {
      id: e.execution,
      kind: 'execution',
      label: e.task,
      sub: `${e.placement ? `${e.placement.pool} ` : ''}${money(e.costUsd)}${e.error ? ' FAILED' : ''}`,
      w: 170,
      h: 44,
    });
  for (const e of g.edges)
    for (const end of [e.from, e.to])
      if (!meta.has(end))
        meta.set(end, { id: end, kind: 'artifact', label: short(end), sub: '', w: 130, h: 28 });
  for (const [id, m] of meta) d.setNode(id, { width: m.w, height: m.h });
  for (const e of g.edges) d.setEdge(e.from, e.to);
  dagre.layout(d);
  const nodes: Placed[] = [...meta.values()].map((m) => ({ ...m, x: d.node(m.id).x, y: d.node(m.id).y }));
  const edges = g.edges.map((e) => ({ ...e, points: d.edge(e.from, e.to)?.points ?? [] }));
  const graph = d.graph();
  return { nodes, edges, width: (graph.width ?? 0) + 20, height: (graph.height ?? 0) + 20 };
}

export function LineagePage({ target, downstream }: { target: string; downstream: boolean }) {
  const [text, setText] = useState(target);
  const go = (t: string, down: boolean) => {
    window.location.hash = `#/lineage?target=${encodeURIComponent(t)}${down ? '&direction=downstream' : ''}`;
  };
  const loaded = useApi<{ graph: LineageGraph }>(
    target
      ? `/v1/lineage?target=${encodeURIComponent(target)}&direction=${downstream ? 'downstream' : 'upstream'}`
      : undefined,
  );
  return (
    <>
      <h1>Lineage</h1>
      <form
        className="filters"
        onSubmit={(e) => {
          e.preventDefault();
          go(text, downstream);
        }}
      >
        <input
          name="target"
          placeholder="a run id, sha256:… or the first hex digits of a hash"
          value={text}
          onChange={(e) => setText(e.target.value)}
          size={60}
        />
        <button type="submit">upstream</button>
        <button type="button" onClick={() => go(text, true)}>
          everything downstream
        </button>
      </form>
      {!target ? (
        <p className="muted">name a run or an artifact (the run page and `gantry lineage` print them)</p>
      ) : (
        <Frame loaded={loaded}>
          {({ graph }) => {
            const l = layout(graph);
            return (
              <>
                <p className="muted" data-testid="lineage-summary">
                  {downstream ? 'downstream of' : 'upstream of'} {short(graph.root)}:{' '}
                  {graph.executions.length} executions
                </p>
                <div className="graph">
                  <svg width={l.width} height={l.height} data-testid="lineage-graph">
                    <defs>
                      <marker
                        id="arrow"
                        viewBox="0 0 10 10"
                        refX="10"
                        refY="5"
                        markerWidth="6"
                        markerHeight="6"
                        orient="auto"
                      >
                        <path d="M0,0 L10,5 L0,10 z" fill="#888" />
                      </marker>
                    </defs>
                    {l.edges.map((e, i) => (
                      <polyline
                        key={i}
                        points={e.points
                          .map((p: { x: number; y: number }) => `${p.x + 10},${p.y + 10}`)
                          .join(' ')}
                        fill="none"
                        stroke="#888"
                        strokeDasharray={e.kind === 'call' ? '5 4' : e.whole === false ? '2 3' : undefined}
                        markerEnd="url(#arrow)"
                      />
                    ))}
                    {l.nodes.map((n) => (
                      <g
                        key={n.id}
                        transform={`translate(${n.x + 10 - n.w / 2},${n.y + 10 - n.h / 2})`}
                        className={`node node-${n.kind}`}
                        data-execution={n.kind === 'execution' ? n.id : undefined}
                        data-artifact={n.kind === 'artifact' ? n.id : undefined}
                        onClick={() => n.kind === 'artifact' && go(n.id, true)}
                      >
                        <title>
                          {n.kind === 'artifact' ? `${n.id}: click for everything downstream` : n.id}
                        </title>
                        <rect width={n.w} height={n.h} rx={n.kind === 'artifact' ? 14 : 4} />
                        <text x={8} y={n.kind === 'artifact' ? 18 : 18}>
                          {n.label}
                        </text>
                        {n.sub ? (
                          <text x={8} y={34} className="sub">
                            {n.sub}
                          </text>
                        ) : null}
                      </g>
                    ))}
                  </svg>
                </div>
              </>
            );
          }}
        </Frame>
      )}
    </>
  );
}
