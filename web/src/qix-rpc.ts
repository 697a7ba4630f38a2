// A minimal QIX (JSON-RPC 2.0 over WebSocket) client for the few document methods the web app
// needs (OpenDoc, GetScript, SetScript, DoSave): the same-origin socket /app/<appId>, which
// the ingress authenticates with the session cookie, like every API call. No enigma.js: the
// web app has no dependency for it and needs only request/response, no object proxies.
import { api, ApiError } from './api';

interface RpcError {
  code: number;
  message: string;
  parameter?: string;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

/** Close codes the engine uses when the app is missing (4204) or not allowed (4203). */
function closeReason(code: number): string {
  switch (code) {
    case 4204:
      return 'Not found. The app may have been deleted, or you may not have access to it.';
    case 4203:
      return 'You do not have access to this app.';
    default:
      return 'The connection to the engine was closed. Reload the page to try again.';
  }
}

export class QixError extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.name = 'QixError';
    this.code = code;
  }
}

export class QixSession {
  private ws: WebSocket;
  private seq = 0;
  private pending = new Map<number, Pending>();
  private closed: Error | null = null;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.onmessage = (ev) => this.onMessage(String(ev.data));
    ws.onclose = (ev) => this.fail(new QixError(ev.code, closeReason(ev.code)));
  }

  /** Connect to /app/<appId> and open the document; resolves with the session and the doc handle. */
  static async open(appId: string): Promise<{ session: QixSession; doc: number }> {
    const proto = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${proto}//${window.location.host}/app/${encodeURIComponent(appId)}`;
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => undefined; // onclose follows with the code
      ws.onclose = (ev) => reject(new QixError(ev.code, closeReason(ev.code)));
    });
    const session = new QixSession(ws);
    try {
      const r = (await session.call(-1, 'OpenDoc', { qDocName: appId })) as { qReturn?: { qHandle?: number } };
      const doc = r.qReturn?.qHandle;
      if (typeof doc !== 'number') throw new QixError(0, 'The engine did not open the app.');
      return { session, doc };
    } catch (e) {
      session.close();
      throw e;
    }
  }

  /**
   * Open, and when the upgrade is refused find out why: a 401 from the REST API means the
   * session ended (api() then sends the user to sign-in); otherwise the engine's reason.
   */
  static async openOrExplain(appId: string): Promise<{ session: QixSession; doc: number }> {
    try {
      return await QixSession.open(appId);
    } catch (e) {
      if (e instanceof QixError && (e.code === 1006 || e.code === 1002)) {
        // The browser does not expose the HTTP status of a refused upgrade: ask the REST API.
        await api('GET', '/api/v1/users/me'); // throws (and ends the UI session) on 401
        try {
          await api('GET', `/api/v1/apps/${encodeURIComponent(appId)}`);
        } catch (inner) {
          if (inner instanceof ApiError) throw inner;
        }
        throw new QixError(e.code, 'The engine cannot be reached right now. Try again in a moment.');
      }
      throw e;
    }
  }

  call(handle: number, method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    if (this.closed) return Promise.reject(this.closed);
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ jsonrpc: '2.0', id, handle, method, params }));
    });
  }

  close(): void {
    this.fail(new QixError(1000, 'closed'));
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close();
  }

  private fail(e: Error): void {
    if (!this.closed) this.closed = e;
    this.pending.forEach((p) => p.reject(e));
    this.pending.clear();
  }

  private onMessage(text: string): void {
    let msg: { id?: number; result?: unknown; error?: RpcError };
    try {
      msg = JSON.parse(text) as typeof msg;
    } catch {
      return;
    }
    if (typeof msg.id !== 'number') return; // notifications (OnConnected, change pushes)
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    if (msg.error) {
      const m = msg.error.code === 5 ? 'You do not have permission to do this.' : msg.error.message + (msg.error.parameter ? `: ${msg.error.parameter}` : '');
      p.reject(new QixError(msg.error.code, m));
    } else {
      p.resolve(msg.result);
    }
  }
}
