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

/** A reason as the solver gives it: its kind, and the words for people. */
interface Reason {
  kind: string;
  detail: string;
}

interface Plan {
  placements: {
    taskId: string;
    cluster: string;
    pool: string;
    node: string;
    newNode: boolean;
    pricePerHour: number;
  }[];
  newNodes: {
    cluster: string;
    pool: string;
    instanceType: string;
    capacityType: string;
    count: number;
    pricePerHour: number;
  }[];
  unplaced: { taskId: string; reason: Reason }[];
  cost: { perHour: number; expected: number; objective: number };
  bound: number;
  baseline: { perHour: number; expected: number; objective: number; unplaced: number };
  groups: {
    group: string;
    team: string;
    tasks: number;
    shape: string;
    chosen: { poolId: string; onRunningNodes: boolean; tasks: number; costPerTask: number; why: Reason }[];
    nextBest?: { poolId: string; costPerTask: number; whyNot: Reason };
    why: Reason;
  }[];
  solver: { backend: string; status: string; ms: number };
}

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
            <Figure
              label="LP lower bound"
              value={money(plan.bound)}
              note={`gap ${plan.bound > 0 ? (((plan.cost.objective - plan.bound) / plan.bound) * 100).toFixed(2) : '0'}%`}
            />
            <Figure
              label="greedy baseline"
              value={money(plan.baseline.expected)}
              note={`${money(plan.baseline.perHour)}/h · ${plan.baseline.unplaced} unplaced`}
            />
            <Figure
              label="placed / unplaced"
              value={`${plan.placements.length} / ${plan.unplaced.length}`}
              note={`${plan.solver.backend} ${plan.solver.status} in ${plan.solver.ms.toFixed(0)} ms`}
            />
          </section>
          <h2>Where</h2>
          <Table
            head={['pool', 'tasks']}
            rows={[...byPool].map(([pool, n]) => ({ key: pool, cells: [pool, n] }))}
          />
          <h2>Why</h2>
          <Table
            head={['group', 'team', 'tasks', 'shape', 'chosen', 'next best and why not', 'binding']}
            rows={plan.groups.map((g) => ({
              key: g.group,
              cells: [
                g.group,
                g.team,
                g.tasks,
                g.shape,
                g.chosen
                  .map(
                    (c) =>
                      `${c.poolId}${c.onRunningNodes ? ' (running nodes)' : ''} ×${c.tasks} at ${money(c.costPerTask)}`,
                  )
                  .join(', '),
                g.nextBest
                  ? `${g.nextBest.poolId} at ${money(g.nextBest.costPerTask)}: ${g.nextBest.whyNot.detail}`
                  : '',
                `${g.why.kind}: ${g.why.detail}`,
              ],
            }))}
          />
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
                rows={plan.unplaced.map((u) => ({
                  key: u.taskId,
                  cells: [u.taskId, `${u.reason.kind}: ${u.reason.detail}`],
                }))}
              />
            </>
          ) : null}
        </section>
      ) : null}
    </>
  );
}
