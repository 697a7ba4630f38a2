// Groups of the tenant (TenantAdmin): list, create with roles (members of a group hold its
// roles), delete. Membership is edited per user (Users → Edit).
import { useCallback, useEffect, useState, type FormEvent } from 'react';
import { api, linkPath, type Page, type Role } from '../api';
import { ConfirmButton, errorText, Field, formatDate, Notice, Spinner } from '../components';
import { useSession } from '../session';
import { ASSIGNABLE } from './Users';

export interface Group {
  id: string;
  name: string;
  description?: string;
  status?: string;
  assignedRoles?: Role[];
  createdAt?: string;
}

export function Groups() {
  const { isAdmin } = useSession();
  const [groups, setGroups] = useState<Group[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [roles, setRoles] = useState<string[]>([]);
  const [busy, setBusy] = useState(false);
  const [confirming, setConfirming] = useState<string | null>(null);

  const load = useCallback(async (cursor?: string) => {
    try {
      const page = await api<Page<Group>>('GET', cursor ?? '/api/v1/groups?limit=100');
      setGroups((prev) => (cursor && prev ? [...prev, ...page.data] : page.data));
      setNext(page.links?.next ? linkPath(page.links.next.href) : null);
    } catch (e) {
      setError(errorText(e));
      if (!cursor) setGroups([]);
    }
  }, []);

  useEffect(() => {
    document.title = 'Groups · Tessera';
    if (isAdmin) void load();
  }, [isAdmin, load]);

  if (!isAdmin) {
    return (
      <section aria-labelledby="groups-title">
        <h1 id="groups-title">Groups</h1>
        <Notice kind="info">Only a tenant administrator (TenantAdmin role) can manage groups.</Notice>
      </section>
    );
  }

  const create = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setStatus(null);
    if (!name.trim()) {
      setError('Give the group a name.');
      return;
    }
    setBusy(true);
    try {
      const body: Record<string, unknown> = { name: name.trim(), assignedRoles: roles.map((r) => ({ name: r })) };
      if (description.trim()) body.description = description.trim();
      await api('POST', '/api/v1/groups', { body });
      setStatus(`Group “${name.trim()}” was created.`);
      setName('');
      setDescription('');
      setRoles([]);
      await load();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  const remove = async (g: Group) => {
    setError(null);
    try {
      await api('DELETE', `/api/v1/groups/${encodeURIComponent(g.id)}`);
      setConfirming(null);
      setStatus(`Group “${g.name}” was deleted; its members no longer hold its roles.`);
      await load();
    } catch (err) {
      setError(errorText(err));
    }
  };

  return (
    <section aria-labelledby="groups-title">
      <h1 id="groups-title">Groups</h1>
      <p className="lead">Members of a group hold the group's roles. Add people to groups from Users → Edit.</p>
      <form className="card inline-form" onSubmit={create} aria-labelledby="new-group-title" noValidate>
        <h2 id="new-group-title">Create a group</h2>
        <div className="row">
          <Field label="Group name" value={name} onChange={(e) => setName(e.target.value)} maxLength={256} />
          <Field label="Description (optional)" value={description} onChange={(e) => setDescription(e.target.value)} />
        </div>
        <fieldset>
          <legend>Roles of its members</legend>
          {ASSIGNABLE.map((r) => (
            <label key={r} className="check inline">
              <input type="checkbox" checked={roles.includes(r)} onChange={(e) => setRoles((p) => (e.target.checked ? [...p, r] : p.filter((x) => x !== r)))} /> {r}
            </label>
          ))}
        </fieldset>
        <button type="submit" className="primary" disabled={busy} aria-busy={busy}>
          Create group
        </button>
      </form>
      {error && <Notice kind="error" testId="groups-error">{error}</Notice>}
      {status && <Notice kind="success" testId="groups-status">{status}</Notice>}
      {groups === null ? (
        <Spinner label="Loading groups…" />
      ) : groups.length === 0 ? (
        <p className="empty">No groups yet.</p>
      ) : (
        <div className="table-wrap">
          <table aria-labelledby="groups-title" data-testid="groups-table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Roles</th>
                <th scope="col">Status</th>
                <th scope="col">Created</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {groups.map((g) => (
                <tr key={g.id}>
                  <th scope="row">
                    {g.name}
                    {g.description && <div className="hint">{g.description}</div>}
                  </th>
                  <td>{g.assignedRoles?.length ? g.assignedRoles.map((r) => r.name).join(', ') : '—'}</td>
                  <td>
                    <span className={`badge badge-${g.status ?? 'active'}`}>{g.status ?? 'active'}</span>
                  </td>
                  <td>{formatDate(g.createdAt)}</td>
                  <td className="cell-actions">
                    <ConfirmButton
                      asking={confirming === g.id}
                      onAsk={() => setConfirming(g.id)}
                      onConfirm={() => void remove(g)}
                      onCancel={() => setConfirming(null)}
                      label="Delete"
                      ariaLabel={`Delete group ${g.name}`}
                    />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {next && (
        <button type="button" onClick={() => void load(next)}>
          Show more
        </button>
      )}
    </section>
  );
}
