// Reloads of one app: "Reload now" (POST /api/v1/reloads), the running reload's status
// polled every second until it ends, the history (GET /api/v1/reloads?appId=) and each run's
// log (GET /api/v1/apps/{appId}/reloads/logs/{reloadId}, text).
import { useCallback, useEffect, useRef, useState } from 'react';
import { api, ApiError, xhrError, type Item, type Page } from '../api';
import { Dialog, errorText, formatDate, Notice } from '../components';
import { Link } from '../router';
import { appPath } from './AppTabs';

interface Reload {
  id: string;
  appId: string;
  status: string;
  type?: string;
  creationTime?: string;
  startTime?: string;
  endTime?: string;
  duration?: string;
  errorMessage?: string;
}

const ACTIVE = ['QUEUED', 'RELOADING', 'CANCELING'];

async function fetchText(path: string): Promise<string> {
  const res = await fetch(path, { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'text/plain' } });
  if (res.status === 401) throw xhrError(401, await res.text()); // the session ended: back to sign-in
  if (!res.ok) throw new ApiError(res.status, `HTTP-${res.status}`, res.status === 404 ? 'This reload has no log (yet).' : `The log could not be read (HTTP ${res.status}).`);
  return res.text();
}

export function Reloads({ app, onClose }: { app: Item | null; onClose: () => void }) {
  const appId = app ? app.resourceId || app.id : '';
  const [history, setHistory] = useState<Reload[] | null>(null);
  const [current, setCurrent] = useState<Reload | null>(null);
  const [log, setLog] = useState<{ id: string; text: string } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const timer = useRef<number | undefined>(undefined);

  const load = useCallback(async () => {
    if (!appId) return;
    try {
      setHistory((await api<Page<Reload>>('GET', `/api/v1/reloads?appId=${encodeURIComponent(appId)}&limit=20`)).data);
    } catch (e) {
      setError(errorText(e));
      setHistory([]);
    }
  }, [appId]);

  useEffect(() => {
    setHistory(null);
    setCurrent(null);
    setLog(null);
    setError(null);
    void load();
    return () => window.clearTimeout(timer.current);
  }, [load]);

  const poll = useCallback(
    (id: string) => {
      timer.current = window.setTimeout(async () => {
        try {
          const r = await api<Reload>('GET', `/api/v1/reloads/${encodeURIComponent(id)}`);
          setCurrent(r);
          if (ACTIVE.includes(r.status)) poll(id);
          else void load();
        } catch (e) {
          setError(errorText(e));
        }
      }, 1000);
    },
    [load],
  );

  const start = async () => {
    setError(null);
    try {
      const r = await api<Reload>('POST', '/api/v1/reloads', { body: { appId } });
      setCurrent(r);
      poll(r.id);
      void load();
    } catch (e) {
      setError(e instanceof ApiError && e.status === 409 ? 'This app is already reloading. Wait for that reload to finish.' : errorText(e));
    }
  };

  const cancel = async () => {
    if (!current) return;
    setError(null);
    try {
      await api('POST', `/api/v1/reloads/${encodeURIComponent(current.id)}/actions/cancel`);
      window.clearTimeout(timer.current);
      poll(current.id);
    } catch (e) {
      setError(errorText(e));
    }
  };

  const showLog = async (r: Reload) => {
    setError(null);
    try {
      setLog({ id: r.id, text: await fetchText(`/api/v1/apps/${encodeURIComponent(appId)}/reloads/logs/${encodeURIComponent(r.id)}`) });
    } catch (e) {
      setError(errorText(e));
    }
  };

  const running = current !== null && ACTIVE.includes(current.status);
  return (
    <Dialog title={app ? `Reloads of ${app.name}` : 'Reloads'} open={app !== null} onClose={onClose}>
      {error && <Notice kind="error">{error}</Notice>}
      <div className="actions">
        <button type="button" className="primary" onClick={() => void start()} disabled={running} aria-busy={running}>
          {running ? 'Reloading…' : 'Reload now'}
        </button>
        {running && current?.status !== 'CANCELING' && (
          <button type="button" onClick={() => void cancel()}>
            Cancel reload
          </button>
        )}
        {appId && (
          <Link to={appPath(appId, 'reload-tasks')} className="button-link">
            Reload schedules
          </Link>
        )}
        <button type="button" onClick={onClose}>
          Close
        </button>
      </div>
      {current && (
        <p role="status" aria-live="polite" data-testid="reload-current">
          Current reload: <span className={`badge badge-${current.status.toLowerCase()}`}>{current.status}</span>
          {current.errorMessage ? ` — ${current.errorMessage}` : ''}
        </p>
      )}
      <h3>History</h3>
      {history === null ? null : history.length === 0 ? (
        <p className="empty">This app has not been reloaded yet.</p>
      ) : (
        <ul className="members" aria-label="Reload history" data-testid="reload-history">
          {history.map((r) => (
            <li key={r.id}>
              <span>
                <span className={`badge badge-${r.status.toLowerCase()}`}>{r.status}</span> {formatDate(r.startTime ?? r.creationTime)}
                {r.duration ? ` · ${r.duration}` : ''}
              </span>
              {!ACTIVE.includes(r.status) && (
                <button type="button" onClick={() => void showLog(r)}>
                  Show log
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      {log && (
        <>
          <h3>Log</h3>
          <pre className="json" data-testid="reload-log" tabIndex={0} aria-label="Reload log">
            {log.text || '(empty)'}
          </pre>
        </>
      )}
    </Dialog>
  );
}
