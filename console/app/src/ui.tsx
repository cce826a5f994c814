/** Small pieces every page uses: a loading/error frame, a figure, a table. */
import type { ReactNode } from 'react';
import type { Loaded } from './api.ts';

/** Shows the error or "loading" until `loaded` has data, then `render`s it. */
export function Frame<T>({ loaded, children }: { loaded: Loaded<T>; children: (data: T) => ReactNode }) {
  if (loaded.data !== undefined) return <>{children(loaded.data)}</>;
  if (loaded.error)
    return (
      <p className="error" role="alert">
        {loaded.error.message}
      </p>
    );
  return <p className="muted">loading…</p>;
}

/** A big number with a caption. */
export function Figure({
  label,
  value,
  note,
  testId,
}: {
  label: string;
  value: ReactNode;
  note?: ReactNode;
  testId?: string;
}) {
  return (
    <div className="figure" data-testid={testId}>
      <div className="figure-value">{value}</div>
      <div className="figure-label">{label}</div>
      {note ? <div className="figure-note">{note}</div> : null}
    </div>
  );
}

/** A table from headers and rows of cells. */
export function Table({
  head,
  rows,
  testId,
}: {
  head: ReactNode[];
  rows: { key: string; cells: ReactNode[]; onClick?: () => void }[];
  testId?: string;
}) {
  return (
    <table data-testid={testId}>
      <thead>
        <tr>
          {head.map((h, i) => (
            <th key={i}>{h}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {rows.map((r) => (
          <tr key={r.key} onClick={r.onClick} className={r.onClick ? 'clickable' : ''}>
            {r.cells.map((c, i) => (
              <td key={i}>{c}</td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** A status word with its colour. */
export const Status = ({ status }: { status: string }) => (
  <span className={`status status-${status}`}>{status}</span>
);
