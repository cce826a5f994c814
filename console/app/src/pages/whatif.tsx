/** What-if: paste or upload a Workload, see the plan, its LP lower bound and the greedy baseline. */
import { useState } from 'react';
import { post } from '../api.ts';
import { money } from '../format.ts';
import { Figure, Table } from '../ui.tsx';

const EXAMPLE = `apiVersion: gantry.dev/v1alpha1
kind: Workload
metadata: { name: what-if }
spec:
  groups:
    - { name: pretrain, team: research, profile: gpu-train, count: 2 }
    - { name: batch-infer, team: product, gpu: 'T4:1', cpu: 4, memory: 16Gi, duration: 45m, count: 30 }
`;

interface Plan {
  placements: { task: string; cluster: string; pool: string; node: string }[];
  newNodes: { pool: string; instanceType?: string; count: number; pricePerHour?: number }[];
  unplaced: { task: string; reason: string }[];
  cost: { perHour: number; expected: number; objective: number };
  bound?: { objective?: number; perHour?: number } | number;
  baseline?: { cost?: { perHour: number; expected: number }; unplaced?: unknown[] };
  groups?: {
    name?: string;
    count?: number;
    cluster?: string;
    pool?: string;
    why?: string;
    nextBest?: string;
    binding?: string;
  }[];
  solver?: { backend?: string; status?: string };
}

const num = (v: unknown) => (typeof v === 'number' ? v : undefined);

export function WhatIfPage() {
  const [text, setText] = useState(EXAMPLE);
  const [plan, setPlan] = useState<Plan | undefined>();
  const [error, setError] = useState('');
  const run = () =>
    post<{ plan: Plan }>('/v1/whatif', text, true).then(
      (r) => {
        setPlan(r.plan);
        setError('');
      },
      (e: Error) => setError(e.message),
    );
  const bound = plan ? (typeof plan.bound === 'number' ? plan.bound : num(plan.bound?.objective)) : undefined;
  const byPool = new Map<string, number>();
  for (const p of plan?.placements ?? [])
    byPool.set(`${p.cluster}/${p.pool}`, (byPool.get(`${p.cluster}/${p.pool}`) ?? 0) + 1);
  return (
    <>
      <h1>What-if</h1>
      <p className="muted">
        A Workload document, or JSON lines with one request each, planned on this broker's platform with no
        nodes running.
      </p>
      <textarea name="workload" rows={12} cols={100} value={text} onChange={(e) => setText(e.target.value)} />
      <div>
        <input
          type="file"
          accept=".yaml,.yml,.jsonl,.json"
          onChange={(e) => {
            const f = e.target.files?.[0];
            if (f) void f.text().then(setText);
          }}
        />
        <button data-testid="plan" onClick={run}>
          plan
        </button>
      </div>
      {error ? <pre className="error">{error}</pre> : null}
      {plan ? (
        <section data-testid="plan-result">
          <section className="figures">
            <Figure
              label="plan, expected cost"
              value={money(plan.cost.expected)}
              note={`${money(plan.cost.perHour)}/h · objective ${money(plan.cost.objective)}`}
            />
            <Figure label="LP lower bound" value={money(bound)} />
            <Figure
              label="greedy baseline"
              value={money(plan.baseline?.cost?.expected)}
              note={plan.baseline?.cost ? `${money(plan.baseline.cost.perHour)}/h` : ''}
            />
            <Figure
              label="placed / unplaced"
              value={`${plan.placements.length} / ${plan.unplaced.length}`}
              note={plan.solver?.backend ?? ''}
            />
          </section>
          <h2>Where</h2>
          <Table
            head={['pool', 'tasks']}
            rows={[...byPool].map(([pool, n]) => ({ key: pool, cells: [pool, n] }))}
          />
          {plan.groups?.length ? (
            <>
              <h2>Why</h2>
              <Table
                head={['group', 'why', 'next best', 'binding']}
                rows={plan.groups.map((g, i) => ({
                  key: String(i),
                  cells: [g.name ?? '', g.why ?? '', g.nextBest ?? '', g.binding ?? ''],
                }))}
              />
            </>
          ) : null}
          <h2>New nodes</h2>
          <Table
            head={['pool', 'instance type', 'count', '$/hour']}
            rows={plan.newNodes.map((n, i) => ({
              key: String(i),
              cells: [n.pool, n.instanceType ?? '', n.count, money(n.pricePerHour)],
            }))}
          />
          {plan.unplaced.length ? (
            <>
              <h2>Unplaced</h2>
              <Table
                head={['task', 'reason']}
                rows={plan.unplaced.map((u) => ({ key: u.task, cells: [u.task, u.reason] }))}
              />
            </>
          ) : null}
        </section>
      ) : null}
    </>
  );
}
