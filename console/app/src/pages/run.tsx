/**
 * One run: its tasks as a tree (a map of any size is one row per task with counts, cost and where it
 * ran), a timeline of each task's span, and a drill-down to a task's executions — a page at a time,
 * each with its phases (queued, then placed and running), placement, the broker's explanation, cost,
 * attempt, preemptions and error. Executions still running say so, with their lease's phase (placed,
 * launching, running) and how long they have run. Cancel, when the broker can.
 */
import { useEffect, useState } from 'react';
import { Bar, BarChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { post, useApi } from '../api.ts';
import { money, perHour, took, when } from '../format.ts';
import type { Me } from '../main.tsx';
import type { RunRecord } from '../types.ts';
import { Figure, Frame, Status, Table } from '../ui.tsx';

interface Where {
  cluster: string;
  pool: string;
  capacityType: string;
  pricePerHour: number;
  count: number;
}

interface TaskRow {
  task: string;
  parent: string;
  executions: number;
  attempts: number;
  running: number;
  failed: number;
  cached: number;
  preemptions: number;
  costUsd: number;
  firstStart: number;
  lastEnd: number;
  p50Ms: number;
  p99Ms: number;
  where: Where[];
  errors: { name: string; count: number; message: string }[];
}

interface Execution {
  execution: string;
  attempt: number;
  task: string;
  cluster: string | null;
  pool: string | null;
  node: string | null;
  capacityType: string | null;
  pricePerHour: number | null;
  errorName: string | null;
  errorMessage: string | null;
  preemptions: number;
  cached: boolean;
  warm: boolean;
  startedAt: number;
  /** Null while it runs. */
  endedAt: number | null;
  costUsd: number;
  placedAt: number | null;
  why: string | null;
  leaseState: string | null;
}

/** Tasks in tree order: each under the task that called it. */
function treeOrder(tasks: TaskRow[]): { row: TaskRow; depth: number }[] {
  const out: { row: TaskRow; depth: number }[] = [];
  const seen = new Set<TaskRow>();
  const walk = (parent: string, depth: number) => {
    for (const t of tasks)
      if (t.parent === parent && !seen.has(t)) {
        seen.add(t);
        out.push({ row: t, depth });
        if (t.task !== parent) walk(t.task, depth + 1);
      }
  };
  walk('', 0);
  for (const t of tasks) if (!seen.has(t)) out.push({ row: t, depth: 0 });
  return out;
}

const whereText = (w: Where) => `${w.cluster}/${w.pool} ${w.capacityType}`;

/** A running execution's phase: its lease's state while placed or launching, else running. */
const phase = (e: Execution) =>
  e.leaseState === 'placed' || e.leaseState === 'launching' ? e.leaseState : 'running';

/** What an execution came to, or its phase while it runs. */
function outcome(e: Execution) {
  if (e.endedAt === null) return <Status status={phase(e)} />;
  if (e.errorName)
    return (
      <span className="error" title={e.errorMessage ?? ''}>
        failed: {e.errorName}
      </span>
    );
  if (e.cached) return 'cached';
  return e.preemptions ? `ok, preempted ×${e.preemptions}` : 'ok';
}

export function RunPage({ id, me, query }: { id: string; me: Me | undefined; query: URLSearchParams }) {
  const loaded = useApi<{ run?: RunRecord; tasks: TaskRow[] }>(`/v1/runs/${encodeURIComponent(id)}/tasks`);
  const task = query.get('task') ?? undefined;
  const [note, setNote] = useState('');
  const cancel = () =>
    post<{ stopped: unknown[]; withdrawn: unknown[] }>('/v1/actions/cancel', { run: id }).then(
      (r) =>
        setNote(
          `cancelled: ${r.stopped.length} running lease(s) stopped, ${r.withdrawn.length} pending request(s) withdrawn`,
        ),
      (e: Error) => setNote(e.message),
    );
  return (
    <Frame loaded={loaded}>
      {({ run, tasks }) => {
        const start = Math.min(...tasks.map((t) => t.firstStart), run?.startedAt ?? Infinity);
        return (
          <>
            <h1>
              Run <span data-testid="run-id">{id}</span> {run ? <Status status={run.status} /> : null}
            </h1>
            {run ? (
              <section className="figures">
                <Figure label="workflow" value={run.workflow} note={run.module} />
                <Figure label="team" value={run.team} />
                <Figure
                  label="started"
                  value={when(run.startedAt)}
                  note={run.endedAt ? `took ${took(run.endedAt - run.startedAt)}` : 'running'}
                />
                <Figure
                  testId="run-cost"
                  label="cost"
                  value={money(run.costUsd)}
                  note={`${run.executions} executions`}
                />
              </section>
            ) : null}
            {run?.error ? <p className="error">{run.error}</p> : null}
            {run?.status === 'running' && me?.cancel && me.rights.includes('act') ? (
              <button className="danger" onClick={cancel} data-testid="cancel">
                cancel run
              </button>
            ) : null}
            {note ? (
              <p className="muted" data-testid="note">
                {note}
              </p>
            ) : null}
            <h2>Tasks</h2>
            <Table
              testId="tasks"
              head={[
                'task',
                'executions',
                'attempts',
                'running',
                'failed',
                'preempted',
                'where ($/hour)',
                'cost',
                'p50',
                'p99',
              ]}
              rows={treeOrder(tasks).map(({ row: t, depth }) => ({
                key: `${t.parent}/${t.task}`,
                onClick: () =>
                  (window.location.hash = `#/runs/${encodeURIComponent(id)}?task=${encodeURIComponent(t.task)}`),
                cells: [
                  <span style={{ paddingLeft: `${depth * 1.2}em` }} data-task={t.task}>
                    {t.task}
                  </span>,
                  t.executions,
                  t.attempts,
                  t.running ? <span className="status status-running">{t.running}</span> : '',
                  t.failed || '',
                  t.preemptions || '',
                  <ul className="where">
                    {t.where.map((w) => (
                      <li
                        key={`${whereText(w)}${w.pricePerHour}`}
                        data-where={whereText(w)}
                        data-price={perHour(w.pricePerHour)}
                      >
                        {whereText(w)} {perHour(w.pricePerHour)}{' '}
                        {t.where.length > 1 || t.executions > 1 ? `×${w.count}` : ''}
                      </li>
                    ))}
                    {t.where.length === 0 ? <li>driver</li> : null}
                  </ul>,
                  money(t.costUsd),
                  took(t.p50Ms),
                  took(t.p99Ms),
                ],
              }))}
            />
            <h2>Timeline</h2>
            <ResponsiveContainer width="100%" height={40 + 28 * tasks.length}>
              <BarChart
                layout="vertical"
                data={tasks.map((t) => ({
                  task: t.task,
                  offset: (t.firstStart - start) / 1000,
                  // A task still running spans up to now.
                  span: Math.max(0.01, ((t.running ? Date.now() : t.lastEnd) - t.firstStart) / 1000),
                }))}
                margin={{ left: 40, right: 16 }}
              >
                <XAxis type="number" unit=" s" />
                <YAxis type="category" dataKey="task" width={120} />
                <Tooltip
                  formatter={(v, name) => (name === 'offset' ? null : `${Number(v).toFixed(1)} s`)}
                  isAnimationActive={false}
                />
                <Bar dataKey="offset" stackId="t" fill="transparent" isAnimationActive={false} />
                <Bar
                  dataKey="span"
                  name="from first start to last end"
                  stackId="t"
                  fill="#4e79a7"
                  isAnimationActive={false}
                />
              </BarChart>
            </ResponsiveContainer>
            {task ? (
              <Executions key={task} run={id} task={task} />
            ) : (
              <p className="muted">click a task for its executions</p>
            )}
          </>
        );
      }}
    </Frame>
  );
}

/** Executions per page of the drill-down. */
const PAGE = 100;

function Executions({ run, task }: { run: string; task: string }) {
  // Keyset pages: the cursor of each page shown so far (the first has none), to go back.
  const [cursors, setCursors] = useState<string[]>(['']);
  const [failedOnly, setFailedOnly] = useState(false);
  const cursor = cursors.at(-1)!;
  const first = (cursors.length - 1) * PAGE;
  const q = new URLSearchParams({
    task,
    limit: String(PAGE),
    ...(cursor ? { cursor } : {}),
    ...(failedOnly ? { status: 'failed' } : {}),
  });
  // How many match: the first page says (a later one does not count again).
  const [total, setTotal] = useState(0);
  const page = useApi<{ total?: number; executions: Execution[]; next?: string }>(
    `/v1/runs/${encodeURIComponent(run)}/executions?${q}`,
  );
  const counted = page.data?.total;
  useEffect(() => {
    if (counted !== undefined) setTotal(counted);
  }, [counted]);
  return (
    <section data-testid="executions">
      <h2>
        Executions of {task}{' '}
        <label className="muted">
          <input
            type="checkbox"
            checked={failedOnly}
            onChange={(e) => {
              setFailedOnly(e.target.checked);
              setCursors(['']);
            }}
          />{' '}
          failed only
        </label>
      </h2>
      <Frame loaded={page}>
        {({ executions, next }) => (
          <>
            <p className="muted" data-testid="executions-page">
              {executions.length === 0 ? 0 : first + 1}–{first + executions.length} of {counted ?? total}{' '}
              {cursors.length > 1 ? (
                <button onClick={() => setCursors(cursors.slice(0, -1))} data-testid="previous">
                  previous
                </button>
              ) : null}
              {next ? (
                <button onClick={() => setCursors([...cursors, next])} data-testid="next">
                  next
                </button>
              ) : null}
            </p>
            <Table
              head={[
                'execution',
                'attempt',
                'outcome',
                'where',
                '$/hour',
                'node',
                'queued',
                'ran',
                'cost',
                'why',
              ]}
              rows={executions.map((e) => ({
                key: `${e.execution}#${e.attempt}`,
                cells: [
                  e.execution,
                  e.attempt + 1,
                  outcome(e),
                  e.cluster ? `${e.cluster}/${e.pool} ${e.capacityType}` : 'driver',
                  perHour(e.pricePerHour),
                  e.node ?? '',
                  e.placedAt ? took(Math.max(0, e.placedAt - e.startedAt)) : e.warm ? 'warm' : '',
                  e.endedAt === null
                    ? `${took(Date.now() - (e.placedAt ?? e.startedAt))} so far`
                    : took(e.endedAt - (e.placedAt ?? e.startedAt)),
                  money(e.costUsd),
                  <span className="why">{e.why ?? ''}</span>,
                ],
              }))}
            />
          </>
        )}
      </Frame>
    </section>
  );
}
