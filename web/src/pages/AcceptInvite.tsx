// /login/invite#token=...: the invited user sets a password (POST
// /api/v1/identity/invites/accept), then signs in. The token stays in the fragment so it
// never reaches a server log.
import { useEffect, useState, type FormEvent } from 'react';
import { api } from '../api';
import { errorText, Field, Notice } from '../components';
import { navigate } from '../router';

export function AcceptInvite() {
  const token = new URLSearchParams(window.location.hash.slice(1)).get('token') ?? '';
  const [password, setPassword] = useState('');
  const [again, setAgain] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState(false);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    document.title = 'Accept invitation · Tessera';
  }, []);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    if (password.length < 12) {
      setError('Choose a password of at least 12 characters.');
      return;
    }
    if (password !== again) {
      setError('The two passwords are not the same.');
      return;
    }
    setBusy(true);
    try {
      await api('POST', '/api/v1/identity/invites/accept', { body: { token, password }, anonymous: true });
      setDone(true);
    } catch (err) {
      setError(errorText(err).startsWith('Not found') ? 'This invitation is not valid or has expired. Ask your administrator for a new one.' : errorText(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="signin" id="main">
      <form className="card signin-card" onSubmit={submit} noValidate aria-labelledby="invite-title">
        <h1 id="invite-title">Welcome to Tessera</h1>
        {!token && <Notice kind="error">This link has no invitation token. Open the full link you were sent.</Notice>}
        {error && <Notice kind="error" testId="invite-error">{error}</Notice>}
        {done ? (
          <>
            <Notice kind="success" testId="invite-done">
              Your password is set. You can now sign in.
            </Notice>
            <div className="actions">
              <button type="button" className="primary" onClick={() => navigate('/', true)}>
                Go to sign in
              </button>
            </div>
          </>
        ) : (
          <>
            <p>Choose a password to activate your account.</p>
            <Field label="New password" type="password" autoComplete="new-password" hint="At least 12 characters." value={password} onChange={(e) => setPassword(e.target.value)} />
            <Field label="Repeat the password" type="password" autoComplete="new-password" value={again} onChange={(e) => setAgain(e.target.value)} />
            <div className="actions">
              <button type="submit" className="primary" disabled={busy || !token} aria-busy={busy}>
                Set password
              </button>
            </div>
          </>
        )}
      </form>
    </main>
  );
}
