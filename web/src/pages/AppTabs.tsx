// The header shared by an app's pages (load script, data model, reload schedules): the app's
// name (GET /api/v1/apps/{id}) and links between the pages and to the app view's sheets.
import { useEffect, useState } from 'react';
import { api } from '../api';
import { Link } from '../router';
import './app-pages.css';

export type AppPage = 'load-script' | 'data-model' | 'reload-tasks';

const PAGES: { id: AppPage; label: string }[] = [
  { id: 'load-script', label: 'Data load editor' },
  { id: 'data-model', label: 'Data model' },
  { id: 'reload-tasks', label: 'Reload schedules' },
];

/** The app id and page of /apps/<id>/<page>, or null for any other path. */
export function appRoute(path: string): { appId: string; page: AppPage } | null {
  const m = /^\/apps\/([^/]+)\/(load-script|data-model|reload-tasks)\/?$/.exec(path);
  return m ? { appId: decodeURIComponent(m[1]), page: m[2] as AppPage } : null;
}

export function appPath(appId: string, page: AppPage): string {
  return `/apps/${encodeURIComponent(appId)}/${page}`;
}

/** The app's name, or null while unknown (the pages work without it). */
export function useAppName(appId: string): string | null {
  const [name, setName] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    setName(null);
    api<{ attributes?: { name?: string } }>('GET', `/api/v1/apps/${encodeURIComponent(appId)}`)
      .then((a) => live && setName(a.attributes?.name ?? null))
      .catch(() => undefined); // the page reports its own errors
    return () => {
      live = false;
    };
  }, [appId]);
  return name;
}

export function AppTabs({ appId, current, name }: { appId: string; current: AppPage; name: string | null }) {
  return (
    <div className="app-tabs-head">
      <p className="crumbs">
        <Link to="/hub">Hub</Link> / <span data-testid="app-name">{name ?? appId}</span>
      </p>
      <nav aria-label="App pages" className="app-tabs">
        <ul>
          <li>
            <Link to={`/apps/${encodeURIComponent(appId)}`}>Sheets</Link>
          </li>
          {PAGES.map((p) => (
            <li key={p.id}>
              <Link to={appPath(appId, p.id)} aria-current={p.id === current ? 'page' : undefined}>
                {p.label}
              </Link>
            </li>
          ))}
        </ul>
      </nav>
    </div>
  );
}
