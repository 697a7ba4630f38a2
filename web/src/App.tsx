// The shell: sign-in when there is no session, otherwise a header with role-aware
// navigation (Hub for everyone; API keys for Developer/TenantAdmin; Users and Groups for TenantAdmin;
// Audit for TenantAdmin/AuditAdmin),
// the signed-in user, sign-out, and the page for the current path.
import { lazy, Suspense, useEffect, useRef, useState } from 'react';
import { Spinner } from './components';
import { AcceptInvite } from './pages/AcceptInvite';
import { Account } from './pages/Account';
import { ApiKeys } from './pages/ApiKeys';
import { Audit } from './pages/Audit';
import { Groups } from './pages/Groups';
import { Hub } from './pages/Hub';
import { SignIn } from './pages/SignIn';
import { Users } from './pages/Users';
import { appRoute } from './pages/AppTabs';
import { DataLoadEditor } from './pages/DataLoadEditor';
import { DataModel } from './pages/DataModel';
import { IdentityProviders } from './pages/IdentityProviders';
import { ReloadTasks } from './pages/ReloadTasks';
import { Link, navigate, usePath } from './router';
import { useSession } from './session';

// The app view carries nebula.js and its charts (several MB): loaded only when an app is opened.
const AppView = lazy(() => import('./pages/AppView').then((m) => ({ default: m.AppView })));

interface NavItem {
  to: string;
  label: string;
  show: boolean;
}

export function App() {
  const { state, user, isAdmin, isAuditAdmin, canManageKeys, signOut } = useSession();
  const path = usePath();
  const mainRef = useRef<HTMLElement>(null);
  const [menuOpen, setMenuOpen] = useState(false);

  // Move focus to the page on navigation so keyboard and screen reader users follow it.
  useEffect(() => {
    setMenuOpen(false);
    mainRef.current?.focus();
  }, [path]);

  useEffect(() => {
    if (state.kind === 'signedIn' && (path === '/' || path === '/login' || path === '/signin')) navigate('/hub', true);
  }, [state.kind, path]);

  if (path === '/login/invite') return <AcceptInvite />;
  if (state.kind === 'loading') {
    return (
      <main className="signin" id="main">
        <Spinner label="Loading Tessera…" />
      </main>
    );
  }
  if (state.kind === 'signedOut') return <SignIn />;

  const nav: NavItem[] = [
    { to: '/hub', label: 'Hub', show: true },
    { to: '/admin/api-keys', label: 'API keys', show: canManageKeys },
    { to: '/admin/users', label: 'Users', show: isAdmin },
    { to: '/admin/groups', label: 'Groups', show: isAdmin },
    { to: '/admin/audit', label: 'Audit', show: isAdmin || isAuditAdmin },
    { to: '/admin/identity-providers', label: 'Identity providers', show: isAdmin },
  ];

  let page;
  const appPage = appRoute(path);
  if (appPage?.page === 'load-script') page = <DataLoadEditor key={appPage.appId} appId={appPage.appId} />;
  else if (appPage?.page === 'data-model') page = <DataModel key={appPage.appId} appId={appPage.appId} />;
  else if (appPage?.page === 'reload-tasks') page = <ReloadTasks key={appPage.appId} appId={appPage.appId} />;
  else if (path.startsWith('/admin/identity-providers')) page = <IdentityProviders />;
  else if (path.startsWith('/admin/api-keys')) page = <ApiKeys />;
  else if (path.startsWith('/admin/users')) page = <Users />;
  else if (path.startsWith('/admin/groups')) page = <Groups />;
  else if (path.startsWith('/admin/audit')) page = <Audit />;
  else if (path === '/account') page = <Account />;
  else if (path.startsWith('/apps/'))
    page = (
      <Suspense fallback={<Spinner label="Loading the app view…" />}>
        <AppView path={path} />
      </Suspense>
    );
  else if (path === '/hub' || path === '/') page = <Hub />;
  else
    page = (
      <section>
        <h1>Page not found</h1>
        <p>
          There is nothing at <code>{path}</code>. <Link to="/hub">Go to the hub</Link>.
        </p>
      </section>
    );

  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <Link to="/hub" className="brand" aria-label="Tessera hub">
          <span className="logo" aria-hidden="true">
            ▦
          </span>{' '}
          Tessera
          {state.tenant?.name && <span className="tenant" data-testid="tenant-name">{state.tenant.name}</span>}
        </Link>
        <button type="button" className="menu-toggle" aria-expanded={menuOpen} aria-controls="primary-nav" onClick={() => setMenuOpen((o) => !o)}>
          Menu
        </button>
        <nav id="primary-nav" aria-label="Main" className={menuOpen ? 'open' : ''}>
          <ul>
            {nav
              .filter((n) => n.show)
              .map((n) => (
                <li key={n.to}>
                  <Link to={n.to} aria-current={path.startsWith(n.to) ? 'page' : undefined}>
                    {n.label}
                  </Link>
                </li>
              ))}
          </ul>
          <div className="who">
            <Link to="/account" className="account-link" title={user?.email} aria-label={`${user?.name || user?.email}, your account`} aria-current={path === '/account' ? 'page' : undefined}>
              <span data-testid="user-email">{user?.name || user?.email}</span>
            </Link>
            {isAdmin && <span className="badge badge-admin">TenantAdmin</span>}
            <button type="button" onClick={() => void signOut()}>
              Sign out
            </button>
          </div>
        </nav>
      </header>
      <main id="main" ref={mainRef} tabIndex={-1} className="page">
        {page}
      </main>
    </>
  );
}
