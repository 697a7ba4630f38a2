// The data load editor of one app (/apps/<id>/load-script): the load script over the engine's
// QIX socket (OpenDoc, GetScript; Save = SetScript + DoSave), edited in a textarea laid over a
// highlighted copy with line numbers. "Save and reload" queues a reload with the reload
// service (POST /api/v1/reloads) and polls it (GET /api/v1/reloads/{id}?log=false for the
// status, and the live log incrementally: GET /api/v1/apps/{appId}/reloads/logs/{id}?offset=N,
// X-Tsr-Log-Size the next offset) into a progress and log panel whose lines (statement started,
// rows loaded, "still running") appear while the script runs; a failed reload's "line N" points
// at the script.
import { useCallback, useEffect, useMemo, useRef, useState, type KeyboardEvent, type RefObject } from 'react';
import { api, ApiError } from '../api';
import { errorText, Notice, Spinner } from '../components';
import { QixSession } from '../qix-rpc';
import { Link } from '../router';
import { appPath, AppTabs, useAppName } from './AppTabs';

// ---- highlighting -------------------------------------------------------------------------------

type Tok = { cls: string; text: string };

const KEYWORDS = new Set(
  (
    'load select from inline resident where group by order asc desc as and or not xor like join left right inner outer keep ' +
    'concatenate noconcatenate mapping applymap let set store into drop table tables field fields rename to qualify unqualify ' +
    'if then else elseif end for next each in do loop while until exit script sub call switch case default distinct ' +
    'lib connect disconnect sleep trace first sql with txt csv qvd delimiter embedded labels no labels is null generate autogenerate ' +
    'crosstable hierarchy intervalmatch binary include must_include comment tag untag alias'
  ).split(/\s+/),
);

/** Split a load script into coloured tokens (comments, strings, [names], numbers, keywords, $(vars)). */
export function tokenize(src: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  const push = (cls: string, text: string) => {
    const last = out[out.length - 1];
    if (last && last.cls === cls && cls === '') last.text += text;
    else out.push({ cls, text });
  };
  while (i < src.length) {
    const c = src[i];
    const rest = src.slice(i, i + 2);
    let j = i + 1;
    if (rest === '//') {
      while (j < src.length && src[j] !== '\n') j++;
      push('tok-comment', src.slice(i, j));
    } else if (rest === '/*') {
      const e = src.indexOf('*/', i + 2);
      j = e < 0 ? src.length : e + 2;
      push('tok-comment', src.slice(i, j));
    } else if (c === "'" || c === '"') {
      while (j < src.length && src[j] !== c && src[j] !== '\n') j++;
      j = Math.min(src.length, j + 1);
      push(c === "'" ? 'tok-string' : 'tok-name', src.slice(i, j));
    } else if (c === '[') {
      const e = src.indexOf(']', i + 1);
      j = e < 0 ? src.length : e + 1;
      push('tok-name', src.slice(i, j));
    } else if (c === '$' && src[i + 1] === '(') {
      const e = src.indexOf(')', i + 2);
      j = e < 0 ? src.length : e + 1;
      push('tok-var', src.slice(i, j));
    } else if (/[0-9]/.test(c) && (i === 0 || !/[A-Za-z_]/.test(src[i - 1]))) {
      while (j < src.length && /[0-9.]/.test(src[j])) j++;
      push('tok-number', src.slice(i, j));
    } else if (/[A-Za-z_]/.test(c)) {
      while (j < src.length && /[A-Za-z0-9_.#]/.test(src[j])) j++;
      const word = src.slice(i, j);
      let k = j;
      while (k < src.length && (src[k] === ' ' || src[k] === '\t')) k++;
      if (/^rem$/i.test(word) && /^\s*$/.test(src.slice(src.lastIndexOf('\n', i - 1) + 1, i))) {
        const e = src.indexOf(';', j);
        j = e < 0 ? src.length : e + 1;
        push('tok-comment', src.slice(i, j));
      } else if (KEYWORDS.has(word.toLowerCase())) push('tok-keyword', word);
      else if (src[k] === '(') push('tok-function', word);
      else if (src[k] === ':' && src[k + 1] !== ':') push('tok-label', word);
      else push('', word);
    } else {
      push(/[;,()=<>+\-*/&]/.test(c) ? 'tok-punct' : '', c);
    }
    i = j;
  }
  return out;
}

/** The tokens cut into lines (a token spanning lines is split at each newline). */
function toLines(toks: Tok[]): Tok[][] {
  const lines: Tok[][] = [[]];
  for (const t of toks) {
    const parts = t.text.split('\n');
    parts.forEach((p, n) => {
      if (n > 0) lines.push([]);
      if (p) lines[lines.length - 1].push({ cls: t.cls, text: p });
    });
  }
  return lines;
}

/**
 * The script line an engine error names: "line N column M: ..." (pkg/engine's script and
 * expression errors). A data file's own "name.csv: line N" is not a script line.
 */
export function errorLine(...texts: (string | undefined)[]): { line: number; column?: number; message: string } | null {
  const re = /(^|[^\w.:]|[^.\w]\w+: |\berror:? )line (\d+)(?: column (\d+))?:?\s*([^\n]*)/gi;
  for (const t of texts) {
    if (!t) continue;
    for (const m of t.matchAll(re)) {
      const before = t.slice(Math.max(0, (m.index ?? 0) - 40), (m.index ?? 0) + m[1].length);
      if (/\.\w{1,5}: ?$/.test(before)) continue; // "sales.csv: line 3" is the file's line
      const line = Number(m[2]);
      if (line > 0) return { line, column: m[3] ? Number(m[3]) : undefined, message: m[4].trim() };
    }
  }
  return null;
}

// ---- the editor -------------------------------------------------------------------------------

interface Reload {
  id: string;
  status: string;
  startTime?: string;
  creationTime?: string;
  endTime?: string;
  errorMessage?: string;
  log?: string;
}

const ACTIVE = ['QUEUED', 'RELOADING', 'CANCELING'];

// The live log's own "line N: <statement>" / "line N: still running" lines name where a statement
// starts, not an error: left out when looking for the error's line.
function withoutProgress(log: string | undefined): string | undefined {
  return log
    ?.split('\n')
    .filter((l) => !/^line \d+: /.test(l))
    .join('\n');
}

// The log from byte offset on (the log only grows); null when it cannot be read (then the
// status poll's own log is used).
async function readLog(appId: string, id: string, offset: number): Promise<{ bytes: Uint8Array; next: number } | null> {
  try {
    const res = await fetch(`/api/v1/apps/${encodeURIComponent(appId)}/reloads/logs/${encodeURIComponent(id)}?offset=${offset}`, {
      credentials: 'same-origin',
      cache: 'no-store',
      headers: { Accept: 'text/plain' },
    });
    if (!res.ok) return null;
    const bytes = new Uint8Array(await res.arrayBuffer());
    const size = Number(res.headers.get('X-Tsr-Log-Size'));
    return { bytes, next: Number.isFinite(size) && size >= offset ? size : offset + bytes.length };
  } catch {
    return null;
  }
}

function ScriptEditor(props: {
  value: string;
  onChange: (v: string) => void;
  errorAt: number | null;
  readOnly: boolean;
  onSave: () => void;
  textareaRef: RefObject<HTMLTextAreaElement | null>;
}) {
  const { value, onChange, errorAt, readOnly, onSave, textareaRef } = props;
  const hl = useRef<HTMLPreElement>(null);
  const gutter = useRef<HTMLDivElement>(null);
  const lines = useMemo(() => toLines(tokenize(value)), [value]);
  const sync = () => {
    const t = textareaRef.current;
    if (!t) return;
    if (hl.current) {
      hl.current.scrollTop = t.scrollTop;
      hl.current.scrollLeft = t.scrollLeft;
    }
    if (gutter.current) gutter.current.scrollTop = t.scrollTop;
  };
  useEffect(sync, [value, textareaRef]);
  const onKey = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 's') {
      e.preventDefault();
      onSave();
    }
  };
  return (
    <div className="script-editor">
      <div className="script-gutter" ref={gutter} aria-hidden="true">
        {lines.map((_, n) => (
          <div key={n} className={errorAt === n + 1 ? 'gutter-error' : undefined}>
            {n + 1}
          </div>
        ))}
      </div>
      <div className="script-body">
        <pre className="script-highlight" ref={hl} aria-hidden="true">
          {lines.map((toks, n) => (
            <div key={n} className={errorAt === n + 1 ? 'line-error' : undefined}>
              {toks.length === 0 ? '\u200b' : toks.map((t, k) => (t.cls ? <span key={k} className={t.cls}>{t.text}</span> : t.text))}
            </div>
          ))}
        </pre>
        <textarea
          ref={textareaRef}
          id="load-script"
          className="script-input"
          value={value}
          readOnly={readOnly}
          spellCheck={false}
          autoCapitalize="off"
          autoComplete="off"
          wrap="off"
          aria-describedby="load-script-hint"
          aria-invalid={errorAt !== null ? true : undefined}
          onChange={(e) => onChange(e.target.value)}
          onScroll={sync}
          onKeyDown={onKey}
          data-testid="script-input"
        />
      </div>
    </div>
  );
}

export function DataLoadEditor({ appId }: { appId: string }) {
  const name = useAppName(appId);
  const [conn, setConn] = useState<{ session: QixSession; doc: number } | null>(null);
  const [script, setScript] = useState<string | null>(null);
  const [saved, setSaved] = useState<string>('');
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [reload, setReload] = useState<Reload | null>(null);
  const [started, setStarted] = useState<number>(0);
  const [now, setNow] = useState<number>(Date.now());
  const [attempt, setAttempt] = useState(0);
  const textarea = useRef<HTMLTextAreaElement>(null);
  const timer = useRef<number | undefined>(undefined);
  const logRef = useRef<HTMLPreElement>(null);
  const logState = useRef({ id: '', offset: 0, text: '', decoder: new TextDecoder() });

  useEffect(() => {
    document.title = `Data load editor${name ? ` · ${name}` : ''} · Tessera`;
  }, [name]);

  useEffect(() => {
    let live = true;
    let opened: QixSession | null = null;
    setError(null);
    setScript(null);
    (async () => {
      try {
        const c = await QixSession.openOrExplain(appId);
        opened = c.session;
        if (!live) {
          c.session.close();
          return;
        }
        const r = (await c.session.call(c.doc, 'GetScript')) as { qScript?: string };
        if (!live) return;
        setConn(c);
        setScript(r.qScript ?? '');
        setSaved(r.qScript ?? '');
      } catch (e) {
        if (live) {
          setError(errorText(e));
          setScript('');
        }
      }
    })();
    return () => {
      live = false;
      opened?.close();
      window.clearTimeout(timer.current);
    };
  }, [appId, attempt]);

  const dirty = script !== null && script !== saved;

  // Leaving with unsaved changes asks first: closing the tab, and links inside the app (caught
  // before the router's own click handler, which then sees the default prevented).
  useEffect(() => {
    if (!dirty) return;
    const h = (e: BeforeUnloadEvent) => e.preventDefault();
    const click = (e: MouseEvent) => {
      const a = (e.target as Element | null)?.closest?.('a[href]');
      if (!a || (a as HTMLAnchorElement).target === '_blank') return;
      if (!window.confirm('The script has unsaved changes. Leave without saving them?')) {
        e.preventDefault();
        e.stopPropagation();
      }
    };
    window.addEventListener('beforeunload', h);
    document.addEventListener('click', click, true);
    return () => {
      window.removeEventListener('beforeunload', h);
      document.removeEventListener('click', click, true);
    };
  }, [dirty]);

  const save = useCallback(async (): Promise<boolean> => {
    if (!conn || script === null) return false;
    setError(null);
    setStatus(null);
    setBusy(true);
    try {
      await conn.session.call(conn.doc, 'SetScript', { qScript: script });
      await conn.session.call(conn.doc, 'DoSave', {});
      setSaved(script);
      setStatus('The script was saved.');
      return true;
    } catch (e) {
      setError(`The script was not saved: ${errorText(e)}`);
      return false;
    } finally {
      setBusy(false);
    }
  }, [conn, script]);

  const poll = useCallback(
    (id: string) => {
      timer.current = window.setTimeout(async () => {
        setNow(Date.now());
        try {
          const r = await api<Reload>('GET', `/api/v1/reloads/${encodeURIComponent(id)}?log=false`);
          const ls = logState.current;
          if (ls.id !== id) logState.current = { id, offset: 0, text: '', decoder: new TextDecoder() };
          // Read the log after the status: a terminal status means the whole log is stored.
          const part = await readLog(appId, id, logState.current.offset);
          let log: string | undefined;
          if (part) {
            logState.current.text += logState.current.decoder.decode(part.bytes, { stream: true });
            logState.current.offset = part.next;
            log = logState.current.text;
          } else {
            log = (await api<Reload>('GET', `/api/v1/reloads/${encodeURIComponent(id)}?log=true`)).log;
          }
          setReload({ ...r, log });
          if (ACTIVE.includes(r.status)) poll(id);
        } catch (e) {
          setError(errorText(e));
        }
      }, 500);
    },
    [appId],
  );

  // New lines scroll into view while the reload runs.
  useEffect(() => {
    const el = logRef.current;
    if (el && reload && ACTIVE.includes(reload.status)) el.scrollTop = el.scrollHeight;
  }, [reload]);

  const saveAndReload = async () => {
    const saving = dirty;
    if (saving && !(await save())) return;
    setError(null);
    if (!saving) setStatus(null);
    try {
      const r = await api<Reload>('POST', '/api/v1/reloads', { body: { appId } });
      setReload(r);
      setStarted(Date.now());
      setNow(Date.now());
      poll(r.id);
    } catch (e) {
      setError(e instanceof ApiError && e.status === 409 ? 'This app is already reloading. Wait for that reload to finish.' : errorText(e));
    }
  };

  const running = reload !== null && ACTIVE.includes(reload.status);
  const failed = reload !== null && !running && reload.status !== 'SUCCEEDED';
  const where = failed ? errorLine(reload?.errorMessage, withoutProgress(reload?.log)) : null;
  const lineCount = script === null ? 0 : script.split('\n').length;
  const errorAt = where && where.line <= lineCount && !dirty ? where.line : null;

  const goToLine = (line: number) => {
    const t = textarea.current;
    if (!t || script === null) return;
    const ls = script.split('\n');
    let start = 0;
    for (let n = 0; n < line - 1 && n < ls.length; n++) start += ls[n].length + 1;
    const end = start + (ls[line - 1]?.length ?? 0);
    t.focus();
    t.setSelectionRange(start, end);
    const lh = parseFloat(getComputedStyle(t).lineHeight) || 20;
    t.scrollTop = Math.max(0, (line - 3) * lh);
  };

  if (script === null) return <Spinner label="Opening the app in the engine…" />;

  return (
    <section aria-labelledby="dle-title" className="app-page">
      <AppTabs appId={appId} current="load-script" name={name} />
      <div className="page-head">
        <h1 id="dle-title">Data load editor</h1>
        <div className="actions">
          <button type="button" onClick={() => void save()} disabled={!conn || busy || !dirty} aria-busy={busy}>
            {dirty ? 'Save' : 'Saved'}
          </button>
          <button type="button" className="primary" onClick={() => void saveAndReload()} disabled={!conn || busy || running} aria-busy={running}>
            {running ? 'Reloading…' : dirty ? 'Save and reload' : 'Reload'}
          </button>
        </div>
      </div>
      {error && (
        <Notice kind="error" testId="dle-error">
          {error}{' '}
          {!conn && (
            <button type="button" onClick={() => setAttempt((a) => a + 1)}>
              Try again
            </button>
          )}
        </Notice>
      )}
      {status && <Notice kind="success" testId="dle-status">{status}</Notice>}
      {conn && (
        <>
          <label htmlFor="load-script" className="editor-label">
            Load script {dirty && <span className="badge badge-expired">unsaved changes</span>}
          </label>
          <p id="load-script-hint" className="hint">
            {lineCount} {lineCount === 1 ? 'line' : 'lines'}. Ctrl+S saves. Tab moves to the next control.
          </p>
          <ScriptEditor value={script} onChange={setScript} errorAt={errorAt} readOnly={false} onSave={() => void save()} textareaRef={textarea} />
        </>
      )}
      {reload && (
        <div className="reload-panel" aria-labelledby="reload-panel-title">
          <h2 id="reload-panel-title">Reload</h2>
          <p role="status" aria-live="polite" data-testid="dle-reload-status">
            <span className={`badge badge-${reload.status.toLowerCase()}`}>{reload.status}</span>{' '}
            {running
              ? `${reload.status === 'QUEUED' ? 'Waiting for a reloader' : 'Running the script'} — ${Math.max(0, Math.round((now - started) / 1000))} s`
              : reload.status === 'SUCCEEDED'
                ? 'The app has the new data.'
                : reload.errorMessage
                  ? `The reload ended: ${reload.errorMessage}`
                  : 'The reload did not finish.'}
            {running && <span className="reload-progress" aria-hidden="true" />}
          </p>
          {where && (
            <Notice kind="error" testId="dle-error-line">
              Error on line {where.line}
              {where.column ? `, column ${where.column}` : ''}: {where.message || reload.errorMessage}{' '}
              {where.line <= lineCount && (
                <button type="button" onClick={() => goToLine(where.line)}>
                  Go to line {where.line}
                </button>
              )}
            </Notice>
          )}
          {reload.status === 'SUCCEEDED' && (
            <p>
              <Link to={appPath(appId, 'data-model')}>See the data model</Link>
            </p>
          )}
          <h3 id="reload-log-title">Log</h3>
          <pre ref={logRef} className="reload-log" role="log" aria-labelledby="reload-log-title" tabIndex={0} data-testid="dle-log">
            {reload.log || (running ? 'Waiting for the reloader’s first lines…' : '(no log)')}
          </pre>
        </div>
      )}
    </section>
  );
}
