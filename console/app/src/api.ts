/**
 * Talking to the console's server: JSON GETs that refetch when the server's event stream says
 * something changed (so pages update without a reload), and POSTs for actions.
 */
import { useCallback, useEffect, useRef, useState } from 'react';

/** An answer the server refused: its code and message. */
export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function answer<T>(res: Response): Promise<T> {
  const body = (await res.json().catch(() => ({}))) as {
    ok?: boolean;
    error?: { code: string; message: string };
  };
  if (!res.ok || body.ok === false)
    throw new ApiError(body.error?.code ?? String(res.status), body.error?.message ?? res.statusText);
  return body as T;
}

/** GET a JSON path. */
export const getJson = async <T>(path: string): Promise<T> => answer<T>(await fetch(path));

/** POST to an action or the what-if planner. */
export async function post<T>(path: string, body: unknown, text = false): Promise<T> {
  return answer<T>(
    await fetch(path, {
      method: 'POST',
      headers: { 'content-type': text ? 'text/plain' : 'application/json', 'x-gantry-console': '1' },
      body: text ? String(body) : JSON.stringify(body),
    }),
  );
}

type Listener = () => void;
const listeners = new Set<Listener>();
let source: EventSource | undefined;
let changes = 0;

/** How many change events arrived (the header shows it, and tests wait on it). */
export const changeCount = () => changes;

function subscribe(l: Listener): () => void {
  listeners.add(l);
  if (!source) {
    source = new EventSource('/v1/events');
    // The first event of each connection is where things stand now, which the pages just fetched.
    let first = true;
    source.addEventListener('open', () => {
      first = true;
    });
    source.addEventListener('changed', () => {
      changes++;
      if (first) {
        first = false;
        return;
      }
      for (const f of listeners) f();
    });
  }
  return () => {
    listeners.delete(l);
  };
}

/** What a GET gave: the data, an error, whether it is loading. */
export interface Loaded<T> {
  data?: T;
  error?: ApiError | Error;
  loading: boolean;
  reload(): void;
}

/**
 * GETs `path` (skipped when undefined), again whenever it changes, and, with `live`, whenever the
 * server says something changed.
 */
export function useApi<T>(path: string | undefined, live = true): Loaded<T> {
  const [state, setState] = useState<{ data?: T; error?: Error; loading: boolean }>({ loading: true });
  const seq = useRef(0);
  const load = useCallback(() => {
    if (!path) return;
    const mine = ++seq.current;
    getJson<T>(path).then(
      (data) => mine === seq.current && setState({ data, loading: false }),
      (error: Error) => mine === seq.current && setState((s) => ({ ...s, error, loading: false })),
    );
  }, [path]);
  useEffect(() => {
    // Another path: what the last one gave is not shown meanwhile (live refetches keep it).
    setState({ loading: true });
    load();
  }, [load]);
  useEffect(() => (live ? subscribe(load) : undefined), [live, load]);
  return { ...state, reload: load };
}

/** Re-renders on every change event (for the header's live indicator). */
export function useChanges(): number {
  const [n, setN] = useState(changes);
  useEffect(() => subscribe(() => setN(changeCount())), []);
  return n;
}
