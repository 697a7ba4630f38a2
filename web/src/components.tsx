// Small accessible building blocks shared by the pages: messages that screen readers
// announce, labelled form fields, a modal dialog that keeps the keyboard inside it.
import { useEffect, useId, useRef, type InputHTMLAttributes, type ReactNode, type Ref, type SelectHTMLAttributes } from 'react';
import { ApiError } from './api';

export function errorText(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof Error) return e.message;
  return 'Something went wrong.';
}

export function Notice({ kind, children, testId }: { kind: 'error' | 'warning' | 'info' | 'success'; children: ReactNode; testId?: string }) {
  // Errors interrupt (role=alert); the others are announced politely.
  const role = kind === 'error' || kind === 'warning' ? 'alert' : 'status';
  return (
    <div className={`notice notice-${kind}`} role={role} data-testid={testId}>
      {children}
    </div>
  );
}

type FieldProps = InputHTMLAttributes<HTMLInputElement> & { label: string; hint?: string; error?: string; ref?: Ref<HTMLInputElement> };

export function Field({ label, hint, error, id, ref, ...input }: FieldProps) {
  const auto = useId();
  const fid = id ?? auto;
  const hintId = hint ? `${fid}-hint` : undefined;
  const errId = error ? `${fid}-err` : undefined;
  return (
    <div className="field">
      <label htmlFor={fid}>{label}</label>
      <input
        ref={ref}
        id={fid}
        aria-describedby={[hintId, errId].filter(Boolean).join(' ') || undefined}
        aria-invalid={error ? true : undefined}
        {...input}
      />
      {hint && (
        <small id={hintId} className="hint">
          {hint}
        </small>
      )}
      {error && (
        <small id={errId} className="field-error">
          {error}
        </small>
      )}
    </div>
  );
}

type SelectProps = SelectHTMLAttributes<HTMLSelectElement> & { label: string; children: ReactNode };

export function SelectField({ label, id, children, ...select }: SelectProps) {
  const auto = useId();
  const fid = id ?? auto;
  return (
    <div className="field">
      <label htmlFor={fid}>{label}</label>
      <select id={fid} {...select}>
        {children}
      </select>
    </div>
  );
}

/** A modal dialog (native <dialog>): focus moves in, Escape closes, focus returns on close. */
export function Dialog({ title, open, onClose, children }: { title: string; open: boolean; onClose: () => void; children: ReactNode }) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) {
      const before = document.activeElement as HTMLElement | null;
      d.showModal();
      return () => before?.focus();
    }
    if (!open && d.open) d.close();
    return undefined;
  }, [open]);
  return (
    <dialog
      ref={ref}
      aria-labelledby={titleId}
      onCancel={(e) => {
        e.preventDefault();
        onClose();
      }}
    >
      {open && (
        <>
          <h2 id={titleId}>{title}</h2>
          {children}
        </>
      )}
    </dialog>
  );
}

/** An action that asks before it acts (delete, revoke): its button, and once pressed
 * "Yes, …" (focused) beside a way back. asking: the question is showing. */
export function ConfirmButton({
  asking,
  onAsk,
  onConfirm,
  onCancel,
  label,
  ariaLabel,
  confirmLabel = 'Yes, delete',
  cancelLabel = 'Cancel',
  groupLabel,
}: {
  asking: boolean;
  onAsk: () => void;
  onConfirm: () => void;
  onCancel: () => void;
  label: string;
  ariaLabel: string;
  confirmLabel?: string;
  cancelLabel?: string;
  /** Names the question as a group (role="group") when given. */
  groupLabel?: string;
}) {
  return asking ? (
    <span className="confirm" role={groupLabel ? 'group' : undefined} aria-label={groupLabel}>
      <button type="button" className="danger" onClick={onConfirm} autoFocus>
        {confirmLabel}
      </button>
      <button type="button" onClick={onCancel}>
        {cancelLabel}
      </button>
    </span>
  ) : (
    <button type="button" onClick={onAsk} aria-label={ariaLabel}>
      {label}
    </button>
  );
}

/** A dialog form's buttons: submit (disabled and busyLabel while busy) and Cancel. */
export function SubmitCancel({ busy, label, busyLabel, onCancel }: { busy: boolean; label: string; busyLabel: string; onCancel: () => void }) {
  return (
    <div className="actions">
      <button type="submit" className="primary" disabled={busy} aria-busy={busy}>
        {busy ? busyLabel : label}
      </button>
      <button type="button" onClick={onCancel}>
        Cancel
      </button>
    </div>
  );
}

export function Spinner({ label }: { label: string }) {
  return (
    <p className="loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" /> {label}
    </p>
  );
}

export function formatDate(iso?: string): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}
