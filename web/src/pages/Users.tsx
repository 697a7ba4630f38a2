// Users of the tenant (TenantAdmin): list with paging, invite a user with roles (the
// invitation link is shown once, like an API key's token, until a mailer sends it).
import { useCallback, useEffect, useState, type FormEvent } from 'react';
import { api, linkPath, type Page, type Role, type User } from '../api';
import { Dialog, errorText, Field, formatDate, Notice, Spinner, SubmitCancel } from '../components';
import { useSession } from '../session';

export const ASSIGNABLE = ['TenantAdmin', 'AuditAdmin', 'Developer'];

export function Users() {
  const { isAdmin, user: me } = useSession();
  const [users, setUsers] = useState<User[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [query, setQuery] = useState('');
  const [inviteOpen, setInviteOpen] = useState(false);
  const [email, setEmail] = useState('');
  const [name, setName] = useState('');
  const [roles, setRoles] = useState<string[]>([]);
  const [busy, setBusy] = useState(false);
  const [inviteError, setInviteError] = useState<string | null>(null);
  const [invited, setInvited] = useState<User | null>(null);
  const [editing, setEditing] = useState<User | null>(null);
  const [status, setStatus] = useState<string | null>(null);

  const load = useCallback(async (cursor?: string) => {
    try {
      const page = await api<Page<User>>('GET', cursor ?? '/api/v1/users?limit=50');
      setUsers((prev) => (cursor && prev ? [...prev, ...page.data] : page.data));
      setNext(page.links?.next ? linkPath(page.links.next.href) : null);
      setError(null);
    } catch (e) {
      setError(errorText(e));
      if (!cursor) setUsers([]);
    }
  }, []);

  useEffect(() => {
    document.title = 'Users · Tessera';
    if (isAdmin) void load();
  }, [load, isAdmin]);

  if (!isAdmin) {
    return (
      <section aria-labelledby="users-title">
        <h1 id="users-title">Users</h1>
        <Notice kind="info" testId="users-forbidden">
          Only a tenant administrator (TenantAdmin role) can manage users.
        </Notice>
      </section>
    );
  }

  const invite = async (e: FormEvent) => {
    e.preventDefault();
    setInviteError(null);
    if (!/^[^@\s]+@[^@\s]+$/.test(email.trim())) {
      setInviteError('Enter a valid email address.');
      return;
    }
    setBusy(true);
    try {
      const body: Record<string, unknown> = { email: email.trim(), status: 'invited', assignedRoles: roles.map((r) => ({ name: r })) };
      if (name.trim()) body.name = name.trim();
      const u = await api<User>('POST', '/api/v1/users', { body });
      setInvited(u);
      setInviteOpen(false);
      setEmail('');
      setName('');
      setRoles([]);
      await load();
    } catch (err) {
      setInviteError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  const q = query.trim().toLowerCase();
  const shown = (users ?? []).filter((u) => !q || u.name?.toLowerCase().includes(q) || u.email?.toLowerCase().includes(q));
  const roleNames = (rs?: Role[]) => (rs && rs.length ? rs.map((r) => r.name).join(', ') : 'User');

  return (
    <section aria-labelledby="users-title">
      <div className="page-head">
        <h1 id="users-title">Users</h1>
        <button type="button" className="primary" onClick={() => setInviteOpen(true)}>
          Invite user
        </button>
      </div>
      <div className="toolbar">
        <Field label="Search users" type="search" value={query} onChange={(e) => setQuery(e.target.value)} placeholder="Name or email" />
      </div>
      {error && (
        <Notice kind="error" testId="users-error">
          {error}
        </Notice>
      )}
      {status && (
        <Notice kind="success" testId="users-status">
          {status}
        </Notice>
      )}
      {invited && (
        <Notice kind="success" testId="invite-result">
          {invited.email} was invited. Send them this link (shown once) to set a password:{' '}
          <code className="token-inline" data-testid="invite-link">
            {invited.inviteLink}
          </code>
        </Notice>
      )}
      {users === null ? (
        <Spinner label="Loading users…" />
      ) : (
        <div className="table-wrap">
          <table aria-labelledby="users-title" data-testid="users-table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Email</th>
                <th scope="col">Roles</th>
                <th scope="col">Status</th>
                <th scope="col">Created</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {shown.map((u) => (
                <tr key={u.id}>
                  <th scope="row">{u.name}</th>
                  <td>{u.email ?? (u.serviceUser ? 'service user' : '—')}</td>
                  <td>{roleNames(u.assignedRoles)}</td>
                  <td>
                    <span className={`badge badge-${u.status}`}>{u.status}</span>
                  </td>
                  <td>{formatDate(u.createdAt)}</td>
                  <td className="cell-actions">
                    <button type="button" onClick={() => setEditing(u)} aria-label={`Edit ${u.name || u.email}`}>
                      Edit
                    </button>
                  </td>
                </tr>
              ))}
              {shown.length === 0 && (
                <tr>
                  <td colSpan={6} className="empty">
                    No users match “{query}”.
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        </div>
      )}
      {next && (
        <button type="button" onClick={() => void load(next)}>
          Show more
        </button>
      )}

      <EditUserDialog
        user={editing}
        self={editing !== null && editing.id === me?.id}
        onClose={() => setEditing(null)}
        onDone={(msg) => {
          setEditing(null);
          setStatus(msg);
          void load();
        }}
      />
      <Dialog title="Invite a user" open={inviteOpen} onClose={() => setInviteOpen(false)}>
        <form onSubmit={invite} noValidate>
          {inviteError && <Notice kind="error">{inviteError}</Notice>}
          <Field label="Email" type="email" required value={email} onChange={(e) => setEmail(e.target.value)} autoFocus />
          <Field label="Name (optional)" value={name} onChange={(e) => setName(e.target.value)} />
          <fieldset>
            <legend>Roles (every user has the User role)</legend>
            {ASSIGNABLE.map((r) => (
              <label key={r} className="check">
                <input
                  type="checkbox"
                  checked={roles.includes(r)}
                  onChange={(e) => setRoles((prev) => (e.target.checked ? [...prev, r] : prev.filter((x) => x !== r)))}
                />{' '}
                {r}
              </label>
            ))}
          </fieldset>
          <SubmitCancel busy={busy} label="Invite" busyLabel="Inviting…" onCancel={() => setInviteOpen(false)} />
        </form>
      </Dialog>
    </section>
  );
}

/** Roles and status of one user (PATCH /api/v1/users/{id}), or delete it. An admin cannot
 * remove their own TenantAdmin role, disable or delete themselves: those controls are off. */
function EditUserDialog({ user, self, onClose, onDone }: { user: User | null; self: boolean; onClose: () => void; onDone: (msg: string) => void }) {
  const [roles, setRoles] = useState<string[]>([]);
  const [disabled, setDisabled] = useState(false);
  const [busy, setBusy] = useState(false);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [fresh, setFresh] = useState<User | null>(null);
  const [allGroups, setAllGroups] = useState<{ id: string; name: string }[]>([]);
  const [groups, setGroups] = useState<string[]>([]);
  useEffect(() => {
    if (!user) return;
    api<Page<{ id: string; name: string }>>('GET', '/api/v1/groups?limit=100')
      .then((p) => setAllGroups(p.data))
      .catch(() => setAllGroups([]));
  }, [user]);
  useEffect(() => {
    setFresh(user);
    if (!user) return;
    setConfirmDelete(false);
    setError(null);
    // The list may be stale (an invitation accepted since): edit what the server has now.
    let live = true;
    api<User>('GET', `/api/v1/users/${encodeURIComponent(user.id)}`)
      .then((u) => live && setFresh(u))
      .catch(() => undefined);
    return () => {
      live = false;
    };
  }, [user]);
  useEffect(() => {
    if (!fresh) return;
    setRoles((fresh.assignedRoles ?? []).map((r) => r.name).filter((n) => ASSIGNABLE.includes(n)));
    setDisabled(fresh.status === 'disabled');
    setGroups((fresh.assignedGroups ?? []).map((g) => g.id));
  }, [fresh]);
  if (!user || !fresh) return <Dialog title="Edit user" open={false} onClose={onClose}>{null}</Dialog>;
  const who = user.name || user.email;
  const save = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const ops: unknown[] = [{ op: 'replace', path: '/assignedRoles', value: roles.map((r) => ({ name: r })) }];
      if (allGroups.length > 0) ops.push({ op: 'replace', path: '/assignedGroups', value: groups.map((id) => ({ id })) });
      if (fresh.status === 'active' || fresh.status === 'disabled') ops.push({ op: 'replace', path: '/status', value: disabled ? 'disabled' : 'active' });
      await api('PATCH', `/api/v1/users/${encodeURIComponent(user.id)}`, { body: ops });
      onDone(`${who} was updated.`);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  const remove = async () => {
    setBusy(true);
    setError(null);
    try {
      await api('DELETE', `/api/v1/users/${encodeURIComponent(user.id)}`);
      onDone(`${who} was deleted.`);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog title={`Edit ${who}`} open onClose={onClose}>
      <form onSubmit={save} noValidate>
        {error && <Notice kind="error">{error}</Notice>}
        <p className="hint">{user.email}</p>
        <fieldset>
          <legend>Roles (every user has the User role)</legend>
          {ASSIGNABLE.map((r) => {
            const locked = self && r === 'TenantAdmin';
            return (
              <label key={r} className="check">
                <input
                  type="checkbox"
                  checked={roles.includes(r)}
                  disabled={locked}
                  onChange={(e) => setRoles((prev) => (e.target.checked ? [...prev, r] : prev.filter((x) => x !== r)))}
                />{' '}
                {r}
                {locked && <span className="hint"> (you cannot remove your own admin role)</span>}
              </label>
            );
          })}
        </fieldset>
        {allGroups.length > 0 && (
          <fieldset>
            <legend>Groups</legend>
            {allGroups.map((g) => (
              <label key={g.id} className="check">
                <input type="checkbox" checked={groups.includes(g.id)} onChange={(e) => setGroups((p) => (e.target.checked ? [...p, g.id] : p.filter((x) => x !== g.id)))} />{' '}
                {g.name}
              </label>
            ))}
          </fieldset>
        )}
        {(fresh.status === 'active' || fresh.status === 'disabled') && !self && (
          <label className="check">
            <input type="checkbox" checked={disabled} onChange={(e) => setDisabled(e.target.checked)} /> Disabled (cannot sign in)
          </label>
        )}
        <div className="actions">
          <button type="submit" className="primary" disabled={busy} aria-busy={busy}>
            Save
          </button>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          {!self &&
            (confirmDelete ? (
              <>
                <button type="button" className="danger" onClick={() => void remove()} disabled={busy} autoFocus>
                  Yes, delete {who}
                </button>
                <button type="button" onClick={() => setConfirmDelete(false)}>
                  Keep
                </button>
              </>
            ) : (
              <button type="button" className="danger-outline" onClick={() => setConfirmDelete(true)}>
                Delete user…
              </button>
            ))}
        </div>
      </form>
    </Dialog>
  );
}
