// Sign-in with the bundled local account: email + password, then a TOTP code when the
// account has one enrolled (the server answers "a TOTP code (totp) is required").
import { useEffect, useRef, useState, type FormEvent } from 'react';
import { login } from '../api';
import { errorText, Field, Notice } from '../components';
import { useSession } from '../session';
import './app-pages.css';

interface SignInOption {
  id: string;
  name: string;
  loginUrl: string;
}

/**
 * The tenant's OIDC providers for "Sign in with …" (public: GET /api/v1/identity/oidc/providers,
 * the tenant from the hostname). Without one (or without the endpoint) only the password form shows.
 */
function useSignInOptions(): SignInOption[] {
  const [opts, setOpts] = useState<SignInOption[]>([]);
  useEffect(() => {
    let live = true;
    fetch('/api/v1/identity/oidc/providers', { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } })
      .then(async (r) => (r.ok ? ((await r.json()) as { data?: SignInOption[] }) : { data: [] }))
      .then((b) => {
        if (live) setOpts((b.data ?? []).filter((o) => typeof o.id === 'string' && /^[0-9a-f]+$/.test(o.id)));
      })
      .catch(() => undefined);
    return () => {
      live = false;
    };
  }, []);
  return opts;
}

/** Where to land after an OIDC sign-in: the page the user was on (a path on this site). */
function returnTo(): string {
  const p = window.location.pathname + window.location.search;
  return p.startsWith('/') && !p.startsWith('//') && !p.startsWith('/login') && !p.startsWith('/signin') ? p : '/hub';
}

export function SignIn() {
  const { state, load } = useSession();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [totp, setTotp] = useState('');
  const [step, setStep] = useState<'password' | 'totp'>('password');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  // The reason for being here (signed out, session ended) matters only until the next attempt.
  const [attempted, setAttempted] = useState(false);
  const totpRef = useRef<HTMLInputElement>(null);
  const providers = useSignInOptions();
  const notice = state.kind === 'signedOut' ? state.notice : undefined;
  const noticeKind = state.kind === 'signedOut' ? state.noticeKind ?? 'info' : 'info';

  useEffect(() => {
    document.title = 'Sign in · Tessera';
  }, []);

  useEffect(() => {
    if (step === 'totp') totpRef.current?.focus();
  }, [step]);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setAttempted(true);
    if (!email.trim() || !password) {
      setError('Enter your email address and password.');
      return;
    }
    if (step === 'totp' && !/^\d{6}$/.test(totp.trim())) {
      setError('Enter the 6-digit code from your authenticator app.');
      return;
    }
    setBusy(true);
    try {
      const r = await login(email.trim(), password, step === 'totp' ? totp.trim() : undefined);
      if (r === 'totp') {
        setStep('totp');
      } else {
        await load();
      }
    } catch (err) {
      setError(errorText(err));
      if (step === 'totp') setTotp('');
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="signin" id="main">
      <form className="card signin-card" onSubmit={submit} noValidate aria-labelledby="signin-title">
        <div className="brand brand-large" aria-hidden="true">
          <span className="logo">▦</span> Tessera
        </div>
        <h1 id="signin-title">{step === 'password' ? 'Sign in' : 'Two-step verification'}</h1>
        {notice && !error && !attempted && (
          <Notice kind={noticeKind} testId="signin-notice">
            {notice}
          </Notice>
        )}
        {error && (
          <Notice kind="error" testId="signin-error">
            {error}
          </Notice>
        )}
        {step === 'password' ? (
          <>
            <Field label="Email" type="email" name="email" autoComplete="username" autoFocus required value={email} onChange={(e) => setEmail(e.target.value)} />
            <Field label="Password" type="password" name="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} />
          </>
        ) : (
          <>
            <p>Enter the 6-digit code from your authenticator app for {email}.</p>
            <Field
              ref={totpRef}
              label="Verification code"
              name="totp"
              inputMode="numeric"
              autoComplete="one-time-code"
              pattern="[0-9]{6}"
              maxLength={6}
              required
              value={totp}
              onChange={(e) => setTotp(e.target.value.replace(/\D/g, ''))}
            />
          </>
        )}
        <div className="actions">
          <button type="submit" className="primary" disabled={busy} aria-busy={busy}>
            {busy ? 'Signing in…' : step === 'password' ? 'Sign in' : 'Verify'}
          </button>
          {step === 'totp' && (
            <button
              type="button"
              onClick={() => {
                setStep('password');
                setTotp('');
                setError(null);
              }}
            >
              Back
            </button>
          )}
        </div>
        {step === 'password' && providers.length > 0 && (
          <>
            <p className="or-divider">or</p>
            <div className="idp-buttons" data-testid="signin-idps">
              {providers.map((p) => (
                <a key={p.id} className="idp-button" href={`/api/v1/identity/oidc/${p.id}/login?returnto=${encodeURIComponent(returnTo())}`}>
                  Sign in with {p.name || 'your organisation'}
                </a>
              ))}
            </div>
          </>
        )}
      </form>
    </main>
  );
}
