// Reload schedules of one app (/apps/<id>/reload-tasks): an RRULE builder (frequency,
// interval, weekdays, day of month, time of day, IANA time zone) that produces the RFC 5545
// line the reload-tasks API takes (POST /api/v1/reload-tasks {appId, timeZone,
// startDateTime, recurrence: ["RRULE:..."]}; the service checks it with libical), the app's
// tasks (enable/disable, delete) and each task's runs (GET /api/v1/reloads?appId=, by taskId).
import { useCallback, useEffect, useMemo, useState, type FormEvent } from 'react';
import { api, type Page } from '../api';
import { ConfirmButton, errorText, Field, formatDate, Notice, SelectField, Spinner } from '../components';
import { AppTabs, useAppName } from './AppTabs';

export type Freq = 'HOURLY' | 'DAILY' | 'WEEKLY' | 'MONTHLY';
export const WEEKDAYS = [
  ['MO', 'Monday'],
  ['TU', 'Tuesday'],
  ['WE', 'Wednesday'],
  ['TH', 'Thursday'],
  ['FR', 'Friday'],
  ['SA', 'Saturday'],
  ['SU', 'Sunday'],
] as const;

export interface Schedule {
  freq: Freq;
  interval: number;
  weekdays: string[];
  monthDay: number;
  time: string; // HH:MM
}

/** The RFC 5545 RRULE line of a schedule (validated by the caller with scheduleProblem). */
export function buildRrule(s: Schedule): string {
  const parts = [`FREQ=${s.freq}`, `INTERVAL=${s.interval}`];
  const [hh, mm] = s.time.split(':').map((x) => Number(x));
  if ((s.freq === 'DAILY' || s.freq === 'WEEKLY') && s.weekdays.length > 0 && s.weekdays.length < 7) {
    parts.push(`BYDAY=${WEEKDAYS.map((w) => w[0]).filter((d) => s.weekdays.includes(d)).join(',')}`);
  }
  if (s.freq === 'WEEKLY' && s.weekdays.length === 7) parts.push('BYDAY=MO,TU,WE,TH,FR,SA,SU');
  if (s.freq === 'MONTHLY') parts.push(`BYMONTHDAY=${s.monthDay}`);
  if (s.freq !== 'HOURLY') parts.push(`BYHOUR=${hh}`);
  parts.push(`BYMINUTE=${mm}`);
  return `RRULE:${parts.join(';')}`;
}

/** What is wrong with a schedule, in words, or null. */
export function scheduleProblem(s: Schedule): string | null {
  if (!Number.isInteger(s.interval) || s.interval < 1 || s.interval > 999) return 'The interval must be a whole number from 1 to 999.';
  if (!/^([01]\d|2[0-3]):[0-5]\d$/.test(s.time)) return 'Enter a time of day as HH:MM.';
  if (s.freq === 'WEEKLY' && s.weekdays.length === 0) return 'Choose at least one weekday.';
  if (s.freq === 'MONTHLY' && (!Number.isInteger(s.monthDay) || s.monthDay < 1 || s.monthDay > 31)) return 'The day of the month must be 1 to 31.';
  return null;
}

const UNIT: Record<Freq, [string, string]> = { HOURLY: ['hour', 'hours'], DAILY: ['day', 'days'], WEEKLY: ['week', 'weeks'], MONTHLY: ['month', 'months'] };

/** A sentence for a schedule ("Every 2 weeks on Monday and Wednesday at 06:30, Europe/Berlin"). */
export function describe(s: Schedule, tz: string): string {
  const every = s.interval === 1 ? `Every ${UNIT[s.freq][0]}` : `Every ${s.interval} ${UNIT[s.freq][1]}`;
  const names = WEEKDAYS.filter((w) => s.weekdays.includes(w[0])).map((w) => w[1]);
  const days = names.length > 0 && names.length < 7 && (s.freq === 'DAILY' || s.freq === 'WEEKLY') ? ` on ${names.length === 1 ? names[0] : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`}` : '';
  const md = s.freq === 'MONTHLY' ? ` on day ${s.monthDay}` : '';
  const at = s.freq === 'HOURLY' ? ` at minute ${Number(s.time.split(':')[1] ?? 0)}` : ` at ${s.time}`;
  return `${every}${days}${md}${at}, ${tz}`;
}

/** The schedule of an RRULE line the builder made (null for any other rule). */
export function parseRrule(line: string): Schedule | null {
  if (!line.startsWith('RRULE:')) return null;
  const kv = new Map(line.slice(6).split(';').map((p) => p.split('=') as [string, string]));
  const freq = kv.get('FREQ') as Freq;
  if (!['HOURLY', 'DAILY', 'WEEKLY', 'MONTHLY'].includes(freq)) return null;
  const known = new Set(['FREQ', 'INTERVAL', 'BYDAY', 'BYMONTHDAY', 'BYHOUR', 'BYMINUTE']);
  if ([...kv.keys()].some((k) => !known.has(k))) return null;
  const num = (k: string, d: number) => (kv.has(k) ? Number(kv.get(k)) : d);
  const hh = num('BYHOUR', 0);
  const mm = num('BYMINUTE', 0);
  const days = kv.get('BYDAY')?.split(',') ?? [];
  const s: Schedule = { freq, interval: num('INTERVAL', 1), weekdays: days, monthDay: num('BYMONTHDAY', 1), time: `${String(hh).padStart(2, '0')}:${String(mm).padStart(2, '0')}` };
  if (days.some((d) => !WEEKDAYS.some((w) => w[0] === d)) || scheduleProblem(s) || buildRrule(s) !== line) return null;
  return s;
}

/** An instant in a task's time zone ("Mon, 7 Dec 2026, 06:30"). */
function inZone(iso: string | undefined, tz: string): string {
  if (!iso) return '—';
  try {
    return new Intl.DateTimeFormat(undefined, { timeZone: tz, weekday: 'short', year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' }).format(new Date(iso));
  } catch {
    return formatDate(iso);
  }
}

function zones(): string[] {
  let list: string[] = [];
  try {
    list = Intl.supportedValuesOf('timeZone');
  } catch {
    list = ['Europe/Berlin', 'Europe/London', 'America/New_York', 'America/Los_Angeles', 'Asia/Tokyo', 'Australia/Sydney'];
  }
  return ['UTC', ...list.filter((z) => z !== 'UTC')];
}

function localZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

/** Today's date in a time zone as YYYY-MM-DD. */
function todayIn(tz: string): string {
  try {
    return new Intl.DateTimeFormat('en-CA', { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date());
  } catch {
    return new Date().toISOString().slice(0, 10);
  }
}

interface Task {
  id: string;
  appId: string;
  state: string;
  disabledCode?: string;
  timeZone?: string;
  startDateTime?: string;
  recurrence?: string[];
  nextExecutionTime?: string;
  lastExecutionTime?: string;
  [k: string]: unknown;
}

interface Reload {
  id: string;
  status: string;
  taskId?: string;
  creationTime?: string;
  startTime?: string;
  endTime?: string;
  errorMessage?: string;
}

export function ReloadTasks({ appId }: { appId: string }) {
  const name = useAppName(appId);
  const allZones = useMemo(zones, []);
  const [sched, setSched] = useState<Schedule>({ freq: 'DAILY', interval: 1, weekdays: [], monthDay: 1, time: '06:00' });
  const [tz, setTz] = useState(() => (allZones.includes(localZone()) ? localZone() : 'UTC'));
  const [tasks, setTasks] = useState<Task[] | null>(null);
  const [history, setHistory] = useState<{ task: Task; runs: Reload[] } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [formError, setFormError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [confirm, setConfirm] = useState<string | null>(null);

  const problem = scheduleProblem(sched);
  const rrule = problem ? '' : buildRrule(sched);

  const load = useCallback(async () => {
    try {
      setTasks((await api<Page<Task>>('GET', `/api/v1/reload-tasks?appId=${encodeURIComponent(appId)}&limit=100`)).data);
    } catch (e) {
      setError(errorText(e));
      setTasks([]);
    }
  }, [appId]);

  useEffect(() => {
    document.title = `Reload schedules${name ? ` · ${name}` : ''} · Tessera`;
  }, [name]);
  useEffect(() => {
    void load();
  }, [load]);

  const create = async (e: FormEvent) => {
    e.preventDefault();
    setFormError(null);
    setStatus(null);
    if (problem) {
      setFormError(problem);
      return;
    }
    setBusy(true);
    try {
      const start = `${todayIn(tz)}T${sched.time}:00`;
      await api('POST', '/api/v1/reload-tasks', { body: { appId, timeZone: tz, startDateTime: start, recurrence: [rrule], state: 'Enabled' } });
      setStatus(`The schedule was saved: ${describe(sched, tz)}.`);
      await load();
    } catch (err) {
      setFormError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  const setState = async (t: Task, state: 'Enabled' | 'Disabled') => {
    setError(null);
    setStatus(null);
    try {
      const body: Record<string, unknown> = { appId: t.appId, state };
      for (const k of ['partial', 'timeZone', 'startDateTime', 'endDateTime', 'recurrence', 'misfirePolicy', 'trigger', 'autoReload', 'autoReloadPartial']) if (t[k] !== undefined) body[k] = t[k];
      await api('PUT', `/api/v1/reload-tasks/${encodeURIComponent(t.id)}`, { body });
      setStatus(state === 'Enabled' ? 'The schedule is enabled.' : 'The schedule is disabled.');
      await load();
    } catch (e) {
      setError(errorText(e));
    }
  };

  const remove = async (t: Task) => {
    setError(null);
    setStatus(null);
    try {
      await api('DELETE', `/api/v1/reload-tasks/${encodeURIComponent(t.id)}`);
      setConfirm(null);
      if (history?.task.id === t.id) setHistory(null);
      setStatus('The schedule was deleted.');
      await load();
    } catch (e) {
      setError(errorText(e));
    }
  };

  const showHistory = async (t: Task) => {
    setError(null);
    try {
      const page = await api<Page<Reload>>('GET', `/api/v1/reloads?appId=${encodeURIComponent(appId)}&limit=100`);
      setHistory({ task: t, runs: page.data.filter((r) => r.taskId === t.id) });
    } catch (e) {
      setError(errorText(e));
    }
  };

  const toggleDay = (d: string) => setSched((s) => ({ ...s, weekdays: s.weekdays.includes(d) ? s.weekdays.filter((x) => x !== d) : [...s.weekdays, d] }));

  return (
    <section aria-labelledby="rt-title" className="app-page">
      <AppTabs appId={appId} current="reload-tasks" name={name} />
      <h1 id="rt-title">Reload schedules</h1>
      {error && <Notice kind="error" testId="rt-error">{error}</Notice>}
      {status && <Notice kind="success" testId="rt-status">{status}</Notice>}
      <form className="card rrule-builder" onSubmit={create} noValidate aria-labelledby="rt-new">
        <h2 id="rt-new">New schedule</h2>
        {formError && <Notice kind="error" testId="rt-form-error">{formError}</Notice>}
        <div className="rrule-row">
          <SelectField label="Repeat" value={sched.freq} onChange={(e) => setSched((s) => ({ ...s, freq: e.target.value as Freq }))} data-testid="rt-freq">
            <option value="HOURLY">Hourly</option>
            <option value="DAILY">Daily</option>
            <option value="WEEKLY">Weekly</option>
            <option value="MONTHLY">Monthly</option>
          </SelectField>
          <Field
            label={`Every how many ${UNIT[sched.freq][1]}`}
            type="number"
            min={1}
            max={999}
            value={String(sched.interval)}
            onChange={(e) => setSched((s) => ({ ...s, interval: Number(e.target.value) }))}
            data-testid="rt-interval"
          />
          <Field
            label={sched.freq === 'HOURLY' ? 'At time (minute is used)' : 'Time of day'}
            type="time"
            value={sched.time}
            onChange={(e) => setSched((s) => ({ ...s, time: e.target.value }))}
            data-testid="rt-time"
          />
          {sched.freq === 'MONTHLY' && (
            <Field label="Day of the month" type="number" min={1} max={31} value={String(sched.monthDay)} onChange={(e) => setSched((s) => ({ ...s, monthDay: Number(e.target.value) }))} />
          )}
          <SelectField label="Time zone" value={tz} onChange={(e) => setTz(e.target.value)} data-testid="rt-tz">
            {allZones.map((z) => (
              <option key={z} value={z}>
                {z}
              </option>
            ))}
          </SelectField>
        </div>
        {(sched.freq === 'DAILY' || sched.freq === 'WEEKLY') && (
          <fieldset className="weekdays">
            <legend>{sched.freq === 'WEEKLY' ? 'On these days' : 'Only on these days (none: every day)'}</legend>
            {WEEKDAYS.map(([code, label]) => (
              <label key={code} className="check-inline">
                <input type="checkbox" checked={sched.weekdays.includes(code)} onChange={() => toggleDay(code)} data-testid={`rt-day-${code}`} /> {label}
              </label>
            ))}
          </fieldset>
        )}
        <p className="rrule-preview">
          {problem ? (
            <span className="field-error">{problem}</span>
          ) : (
            <>
              <span data-testid="rt-describe">{describe(sched, tz)}</span>
              <br />
              <code data-testid="rt-rrule">{rrule}</code>
            </>
          )}
        </p>
        <div className="actions">
          <button type="submit" className="primary" disabled={busy} aria-busy={busy}>
            Save schedule
          </button>
        </div>
      </form>
      <h2>Schedules of this app</h2>
      {tasks === null ? (
        <Spinner label="Loading schedules…" />
      ) : tasks.length === 0 ? (
        <p className="empty">This app has no reload schedules.</p>
      ) : (
        <div className="table-wrap">
          <table data-testid="rt-tasks">
            <thead>
              <tr>
                <th scope="col">Schedule</th>
                <th scope="col">State</th>
                <th scope="col">Next run</th>
                <th scope="col">Last run</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {tasks.map((t) => {
                const tz = t.timeZone ?? 'UTC';
                const parsed = (t.recurrence ?? []).length === 1 ? parseRrule(t.recurrence![0]) : null;
                const what = parsed ? describe(parsed, tz) : (t.recurrence ?? []).join(' ') || `Once, ${tz}`;
                return (
                  <tr key={t.id} data-testid="rt-task">
                    <th scope="row">
                      {what}
                      <div className="hint">
                        <code>{(t.recurrence ?? []).join(' ') || 'once'}</code>
                      </div>
                    </th>
                    <td>
                      <span className={`badge badge-${t.state === 'Enabled' ? 'active' : 'disabled'}`}>{t.state}</span>
                      {t.disabledCode === 'CONSECUTIVE-FAILURES' && <div className="hint">Disabled after repeated failures</div>}
                    </td>
                    <td>{inZone(t.nextExecutionTime, tz)}</td>
                    <td>{inZone(t.lastExecutionTime, tz)}</td>
                    <td className="cell-actions">
                      <button type="button" onClick={() => void showHistory(t)} aria-label={`Runs of ${what}`}>
                        Runs
                      </button>{' '}
                      {t.state === 'Enabled' ? (
                        <button type="button" onClick={() => void setState(t, 'Disabled')} aria-label={`Disable ${what}`}>
                          Disable
                        </button>
                      ) : (
                        <button type="button" onClick={() => void setState(t, 'Enabled')} aria-label={`Enable ${what}`}>
                          Enable
                        </button>
                      )}{' '}
                      <ConfirmButton
                        asking={confirm === t.id}
                        onAsk={() => setConfirm(t.id)}
                        onConfirm={() => void remove(t)}
                        onCancel={() => setConfirm(null)}
                        label="Delete"
                        ariaLabel={`Delete ${what}`}
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
      {history && (
        <div aria-labelledby="rt-runs" data-testid="rt-runs">
          <h2 id="rt-runs">Runs of {(history.task.recurrence ?? []).length === 1 && parseRrule(history.task.recurrence![0]) ? describe(parseRrule(history.task.recurrence![0])!, history.task.timeZone ?? 'UTC') : (history.task.recurrence ?? []).join(' ') || 'this schedule'}</h2>
          {history.runs.length === 0 ? (
            <p className="empty">This schedule has not run yet.</p>
          ) : (
            <ul className="members">
              {history.runs.map((r) => (
                <li key={r.id}>
                  <span>
                    <span className={`badge badge-${r.status.toLowerCase()}`}>{r.status}</span> {formatDate(r.startTime ?? r.creationTime)}
                    {r.errorMessage ? ` — ${r.errorMessage}` : ''}
                  </span>
                </li>
              ))}
            </ul>
          )}
          <button type="button" onClick={() => setHistory(null)}>
            Hide runs
          </button>
        </div>
      )}
    </section>
  );
}
