// OIDC identity providers of the tenant (TenantAdmin, /admin/identity-providers): list,
// create (the client secret is write-only: sent once, never shown or returned), activate or
// deactivate, delete, and "Test connection": identity starts a sign-in with the provider
// (GET /api/v1/identity/oidc/{id}/login), which fetches and checks the issuer's discovery
// document server-side; a redirect to the provider means it worked, otherwise identity's
// error says what failed.
import { useCallback, useEffect, useState, type FormEvent } from 'react';
import { api, ApiError, type Page } from '../api';
import { ConfirmButton, Dialog, errorText, Field, formatDate, Notice, SelectField, Spinner, SubmitCancel } from '../components';
import './app-pages.css';

interface Idp {
  id: string;
  protocol: string;
  provider?: string;
  active: boolean;
  description?: string;
  createNewUsersOnLogin?: boolean;
  createdAt?: string;
  options: { discoveryUrl: string; clientId: string; scope?: string; tokenEndpointAuthMethod?: string };
}

type TestResult = { ok: boolean; text: string };

/** The redirect URI to register at the provider for one identity provider. */
export function callbackUrl(id: string): string {
  return `${window.location.origin}/api/v1/identity/oidc/${encodeURIComponent(id)}/callback`;
}

async function testConnection(id: string): Promise<TestResult> {
  let res: Response;
  try {
    res = await fetch(`/api/v1/identity/oidc/${encodeURIComponent(id)}/login?returnto=%2Fadmin%2Fidentity-providers`, {
      credentials: 'same-origin',
      cache: 'no-store',
      redirect: 'manual',
      headers: { Accept: 'application/json' },
    });
  } catch {
    return { ok: false, text: 'Cannot reach Tessera. Check your connection and try again.' };
  }
  if (res.type === 'opaqueredirect' || (res.status >= 300 && res.status < 400)) {
    return { ok: true, text: 'Connection works: identity fetched the discovery document and would send users to the provider to sign in.' };
  }
  let detail = '';
  try {
    const b = (await res.json()) as { errors?: { detail?: string; title?: string }[] };
    detail = b.errors?.[0]?.detail ?? b.errors?.[0]?.title ?? '';
  } catch {
    detail = '';
  }
  return { ok: false, text: `The test failed (HTTP ${res.status})${detail ? `: ${detail}` : '.'}` };
}

export function IdentityProviders() {
  const [idps, setIdps] = useState<Idp[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const [creating, setCreating] = useState(false);
  const [confirm, setConfirm] = useState<string | null>(null);
  const [tests, setTests] = useState<Record<string, TestResult | 'running'>>({});

  const load = useCallback(async () => {
    try {
      setIdps((await api<Page<Idp>>('GET', '/api/v1/identity-providers?limit=100')).data);
    } catch (e) {
      setError(errorText(e));
      setIdps([]);
    }
  }, []);

  useEffect(() => {
    document.title = 'Identity providers · Tessera';
    void load();
  }, [load]);

  const setActive = async (p: Idp, active: boolean) => {
    setError(null);
    setStatus(null);
    try {
      await api('PATCH', `/api/v1/identity-providers/${encodeURIComponent(p.id)}`, { body: [{ op: 'replace', path: '/active', value: active }] });
      setStatus(`${p.description || p.options.discoveryUrl} is ${active ? 'active' : 'inactive'}.`);
      await load();
    } catch (e) {
      setError(errorText(e));
    }
  };

  const remove = async (p: Idp) => {
    setError(null);
    setStatus(null);
    try {
      await api('DELETE', `/api/v1/identity-providers/${encodeURIComponent(p.id)}`);
      setConfirm(null);
      setStatus(`${p.description || p.options.discoveryUrl} was deleted.`);
      await load();
    } catch (e) {
      setError(errorText(e));
    }
  };

  const test = async (p: Idp) => {
    setTests((t) => ({ ...t, [p.id]: 'running' }));
    const r = await testConnection(p.id);
    setTests((t) => ({ ...t, [p.id]: r }));
  };

  return (
    <section aria-labelledby="idp-title">
      <div className="page-head">
        <div>
          <h1 id="idp-title">Identity providers</h1>
          <p className="lead">Let people sign in with your organisation's OpenID Connect provider. Each active provider gets a “Sign in with …” button on the sign-in page.</p>
        </div>
        <button type="button" className="primary" onClick={() => setCreating(true)}>
          Add identity provider
        </button>
      </div>
      {error && <Notice kind="error" testId="idp-error">{error}</Notice>}
      {status && <Notice kind="success" testId="idp-status">{status}</Notice>}
      {idps === null ? (
        <Spinner label="Loading identity providers…" />
      ) : idps.length === 0 ? (
        <p className="empty" data-testid="idp-empty">
          No identity providers yet: people sign in with their Tessera password.
        </p>
      ) : (
        <div className="table-wrap">
          <table data-testid="idp-list">
            <thead>
              <tr>
                <th scope="col">Provider</th>
                <th scope="col">Client id</th>
                <th scope="col">State</th>
                <th scope="col">Created</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {idps.map((p) => {
                const t = tests[p.id];
                const label = p.description || p.options.discoveryUrl;
                return (
                  <tr key={p.id} data-testid="idp-row">
                    <th scope="row">
                      {p.description || '(no name)'}
                      <div className="hint token-inline">{p.options.discoveryUrl}</div>
                      <div className="hint token-inline">
                        Redirect URI: <code>{callbackUrl(p.id)}</code>
                      </div>
                      {t && t !== 'running' && (
                        <div className={t.ok ? 'test-ok' : 'field-error'} role="status" data-testid="idp-test-result">
                          {t.text}
                        </div>
                      )}
                    </th>
                    <td>{p.options.clientId}</td>
                    <td>
                      <span className={`badge badge-${p.active ? 'active' : 'disabled'}`}>{p.active ? 'active' : 'inactive'}</span>
                    </td>
                    <td>{formatDate(p.createdAt)}</td>
                    <td className="cell-actions">
                      <button type="button" onClick={() => void test(p)} disabled={t === 'running'} aria-busy={t === 'running'} aria-label={`Test connection of ${label}`}>
                        {t === 'running' ? 'Testing…' : 'Test connection'}
                      </button>{' '}
                      <button type="button" onClick={() => void setActive(p, !p.active)} aria-label={`${p.active ? 'Deactivate' : 'Activate'} ${label}`}>
                        {p.active ? 'Deactivate' : 'Activate'}
                      </button>{' '}
                      <ConfirmButton
                        asking={confirm === p.id}
                        onAsk={() => setConfirm(p.id)}
                        onConfirm={() => void remove(p)}
                        onCancel={() => setConfirm(null)}
                        label="Delete"
                        ariaLabel={`Delete ${label}`}
                        cancelLabel="Keep"
                      />
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      <CreateIdpDialog
        open={creating}
        onClose={() => setCreating(false)}
        onCreated={(p) => {
          setCreating(false);
          setStatus(`${p.description || p.options.discoveryUrl} was added. Register ${callbackUrl(p.id)} as its redirect URI at the provider.`);
          void load();
        }}
      />
    </section>
  );
}

function CreateIdpDialog({ open, onClose, onCreated }: { open: boolean; onClose: () => void; onCreated: (p: Idp) => void }) {
  const [description, setDescription] = useState('');
  const [discoveryUrl, setDiscoveryUrl] = useState('');
  const [clientId, setClientId] = useState('');
  const [clientSecret, setClientSecret] = useState('');
  const [scope, setScope] = useState('openid profile email');
  const [method, setMethod] = useState('client_secret_basic');
  const [createUsers, setCreateUsers] = useState(true);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    if (open) {
      setError(null);
      setClientSecret('');
    }
  }, [open]);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    if (!description.trim() || !discoveryUrl.trim() || !clientId.trim() || !clientSecret) {
      setError('Enter a name, the discovery URL, the client id and the client secret.');
      return;
    }
    if (!/\/\.well-known\/openid-configuration$/.test(discoveryUrl.trim())) {
      setError('The discovery URL ends in /.well-known/openid-configuration.');
      return;
    }
    setBusy(true);
    try {
      const p = await api<Idp>('POST', '/api/v1/identity-providers', {
        body: {
          protocol: 'OIDC',
          provider: 'generic',
          interactive: true,
          active: true,
          description: description.trim(),
          createNewUsersOnLogin: createUsers,
          options: { discoveryUrl: discoveryUrl.trim(), clientId: clientId.trim(), clientSecret, scope: scope.trim() || 'openid profile email', tokenEndpointAuthMethod: method },
        },
      });
      setDescription('');
      setDiscoveryUrl('');
      setClientId('');
      setClientSecret('');
      onCreated(p);
    } catch (err) {
      setError(err instanceof ApiError && err.status === 400 ? `Not saved: ${err.detail || err.message}` : errorText(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog title="Add an OpenID Connect provider" open={open} onClose={onClose}>
      <form onSubmit={submit} noValidate>
        {error && <Notice kind="error" testId="idp-form-error">{error}</Notice>}
        <Field label="Name (shown on the sign-in button)" value={description} onChange={(e) => setDescription(e.target.value)} maxLength={1024} autoFocus />
        <Field
          label="Discovery URL"
          type="url"
          value={discoveryUrl}
          onChange={(e) => setDiscoveryUrl(e.target.value)}
          placeholder="https://login.example.com/.well-known/openid-configuration"
          hint="The issuer's URL followed by /.well-known/openid-configuration."
        />
        <Field label="Client id" value={clientId} onChange={(e) => setClientId(e.target.value)} maxLength={256} autoComplete="off" />
        <Field
          label="Client secret"
          type="password"
          value={clientSecret}
          onChange={(e) => setClientSecret(e.target.value)}
          maxLength={1024}
          autoComplete="new-password"
          hint="Stored encrypted and never shown again."
        />
        <Field label="Scopes" value={scope} onChange={(e) => setScope(e.target.value)} />
        <SelectField label="Client authentication" value={method} onChange={(e) => setMethod(e.target.value)}>
          <option value="client_secret_basic">HTTP Basic (client_secret_basic)</option>
          <option value="client_secret_post">In the form body (client_secret_post)</option>
        </SelectField>
        <label className="check">
          <input type="checkbox" checked={createUsers} onChange={(e) => setCreateUsers(e.target.checked)} /> Create a Tessera user at a person's first sign-in
        </label>
        <SubmitCancel busy={busy} label="Add" busyLabel="Adding…" onCancel={onClose} />
      </form>
    </Dialog>
  );
}
