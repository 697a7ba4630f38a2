// The data model of one app (/apps/<id>/data-model), from the engine's
// GET /api/v1/apps/{id}/data/metadata: every table with its rows, fields and key fields (a
// field in more than one table associates them), and every field with its tables and
// distinct values.
import { useCallback, useEffect, useMemo, useState } from 'react';
import { api } from '../api';
import { errorText, Notice, Spinner } from '../components';
import { Link } from '../router';
import { appPath, AppTabs, useAppName } from './AppTabs';

interface MetaTable {
  name: string;
  no_of_rows: number;
  no_of_fields: number;
  no_of_key_fields: number;
  byte_size?: number;
}

interface MetaField {
  name: string;
  src_tables: string[];
  cardinal: number;
  total_count?: number;
  is_numeric?: boolean;
  byte_size?: number;
}

interface Metadata {
  tables: MetaTable[];
  fields: MetaField[];
  static_byte_size?: number;
}

function bytes(n?: number): string {
  if (n === undefined) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

const fmt = (n: number) => n.toLocaleString();

export function DataModel({ appId }: { appId: string }) {
  const name = useAppName(appId);
  const [meta, setMeta] = useState<Metadata | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(async () => {
    setError(null);
    try {
      setMeta(await api<Metadata>('GET', `/api/v1/apps/${encodeURIComponent(appId)}/data/metadata`));
    } catch (e) {
      setError(errorText(e));
      setMeta({ tables: [], fields: [] });
    }
  }, [appId]);

  useEffect(() => {
    document.title = `Data model${name ? ` · ${name}` : ''} · Tessera`;
  }, [name]);

  useEffect(() => {
    setMeta(null);
    void load();
  }, [load]);

  const fieldsOf = useMemo(() => {
    const m = new Map<string, MetaField[]>();
    for (const f of meta?.fields ?? []) for (const t of f.src_tables) m.set(t, [...(m.get(t) ?? []), f]);
    return m;
  }, [meta]);

  if (meta === null) return <Spinner label="Loading the data model…" />;
  const keys = meta.fields.filter((f) => f.src_tables.length > 1);

  return (
    <section aria-labelledby="dm-title" className="app-page">
      <AppTabs appId={appId} current="data-model" name={name} />
      <div className="page-head">
        <h1 id="dm-title">Data model</h1>
        <div className="actions">
          <button type="button" onClick={() => void load()}>
            Refresh
          </button>
        </div>
      </div>
      {error && <Notice kind="error" testId="dm-error">{error}</Notice>}
      {!error && meta.tables.length === 0 ? (
        <p className="empty" data-testid="dm-empty">
          This app has no data yet. Write a load script and reload it in the <Link to={appPath(appId, 'load-script')}>data load editor</Link>.
        </p>
      ) : (
        <>
          <p className="lead">
            {meta.tables.length} {meta.tables.length === 1 ? 'table' : 'tables'}, {meta.fields.length} {meta.fields.length === 1 ? 'field' : 'fields'}
            {keys.length > 0 ? `, ${keys.length} ${keys.length === 1 ? 'key' : 'keys'} (${keys.map((k) => k.name).join(', ')})` : ', no keys'}
            {meta.static_byte_size !== undefined ? ` · about ${bytes(meta.static_byte_size)} in memory` : ''}.
          </p>
          <ul className="model-tables" aria-label="Tables" data-testid="dm-tables">
            {meta.tables.map((t) => (
              <li key={t.name} className="model-table" data-testid="dm-table">
                <h2 className="model-table-name">{t.name}</h2>
                <p className="meta" data-testid="dm-rows">
                  {fmt(t.no_of_rows)} {t.no_of_rows === 1 ? 'row' : 'rows'} · {t.no_of_fields} {t.no_of_fields === 1 ? 'field' : 'fields'}
                </p>
                <ul className="model-fields" aria-label={`Fields of ${t.name}`}>
                  {(fieldsOf.get(t.name) ?? []).map((f) => (
                    <li key={f.name} className={f.src_tables.length > 1 ? 'key-field' : undefined}>
                      {f.src_tables.length > 1 && (
                        <span className="key-icon" aria-hidden="true">
                          ⚷
                        </span>
                      )}
                      {f.name}
                      {f.src_tables.length > 1 && <span className="sr-only"> (key to {f.src_tables.filter((x) => x !== t.name).join(', ')})</span>}
                    </li>
                  ))}
                </ul>
              </li>
            ))}
          </ul>
          <h2>Tables</h2>
          <div className="table-wrap">
            <table data-testid="dm-table-list">
              <thead>
                <tr>
                  <th scope="col">Table</th>
                  <th scope="col">Rows</th>
                  <th scope="col">Fields</th>
                  <th scope="col">Key fields</th>
                  <th scope="col">Size</th>
                </tr>
              </thead>
              <tbody>
                {meta.tables.map((t) => (
                  <tr key={t.name}>
                    <th scope="row">{t.name}</th>
                    <td>{fmt(t.no_of_rows)}</td>
                    <td>{t.no_of_fields}</td>
                    <td>{t.no_of_key_fields}</td>
                    <td>{bytes(t.byte_size)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <h2>Fields</h2>
          <div className="table-wrap">
            <table data-testid="dm-field-list">
              <thead>
                <tr>
                  <th scope="col">Field</th>
                  <th scope="col">Tables</th>
                  <th scope="col">Distinct values</th>
                  <th scope="col">Type</th>
                  <th scope="col">Key</th>
                </tr>
              </thead>
              <tbody>
                {meta.fields.map((f) => (
                  <tr key={f.name}>
                    <th scope="row">{f.name}</th>
                    <td>{f.src_tables.join(', ')}</td>
                    <td>{fmt(f.cardinal)}</td>
                    <td>{f.is_numeric ? 'numeric' : 'text'}</td>
                    <td>{f.src_tables.length > 1 ? 'yes' : '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </section>
  );
}
