// API keys: list (a TenantAdmin sees every key of the tenant, others their own), create
// (the token is shown once, in a dialog, and never again), revoke (owner: the key is
// deleted; a TenantAdmin revoking someone else's key marks it revoked).
import { useCallback, useEffect, useState, type FormEvent } from 'react';
import { api, linkPath, type ApiKey, type Page, type User } from '../api';
import { ConfirmButton, Dialog, errorText, Field, formatDate, Notice, SelectField, Spinner } from '../components';
import { useSession } from '../session';

const EXPIRIES: { value: string; label: string }[] = [
  { value: 'P7D', label: '7 days' },
  { value: 'P30D', label: '30 days' },
  { value: 'P90D', label: '90 days' },
  { value: 'P365D', label: '1 year' },
];

export function ApiKeys() {
  const { user, isAdmin, canManageKeys } = useSession();
  const [keys, setKeys] = useState<ApiKey[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [names, setNames] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const [description, setDescription] = useState('');
  const [expiry, setExpiry] = useState('P30D');
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<ApiKey | null>(null);
  const [copied, setCopied] = useState(false);
  const [confirming, setConfirming] = useState<string | null>(null);
  const [filter, setFilter] = useState<'mine' | 'all'>('all');

  const load = useCallback(
    async (cursor?: string) => {
      try {
        const path = cursor ?? (`/api/v1/api-keys?limit=50` + (isAdmin && filter === 'mine' && user ? `&sub=${user.id}` : ''));
        const page = await api<Page<ApiKey>>('GET', path);
        setKeys((prev) => (cursor && prev ? [...prev, ...page.data] : page.data));
        setNext(page.links?.next ? linkPath(page.links.next.href) : null);
        setError(null);
      } catch (e) {
        setError(errorText(e));
        if (!cursor) setKeys([]);
      }
    },
    [isAdmin, filter, user],
  );

  useEffect(() => {
    document.title = 'API keys · Tessera';
    void load();
  }, [load]);

  // Owners' names for the admin view (one users page; unknown ids are shown as ids).
  useEffect(() => {
    if (!isAdmin) return;
    api<Page<User>>('GET', '/api/v1/users?limit=100')
      .then((p) => setNames(Object.fromEntries(p.data.map((u) => [u.id, u.name || u.email]))))
      .catch(() => undefined);
  }, [isAdmin]);

  if (!canManageKeys) {
    return (
      <section aria-labelledby="keys-title">
        <h1 id="keys-title">API keys</h1>
        <Notice kind="info" testId="keys-forbidden">
          Managing API keys needs the Developer or TenantAdmin role. Ask your tenant administrator.
        </Notice>
      </section>
    );
  }

  const create = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setStatus(null);
    if (!description.trim()) {
      setError('Give the key a description, so you can recognise it later.');
      return;
    }
    setCreating(true);
    try {
      const key = await api<ApiKey>('POST', '/api/v1/api-keys', { body: { description: description.trim(), expiry } });
      setCreated(key);
      setCopied(false);
      setDescription('');
      await load();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setCreating(false);
    }
  };

  const revoke = async (key: ApiKey) => {
    setError(null);
    setStatus(null);
    try {
      await api('DELETE', `/api/v1/api-keys/${encodeURIComponent(key.id)}`);
      setStatus(`The key "${key.description}" was revoked. Programs using it can no longer sign in.`);
      setConfirming(null);
      await load();
    } catch (err) {
      setError(errorText(err));
    }
  };

  const copy = async () => {
    if (!created?.token) return;
    try {
      await navigator.clipboard.writeText(created.token);
      setCopied(true);
    } catch {
      // Clipboard access may be refused (insecure origin): the token stays selectable.
      setCopied(false);
    }
  };

  return (
    <section aria-labelledby="keys-title">
      <div className="page-head">
        <h1 id="keys-title">API keys</h1>
        {isAdmin && (
          <SelectField label="Show" value={filter} onChange={(e) => setFilter(e.target.value as 'mine' | 'all')}>
            <option value="all">All keys in the tenant</option>
            <option value="mine">My keys</option>
          </SelectField>
        )}
      </div>
      <p className="lead">
        Programs use an API key as <code>Authorization: Bearer &lt;token&gt;</code>. The token is shown once, when the key is created.
      </p>

      <form className="card inline-form" onSubmit={create} aria-labelledby="new-key-title">
        <h2 id="new-key-title">Create a key</h2>
        <div className="row">
          <Field label="Description" name="description" maxLength={256} value={description} onChange={(e) => setDescription(e.target.value)} placeholder="e.g. nightly export script" />
          <SelectField label="Expires after" name="expiry" value={expiry} onChange={(e) => setExpiry(e.target.value)}>
            {EXPIRIES.map((x) => (
              <option key={x.value} value={x.value}>
                {x.label}
              </option>
            ))}
          </SelectField>
          <button type="submit" className="primary" disabled={creating} aria-busy={creating}>
            {creating ? 'Creating…' : 'Create key'}
          </button>
        </div>
      </form>

      {error && (
        <Notice kind="error" testId="keys-error">
          {error}
        </Notice>
      )}
      {status && (
        <Notice kind="success" testId="keys-status">
          {status}
        </Notice>
      )}

      {keys === null ? (
        <Spinner label="Loading API keys…" />
      ) : keys.length === 0 ? (
        <p className="empty" data-testid="keys-empty">
          No API keys yet.
        </p>
      ) : (
        <div className="table-wrap">
          <table aria-labelledby="keys-title" data-testid="keys-table">
            <thead>
              <tr>
                <th scope="col">Description</th>
                {isAdmin && <th scope="col">Owner</th>}
                <th scope="col">Status</th>
                <th scope="col">Created</th>
                <th scope="col">Expires</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {keys.map((k) => (
                <tr key={k.id} data-key-id={k.id}>
                  <th scope="row">{k.description}</th>
                  {isAdmin && <td>{k.sub === user?.id ? 'You' : names[k.sub] ?? k.sub}</td>}
                  <td>
                    <span className={`badge badge-${k.status}`}>{k.status}</span>
                  </td>
                  <td>{formatDate(k.created)}</td>
                  <td>{k.expiry ? formatDate(k.expiry) : 'Never'}</td>
                  <td className="cell-actions">
                    {k.status === 'active' && (
                      <ConfirmButton
                        asking={confirming === k.id}
                        onAsk={() => setConfirming(k.id)}
                        onConfirm={() => void revoke(k)}
                        onCancel={() => setConfirming(null)}
                        label="Revoke"
                        ariaLabel={`Revoke ${k.description}`}
                        confirmLabel="Yes, revoke"
                        groupLabel={`Confirm revoking ${k.description}`}
                      />
                    )}
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

      <Dialog title="Copy your new API key" open={created !== null} onClose={() => setCreated(null)}>
        <Notice kind="warning">This is the only time the token is shown. Copy it now and store it somewhere safe.</Notice>
        <p>
          Key: <strong>{created?.description}</strong>
        </p>
        <label htmlFor="new-token">Token</label>
        <textarea id="new-token" className="token" readOnly rows={3} value={created?.token ?? ''} data-testid="new-token" onFocus={(e) => e.currentTarget.select()} />
        <div className="actions">
          <button type="button" onClick={() => void copy()}>
            {copied ? 'Copied' : 'Copy to clipboard'}
          </button>
          <button type="button" className="primary" onClick={() => setCreated(null)}>
            I have copied the token
          </button>
        </div>
      </Dialog>
    </section>
  );
}
