// Members of a space (GET/POST/DELETE /api/v1/spaces/{id}/assignments), for callers who may
// manage it: list who holds which space roles, add a user with roles from the space type's
// assignable roles, remove a member. The owner holds every role without an assignment.
import { useEffect, useState, type FormEvent } from 'react';
import { api, type Page, type Space, type User } from '../api';
import { Dialog, errorText, Notice, SelectField } from '../components';

interface Assignment {
  id: string;
  type: string;
  assigneeId: string;
  roles: string[];
}

export function SpaceMembers({ space, onClose }: { space: Space | null; onClose: () => void }) {
  const [members, setMembers] = useState<Assignment[] | null>(null);
  const [users, setUsers] = useState<User[]>([]);
  const [assignee, setAssignee] = useState('');
  const [roles, setRoles] = useState<string[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const assignable = space?.meta?.assignableRoles ?? [];

  const load = async (id: string) => {
    try {
      setMembers((await api<Page<Assignment>>('GET', `/api/v1/spaces/${encodeURIComponent(id)}/assignments?limit=100`)).data);
    } catch (e) {
      setError(errorText(e));
      setMembers([]);
    }
  };

  useEffect(() => {
    setMembers(null);
    setError(null);
    setStatus(null);
    setAssignee('');
    setRoles([]);
    if (!space) return;
    void load(space.id);
    api<Page<User>>('GET', '/api/v1/users?limit=100')
      .then((p) => setUsers(p.data))
      .catch(() => setUsers([]));
  }, [space]);

  const nameOf = (id: string) => {
    const u = users.find((x) => x.id === id);
    return u ? u.name || u.email : id;
  };

  const add = async (e: FormEvent) => {
    e.preventDefault();
    if (!space) return;
    setError(null);
    setStatus(null);
    if (!assignee) return setError('Choose a user to add.');
    if (roles.length === 0) return setError('Give the member at least one role.');
    setBusy(true);
    try {
      await api('POST', `/api/v1/spaces/${encodeURIComponent(space.id)}/assignments`, { body: { type: 'user', assigneeId: assignee, roles } });
      setStatus(`${nameOf(assignee)} was added.`);
      setAssignee('');
      setRoles([]);
      await load(space.id);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  const remove = async (a: Assignment) => {
    if (!space) return;
    setError(null);
    try {
      await api('DELETE', `/api/v1/spaces/${encodeURIComponent(space.id)}/assignments/${encodeURIComponent(a.id)}`);
      setStatus(`${nameOf(a.assigneeId)} was removed.`);
      await load(space.id);
    } catch (err) {
      setError(errorText(err));
    }
  };

  const candidates = users.filter((u) => u.id !== space?.ownerId && !(members ?? []).some((m) => m.assigneeId === u.id));

  return (
    <Dialog title={space ? `Members of ${space.name}` : 'Members'} open={space !== null} onClose={onClose}>
      {error && <Notice kind="error">{error}</Notice>}
      {status && <Notice kind="success" testId="members-status">{status}</Notice>}
      <p className="hint">The owner ({space?.ownerId ? nameOf(space.ownerId) : '—'}) holds every role.</p>
      {members && members.length > 0 ? (
        <ul className="members" aria-label="Members">
          {members.map((m) => (
            <li key={m.id}>
              <span>
                <strong>{m.type === 'user' ? nameOf(m.assigneeId) : `group ${m.assigneeId}`}</strong> — {m.roles.join(', ')}
              </span>
              <button type="button" onClick={() => void remove(m)} aria-label={`Remove ${nameOf(m.assigneeId)}`}>
                Remove
              </button>
            </li>
          ))}
        </ul>
      ) : (
        members && <p className="empty">No members besides the owner.</p>
      )}
      <form onSubmit={add} noValidate>
        <SelectField label="Add a user" value={assignee} onChange={(e) => setAssignee(e.target.value)}>
          <option value="">Choose a user…</option>
          {candidates.map((u) => (
            <option key={u.id} value={u.id}>
              {u.name || u.email}
            </option>
          ))}
        </SelectField>
        <fieldset>
          <legend>Space roles</legend>
          {assignable.map((r) => (
            <label key={r} className="check inline">
              <input type="checkbox" checked={roles.includes(r)} onChange={(e) => setRoles((p) => (e.target.checked ? [...p, r] : p.filter((x) => x !== r)))} /> {r}
            </label>
          ))}
        </fieldset>
        <div className="actions">
          <button type="submit" className="primary" disabled={busy} aria-busy={busy}>
            Add member
          </button>
          <button type="button" onClick={onClose}>
            Close
          </button>
        </div>
      </form>
    </Dialog>
  );
}
