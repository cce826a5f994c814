/** Runs: the history's runs newest first, filtered by team, workflow, status and time, a page at a time. */
import { useState } from 'react';
import { useApi } from '../api.ts';
import { money, took, when } from '../format.ts';
import type { RunRecord } from '../types.ts';
import { Frame, Status, Table } from '../ui.tsx';

const FILTERS = ['team', 'workflow', 'status', 'since'] as const;

export function RunsPage({ query }: { query: URLSearchParams }) {
  const [cursor, setCursor] = useState<string | undefined>();
  const q = new URLSearchParams();
  for (const f of FILTERS) if (query.get(f)) q.set(f, query.get(f)!);
  q.set('limit', '50');
  if (cursor) q.set('cursor', cursor);
  const runs = useApi<{ runs: RunRecord[]; next?: string }>(`/v1/runs?${q}`);
  const set = (name: string, value: string) => {
    const next = new URLSearchParams(query);
    if (value) next.set(name, value);
    else next.delete(name);
    setCursor(undefined);
    window.location.hash = `#/runs?${next}`;
  };
  return (
    <>
      <h1>Runs</h1>
      <form className="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          team{' '}
          <input
            name="team"
            defaultValue={query.get('team') ?? ''}
            onChange={(e) => set('team', e.target.value)}
          />
        </label>
        <label>
          workflow{' '}
          <input
            name="workflow"
            defaultValue={query.get('workflow') ?? ''}
            onChange={(e) => set('workflow', e.target.value)}
          />
        </label>
        <label>
          status{' '}
          <select
            name="status"
            value={query.get('status') ?? ''}
            onChange={(e) => set('status', e.target.value)}
          >
            <option value="">any</option>
            <option>running</option>
            <option>succeeded</option>
            <option>failed</option>
            <option>cancelled</option>
            <option>abandoned</option>
          </select>
        </label>
        <label>
          since{' '}
          <select
            name="since"
            value={query.get('since') ?? ''}
            onChange={(e) => set('since', e.target.value)}
          >
            <option value="">any time</option>
            <option value="1h">last hour</option>
            <option value="1d">last day</option>
            <option value="7d">last 7 days</option>
            <option value="30d">last 30 days</option>
          </select>
        </label>
      </form>
      <Frame loaded={runs}>
        {({ runs, next }) => (
          <>
            <Table
              testId="runs"
              head={['run', 'workflow', 'team', 'status', 'started', 'took', 'executions', 'cost', 'error']}
              rows={runs.map((r) => ({
                key: r.run,
                cells: [
                  <a href={`#/runs/${r.run}`}>{r.run}</a>,
                  r.workflow,
                  r.team,
                  <Status status={r.status} />,
                  when(r.startedAt),
                  r.endedAt ? took(r.endedAt - r.startedAt) : '',
                  r.executions,
                  money(r.costUsd),
                  r.error ?? '',
                ],
              }))}
            />
            {runs.length === 0 ? <p className="muted">no runs match</p> : null}
            {next ? <button onClick={() => setCursor(next)}>next page</button> : null}
          </>
        )}
      </Frame>
    </>
  );
}
