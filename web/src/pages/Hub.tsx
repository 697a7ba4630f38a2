// The hub: the caller's spaces (personal, shared, managed, data) and the apps in them
// (apps are listed through the item catalog, GET /api/v1/items?resourceType=app), search,
// create an app or a space where the caller's role allows it; rename, move and publish an app
// (to a managed space, only when the app's actions and the space's meta.actions allow it). When the spaces service is
// not deployed (404/501/503 from /api/v1/spaces) the hub says so instead of failing.
import { useCallback, useEffect, useMemo, useState, type FormEvent } from 'react';
import { api, ApiError, linkPath, type Item, type NxApp, type Page, type Space } from '../api';
import { Dialog, errorText, Field, formatDate, Notice, SelectField, Spinner, SubmitCancel } from '../components';
import { appPath } from './AppTabs';
import { DataFiles } from './DataFiles';
import { Reloads } from './Reloads';
import { SpaceMembers } from './SpaceMembers';
import { Link } from '../router';
import { useSession } from '../session';

type Availability = 'loading' | 'available' | 'unavailable';
const PERSONAL = 'personal';
const ALL = '';

function unavailable(e: unknown): boolean {
  return e instanceof ApiError && [404, 501, 502, 503, 504].includes(e.status);
}

export function Hub() {
  const { user, isAdmin } = useSession();
  const [availability, setAvailability] = useState<Availability>('loading');
  const [spaces, setSpaces] = useState<Space[]>([]);
  const [personalActions, setPersonalActions] = useState<string[]>(['create', 'read']);
  const [apps, setApps] = useState<Item[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [spaceId, setSpaceId] = useState<string>(ALL);
  const [query, setQuery] = useState('');
  const [sort, setSort] = useState('-updatedAt');
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const [dialog, setDialog] = useState<'app' | 'space' | null>(null);
  const [renaming, setRenaming] = useState<Item | null>(null);
  const [deleting, setDeleting] = useState<string | null>(null);
  const [membersOf, setMembersOf] = useState<Space | null>(null);
  const [reloading, setReloading] = useState<Item | null>(null);
  const [publishing, setPublishing] = useState<Item | null>(null);
  const [moving, setMoving] = useState<Item | null>(null);

  const loadSpaces = useCallback(async () => {
    try {
      const page = await api<Page<Space> & { meta?: { personalSpace?: { actions?: string[] } } }>('GET', '/api/v1/spaces?limit=100');
      setSpaces(page.data);
      if (page.meta?.personalSpace?.actions) setPersonalActions(page.meta.personalSpace.actions);
      setAvailability('available');
    } catch (e) {
      if (unavailable(e)) setAvailability('unavailable');
      else {
        setAvailability('available');
        setError(errorText(e));
      }
    }
  }, []);

  const loadApps = useCallback(
    async (cursor?: string) => {
      const params = new URLSearchParams({ resourceType: 'app', limit: '50', sort });
      if (spaceId) params.set('spaceId', spaceId);
      if (query.trim()) params.set('query', query.trim());
      try {
        const page = await api<Page<Item>>('GET', cursor ?? `/api/v1/items?${params.toString()}`);
        setApps((prev) => (cursor && prev ? [...prev, ...page.data] : page.data));
        setNext(page.links?.next ? linkPath(page.links.next.href) : null);
      } catch (e) {
        setError(errorText(e));
        if (!cursor) setApps([]);
      }
    },
    [spaceId, query, sort],
  );

  useEffect(() => {
    document.title = 'Hub · Tessera';
    void loadSpaces();
  }, [loadSpaces]);

  useEffect(() => {
    if (availability !== 'available') return;
    const t = window.setTimeout(() => void loadApps(), query ? 250 : 0);
    return () => window.clearTimeout(t);
  }, [availability, loadApps, query]);

  const spaceName = useMemo(() => {
    const m = new Map(spaces.map((s) => [s.id, s.name]));
    return (id?: string) => (id ? m.get(id) ?? 'a space you cannot see' : 'Personal');
  }, [spaces]);

  const selected = spaces.find((x) => x.id === spaceId) ?? null;
  const creatable = spaces.filter((s) => isAdmin || (s.meta?.actions ?? []).includes('create'));
  // Managed spaces the caller may publish into (the space's meta.actions says so).
  const publishTargets = spaces.filter((s) => s.type === 'managed' && (s.meta?.actions ?? []).includes('publish'));
  const spaceType = (id?: string) => (id ? spaces.find((x) => x.id === id)?.type ?? '' : 'personal');
  const canPublish = (a: Item) => (a.actions ?? []).includes('publish') && spaceType(a.spaceId) !== 'managed' && publishTargets.length > 0;
  // Moving takes delete on the app and create in another shared space (or the owner's personal space).
  const moveTargets = (a: Item) => creatable.filter((s) => s.type === 'shared' && s.id !== a.spaceId);
  const canMove = (a: Item) => (a.actions ?? []).includes('delete') && spaceType(a.spaceId) !== 'managed' && (moveTargets(a).length > 0 || (!!a.spaceId && a.ownerId === user?.id));

  const removeApp = async (a: Item) => {
    setError(null);
    setStatus(null);
    try {
      await api('DELETE', `/api/v1/apps/${encodeURIComponent(a.resourceId || a.id)}`);
      setDeleting(null);
      setStatus(`App “${a.name}” was deleted.`);
      await loadApps();
    } catch (e) {
      setError(errorText(e));
    }
  };

  if (availability === 'loading') return <Spinner label="Loading the hub…" />;

  if (availability === 'unavailable') {
    return (
      <section aria-labelledby="hub-title">
        <h1 id="hub-title">Hub</h1>
        <Notice kind="info" testId="hub-unavailable">
          Spaces and apps are not available on this Tessera installation yet: the spaces service did not answer. Sign-in, users and API keys work as usual.
        </Notice>
        <button type="button" onClick={() => { setAvailability('loading'); void loadSpaces(); }}>
          Try again
        </button>
      </section>
    );
  }

  return (
    <section aria-labelledby="hub-title" className="hub">
      <div className="page-head">
        <h1 id="hub-title">Hub</h1>
        <div className="actions">
          {personalActions.includes('create') || creatable.length > 0 ? (
            <button type="button" className="primary" onClick={() => setDialog('app')}>
              Create app
            </button>
          ) : null}
          <button type="button" onClick={() => setDialog('space')}>
            Create space
          </button>
        </div>
      </div>
      {error && <Notice kind="error" testId="hub-error">{error}</Notice>}
      {status && <Notice kind="success" testId="hub-status">{status}</Notice>}
      <div className="hub-body">
        <nav className="spaces" aria-label="Spaces">
          <h2>Spaces</h2>
          <ul>
            {[{ id: ALL, name: 'All apps', type: '' }, { id: PERSONAL, name: 'Personal', type: 'personal' }, ...spaces].map((s) => (
              <li key={s.id || 'all'}>
                <button type="button" className={`space-link${spaceId === s.id ? ' active' : ''}`} aria-current={spaceId === s.id ? 'true' : undefined} onClick={() => setSpaceId(s.id)}>
                  <span>{s.name}</span>
                  {s.type && s.type !== 'personal' && <span className={`badge badge-${s.type}`}>{s.type}</span>}
                </button>
              </li>
            ))}
          </ul>
          {spaces.length === 0 && <p className="hint">No shared or managed spaces yet.</p>}
        </nav>
        <div className="apps">
          <div className="toolbar">
            <Field label="Search apps" type="search" value={query} onChange={(e) => setQuery(e.target.value)} placeholder="Name contains…" />
            <SelectField label="Sort by" value={sort} onChange={(e) => setSort(e.target.value)}>
              <option value="-updatedAt">Recently updated</option>
              <option value="-createdAt">Newest</option>
              <option value="+name">Name (A–Z)</option>
              <option value="-name">Name (Z–A)</option>
            </SelectField>
            {selected && (isAdmin || (selected.meta?.actions ?? []).includes('update')) && (
              <button type="button" className="toolbar-button" onClick={() => setMembersOf(selected)}>
                Members of {selected.name}
              </button>
            )}
          </div>
          {apps === null ? (
            <Spinner label="Loading apps…" />
          ) : apps.length === 0 ? (
            <p className="empty" data-testid="apps-empty">
              {query ? `No apps match “${query}”.` : 'No apps here yet.'}
            </p>
          ) : (
            <ul className="app-grid" aria-label="Apps" data-testid="apps">
              {apps.map((a) => (
                <li key={a.id} className="app-card">
                  <h3>
                    <Link to={`/apps/${encodeURIComponent(a.resourceId || a.id)}`}>{a.name}</Link>
                  </h3>
                  <p className="meta">
                    {spaceName(a.spaceId)} · {a.ownerId === user?.id ? 'owned by you' : 'shared with you'}
                  </p>
                  <p className="meta">Updated {formatDate(a.updatedAt ?? a.createdAt)}</p>
                  <div className="card-actions">
                    {(a.actions ?? []).includes('edit') && (
                      <Link to={appPath(a.resourceId || a.id, 'load-script')} className="button-link" aria-label={`Data load editor of ${a.name}`}>
                        Load script
                      </Link>
                    )}
                    <Link to={appPath(a.resourceId || a.id, 'data-model')} className="button-link" aria-label={`Data model of ${a.name}`}>
                      Data model
                    </Link>
                    {(a.actions ?? []).includes('reload') && (
                      <button type="button" onClick={() => setReloading(a)} aria-label={`Reloads of ${a.name}`}>
                        Reload
                      </button>
                    )}
                    {(a.actions ?? []).includes('edit') && (
                      <button type="button" onClick={() => setRenaming(a)} aria-label={`Rename ${a.name}`}>
                        Rename
                      </button>
                    )}
                    {canMove(a) && (
                      <button type="button" onClick={() => setMoving(a)} aria-label={`Move ${a.name}`}>
                        Move
                      </button>
                    )}
                    {canPublish(a) && (
                      <button type="button" onClick={() => setPublishing(a)} aria-label={`Publish ${a.name}`}>
                        Publish
                      </button>
                    )}
                    {(a.actions ?? []).includes('delete') &&
                      (deleting === a.id ? (
                        <>
                          <button type="button" className="danger" onClick={() => void removeApp(a)} autoFocus>
                            Yes, delete
                          </button>
                          <button type="button" onClick={() => setDeleting(null)}>
                            Keep
                          </button>
                        </>
                      ) : (
                        <button type="button" onClick={() => setDeleting(a.id)} aria-label={`Delete ${a.name}`}>
                          Delete
                        </button>
                      ))}
                  </div>
                </li>
              ))}
            </ul>
          )}
          {next && (
            <button type="button" onClick={() => void loadApps(next)}>
              Show more
            </button>
          )}
          {spaceId ? (
            <DataFiles
              spaceId={spaceId}
              canUpload={spaceId === PERSONAL ? personalActions.includes('create') : isAdmin || (spaces.find((x) => x.id === spaceId)?.meta?.actions ?? []).includes('create')}
            />
          ) : (
            <p className="hint">Select a space to see and upload its data files.</p>
          )}
        </div>
      </div>
      <SpaceMembers space={membersOf} onClose={() => setMembersOf(null)} />
      <Reloads app={reloading} onClose={() => setReloading(null)} />
      <PublishAppDialog
        app={publishing}
        targets={publishTargets}
        onClose={() => setPublishing(null)}
        onDone={(published, space) => {
          setPublishing(null);
          setStatus(`App “${published.attributes.name}” was published to “${space.name}”.`);
          void loadApps();
        }}
      />
      <MoveAppDialog
        app={moving}
        targets={moving ? moveTargets(moving) : []}
        personal={!!moving?.spaceId && moving.ownerId === user?.id}
        onClose={() => setMoving(null)}
        onDone={(name, where) => {
          setMoving(null);
          setStatus(`App “${name}” was moved to ${where}.`);
          void loadApps();
        }}
      />
      <RenameAppDialog
        app={renaming}
        onClose={() => setRenaming(null)}
        onDone={(name) => {
          setRenaming(null);
          setStatus(`The app was renamed to “${name}”.`);
          void loadApps();
        }}
      />
      <CreateAppDialog
        open={dialog === 'app'}
        spaces={creatable}
        personal={personalActions.includes('create')}
        defaultSpace={spaceId && spaceId !== PERSONAL ? spaceId : ''}
        onClose={() => setDialog(null)}
        onCreated={(app) => {
          setDialog(null);
          setStatus(`App “${app.attributes.name}” was created.`);
          void loadApps();
        }}
      />
      <CreateSpaceDialog
        open={dialog === 'space'}
        isAdmin={isAdmin}
        onClose={() => setDialog(null)}
        onCreated={(s) => {
          setDialog(null);
          setStatus(`Space “${s.name}” was created.`);
          void loadSpaces();
        }}
      />
    </section>
  );
}

function CreateAppDialog(props: { open: boolean; spaces: Space[]; personal: boolean; defaultSpace: string; onClose: () => void; onCreated: (a: NxApp) => void }) {
  const [name, setName] = useState('');
  const [space, setSpace] = useState(props.defaultSpace);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (props.open) {
      setSpace(props.defaultSpace || (props.personal ? '' : props.spaces[0]?.id ?? ''));
      setError(null);
    }
  }, [props.open, props.defaultSpace, props.personal, props.spaces]);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!name.trim()) {
      setError('Give the app a name.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const attributes: Record<string, string> = { name: name.trim() };
      if (space) attributes.spaceId = space;
      const app = await api<NxApp>('POST', '/api/v1/apps', { body: { attributes } });
      setName('');
      props.onCreated(app);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog title="Create an app" open={props.open} onClose={props.onClose}>
      <form onSubmit={submit} noValidate>
        {error && <Notice kind="error">{error}</Notice>}
        <Field label="App name" value={name} onChange={(e) => setName(e.target.value)} maxLength={256} autoFocus />
        <SelectField label="Space" value={space} onChange={(e) => setSpace(e.target.value)}>
          {props.personal && <option value="">Personal</option>}
          {props.spaces.map((s) => (
            <option key={s.id} value={s.id}>
              {s.name} ({s.type})
            </option>
          ))}
        </SelectField>
        <SubmitCancel busy={busy} label="Create" busyLabel="Creating…" onCancel={props.onClose} />
      </form>
    </Dialog>
  );
}

function CreateSpaceDialog(props: { open: boolean; isAdmin: boolean; onClose: () => void; onCreated: (s: Space) => void }) {
  const [name, setName] = useState('');
  const [type, setType] = useState('shared');
  const [description, setDescription] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!name.trim()) {
      setError('Give the space a name.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const body: Record<string, string> = { name: name.trim(), type };
      if (description.trim()) body.description = description.trim();
      const s = await api<Space>('POST', '/api/v1/spaces', { body });
      setName('');
      setDescription('');
      props.onCreated(s);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog title="Create a space" open={props.open} onClose={props.onClose}>
      <form onSubmit={submit} noValidate>
        {error && <Notice kind="error">{error}</Notice>}
        <Field label="Space name" value={name} onChange={(e) => setName(e.target.value)} maxLength={256} autoFocus />
        <SelectField label="Type" value={type} onChange={(e) => setType(e.target.value)}>
          <option value="shared">Shared: work on apps together</option>
          {props.isAdmin && <option value="managed">Managed: publish apps to consumers</option>}
          {props.isAdmin && <option value="data">Data: share data files</option>}
        </SelectField>
        <Field label="Description (optional)" value={description} onChange={(e) => setDescription(e.target.value)} />
        <SubmitCancel busy={busy} label="Create" busyLabel="Creating…" onCancel={props.onClose} />
      </form>
    </Dialog>
  );
}

function RenameAppDialog({ app, onClose, onDone }: { app: Item | null; onClose: () => void; onDone: (name: string) => void }) {
  const [name, setName] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setName(app?.name ?? '');
    setError(null);
  }, [app]);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!app) return;
    if (!name.trim()) {
      setError('The app needs a name.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await api('PUT', `/api/v1/apps/${encodeURIComponent(app.resourceId || app.id)}`, { body: { attributes: { name: name.trim() } } });
      onDone(name.trim());
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog title="Rename app" open={app !== null} onClose={onClose}>
      <form onSubmit={submit} noValidate>
        {error && <Notice kind="error">{error}</Notice>}
        <Field label="New name" value={name} onChange={(e) => setName(e.target.value)} maxLength={256} autoFocus />
        <div className="actions">
          <button type="submit" className="primary" disabled={busy} aria-busy={busy}>
            Rename
          </button>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
        </div>
      </form>
    </Dialog>
  );
}

/** Publish a copy of the app to a managed space (POST /api/v1/apps/{id}/publish). */
function PublishAppDialog({ app, targets, onClose, onDone }: { app: Item | null; targets: Space[]; onClose: () => void; onDone: (a: NxApp, s: Space) => void }) {
  const [space, setSpace] = useState('');
  const [name, setName] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setSpace(targets[0]?.id ?? '');
    setName(app?.name ?? '');
    setError(null);
  }, [app, targets]);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!app) return;
    const target = targets.find((t) => t.id === space);
    if (!target) {
      setError('Choose a managed space to publish to.');
      return;
    }
    if (!name.trim()) {
      setError('The published app needs a name.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const published = await api<NxApp>('POST', `/api/v1/apps/${encodeURIComponent(app.resourceId || app.id)}/publish`, {
        body: { spaceId: target.id, attributes: { name: name.trim() } },
      });
      onDone(published, target);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog title="Publish app" open={app !== null} onClose={onClose}>
      <form onSubmit={submit} noValidate>
        <p className="hint">A published app is a read-only copy in a managed space: its consumers see the sheets, the data and the public bookmarks.</p>
        {error && <Notice kind="error">{error}</Notice>}
        <SelectField label="Managed space" value={space} onChange={(e) => setSpace(e.target.value)} autoFocus>
          {targets.map((s) => (
            <option key={s.id} value={s.id}>
              {s.name}
            </option>
          ))}
        </SelectField>
        <Field label="Name of the published app" value={name} onChange={(e) => setName(e.target.value)} maxLength={256} />
        <SubmitCancel busy={busy} label="Publish" busyLabel="Publishing…" onCancel={onClose} />
      </form>
    </Dialog>
  );
}

/** Move the app to another shared space (PUT /api/v1/apps/{id}/space) or back to the owner's
 * personal space (DELETE). */
function MoveAppDialog({ app, targets, personal, onClose, onDone }: { app: Item | null; targets: Space[]; personal: boolean; onClose: () => void; onDone: (name: string, where: string) => void }) {
  const [space, setSpace] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setSpace(targets[0]?.id ?? (personal ? PERSONAL : ''));
    setError(null);
  }, [app, targets, personal]);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!app) return;
    if (!space) {
      setError('Choose where to move the app.');
      return;
    }
    setBusy(true);
    setError(null);
    const path = `/api/v1/apps/${encodeURIComponent(app.resourceId || app.id)}/space`;
    try {
      if (space === PERSONAL) await api('DELETE', path);
      else await api('PUT', path, { body: { spaceId: space } });
      onDone(app.name, space === PERSONAL ? 'your personal space' : `“${targets.find((t) => t.id === space)?.name ?? space}”`);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog title="Move app" open={app !== null} onClose={onClose}>
      <form onSubmit={submit} noValidate>
        {error && <Notice kind="error">{error}</Notice>}
        <SelectField label="Move to" value={space} onChange={(e) => setSpace(e.target.value)} autoFocus>
          {personal && <option value={PERSONAL}>Personal</option>}
          {targets.map((s) => (
            <option key={s.id} value={s.id}>
              {s.name} ({s.type})
            </option>
          ))}
        </SelectField>
        <SubmitCancel busy={busy} label="Move" busyLabel="Moving…" onCancel={onClose} />
      </form>
    </Dialog>
  );
}
