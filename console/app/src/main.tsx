/**
 * The console's shell: a header with the pages and the live indicator, and hash routes
 * (`#/runs/<id>`), so that every page has a link and the server serves one HTML file.
 */
import { StrictMode, useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { useApi, useChanges } from './api.ts';
import { ClustersPage } from './pages/clusters.tsx';
import { CostsPage } from './pages/costs.tsx';
import { LineagePage } from './pages/lineage.tsx';
import { OverviewPage } from './pages/overview.tsx';
import { QueuePage } from './pages/queue.tsx';
import { RunPage } from './pages/run.tsx';
import { RunsPage } from './pages/runs.tsx';
import { WhatIfPage } from './pages/whatif.tsx';
import './style.css';

/** Who this is, and what the broker can do: what buttons to show. */
export interface Me {
  rights: ('view' | 'act')[];
  broker: boolean;
  cancel: boolean;
}

const PAGES = [
  ['overview', 'Overview'],
  ['runs', 'Runs'],
  ['lineage', 'Lineage'],
  ['costs', 'Costs'],
  ['clusters', 'Clusters'],
  ['queue', 'Queue'],
  ['whatif', 'What-if'],
] as const;

function useRoute(): { page: string; arg: string | undefined; query: URLSearchParams } {
  const read = () => {
    const [path = '', qs = ''] = window.location.hash.replace(/^#\/?/, '').split('?');
    const [page = 'overview', ...rest] = path.split('/');
    return {
      page: page || 'overview',
      arg: rest.length ? decodeURIComponent(rest.join('/')) : undefined,
      query: new URLSearchParams(qs),
    };
  };
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const on = () => setRoute(read());
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}

function App() {
  const { page, arg, query } = useRoute();
  const me = useApi<Me>('/v1/me', false).data;
  const changes = useChanges();
  const body = (() => {
    switch (page) {
      case 'runs':
        return arg ? <RunPage id={arg} me={me} query={query} /> : <RunsPage query={query} />;
      case 'lineage':
        return (
          <LineagePage
            target={arg ?? query.get('target') ?? ''}
            downstream={query.get('direction') === 'downstream'}
          />
        );
      case 'costs':
        return <CostsPage />;
      case 'clusters':
        return <ClustersPage me={me} />;
      case 'queue':
        return <QueuePage />;
      case 'whatif':
        return <WhatIfPage />;
      default:
        return <OverviewPage />;
    }
  })();
  return (
    <>
      <header>
        <a className="brand" href="#/">
          Gantry
        </a>
        <nav>
          {PAGES.map(([id, label]) => (
            <a key={id} href={`#/${id}`} className={page === id ? 'active' : ''}>
              {label}
            </a>
          ))}
        </nav>
        <span className="live" title="updates from the server" data-changes={changes}>
          ● live
        </span>
      </header>
      <main data-page={page}>{body}</main>
    </>
  );
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
