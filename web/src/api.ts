// The one way the web app talks to Tessera: same-origin fetch to the public REST API under
// /api/v1, with the session cookie (HttpOnly, set by POST /api/v1/identity/login) and the
// CSRF token in the `qlik-csrf-token` header on every write. Errors become ApiError with a
// message a person can act on; a 401 on an authenticated call means the session is gone.

export interface ErrorItem {
  code?: string;
  title?: string;
  detail?: string;
  status?: string | number;
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly detail: string;
  readonly traceId: string;

  constructor(status: number, code: string, message: string, detail = '', traceId = '') {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.traceId = traceId;
  }
}

const CSRF_HEADER = 'qlik-csrf-token';
let csrfToken: string | null = null;

type ExpiredListener = () => void;
const expiredListeners = new Set<ExpiredListener>();

/** Called whenever an authenticated call answers 401 (session expired or ended elsewhere). */
export function onSessionExpired(fn: ExpiredListener): () => void {
  expiredListeners.add(fn);
  return () => expiredListeners.delete(fn);
}

export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

function isWrite(method: string): boolean {
  return !['GET', 'HEAD', 'OPTIONS'].includes(method);
}

/** Words for a status when the server sent none we should show as-is. */
function friendly(status: number, detail: string): string {
  switch (status) {
    case 0:
      return 'Cannot reach Tessera. Check your connection and try again.';
    case 400:
      return detail ? `The request was not accepted: ${detail}` : 'The request was not accepted.';
    case 401:
      return 'Your session has expired. Please sign in again.';
    case 403:
      return detail ? `You do not have permission to do this: ${detail}` : 'You do not have permission to do this.';
    case 404:
      return 'Not found. It may have been deleted, or you may not have access to it.';
    case 409:
      return detail ? `This conflicts with something that already exists: ${detail}` : 'This conflicts with something that already exists.';
    case 413:
      return 'The upload is too large.';
    case 429:
      return 'Too many requests. Wait a moment and try again.';
    case 502:
    case 503:
    case 504:
      return 'The service is not reachable right now. Try again in a moment.';
    default:
      return status >= 500
        ? 'Something went wrong on the server. Try again; if it keeps happening, tell your administrator.'
        : detail || `The request failed (HTTP ${status}).`;
  }
}

async function toError(res: Response): Promise<ApiError> {
  let body: { code?: string; errors?: ErrorItem[]; traceId?: string } = {};
  try {
    body = (await res.json()) as typeof body;
  } catch {
    // Not JSON (e.g. a proxy's HTML page): the status alone has to do.
  }
  const first = body.errors?.[0] ?? {};
  const code = body.code ?? first.code ?? `HTTP-${res.status}`;
  const detail = first.detail ?? first.title ?? '';
  return new ApiError(res.status, code, friendly(res.status, detail), detail, body.traceId ?? '');
}

/** Fetch a fresh CSRF token for the current session (GET /api/v1/csrf-token, header). */
export async function refreshCsrfToken(): Promise<string | null> {
  const res = await fetch('/api/v1/csrf-token', { credentials: 'same-origin', cache: 'no-store' });
  csrfToken = res.ok ? res.headers.get(CSRF_HEADER) : null;
  return csrfToken;
}

/** The session's CSRF token, fetched when not yet known (for writes outside api(), e.g. XHR). */
export async function csrfTokenNow(): Promise<string | null> {
  return csrfToken ?? refreshCsrfToken();
}

/** Turn a failed XHR into the same ApiError api() throws (and end the session on 401). */
export function xhrError(status: number, body: string): ApiError {
  let parsed: { code?: string; errors?: ErrorItem[]; traceId?: string } = {};
  try {
    parsed = JSON.parse(body) as typeof parsed;
  } catch {
    parsed = {};
  }
  const first = parsed.errors?.[0] ?? {};
  const detail = first.detail ?? first.title ?? '';
  if (status === 401) {
    csrfToken = null;
    expiredListeners.forEach((fn) => fn());
  }
  if (status === 403 && (parsed.code ?? first.code) === 'CSRF-TOKEN-2') csrfToken = null;
  return new ApiError(status, parsed.code ?? first.code ?? `HTTP-${status}`, friendly(status, detail), detail, parsed.traceId ?? '');
}

export interface RequestOptions {
  body?: unknown;
  /** Calls that are expected to answer 401 (sign-in) do not end the session in the UI. */
  anonymous?: boolean;
  signal?: AbortSignal;
}

async function send(method: string, path: string, opts: RequestOptions, retried: boolean): Promise<Response> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  if (isWrite(method) && !opts.anonymous) {
    if (csrfToken === null) await refreshCsrfToken();
    if (csrfToken !== null) headers[CSRF_HEADER] = csrfToken;
  }
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      cache: 'no-store',
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: opts.signal,
    });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError(0, 'NETWORK', friendly(0, ''));
  }
  if (res.status === 403 && isWrite(method) && !retried && !opts.anonymous) {
    // A stale token (e.g. after signing in again in another tab): fetch a new one, retry once.
    const peek = res.clone();
    let code = '';
    try {
      const b = (await peek.json()) as { code?: string; errors?: ErrorItem[] };
      code = b.code ?? b.errors?.[0]?.code ?? '';
    } catch {
      code = '';
    }
    if (code === 'CSRF-TOKEN-2') {
      csrfToken = null;
      return send(method, path, opts, true);
    }
  }
  return res;
}

/** One REST call; resolves with the parsed JSON body (undefined for empty bodies). */
export async function api<T = unknown>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
  const res = await send(method, path, opts, false);
  if (!res.ok) {
    const err = await toError(res);
    if (res.status === 401 && !opts.anonymous) {
      csrfToken = null;
      expiredListeners.forEach((fn) => fn());
    }
    throw err;
  }
  const token = res.headers.get(CSRF_HEADER);
  if (token) csrfToken = token;
  const text = await res.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

// ---- typed helpers for the resources the app uses --------------------------------------------

export interface Role {
  id: string;
  name: string;
  level?: string;
}

export interface User {
  id: string;
  tenantId: string;
  name: string;
  email: string;
  status: string;
  subject?: string;
  assignedRoles?: Role[];
  assignedGroups?: { id: string; name?: string; assignedRoles?: Role[] }[];
  createdAt?: string;
  serviceUser?: boolean;
  inviteLink?: string;
}

export interface Page<T> {
  data: T[];
  links?: { self?: { href: string }; next?: { href: string }; prev?: { href: string } };
}

export interface ApiKey {
  id: string;
  tenantId: string;
  description: string;
  sub: string;
  subType?: string;
  createdByUser?: string;
  created: string;
  lastUpdated?: string;
  expiry?: string;
  status: 'active' | 'expired' | 'revoked' | string;
  token?: string;
}

export interface Tenant {
  id: string;
  name: string;
  hostnames?: string[];
}

export interface Space {
  id: string;
  name: string;
  type: string;
  description?: string;
  ownerId?: string;
  meta?: { actions?: string[]; roles?: string[]; assignableRoles?: string[] };
}

export interface Item {
  id: string;
  name: string;
  resourceType: string;
  resourceId: string;
  actions?: string[];
  resourceSize?: { appFile?: number; appMemory?: number };
  spaceId?: string;
  ownerId?: string;
  createdAt?: string;
  updatedAt?: string;
  description?: string;
}

export interface NxApp {
  attributes: { id: string; name: string; spaceId?: string };
  privileges?: string[];
}

/** The path and query of a link the API returned (links are absolute URLs). */
export function linkPath(href: string): string {
  const u = new URL(href, window.location.origin);
  return u.pathname + u.search;
}

/** Sign in with the bundled account. Resolves "totp" when a TOTP code is needed next. */
export async function login(email: string, password: string, totp?: string): Promise<'ok' | 'totp'> {
  const body: Record<string, string> = { email, password };
  if (totp) body.totp = totp;
  let res: Response;
  try {
    res = await fetch('/api/v1/identity/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      credentials: 'same-origin',
      cache: 'no-store',
      body: JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'NETWORK', friendly(0, ''));
  }
  if (res.ok) {
    csrfToken = res.headers.get(CSRF_HEADER);
    return 'ok';
  }
  const err = await toError(res);
  if (res.status === 401 && !totp && /TOTP code \(totp\) is required/i.test(err.detail)) return 'totp';
  if (res.status === 401) {
    throw new ApiError(401, err.code, totp ? 'The email, password or verification code is not correct.' : 'The email or password is not correct.', err.detail, err.traceId);
  }
  if (res.status === 400) {
    throw new ApiError(400, err.code, 'Enter your email address and password.', err.detail, err.traceId);
  }
  if (res.status === 403) {
    throw new ApiError(403, err.code, `You cannot sign in yet: ${err.detail || 'access is denied.'}`, err.detail, err.traceId);
  }
  throw err;
}

export async function logout(): Promise<void> {
  try {
    await api('POST', '/api/v1/identity/logout');
  } finally {
    csrfToken = null;
  }
}

export function hasRole(user: User | null, name: string): boolean {
  if (!user) return false;
  const direct = user.assignedRoles?.some((r) => r.name === name) ?? false;
  const viaGroup = user.assignedGroups?.some((g) => g.assignedRoles?.some((r) => r.name === name)) ?? false;
  return direct || viaGroup;
}
