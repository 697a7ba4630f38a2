// The audit event viewer (TenantAdmin, AuditAdmin): GET /api/v1/audits with filters on event
// type, source, user and a time interval (eventTime=<start>/<end>), newest or oldest first,
// paged through links.next. Shows "not available" when the audit service does not answer.
import { useCallback, useEffect, useState, type FormEvent } from 'react';
import { api, ApiError, linkPath, type Page, type User } from '../api';
import { errorText, Field, formatDate, Notice, SelectField, Spinner } from '../components';
import { useSession } from '../session';

interface AuditEvent {
  id: string;
  eventType: string;
  eventTime: string;
  source: string;
  userId?: string;
  data?: Record<string, unknown>;
  extensions?: { actor?: { sub?: string }; topLevelResourceId?: string };
}

interface Filters {
  eventType: string;
  source: string;
  userId: string;
  from: string;
  to: string;
  sort: string;
}

const EMPTY: Filters = { eventType: '', source: '', userId: '', from: '', to: '', sort: '-eventTime' };

function toIso(local: string): string {
  return new Date(local).toISOString();
}

function resourceOf(e: AuditEvent): string {
  const d = e.data ?? {};
  for (const k of ['name', 'description', 'email']) {
    if (typeof d[k] === 'string' && d[k]) return d[k] as string;
  }
  return e.extensions?.topLevelResourceId ?? (typeof d.id === 'string' ? d.id : '—');
}

export function Audit() {
  const { isAdmin, isAuditAdmin } = useSession();
  const allowed = isAdmin || isAuditAdmin;
  const [availability, setAvailability] = useState<'loading' | 'available' | 'unavailable'>('loading');
  const [types, setTypes] = useState<string[]>([]);
  const [sources, setSources] = useState<string[]>([]);
  const [users, setUsers] = useState<User[]>([]);
  const [draft, setDraft] = useState<Filters>(EMPTY);
  const [filters, setFilters] = useState<Filters>(EMPTY);
  const [events, setEvents] = useState<AuditEvent[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    document.title = 'Audit events · Tessera';
    if (!allowed) return;
    api<Page<string>>('GET', '/api/v1/audits/types')
      .then((p) => {
        setTypes(p.data);
        setAvailability('available');
      })
      .catch((e) => {
        if (e instanceof ApiError && [404, 501, 502, 503, 504].includes(e.status)) setAvailability('unavailable');
        else {
          setAvailability('available');
          setError(errorText(e));
        }
      });
    api<Page<string>>('GET', '/api/v1/audits/sources')
      .then((p) => setSources(p.data))
      .catch(() => undefined);
    api<Page<User>>('GET', '/api/v1/users?limit=100')
      .then((p) => setUsers(p.data))
      .catch(() => undefined);
  }, [allowed]);

  const load = useCallback(
    async (cursor?: string) => {
      const q = new URLSearchParams({ limit: '50', sort: filters.sort });
      if (filters.eventType) q.set('eventType', filters.eventType);
      if (filters.source) q.set('source', filters.source);
      if (filters.userId) q.set('userId', filters.userId);
      if (filters.from || filters.to) {
        const from = filters.from ? toIso(filters.from) : '1970-01-01T00:00:00.000Z';
        const to = filters.to ? toIso(filters.to) : new Date(Date.now() + 60_000).toISOString();
        q.set('eventTime', `${from}/${to}`);
      }
      try {
        const page = await api<Page<AuditEvent>>('GET', cursor ?? `/api/v1/audits?${q.toString()}`);
        setEvents((prev) => (cursor && prev ? [...prev, ...page.data] : page.data));
        setNext(page.links?.next ? linkPath(page.links.next.href) : null);
        setError(null);
      } catch (e) {
        setError(errorText(e));
        if (!cursor) setEvents([]);
      }
    },
    [filters],
  );

  useEffect(() => {
    if (availability === 'available') void load();
  }, [availability, load]);

  if (!allowed) {
    return (
      <section aria-labelledby="audit-title">
        <h1 id="audit-title">Audit events</h1>
        <Notice kind="info" testId="audit-forbidden">
          Reading the audit trail needs the TenantAdmin or AuditAdmin role.
        </Notice>
      </section>
    );
  }
  if (availability === 'loading') return <Spinner label="Loading audit events…" />;
  if (availability === 'unavailable') {
    return (
      <section aria-labelledby="audit-title">
        <h1 id="audit-title">Audit events</h1>
        <Notice kind="info" testId="audit-unavailable">
          The audit trail is not available on this Tessera installation yet: the audit service did not answer.
        </Notice>
      </section>
    );
  }

  const userName = (id?: string) => {
    if (!id) return '—';
    const u = users.find((x) => x.id === id);
    return u ? u.name || u.email : id;
  };
  const apply = (e: FormEvent) => {
    e.preventDefault();
    if (draft.from && draft.to && new Date(draft.from) > new Date(draft.to)) {
      setError('The start of the time range is after its end.');
      return;
    }
    setEvents(null);
    setFilters({ ...draft });
  };
  const set = (k: keyof Filters) => (e: { target: { value: string } }) => setDraft((d) => ({ ...d, [k]: e.target.value }));

  return (
    <section aria-labelledby="audit-title">
      <h1 id="audit-title">Audit events</h1>
      <form className="card filters" onSubmit={apply} aria-label="Filter audit events">
        <SelectField label="Event type" value={draft.eventType} onChange={set('eventType')}>
          <option value="">All event types</option>
          {types.map((t) => (
            <option key={t} value={t}>
              {t}
            </option>
          ))}
        </SelectField>
        <SelectField label="Source" value={draft.source} onChange={set('source')}>
          <option value="">All sources</option>
          {sources.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </SelectField>
        <SelectField label="User" value={draft.userId} onChange={set('userId')}>
          <option value="">Anyone</option>
          {users.map((u) => (
            <option key={u.id} value={u.id}>
              {u.name || u.email}
            </option>
          ))}
        </SelectField>
        <Field label="From" type="datetime-local" value={draft.from} onChange={set('from')} />
        <Field label="To" type="datetime-local" value={draft.to} onChange={set('to')} />
        <SelectField label="Order" value={draft.sort} onChange={set('sort')}>
          <option value="-eventTime">Newest first</option>
          <option value="+eventTime">Oldest first</option>
        </SelectField>
        <div className="actions">
          <button type="submit" className="primary">
            Apply filters
          </button>
          <button
            type="button"
            onClick={() => {
              setDraft(EMPTY);
              setFilters(EMPTY);
            }}
          >
            Clear
          </button>
        </div>
      </form>
      {error && <Notice kind="error" testId="audit-error">{error}</Notice>}
      {events === null ? (
        <Spinner label="Loading audit events…" />
      ) : events.length === 0 ? (
        <p className="empty" data-testid="audit-empty">
          No audit events match these filters.
        </p>
      ) : (
        <div className="table-wrap">
          <table aria-labelledby="audit-title" data-testid="audit-table">
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Event</th>
                <th scope="col">User</th>
                <th scope="col">Resource</th>
                <th scope="col">Details</th>
              </tr>
            </thead>
            <tbody>
              {events.map((e) => (
                <tr key={e.id}>
                  <td>{formatDate(e.eventTime)}</td>
                  <th scope="row">
                    <code>{e.eventType}</code>
                  </th>
                  <td>{userName(e.userId ?? e.extensions?.actor?.sub)}</td>
                  <td>{resourceOf(e)}</td>
                  <td>
                    <details>
                      <summary>Show</summary>
                      <pre className="json">{JSON.stringify(e, null, 2)}</pre>
                    </details>
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
