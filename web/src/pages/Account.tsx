// The signed-in user's own account: profile, password change (POST /api/v1/identity/password;
// other sessions end, this one stays) and two-step verification (TOTP: enrol with
// POST /api/v1/identity/mfa/totp, confirm a code with .../confirm).
import { useEffect, useState, type FormEvent } from 'react';
import { api, ApiError } from '../api';
import { errorText, Field, Notice } from '../components';
import { useSession } from '../session';

export function Account() {
  const { user } = useSession();
  useEffect(() => {
    document.title = 'Your account · Tessera';
  }, []);
  if (!user) return null;
  const roles = (user.assignedRoles ?? []).map((r) => r.name);
  return (
    <section aria-labelledby="account-title" className="account">
      <h1 id="account-title">Your account</h1>
      <dl className="card profile">
        <dt>Name</dt>
        <dd>{user.name}</dd>
        <dt>Email</dt>
        <dd>{user.email}</dd>
        <dt>Roles</dt>
        <dd>{roles.length ? roles.join(', ') : 'User'}</dd>
      </dl>
      <div className="account-grid">
        <PasswordForm />
        <TotpSetup />
      </div>
    </section>
  );
}

function PasswordForm() {
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [again, setAgain] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setDone(false);
    if (next.length < 12) return setError('Choose a new password of at least 12 characters.');
    if (next !== again) return setError('The two new passwords are not the same.');
    setBusy(true);
    try {
      await api('POST', '/api/v1/identity/password', { body: { currentPassword: current, newPassword: next } });
      setDone(true);
      setCurrent('');
      setNext('');
      setAgain('');
    } catch (err) {
      setError(err instanceof ApiError && err.status === 403 ? 'The current password is not correct.' : errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="card" onSubmit={submit} noValidate aria-labelledby="pw-title">
      <h2 id="pw-title">Change password</h2>
      {error && <Notice kind="error">{error}</Notice>}
      {done && <Notice kind="success" testId="password-changed">Your password was changed. Other sessions were signed out.</Notice>}
      <Field label="Current password" type="password" autoComplete="current-password" value={current} onChange={(e) => setCurrent(e.target.value)} />
      <Field label="New password" type="password" autoComplete="new-password" hint="At least 12 characters." value={next} onChange={(e) => setNext(e.target.value)} />
      <Field label="Repeat the new password" type="password" autoComplete="new-password" value={again} onChange={(e) => setAgain(e.target.value)} />
      <button type="submit" className="primary" disabled={busy} aria-busy={busy}>
        Change password
      </button>
    </form>
  );
}

function TotpSetup() {
  const [secret, setSecret] = useState<{ secret: string; otpauthUri: string } | null>(null);
  const [code, setCode] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [state, setState] = useState<'idle' | 'confirm' | 'done' | 'already'>('idle');

  const start = async () => {
    setError(null);
    setBusy(true);
    try {
      setSecret(await api<{ secret: string; otpauthUri: string }>('POST', '/api/v1/identity/mfa/totp'));
      setState('confirm');
    } catch (err) {
      if (err instanceof ApiError && err.status === 409) setState('already');
      else setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  const confirm = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    if (!/^\d{6}$/.test(code)) return setError('Enter the 6-digit code your authenticator app shows.');
    setBusy(true);
    try {
      await api('POST', '/api/v1/identity/mfa/totp/confirm', { body: { code } });
      setState('done');
      setSecret(null);
    } catch (err) {
      setError(err instanceof ApiError && err.status < 500 ? 'That code is not correct or has expired. Enter the current code from your app.' : errorText(err));
    } finally {
      setBusy(false);
    }
  };
  const grouped = secret?.secret.replace(/(.{4})/g, '$1 ').trim();

  return (
    <section className="card" aria-labelledby="totp-title">
      <h2 id="totp-title">Two-step verification</h2>
      {error && <Notice kind="error">{error}</Notice>}
      {state === 'idle' && (
        <>
          <p>Protect your account with a one-time code from an authenticator app each time you sign in.</p>
          <button type="button" className="primary" onClick={() => void start()} disabled={busy} aria-busy={busy}>
            Set up two-step verification
          </button>
        </>
      )}
      {state === 'already' && <Notice kind="info" testId="totp-already">Two-step verification is already set up for your account.</Notice>}
      {state === 'done' && <Notice kind="success" testId="totp-done">Two-step verification is on. From now on, sign-in asks for a code.</Notice>}
      {state === 'confirm' && secret && (
        <form onSubmit={confirm} noValidate>
          <p>
            Add this key to your authenticator app (or open the <a href={secret.otpauthUri}>setup link</a> on this device), then enter the code it shows.
          </p>
          <p>
            Key: <code className="token-inline" data-testid="totp-secret" aria-label={`Key ${secret.secret.split('').join(' ')}`}>{grouped}</code>
          </p>
          <Field label="Code from the app" inputMode="numeric" autoComplete="one-time-code" maxLength={6} value={code} onChange={(e) => setCode(e.target.value.replace(/\D/g, ''))} />
          <div className="actions">
            <button type="submit" className="primary" disabled={busy} aria-busy={busy}>
              Turn on
            </button>
          </div>
        </form>
      )}
    </section>
  );
}
