// Who is signed in: the user from GET /api/v1/users/me, and the tenant. Holds the reason the
// user was sent to the sign-in page (signed out, session expired) so the page can say it.
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { api, ApiError, hasRole, logout, onSessionExpired, refreshCsrfToken, type Page, type Role, type Tenant, type User } from './api';

export type SessionState =
  | { kind: 'loading' }
  | { kind: 'signedOut'; notice?: string; noticeKind?: 'info' | 'warning' }
  | { kind: 'signedIn'; user: User; tenant: Tenant | null };

interface SessionApi {
  state: SessionState;
  user: User | null;
  isAdmin: boolean;
  isAuditAdmin: boolean;
  canManageKeys: boolean;
  /** Load the signed-in user after a successful login (or on start). */
  load: () => Promise<void>;
  signOut: () => Promise<void>;
}

const Ctx = createContext<SessionApi | null>(null);

async function fetchMe(): Promise<{ user: User; tenant: Tenant | null }> {
  const user = await api<User>('GET', '/api/v1/users/me', { anonymous: true });
  if (user.assignedGroups?.length) {
    // A user's view names its groups but not their roles: fetch them so that the navigation
    // reflects roles held through an (active) group too.
    try {
      const groups = await api<Page<{ id: string; status?: string; assignedRoles?: Role[] }>>('GET', '/api/v1/groups?limit=100', { anonymous: true });
      const byId = new Map(groups.data.filter((g) => (g.status ?? 'active') === 'active').map((g) => [g.id, g.assignedRoles ?? []]));
      user.assignedGroups = user.assignedGroups.map((g) => ({ ...g, assignedRoles: byId.get(g.id) ?? [] }));
    } catch {
      // Without the groups the UI shows only direct roles; the server still enforces all.
    }
  }
  let tenant: Tenant | null = null;
  try {
    tenant = await api<Tenant>('GET', '/api/v1/tenants/me', { anonymous: true });
  } catch {
    tenant = null; // the tenant's name is decoration; the app works without it
  }
  return { user, tenant };
}

export function SessionProvider({ children }: { children: ReactNode }) {
  const [state, setState] = useState<SessionState>({ kind: 'loading' });

  const load = useCallback(async () => {
    try {
      const { user, tenant } = await fetchMe();
      setState({ kind: 'signedIn', user, tenant });
      void refreshCsrfToken().catch(() => undefined);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        setState({ kind: 'signedOut' });
      } else {
        setState({
          kind: 'signedOut',
          notice: e instanceof ApiError ? e.message : 'Tessera could not be reached.',
          noticeKind: 'warning',
        });
      }
    }
  }, []);

  useEffect(() => {
    void load();
  }, [load]);

  useEffect(
    () =>
      onSessionExpired(() =>
        setState((s) =>
          s.kind === 'signedIn'
            ? { kind: 'signedOut', notice: 'Your session has expired or was ended. Please sign in again.', noticeKind: 'warning' }
            : s,
        ),
      ),
    [],
  );

  const signOut = useCallback(async () => {
    try {
      await logout();
    } catch {
      // Signed out either way: the server forgets the session or it was already gone.
    }
    setState({ kind: 'signedOut', notice: 'You have signed out.', noticeKind: 'info' });
  }, []);

  const value = useMemo<SessionApi>(() => {
    const user = state.kind === 'signedIn' ? state.user : null;
    const isAdmin = hasRole(user, 'TenantAdmin');
    return {
      state,
      user,
      isAdmin,
      isAuditAdmin: hasRole(user, 'AuditAdmin'),
      canManageKeys: isAdmin || hasRole(user, 'Developer'),
      load,
      signOut,
    };
  }, [state, load, signOut]);

  return <Ctx.Provider value={value}>{children}</Ctx.Provider>;
}

export function useSession(): SessionApi {
  const v = useContext(Ctx);
  if (!v) throw new Error('useSession outside SessionProvider');
  return v;
}
