/** Queue: the pending requests, each with the kind of reason it waits and the broker's words. */
import { useApi } from '../api.ts';
import { took } from '../format.ts';
import { Frame, Status, Table } from '../ui.tsx';

interface Pending {
  requestId: string;
  team: string;
  run?: string;
  task?: string;
  workflow?: string;
  waitingMs: number;
  kind: string;
  reason: string;
}

export function QueuePage() {
  const loaded = useApi<{ total: number; requests: Pending[] }>('/v1/live/queue');
  return (
    <>
      <h1>Queue</h1>
      <Frame loaded={loaded}>
        {({ total, requests }) => {
          const kinds = new Map<string, number>();
          for (const r of requests) kinds.set(r.kind, (kinds.get(r.kind) ?? 0) + 1);
          return (
            <>
              <p data-testid="queue-total">
                {total} pending{[...kinds].map(([k, n]) => ` · ${n} ${k}`).join('')}
              </p>
              <Table
                testId="queue"
                head={['request', 'team', 'run', 'task', 'waiting', 'why', '']}
                rows={requests.map((r) => ({
                  key: r.requestId,
                  cells: [
                    r.requestId,
                    r.team,
                    r.run ? <a href={`#/runs/${r.run}`}>{r.run}</a> : '',
                    r.task ?? '',
                    took(r.waitingMs),
                    <Status status={r.kind} />,
                    r.reason,
                  ],
                }))}
              />
              {total === 0 ? <p className="muted">nothing waits</p> : null}
            </>
          );
        }}
      </Frame>
    </>
  );
}
