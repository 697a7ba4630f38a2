// Data files of one space (or the personal space) in the hub: listed through the item
// catalog (resourceType=datafile), uploaded with POST /api/v1/data-files (multipart: "File"
// with the bytes, "Json" with {name, spaceId}) over XHR so that a progress bar can follow
// the upload, deleted with DELETE /api/v1/data-files/{id} where the caller may.
import { useCallback, useEffect, useId, useRef, useState } from 'react';
import { api, csrfTokenNow, xhrError, type Item, type Page } from '../api';
import { ConfirmButton, errorText, formatDate, Notice } from '../components';

const PERSONAL = 'personal';

function upload(file: File, spaceId: string, token: string | null, onProgress: (f: number) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    const meta: Record<string, string> = { name: file.name };
    if (spaceId && spaceId !== PERSONAL) meta.spaceId = spaceId;
    form.append('Json', JSON.stringify(meta));
    form.append('File', file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/v1/data-files');
    xhr.setRequestHeader('Accept', 'application/json');
    if (token) xhr.setRequestHeader('qlik-csrf-token', token);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    };
    xhr.onload = () => (xhr.status >= 200 && xhr.status < 300 ? resolve() : reject(xhrError(xhr.status, xhr.responseText)));
    xhr.onerror = () => reject(xhrError(0, ''));
    xhr.send(form);
  });
}

function size(n?: number): string {
  if (n === undefined) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export function DataFiles({ spaceId, canUpload }: { spaceId: string; canUpload: boolean }) {
  const [files, setFiles] = useState<(Item & { size?: number })[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const [progress, setProgress] = useState<number | null>(null);
  const [confirming, setConfirming] = useState<string | null>(null);
  const inputRef = useRef<HTMLInputElement>(null);
  const inputId = useId();

  const load = useCallback(async () => {
    const q = new URLSearchParams({ resourceType: 'datafile', limit: '100', sort: '+name' });
    if (spaceId) q.set('spaceId', spaceId);
    try {
      setFiles((await api<Page<Item>>('GET', `/api/v1/items?${q.toString()}`)).data);
    } catch (e) {
      setError(errorText(e));
      setFiles([]);
    }
  }, [spaceId]);

  useEffect(() => {
    setFiles(null);
    setStatus(null);
    setError(null);
    void load();
  }, [load]);

  const onFile = async (file: File | undefined) => {
    if (!file) return;
    setError(null);
    setStatus(null);
    setProgress(0);
    try {
      let token = await csrfTokenNow();
      try {
        await upload(file, spaceId, token, setProgress);
      } catch (e) {
        // A stale CSRF token: fetch a fresh one and send the file once more.
        if ((e as { code?: string }).code !== 'CSRF-TOKEN-2') throw e;
        token = await csrfTokenNow();
        setProgress(0);
        await upload(file, spaceId, token, setProgress);
      }
      setStatus(`“${file.name}” was uploaded.`);
      await load();
    } catch (e) {
      setError(errorText(e));
    } finally {
      setProgress(null);
      if (inputRef.current) inputRef.current.value = '';
    }
  };

  const remove = async (f: Item) => {
    setError(null);
    try {
      await api('DELETE', `/api/v1/data-files/${encodeURIComponent(f.resourceId || f.id)}`);
      setStatus(`“${f.name}” was deleted.`);
      setConfirming(null);
      await load();
    } catch (e) {
      setError(errorText(e));
    }
  };

  return (
    <section className="datafiles" aria-labelledby={`${inputId}-title`}>
      <div className="section-head">
        <h2 id={`${inputId}-title`}>Data files</h2>
        {canUpload && (
          <div className="upload">
            <label htmlFor={inputId}>Upload a data file</label>
            <input id={inputId} ref={inputRef} type="file" accept=".csv,.txt,.tsv,.qvd,.xlsx,.json,text/csv" disabled={progress !== null} onChange={(e) => void onFile(e.target.files?.[0])} />
          </div>
        )}
      </div>
      {progress !== null && (
        <div className="progress" data-testid="upload-progress">
          <progress max={1} value={progress} aria-label="Upload progress" />
          <span aria-live="polite">{Math.round(progress * 100)}%</span>
        </div>
      )}
      {error && <Notice kind="error" testId="datafiles-error">{error}</Notice>}
      {status && <Notice kind="success" testId="datafiles-status">{status}</Notice>}
      {files === null ? null : files.length === 0 ? (
        <p className="empty">No data files here yet.</p>
      ) : (
        <div className="table-wrap">
          <table data-testid="datafiles-table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Size</th>
                <th scope="col">Updated</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {files.map((f) => (
                <tr key={f.id}>
                  <th scope="row">{f.name}</th>
                  <td>{size(f.resourceSize?.appFile ?? f.size)}</td>
                  <td>{formatDate(f.updatedAt ?? f.createdAt)}</td>
                  <td className="cell-actions">
                    {(f.actions ?? []).includes('delete') && (
                      <ConfirmButton
                        asking={confirming === f.id}
                        onAsk={() => setConfirming(f.id)}
                        onConfirm={() => void remove(f)}
                        onCancel={() => setConfirming(null)}
                        label="Delete"
                        ariaLabel={`Delete ${f.name}`}
                      />
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
