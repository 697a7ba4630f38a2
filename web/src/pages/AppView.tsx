// The app view (/apps/<appId>[/sheets/<sheetId>]): opens the app over QIX (enigma.js, the
// session cookie authenticates the WebSocket), lists its sheets, and shows a sheet's charts
// (nebula.js: filter pane, bar chart, KPI, table) on a 24-column grid under a selections bar
// (nebula's current selections plus back, forward, clear all, lock and unlock). In edit mode a
// sheet gets new charts built from the data model's fields; sheets and charts are persistent
// app objects, so they are there again after a reload of the page. Bookmarks (the user's
// saved selections: create from the current selections, apply, delete), master measures
// (named measures stored in the app, checked by the engine before saving) and master
// dimensions (named fields) have their own panels; the chart editor offers both.
import { useCallback, useEffect, useRef, useState, type FormEvent } from 'react';
import { api } from '../api';
import { errorText, Field, Notice, SelectField, Spinner } from '../components';
import { Link, navigate } from '../router';
import {
  addChart,
  CHART_TYPES,
  checkExpression,
  connect,
  createMasterDimension,
  createMasterMeasure,
  DIMENSION_LIST_PROPS,
  masterDimensions,
  type MasterDimension,
  isLibraryMeasure,
  LIB_PREFIX,
  masterMeasures,
  MEASURE_LIST_PROPS,
  type MasterMeasure,
  fieldRef,
  GRID_COLUMNS,
  modelFields,
  newSheetProps,
  removeChart,
  type Cell,
  type ChartType,
  type Connection,
  type GenericObject,
  type ModelField,
} from '../app/qix';

interface SheetEntry {
  id: string;
  title: string;
  charts: number;
}

/** Subscribe to an object's layout: fetched now and again on every 'changed'. */
function useLayout<T>(model: GenericObject | null): T | null {
  const [layout, setLayout] = useState<T | null>(null);
  useEffect(() => {
    if (!model) return;
    let live = true;
    const fetch = () => {
      model.getLayout().then(
        (l: T) => live && setLayout(l),
        () => undefined,
      );
    };
    model.on('changed', fetch);
    fetch();
    return () => {
      live = false;
      model.removeListener('changed', fetch);
    };
  }, [model]);
  return layout;
}

/** A session object for the lifetime of the component. */
function useSessionObject(conn: Connection | null, props: object): GenericObject | null {
  const [model, setModel] = useState<GenericObject | null>(null);
  const json = JSON.stringify(props);
  useEffect(() => {
    if (!conn) return;
    let live = true;
    let created: GenericObject | null = null;
    conn.app.createSessionObject(JSON.parse(json)).then((m: GenericObject) => {
      created = m;
      if (live) setModel(m);
      else void conn.app.destroySessionObject(m.id).catch(() => undefined);
    });
    return () => {
      live = false;
      if (created) void conn.app.destroySessionObject(created.id).catch(() => undefined);
    };
  }, [conn, json]);
  return model;
}

export function AppView({ path }: { path: string }) {
  const m = /^\/apps\/([^/]+)(?:\/sheets\/([^/]+))?/.exec(path);
  const appId = m ? decodeURIComponent(m[1]) : '';
  const sheetId = m && m[2] ? decodeURIComponent(m[2]) : null;
  const [conn, setConn] = useState<Connection | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [title, setTitle] = useState('');

  useEffect(() => {
    let live = true;
    let c: Connection | null = null;
    setConn(null);
    setError(null);
    connect(appId).then(
      async (x) => {
        c = x;
        if (!live) {
          void x.session.close();
          return;
        }
        (window as unknown as { tesseraApp?: unknown }).tesseraApp = x.app; // for tests and the console
        // The app's name lives in spaces (the engine's title may be the id).
        const name = await api<{ attributes?: { name?: string } }>('GET', `/api/v1/apps/${encodeURIComponent(appId)}`)
          .then((a) => a.attributes?.name)
          .catch(() => undefined);
        setTitle(name || appId);
        document.title = `${name || 'App'} · Tessera`;
        setConn(x);
      },
      (e) => live && setError(e?.code === 1003 ? 'This app does not exist, or you do not have access to it.' : `Cannot open the app: ${errorText(e)}`),
    );
    return () => {
      live = false;
      if (c) void c.session.close();
    };
  }, [appId]);

  if (error)
    return (
      <section>
        <h1>App</h1>
        <Notice kind="error" testId="app-error">
          {error}
        </Notice>
        <Link to="/hub">Back to the hub</Link>
      </section>
    );
  if (!conn) return <Spinner label="Opening the app…" />;
  return (
    <section className="app-view" aria-labelledby="app-title">
      <div className="page-head">
        <h1 id="app-title">
          <Link to={`/apps/${encodeURIComponent(appId)}`}>{title}</Link>
        </h1>
      </div>
      <SelectionsBar conn={conn} />
      <AppPanels conn={conn} />
      {sheetId ? <SheetView conn={conn} appId={appId} sheetId={sheetId} /> : <SheetList conn={conn} appId={appId} />}
    </section>
  );
}

interface SelectionLayout {
  qSelectionObject: { qBackCount: number; qForwardCount: number; qSelections: { qField: string; qLocked?: boolean }[] };
}

function SelectionsBar({ conn }: { conn: Connection }) {
  const ref = useRef<HTMLDivElement>(null);
  const model = useSessionObject(conn, { qInfo: { qType: 'tsr-selections' }, qSelectionObjectDef: { qStateName: '$' } });
  const layout = useLayout<SelectionLayout>(model);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    let sel: { unmount?: () => void } | null = null;
    (conn.nebbie.selections() as Promise<{ mount: (el: HTMLElement) => void; unmount: () => void }>).then((s) => {
      if (!live || !ref.current) return;
      s.mount(ref.current);
      sel = s;
    });
    return () => {
      live = false;
      sel?.unmount?.();
    };
  }, [conn]);
  const so = layout?.qSelectionObject;
  const anyLocked = so?.qSelections.some((s) => s.qLocked) ?? false;
  const run = (fn: () => Promise<unknown>) => () => {
    setError(null);
    fn().catch((e) => setError(errorText(e)));
  };
  return (
    <div className="selections-bar" role="toolbar" aria-label="Selections">
      <div className="sel-buttons">
        <button type="button" data-testid="sel-back" disabled={!so || so.qBackCount === 0} onClick={run(() => conn.app.back())}>
          ← Back
        </button>
        <button type="button" data-testid="sel-forward" disabled={!so || so.qForwardCount === 0} onClick={run(() => conn.app.forward())}>
          Forward →
        </button>
        <button type="button" data-testid="sel-clear" disabled={!so || so.qSelections.length === 0} onClick={run(() => conn.app.clearAll(false))}>
          Clear all
        </button>
        {anyLocked ? (
          <button type="button" data-testid="sel-unlock" onClick={run(() => conn.app.unlockAll())}>
            Unlock all
          </button>
        ) : (
          <button type="button" data-testid="sel-lock" disabled={!so || so.qSelections.length === 0} onClick={run(() => conn.app.lockAll())}>
            Lock all
          </button>
        )}
      </div>
      <div className="nebula-selections" ref={ref} data-testid="current-selections" />
      {error && <Notice kind="error">{error}</Notice>}
    </div>
  );
}

/** The toggles for the bookmarks and master items panels, and the open panel. */
function AppPanels({ conn }: { conn: Connection }) {
  const [open, setOpen] = useState<'bookmarks' | 'measures' | 'dimensions' | null>(null);
  const toggle = (p: 'bookmarks' | 'measures' | 'dimensions') => setOpen((x) => (x === p ? null : p));
  const close = useCallback((ret: string) => {
    setOpen(null);
    // Back to the toggle that opened the panel (keyboard users keep their place).
    window.setTimeout(() => document.getElementById(ret)?.focus(), 0);
  }, []);
  useEffect(() => {
    // Escape closes the open panel wherever the focus is (a disabled button may have dropped
    // it to the page), unless a chart is in selection mode or a dialog is open.
    if (!open) return;
    const onKey = (e: globalThis.KeyboardEvent) => {
      if (e.key !== 'Escape' || e.defaultPrevented || document.querySelector('[role="dialog"]')) return;
      const t = e.target as HTMLElement | null;
      if (t && t !== document.body && !t.closest('.side-panel, .panel-toggles')) return;
      close(`toggle-${open}`);
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [open, close]);
  return (
    <div className="app-panels">
      <div className="panel-toggles">
        <button type="button" id="toggle-bookmarks" aria-expanded={open === 'bookmarks'} aria-controls="bookmarks-panel" data-testid="toggle-bookmarks" onClick={() => toggle('bookmarks')}>
          Bookmarks
        </button>
        <button type="button" id="toggle-measures" aria-expanded={open === 'measures'} aria-controls="measures-panel" data-testid="toggle-measures" onClick={() => toggle('measures')}>
          Master measures
        </button>
        <button type="button" id="toggle-dimensions" aria-expanded={open === 'dimensions'} aria-controls="dimensions-panel" data-testid="toggle-dimensions" onClick={() => toggle('dimensions')}>
          Master dimensions
        </button>
      </div>
      {open === 'bookmarks' && <BookmarksPanel conn={conn} onClose={() => close('toggle-bookmarks')} />}
      {open === 'measures' && <MeasuresPanel conn={conn} onClose={() => close('toggle-measures')} />}
      {open === 'dimensions' && <DimensionsPanel conn={conn} onClose={() => close('toggle-dimensions')} />}
    </div>
  );
}

interface BookmarkListLayout {
  qBookmarkList: { qItems: { qInfo: { qId: string }; qMeta?: { createdDate?: string }; qData: { title?: string; description?: string } }[] };
}

/** The top of a side panel: its title with a close button, then its error and its status. */
function PanelTop(props: { titleId: string; title: string; closeLabel: string; onClose: () => void; error: string | null; status: string | null; statusTestId: string }) {
  return (
    <>
      <div className="panel-head">
        <h2 id={props.titleId}>{props.title}</h2>
        <button type="button" aria-label={props.closeLabel} onClick={props.onClose}>
          ✕
        </button>
      </div>
      {props.error && <Notice kind="error">{props.error}</Notice>}
      {props.status && (
        <Notice kind="success" testId={props.statusTestId}>
          {props.status}
        </Notice>
      )}
    </>
  );
}

/** The list of a master items panel (kind measure or dimension): each item with its name, its
 * definition (code), Edit and a confirmed Delete for those the user may edit. */
function MasterList<T extends { id: string; label: string; description: string; canEdit: boolean }>(props: {
  kind: 'measure' | 'dimension';
  loading: boolean;
  items: T[];
  code: (item: T) => string;
  empty: string;
  deleting: string | null;
  setDeleting: (id: string | null) => void;
  onEdit: (item: T) => void;
  onRemove: (item: T) => void;
}) {
  const { kind, items, deleting, setDeleting } = props;
  if (props.loading) return <Spinner label={`Loading master ${kind}s…`} />;
  if (items.length === 0) {
    return (
      <p className="empty" data-testid={`${kind}s-empty`}>
        {props.empty}
      </p>
    );
  }
  return (
    <ul className="panel-list" aria-label={`Master ${kind}s`} data-testid={`master-${kind}s`}>
      {items.map((m) => (
        <li key={m.id} {...{ [`data-${kind}-id`]: m.id }}>
          <div className="item-text">
            <strong>{m.label}</strong>
            <code>{props.code(m)}</code>
            {m.description && <span className="meta">{m.description}</span>}
          </div>
          {m.canEdit && (
            <div className="item-actions">
              <button type="button" aria-label={`Edit master ${kind} ${m.label}`} onClick={() => props.onEdit(m)}>
                Edit
              </button>
              {deleting === m.id ? (
                <>
                  <button type="button" className="danger" autoFocus onClick={() => props.onRemove(m)}>
                    Yes, delete
                  </button>
                  <button type="button" onClick={() => setDeleting(null)}>
                    Keep
                  </button>
                </>
              ) : (
                <button type="button" aria-label={`Delete master ${kind} ${m.label}`} onClick={() => setDeleting(m.id)}>
                  Delete
                </button>
              )}
            </div>
          )}
        </li>
      ))}
    </ul>
  );
}

/** The user's bookmarks (a BookmarkList session object): create from the current selections,
 * apply, delete. */
function BookmarksPanel({ conn, onClose }: { conn: Connection; onClose: () => void }) {
  const model = useSessionObject(conn, {
    qInfo: { qType: 'BookmarkList' },
    qBookmarkListDef: { qType: 'bookmark', qData: { title: '/qMetaDef/title', description: '/qMetaDef/description' } },
  });
  const layout = useLayout<BookmarkListLayout>(model);
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [nameError, setNameError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const [deleting, setDeleting] = useState<string | null>(null);
  const items = (layout?.qBookmarkList.qItems ?? [])
    .map((it) => ({ id: it.qInfo.qId, title: it.qData.title || 'Untitled bookmark', description: it.qData.description ?? '', created: it.qMeta?.createdDate ?? '' }))
    .sort((a, b) => a.title.localeCompare(b.title));
  const run = async (fn: () => Promise<unknown>, done: string) => {
    setError(null);
    setStatus(null);
    setBusy(true);
    try {
      await fn();
      setStatus(done);
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };
  const create = async (e: FormEvent) => {
    e.preventDefault();
    const title = name.trim();
    if (!title) {
      setNameError('Give the bookmark a name.');
      return;
    }
    setNameError(null);
    await run(async () => {
      await conn.app.createBookmark({ qInfo: { qType: 'bookmark' }, qMetaDef: { title, description: description.trim() } });
      setName('');
      setDescription('');
    }, `Bookmark “${title}” created from the current selections.`);
  };
  return (
    <section id="bookmarks-panel" className="side-panel" aria-labelledby="bookmarks-title" data-testid="bookmarks-panel">
      <PanelTop titleId="bookmarks-title" title="Bookmarks" closeLabel="Close bookmarks" onClose={onClose} error={error} status={status} statusTestId="bookmark-status" />
      {!layout ? (
        <Spinner label="Loading bookmarks…" />
      ) : items.length === 0 ? (
        <p className="empty" data-testid="bookmarks-empty">
          No bookmarks yet. A bookmark keeps the current selections under a name.
        </p>
      ) : (
        <ul className="panel-list" aria-label="Your bookmarks" data-testid="bookmarks">
          {items.map((b) => (
            <li key={b.id} data-bookmark-id={b.id}>
              <div className="item-text">
                <strong>{b.title}</strong>
                {b.description && <span className="meta">{b.description}</span>}
              </div>
              <div className="item-actions">
                <button type="button" disabled={busy} aria-label={`Apply bookmark ${b.title}`} onClick={() => void run(() => conn.app.applyBookmark(b.id), `Bookmark “${b.title}” applied.`)}>
                  Apply
                </button>
                {deleting === b.id ? (
                  <>
                    <button
                      type="button"
                      className="danger"
                      autoFocus
                      onClick={() =>
                        void run(async () => {
                          await conn.app.destroyBookmark(b.id);
                          setDeleting(null);
                        }, `Bookmark “${b.title}” deleted.`)
                      }
                    >
                      Yes, delete
                    </button>
                    <button type="button" onClick={() => setDeleting(null)}>
                      Keep
                    </button>
                  </>
                ) : (
                  <button type="button" aria-label={`Delete bookmark ${b.title}`} onClick={() => setDeleting(b.id)}>
                    Delete
                  </button>
                )}
              </div>
            </li>
          ))}
        </ul>
      )}
      <form className="panel-form" onSubmit={create} noValidate aria-label="Create a bookmark">
        <Field label="Bookmark name" value={name} maxLength={200} error={nameError ?? undefined} onChange={(e) => setName(e.target.value)} data-testid="bookmark-name" autoFocus />
        <Field label="Description (optional)" value={description} maxLength={1000} onChange={(e) => setDescription(e.target.value)} />
        <button type="submit" className="primary" disabled={busy} data-testid="bookmark-create">
          Create bookmark
        </button>
      </form>
    </section>
  );
}

/** The app's master measures (a MeasureList session object): define one (label, expression,
 * description), change or delete it. Charts use them through the chart editor. */
function MeasuresPanel({ conn, onClose }: { conn: Connection; onClose: () => void }) {
  const model = useSessionObject(conn, MEASURE_LIST_PROPS);
  const layout = useLayout<unknown>(model);
  const items = masterMeasures(layout).sort((a, b) => a.label.localeCompare(b.label));
  const [editing, setEditing] = useState<MasterMeasure | null>(null);
  const [label, setLabel] = useState('');
  const [expr, setExpr] = useState('');
  const [description, setDescription] = useState('');
  const [errs, setErrs] = useState<{ label?: string; expr?: string }>({});
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const [deleting, setDeleting] = useState<string | null>(null);
  const reset = () => {
    setEditing(null);
    setLabel('');
    setExpr('');
    setDescription('');
    setErrs({});
  };
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const l = label.trim();
    const x = expr.trim();
    const v: { label?: string; expr?: string } = {};
    if (!l) v.label = 'Give the measure a name.';
    else if (items.some((m) => m.label === l && m.id !== editing?.id)) v.label = 'A master measure with this name exists.';
    if (!x) v.expr = 'Enter an expression, for example Sum(Sales).';
    setErrs(v);
    if (v.label || v.expr) return;
    setBusy(true);
    setError(null);
    setStatus(null);
    try {
      // The engine checks the expression first (syntax, field names): a bad one is not saved.
      const bad = await checkExpression(conn.app, x);
      if (bad) {
        setErrs({ expr: `The expression is not valid: ${bad}` });
        return;
      }
      if (editing) {
        const m = await conn.app.getMeasure(editing.id);
        const p = await m.getProperties();
        p.qMeasure = { ...(p.qMeasure ?? {}), qLabel: l, qDef: x };
        p.qMetaDef = { ...(p.qMetaDef ?? {}), title: l, description: description.trim() };
        await m.setProperties(p);
        setStatus(`Master measure “${l}” saved.`);
      } else {
        await createMasterMeasure(conn.app, l, x, description.trim());
        setStatus(`Master measure “${l}” created.`);
      }
      reset();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  const remove = async (m: MasterMeasure) => {
    setError(null);
    setStatus(null);
    try {
      await conn.app.destroyMeasure(m.id);
      setDeleting(null);
      if (editing?.id === m.id) reset();
      setStatus(`Master measure “${m.label}” deleted.`);
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <section id="measures-panel" className="side-panel" aria-labelledby="measures-title" data-testid="measures-panel">
      <PanelTop titleId="measures-title" title="Master measures" closeLabel="Close master measures" onClose={onClose} error={error} status={status} statusTestId="measure-status" />
      <MasterList
        kind="measure"
        loading={!layout}
        items={items}
        code={(m) => m.expression}
        empty="No master measures yet. A master measure is a named expression every chart of the app can use."
        deleting={deleting}
        setDeleting={setDeleting}
        onRemove={(m) => void remove(m)}
        onEdit={(m) => {
          setEditing(m);
          setLabel(m.label);
          setExpr(m.expression);
          setDescription(m.description);
          setErrs({});
        }}
      />
      <form className="panel-form" onSubmit={submit} noValidate aria-label={editing ? `Edit master measure ${editing.label}` : 'Create a master measure'}>
        <h3>{editing ? `Edit “${editing.label}”` : 'New master measure'}</h3>
        <Field label="Measure name" value={label} maxLength={200} error={errs.label} onChange={(e) => setLabel(e.target.value)} data-testid="measure-label" />
        <Field label="Expression" value={expr} maxLength={65536} error={errs.expr} placeholder="Sum(Sales)" onChange={(e) => setExpr(e.target.value)} data-testid="measure-expression" />
        <Field label="Description (optional)" value={description} maxLength={1000} onChange={(e) => setDescription(e.target.value)} />
        <div className="actions">
          <button type="submit" className="primary" disabled={busy} data-testid="measure-save">
            {editing ? 'Save measure' : 'Create measure'}
          </button>
          {editing && (
            <button type="button" onClick={reset}>
              Cancel
            </button>
          )}
        </div>
      </form>
    </section>
  );
}

interface SheetListLayout {
  qAppObjectList: { qItems: { qInfo: { qId: string }; qData: { title?: string; cells?: Cell[] } }[] };
}

function SheetList({ conn, appId }: { conn: Connection; appId: string }) {
  const model = useSessionObject(conn, {
    qInfo: { qType: 'tsr-sheetlist' },
    qAppObjectListDef: { qType: 'sheet', qData: { title: '/qMetaDef/title', cells: '/cells' } },
  });
  const layout = useLayout<SheetListLayout>(model);
  const [name, setName] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const sheets: SheetEntry[] = (layout?.qAppObjectList.qItems ?? []).map((it) => ({
    id: it.qInfo.qId,
    title: it.qData.title || 'Untitled sheet',
    charts: Array.isArray(it.qData.cells) ? it.qData.cells.length : 0,
  }));
  const create = async (e: FormEvent) => {
    e.preventDefault();
    if (!name.trim()) {
      setError('Give the sheet a name.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const sheet = await conn.app.createObject(newSheetProps(name.trim()));
      await conn.app.doSave().catch(() => undefined);
      setName('');
      navigate(`/apps/${encodeURIComponent(appId)}/sheets/${encodeURIComponent(sheet.id)}?edit=1`);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  if (!layout) return <Spinner label="Loading sheets…" />;
  return (
    <div className="sheet-list">
      <h2>Sheets</h2>
      {sheets.length === 0 ? (
        <p className="empty" data-testid="sheets-empty">
          This app has no sheets yet.
        </p>
      ) : (
        <ul className="app-grid" data-testid="sheets">
          {sheets.map((s) => (
            <li key={s.id} className="app-card">
              <h3>
                <Link to={`/apps/${encodeURIComponent(appId)}/sheets/${encodeURIComponent(s.id)}`}>{s.title}</Link>
              </h3>
              <p className="meta">
                {s.charts} {s.charts === 1 ? 'chart' : 'charts'}
              </p>
            </li>
          ))}
        </ul>
      )}
      <form className="inline-form" onSubmit={create} noValidate>
        {error && <Notice kind="error">{error}</Notice>}
        <Field label="New sheet name" value={name} onChange={(e) => setName(e.target.value)} maxLength={200} />
        <button type="submit" className="primary" disabled={busy}>
          Create sheet
        </button>
      </form>
    </div>
  );
}

interface SheetLayout {
  qInfo: { qId: string };
  qMeta: { title?: string };
  cells?: Cell[];
}

function SheetView({ conn, appId, sheetId }: { conn: Connection; appId: string; sheetId: string }) {
  const [sheet, setSheet] = useState<GenericObject | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [editing, setEditing] = useState(() => new URLSearchParams(window.location.search).get('edit') === '1');
  useEffect(() => {
    let live = true;
    setSheet(null);
    conn.app.getObject(sheetId).then(
      (s: GenericObject) => live && setSheet(s),
      (e: unknown) => live && setError(errorText(e)),
    );
    return () => {
      live = false;
    };
  }, [conn, sheetId]);
  const layout = useLayout<SheetLayout>(sheet);
  if (error)
    return (
      <Notice kind="error" testId="sheet-error">
        This sheet cannot be opened: {error}
      </Notice>
    );
  if (!sheet || !layout) return <Spinner label="Loading the sheet…" />;
  const cells = layout.cells ?? [];
  const rows = cells.reduce((mx, c) => Math.max(mx, c.row + c.rowspan), 1);
  return (
    <div className="sheet">
      <div className="sheet-head">
        <Link to={`/apps/${encodeURIComponent(appId)}`}>All sheets</Link>
        <h2 data-testid="sheet-title">{layout.qMeta?.title || 'Untitled sheet'}</h2>
        <button type="button" aria-pressed={editing} data-testid="sheet-edit" onClick={() => setEditing((x) => !x)}>
          {editing ? 'Done editing' : 'Edit sheet'}
        </button>
      </div>
      {editing && <SheetSettings conn={conn} appId={appId} sheet={sheet} title={layout.qMeta?.title ?? ''} />}
      {editing && <ChartEditor conn={conn} sheet={sheet} />}
      {cells.length === 0 && !editing && <p className="empty">This sheet is empty. Choose “Edit sheet” to add charts.</p>}
      <div className="sheet-grid" style={{ gridTemplateColumns: `repeat(${GRID_COLUMNS}, minmax(0, 1fr))`, gridTemplateRows: `repeat(${rows}, 60px)` }} data-testid="sheet-grid">
        {cells.map((c) => (
          <div
            key={c.name}
            className="sheet-cell"
            data-testid={`cell-${c.type}`}
            data-object-id={c.name}
            style={{ gridColumn: `${c.col + 1} / span ${c.colspan}`, gridRow: `${c.row + 1} / span ${c.rowspan}` }}
          >
            {editing && (
              <button type="button" className="cell-remove" aria-label={`Remove this ${c.type}`} onClick={() => void removeChart(sheet, c.name)}>
                ✕
              </button>
            )}
            <Chart conn={conn} id={c.name} />
          </div>
        ))}
      </div>
    </div>
  );
}

/** Rename or delete the sheet (its charts are its children: they go with it). */
function SheetSettings({ conn, appId, sheet, title }: { conn: Connection; appId: string; sheet: GenericObject; title: string }) {
  const [name, setName] = useState(title);
  const [confirm, setConfirm] = useState(false);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => setName(title), [title]);
  const rename = async (e: FormEvent) => {
    e.preventDefault();
    if (!name.trim()) {
      setError('The sheet needs a name.');
      return;
    }
    setError(null);
    try {
      const p = await sheet.getProperties();
      p.qMetaDef = { ...(p.qMetaDef ?? {}), title: name.trim() };
      await sheet.setProperties(p);
    } catch (err) {
      setError(errorText(err));
    }
  };
  const remove = async () => {
    try {
      await conn.app.destroyObject(sheet.id);
      navigate(`/apps/${encodeURIComponent(appId)}`);
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <form className="inline-form sheet-settings" onSubmit={rename} noValidate>
      {error && <Notice kind="error">{error}</Notice>}
      <Field label="Sheet name" value={name} maxLength={200} onChange={(e) => setName(e.target.value)} />
      <button type="submit" disabled={name.trim() === title}>
        Rename
      </button>
      {confirm ? (
        <>
          <button type="button" className="danger" onClick={() => void remove()}>
            Yes, delete the sheet
          </button>
          <button type="button" onClick={() => setConfirm(false)}>
            Keep it
          </button>
        </>
      ) : (
        <button type="button" onClick={() => setConfirm(true)}>
          Delete sheet
        </button>
      )}
    </form>
  );
}

/** One nebula.js visualization of an existing object, rendered into its own element. */
function Chart({ conn, id }: { conn: Connection; id: string }) {
  const ref = useRef<HTMLDivElement>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    let viz: { destroy: () => void } | null = null;
    if (!ref.current) return;
    conn.nebbie.render({ element: ref.current, id }).then(
      (v: { destroy: () => void }) => {
        if (live) viz = v;
        else v.destroy();
      },
      (e: unknown) => live && setError(errorText(e)),
    );
    return () => {
      live = false;
      viz?.destroy();
    };
  }, [conn, id]);
  return (
    <div className="chart" ref={ref}>
      {error && <Notice kind="error">{error}</Notice>}
    </div>
  );
}

/** The app's master dimensions (a DimensionList session object): define one (name, field,
 * description), change or delete it. Charts use them through the chart editor. */
function DimensionsPanel({ conn, onClose }: { conn: Connection; onClose: () => void }) {
  const model = useSessionObject(conn, DIMENSION_LIST_PROPS);
  const layout = useLayout<unknown>(model);
  const items = masterDimensions(layout).sort((a, b) => a.label.localeCompare(b.label));
  const [fields, setFields] = useState<string[]>([]);
  const [editing, setEditing] = useState<MasterDimension | null>(null);
  const [label, setLabel] = useState('');
  const [field, setField] = useState('');
  const [description, setDescription] = useState('');
  const [errs, setErrs] = useState<{ label?: string; field?: string }>({});
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const [deleting, setDeleting] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    modelFields(conn.app).then(
      (f) => live && setFields([...new Set(f.map((x) => x.name))]),
      (e) => live && setError(errorText(e)),
    );
    return () => {
      live = false;
    };
  }, [conn]);
  const reset = () => {
    setEditing(null);
    setLabel('');
    setField('');
    setDescription('');
    setErrs({});
  };
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const l = label.trim();
    const v: { label?: string; field?: string } = {};
    if (!l) v.label = 'Give the dimension a name.';
    else if (items.some((d) => d.label === l && d.id !== editing?.id)) v.label = 'A master dimension with this name exists.';
    if (!field) v.field = 'Choose the field of the dimension.';
    setErrs(v);
    if (v.label || v.field) return;
    setBusy(true);
    setError(null);
    setStatus(null);
    try {
      if (editing) {
        const d = await conn.app.getDimension(editing.id);
        const p = await d.getProperties();
        p.qDim = { ...(p.qDim ?? {}), qFieldDefs: [field], qFieldLabels: [l], title: l };
        p.qMetaDef = { ...(p.qMetaDef ?? {}), title: l, description: description.trim() };
        await d.setProperties(p);
        setStatus(`Master dimension “${l}” saved.`);
      } else {
        await createMasterDimension(conn.app, l, field, description.trim());
        setStatus(`Master dimension “${l}” created.`);
      }
      reset();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  const remove = async (d: MasterDimension) => {
    setError(null);
    setStatus(null);
    try {
      await conn.app.destroyDimension(d.id);
      setDeleting(null);
      if (editing?.id === d.id) reset();
      setStatus(`Master dimension “${d.label}” deleted.`);
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <section id="dimensions-panel" className="side-panel" aria-labelledby="dimensions-title" data-testid="dimensions-panel">
      <PanelTop titleId="dimensions-title" title="Master dimensions" closeLabel="Close master dimensions" onClose={onClose} error={error} status={status} statusTestId="dimension-status" />
      <MasterList
        kind="dimension"
        loading={!layout}
        items={items}
        code={(d) => d.field}
        empty="No master dimensions yet. A master dimension is a named field every chart of the app can use."
        deleting={deleting}
        setDeleting={setDeleting}
        onRemove={(d) => void remove(d)}
        onEdit={(d) => {
          setEditing(d);
          setLabel(d.label);
          setField(d.field);
          setDescription(d.description);
          setErrs({});
        }}
      />
      <form className="panel-form" onSubmit={submit} noValidate aria-label={editing ? `Edit master dimension ${editing.label}` : 'Create a master dimension'}>
        <h3>{editing ? `Edit “${editing.label}”` : 'New master dimension'}</h3>
        <Field label="Dimension name" value={label} maxLength={200} error={errs.label} onChange={(e) => setLabel(e.target.value)} data-testid="dimension-label" />
        <SelectField label="Field" value={field} data-testid="dimension-field" aria-invalid={errs.field ? true : undefined} onChange={(e) => setField(e.target.value)}>
          <option value="">Choose a field…</option>
          {(field && !fields.includes(field) ? [field, ...fields] : fields).map((f) => (
            <option key={f} value={f}>
              {f}
            </option>
          ))}
        </SelectField>
        {errs.field && (
          <small className="field-error" role="alert">
            {errs.field}
          </small>
        )}
        <Field label="Description (optional)" value={description} maxLength={1000} onChange={(e) => setDescription(e.target.value)} />
        <div className="actions">
          <button type="submit" className="primary" disabled={busy} data-testid="dimension-save">
            {editing ? 'Save dimension' : 'Create dimension'}
          </button>
          {editing && (
            <button type="button" onClick={reset}>
              Cancel
            </button>
          )}
        </div>
      </form>
    </section>
  );
}

const AGGREGATIONS = ['Sum', 'Count', 'Avg', 'Min', 'Max', 'Count distinct'];

function ChartEditor({ conn, sheet }: { conn: Connection; sheet: GenericObject }) {
  const [fields, setFields] = useState<ModelField[] | null>(null);
  const [type, setType] = useState<ChartType>('barchart');
  const [title, setTitle] = useState('');
  const [dims, setDims] = useState<string[]>([]);
  const [measures, setMeasures] = useState<string[]>([]);
  const [agg, setAgg] = useState('Sum');
  const [aggField, setAggField] = useState('');
  const [expr, setExpr] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const masters = masterMeasures(useLayout<unknown>(useSessionObject(conn, MEASURE_LIST_PROPS)));
  const measureName = (m: string) => (isLibraryMeasure(m) ? `${masters.find((x) => LIB_PREFIX + x.id === m)?.label ?? 'Master measure'} (master)` : m);
  const masterDims = masterDimensions(useLayout<unknown>(useSessionObject(conn, DIMENSION_LIST_PROPS)));
  const dimLabel = (d: string) => (isLibraryMeasure(d) ? masterDims.find((x) => LIB_PREFIX + x.id === d)?.label ?? 'Dimension' : d);
  const dimName = (d: string) => (isLibraryMeasure(d) ? `${dimLabel(d)} (master)` : d);
  useEffect(() => {
    // Again whenever the app changes: a reload finished elsewhere reaches this session as a
    // 'changed' on the Doc (the data model may have new fields).
    let live = true;
    const load = () => modelFields(conn.app).then((f) => live && setFields(f), (e) => live && setError(errorText(e)));
    void load();
    conn.app.on('changed', load);
    return () => {
      live = false;
      conn.app.removeListener('changed', load);
    };
  }, [conn]);
  const spec = CHART_TYPES.find((c) => c.type === type)!;
  const addDim = (f: string) => f && !dims.includes(f) && dims.length < spec.dims[1] && setDims([...dims, f]);
  const addMeasure = useCallback(
    (m: string) => {
      if (!m.trim() || measures.length >= spec.measures[1]) return;
      setMeasures([...measures, m.trim()]);
    },
    [measures, spec],
  );
  const aggExpr = () => {
    if (!aggField) return '';
    const ref = fieldRef(aggField);
    return agg === 'Count distinct' ? `Count(DISTINCT ${ref})` : `${agg}(${ref})`;
  };
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setStatus(null);
    if (dims.length < spec.dims[0] || measures.length < spec.measures[0] || dims.length + measures.length === 0) {
      setError(`A ${spec.label.toLowerCase()} needs ${spec.dims[0] ? `at least ${spec.dims[0]} dimension${spec.dims[0] > 1 ? 's' : ''}` : ''}${spec.dims[0] && spec.measures[0] ? ' and ' : ''}${spec.measures[0] ? `at least ${spec.measures[0]} measure` : ''}${!spec.dims[0] && !spec.measures[0] ? 'a dimension or a measure' : ''}.`);
      return;
    }
    setBusy(true);
    try {
      await addChart(conn.nebbie, sheet, type, title.trim() || defaultTitle(type, dims.map(dimLabel), measures.map((m) => (isLibraryMeasure(m) ? masters.find((x) => LIB_PREFIX + x.id === m)?.label ?? 'Measure' : m))), dims, measures);
      await conn.app.doSave().catch(() => undefined);
      setStatus(`${spec.label} added.`);
      setDims([]);
      setMeasures([]);
      setTitle('');
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  if (!fields) return error ? <Notice kind="error">{error}</Notice> : <Spinner label="Reading the data model…" />;
  const names = [...new Set(fields.map((f) => f.name))];
  return (
    <form className="chart-editor" onSubmit={submit} noValidate aria-label="Add a chart" data-testid="chart-editor">
      <h3>Add a chart</h3>
      {fields.length === 0 && <Notice kind="warning">The app has no data yet: reload it first.</Notice>}
      {error && <Notice kind="error">{error}</Notice>}
      {status && <Notice kind="success">{status}</Notice>}
      <div className="editor-row">
        <SelectField label="Chart type" value={type} data-testid="chart-type" onChange={(e) => { setType(e.target.value as ChartType); setDims([]); setMeasures([]); }}>
          {CHART_TYPES.map((c) => (
            <option key={c.type} value={c.type}>
              {c.label}
            </option>
          ))}
        </SelectField>
        <Field label="Title (optional)" value={title} onChange={(e) => setTitle(e.target.value)} maxLength={200} />
      </div>
      {spec.dims[1] > 0 && (
        <div className="editor-row">
          <SelectField label={type === 'filterpane' ? 'Add a field' : 'Add a dimension'} value="" data-testid="add-dimension" onChange={(e) => addDim(e.target.value)}>
            <option value="">Choose a field…</option>
            {fields.map((f) => (
              <option key={`${f.table}.${f.name}`} value={f.name} disabled={dims.includes(f.name)}>
                {f.name} ({f.table}{f.isKey ? ', key' : ''})
              </option>
            ))}
          </SelectField>
          {type !== 'filterpane' && masterDims.length > 0 && (
            <SelectField label="or a master dimension" value="" data-testid="add-master-dimension" onChange={(e) => addDim(e.target.value)}>
              <option value="">Choose a master dimension…</option>
              {masterDims.map((d) => (
                <option key={d.id} value={LIB_PREFIX + d.id} disabled={dims.includes(LIB_PREFIX + d.id)}>
                  {d.label}
                </option>
              ))}
            </SelectField>
          )}
          <ul className="chips" aria-label="Dimensions" data-testid="dimensions">
            {dims.map((d) => (
              <li key={d}>
                {dimName(d)}{' '}
                <button type="button" aria-label={`Remove ${dimName(d)}`} onClick={() => setDims(dims.filter((x) => x !== d))}>
                  ✕
                </button>
              </li>
            ))}
          </ul>
        </div>
      )}
      {spec.measures[1] > 0 && (
        <div className="editor-row">
          <SelectField label="Aggregation" value={agg} data-testid="measure-agg" onChange={(e) => setAgg(e.target.value)}>
            {AGGREGATIONS.map((a) => (
              <option key={a}>{a}</option>
            ))}
          </SelectField>
          <SelectField label="of field" value={aggField} data-testid="measure-field" onChange={(e) => setAggField(e.target.value)}>
            <option value="">Choose a field…</option>
            {names.map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </SelectField>
          <button type="button" data-testid="add-measure" disabled={!aggField} onClick={() => addMeasure(aggExpr())}>
            Add measure
          </button>
          <Field label="or an expression" value={expr} placeholder="Sum(Quantity*UnitPrice)" data-testid="measure-expr" onChange={(e) => setExpr(e.target.value)} />
          <button type="button" data-testid="add-expr" disabled={!expr.trim()} onClick={() => { addMeasure(expr); setExpr(''); }}>
            Add expression
          </button>
          {masters.length > 0 && (
            <SelectField label="or a master measure" value="" data-testid="add-master-measure" onChange={(e) => addMeasure(e.target.value)}>
              <option value="">Choose a master measure…</option>
              {masters.map((m) => (
                <option key={m.id} value={LIB_PREFIX + m.id} disabled={measures.includes(LIB_PREFIX + m.id)}>
                  {m.label}
                </option>
              ))}
            </SelectField>
          )}
          <ul className="chips" aria-label="Measures" data-testid="measures">
            {measures.map((m) => (
              <li key={m}>
                {measureName(m)}{' '}
                <button type="button" aria-label={`Remove ${measureName(m)}`} onClick={() => setMeasures(measures.filter((x) => x !== m))}>
                  ✕
                </button>
              </li>
            ))}
          </ul>
        </div>
      )}
      <div className="actions">
        <button type="submit" className="primary" disabled={busy} data-testid="add-chart">
          {busy ? 'Adding…' : `Add ${spec.label.toLowerCase()}`}
        </button>
      </div>
    </form>
  );
}

function defaultTitle(type: ChartType, dims: string[], measures: string[]): string {
  if (type === 'filterpane') return dims.join(', ');
  if (type === 'kpi') return measures.join(', ');
  if (measures.length && dims.length) return `${measures.join(', ')} by ${dims.join(', ')}`;
  return [...dims, ...measures].join(', ');
}
