// The one WebSocket of the page (`/api/v1/ws`, subprotocol articula.v1+json; protocol/README.md).
//
// What it guarantees to the screens:
// - Every command carries a fresh id and settles exactly once, with the server's `ack` or `error`.
//   Commands not yet answered survive a dropped socket and are sent again, with the SAME id, once
//   the next socket is authenticated: the server answers a retried id with the original ack, so a
//   message is never lost and never doubled.
// - Per case it remembers the last `seq` applied and resubscribes with `since` = that seq, so a
//   screen receives exactly the events it missed, in order, then live ones. An event that does not
//   follow the last seq is never applied: a gap makes it resubscribe.
// - It reconnects by itself: exponential backoff with jitter, at once on `resync` (close 4000),
//   when the browser comes back online or the page becomes visible again.
// The socket authenticates with the session cookie. A socket opened without a valid cookie is not
// authenticated (no `welcome`): the client refreshes the session and opens a new one.

import { signal } from '@preact/signals';
import type { CaseEvent } from './domain';
import type { Board, Inbox, Presence, Receipt, TypingFrame } from './generated/protocol';

export const SUBPROTOCOL = 'articula.v1+json';
/** Close code: fell behind; reconnect and resume with `since`. */
const CLOSE_RESYNC = 4000;
/** Close code: the session was revoked. */
const CLOSE_REVOKED = 4001;
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30_000;
/** The browser hides WebSocket pings, so the client checks liveness itself with `ping` frames:
 * a half-open connection (a phone that changed networks) is noticed within these bounds. */
const PING_EVERY_MS = 25_000;
const PONG_WITHIN_MS = 10_000;

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'offline' | 'closed';

/** A command the server refused (`error` frame). Nothing changed on the server. */
export class CommandError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly details?: any,
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

export interface Ack {
  id: string;
  seq?: number;
}

/** Ephemeral frames about a case: `presence`, `typing`, `receipt`. */
export type CaseSignal =
  | { type: 'presence'; data: Presence }
  | { type: 'typing'; data: TypingFrame }
  | { type: 'receipt'; data: Receipt };

export interface CaseHandlers {
  /** Events in seq order, each exactly once. */
  onEvent(ev: CaseEvent): void;
  onSignal?(s: CaseSignal): void;
  /** `subscribe` was acked; `head` is the case's latest seq. */
  onSubscribed?(head: number): void;
  /** The case cannot be followed: `not_found`/`forbidden`, or access was lost. */
  onLost?(code: string, message: string): void;
}

export type BoardFrame = Board;
export type InboxItem = Inbox;

interface Pending {
  id: string;
  type: string;
  data: unknown;
  resolve(a: Ack): void;
  reject(e: CommandError): void;
  /** Retried on reconnect with the same id (changes to a case). Others are dropped on close. */
  durable: boolean;
}

interface CaseSub {
  caseId: string;
  lastSeq: number;
  handlers: CaseHandlers;
  /** Id of the subscribe in flight, if any. */
  subscribing: string | null;
}

interface Frame {
  v: number;
  type: string;
  id?: string;
  data: any;
}

export interface RealtimeOptions {
  url: () => string;
  /** Make the session cookie valid again (refresh); false when the session is over. */
  reauthenticate: () => Promise<boolean>;
  /** The server closed the socket because the session was revoked. */
  onRevoked: () => void;
  newId?: () => string;
  WebSocketImpl?: typeof WebSocket;
  /** The browser's online state and its events (injectable for tests). */
  env?: Pick<Window, 'addEventListener' | 'removeEventListener'> & { navigator: { onLine: boolean } };
}

export class RealtimeClient {
  readonly state = signal<ConnectionState>('idle');
  /** Commands sent and not yet answered (shown as "sending…"/"will be sent"). */
  readonly unsent = signal(0);
  readonly userId = signal<string | null>(null);

  private ws: WebSocket | null = null;
  private authed = false;
  private stopped = true;
  private attempt = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private pongTimer: ReturnType<typeof setTimeout> | undefined;
  private helloId: string | null = null;
  private readonly pending = new Map<string, Pending>();
  private readonly cases = new Map<string, CaseSub>();
  /** Subscribe ids in flight → case. */
  private readonly subscribes = new Map<string, string>();
  private readonly boardListeners = new Set<(f: BoardFrame) => void>();
  /** The organisation whose board is followed (needed only by members of several). */
  private boardOrg: string | undefined;
  private readonly inboxListeners = new Set<(i: InboxItem) => void>();
  private readonly newId: () => string;
  private readonly WS: typeof WebSocket;

  constructor(private readonly opts: RealtimeOptions) {
    this.newId = opts.newId ?? (() => crypto.randomUUID());
    this.WS = opts.WebSocketImpl ?? WebSocket;
  }

  private get env() {
    return this.opts.env ?? window;
  }

  // ---- lifecycle ----

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.env.addEventListener('online', this.onOnline);
    this.env.addEventListener('offline', this.onOffline);
    if (typeof document !== 'undefined') document.addEventListener('visibilitychange', this.onVisible);
    this.connect();
  }

  /** Closes for good (sign-out): forgets subscriptions and unsent commands. */
  stop() {
    this.stopped = true;
    this.env.removeEventListener('online', this.onOnline);
    this.env.removeEventListener('offline', this.onOffline);
    if (typeof document !== 'undefined') document.removeEventListener('visibilitychange', this.onVisible);
    clearTimeout(this.retryTimer);
    this.stopHeartbeat();
    this.ws?.close(1000, 'signed out');
    this.ws = null;
    for (const p of this.pending.values()) p.reject(new CommandError('closed', 'signed out'));
    this.pending.clear();
    this.cases.clear();
    this.subscribes.clear();
    this.boardListeners.clear();
    this.inboxListeners.clear();
    this.unsent.value = 0;
    this.state.value = 'closed';
  }

  private onOnline = () => this.reconnectNow();
  private onOffline = () => {
    // The socket is most likely dead already; say so now rather than after a timeout, and keep
    // what the user sends meanwhile for the next socket.
    this.ws?.close(1000, 'offline');
    this.state.value = 'offline';
  };
  private onVisible = () => {
    if (document.visibilityState === 'visible' && !this.authed) this.reconnectNow();
  };

  private reconnectNow() {
    if (this.stopped) return;
    this.attempt = 0;
    clearTimeout(this.retryTimer);
    if (this.ws && this.ws.readyState <= 1) {
      // Connecting or open already: nothing to do.
      return;
    }
    this.connect();
  }

  private connect() {
    if (this.stopped) return;
    if (!this.env.navigator.onLine) {
      this.state.value = 'offline';
      return; // `online` reconnects
    }
    this.state.value = this.attempt === 0 && this.state.value === 'idle' ? 'connecting' : 'reconnecting';
    let ws: WebSocket;
    try {
      ws = new this.WS(this.opts.url(), SUBPROTOCOL);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.authed = false;
    ws.onopen = () => {
      // Ask for a pong. An authenticated socket says `welcome` first (the server sends it as soon
      // as the socket starts); a pong without a welcome means the cookie was not accepted.
      this.helloId = `hello-${this.newId()}`;
      this.write({ v: 1, type: 'ping', id: this.helloId, data: {} });
    };
    ws.onmessage = (e) => {
      if (this.ws !== ws || typeof e.data !== 'string') return;
      let frame: Frame;
      try {
        frame = JSON.parse(e.data) as Frame;
      } catch {
        return;
      }
      this.onFrame(frame);
    };
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      const wasAuthed = this.authed;
      this.authed = false;
      this.stopHeartbeat();
      this.dropVolatile();
      if (this.stopped) return;
      if (e.code === CLOSE_REVOKED) {
        this.opts.onRevoked();
        return;
      }
      if (e.code === CLOSE_RESYNC) {
        this.attempt = 0;
        this.connect();
        return;
      }
      if (!this.env.navigator.onLine) {
        this.state.value = 'offline';
        return;
      }
      if (!wasAuthed) {
        // The upgrade was refused (expired cookie: 401) or closed before `welcome`.
        void this.reauthenticateThenReconnect();
        return;
      }
      this.scheduleReconnect();
    };
  }

  private async reauthenticateThenReconnect() {
    this.state.value = 'reconnecting';
    let ok = true;
    try {
      ok = await this.opts.reauthenticate();
    } catch {
      // Server unreachable: retry with backoff.
    }
    if (!ok) return; // the session is over; session.ts signs out
    this.scheduleReconnect();
  }

  private scheduleReconnect() {
    if (this.stopped) return;
    this.state.value = this.env.navigator.onLine ? 'reconnecting' : 'offline';
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.attempt);
    // "Equal jitter": at least half the ceiling, so reconnect storms spread out but still back off.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.attempt = Math.min(this.attempt + 1, 16);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  private write(frame: Frame) {
    if (this.ws && this.ws.readyState === 1) this.ws.send(JSON.stringify(frame));
  }

  // ---- after `welcome`: resume everything ----

  private onWelcome(data: { user_id: string }) {
    this.authed = true;
    this.attempt = 0;
    this.userId.value = data.user_id;
    this.state.value = 'open';
    this.startHeartbeat();
    // Subscriptions first, so acks of retried commands find the cases followed again.
    for (const sub of this.cases.values()) this.sendSubscribe(sub);
    if (this.boardListeners.size) this.sendVolatile('subscribe_board', this.boardData());
    if (this.inboxListeners.size) this.sendVolatile('subscribe_inbox', {});
    for (const p of this.pending.values()) this.write({ v: 1, type: p.type, id: p.id, data: p.data });
  }

  private startHeartbeat() {
    this.stopHeartbeat();
    this.pingTimer = setInterval(() => {
      const id = `ping-${this.newId()}`;
      this.write({ v: 1, type: 'ping', id, data: {} });
      clearTimeout(this.pongTimer);
      this.pongTimer = setTimeout(() => this.ws?.close(4002, 'no pong'), PONG_WITHIN_MS);
    }, PING_EVERY_MS);
  }

  private stopHeartbeat() {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
  }

  // ---- frames from the server ----

  private onFrame(f: Frame) {
    switch (f.type) {
      case 'welcome':
        return this.onWelcome(f.data);
      case 'pong':
        clearTimeout(this.pongTimer);
        if (f.data?.id && f.data.id === this.helloId && !this.authed) {
          // Not authenticated: close; onclose refreshes the session and reconnects.
          this.ws?.close(1000, 'reauthenticate');
        }
        return;
      case 'ack':
        return this.onAck(f.data as Ack);
      case 'error':
        return this.onError(f.data);
      case 'event':
        return this.onEvent(f.data as CaseEvent);
      case 'presence':
      case 'typing':
      case 'receipt':
        return this.cases.get(f.data.case_id)?.handlers.onSignal?.(f as CaseSignal);
      case 'board':
        for (const l of this.boardListeners) l(f.data as BoardFrame);
        return;
      case 'inbox':
        for (const l of this.inboxListeners) l(f.data as InboxItem);
        return;
      case 'resync':
        return this.onResync(f.data);
      default:
        // Within v1 the server may add frame types: ignore what we do not know.
        return;
    }
  }

  private onAck(a: Ack) {
    const caseId = this.subscribes.get(a.id);
    if (caseId !== undefined) {
      this.subscribes.delete(a.id);
      const sub = this.cases.get(caseId);
      if (sub && sub.subscribing === a.id) {
        sub.subscribing = null;
        sub.handlers.onSubscribed?.(a.seq ?? 0);
      }
      return;
    }
    const p = this.pending.get(a.id);
    if (!p) return;
    this.pending.delete(a.id);
    this.countUnsent();
    p.resolve(a);
  }

  private onError(e: { id?: string; code: string; message: string; details?: unknown }) {
    if (!e.id) {
      if (e.code === 'unauthorized' && !this.authed) this.ws?.close(1000, 'reauthenticate');
      return;
    }
    const caseId = this.subscribes.get(e.id);
    if (caseId !== undefined) {
      this.subscribes.delete(e.id);
      const sub = this.cases.get(caseId);
      if (!sub || sub.subscribing !== e.id) return;
      sub.subscribing = null;
      if (e.code === 'conflict') return; // another subscribe of this case is in flight
      if (e.code === 'unavailable' || e.code === 'rate_limited') {
        setTimeout(() => this.cases.get(caseId) === sub && this.authed && this.sendSubscribe(sub), 1000);
        return;
      }
      sub.handlers.onLost?.(e.code, e.message);
      return;
    }
    const p = this.pending.get(e.id);
    if (!p) return;
    if (e.code === 'unavailable' || e.code === 'rate_limited') {
      // Nothing happened on the server; the same id may be sent again.
      setTimeout(() => {
        if (this.pending.get(p.id) === p && this.authed) this.write({ v: 1, type: p.type, id: p.id, data: p.data });
      }, e.code === 'rate_limited' ? 1000 : 500 + Math.random() * 1000);
      return;
    }
    this.pending.delete(e.id);
    this.countUnsent();
    p.reject(new CommandError(e.code, e.message, e.details));
  }

  private onEvent(ev: CaseEvent) {
    const sub = this.cases.get(ev.case_id);
    if (!sub) return;
    if (ev.seq <= sub.lastSeq) return; // already applied
    if (ev.seq !== sub.lastSeq + 1) {
      // Never apply across a gap: ask again from what we have.
      this.sendSubscribe(sub);
      return;
    }
    sub.lastSeq = ev.seq;
    sub.handlers.onEvent(ev);
  }

  private onResync(r: { case_id?: string; reason: string; last_seq?: number }) {
    if (r.case_id) {
      const sub = this.cases.get(r.case_id);
      if (!sub) return;
      if (r.reason === 'access_changed') {
        sub.handlers.onLost?.('forbidden', 'You no longer have access to this case.');
        return;
      }
      // `lagged`/`gap` are followed by close 4000 (reconnect resumes); `restarted` keeps the socket.
      if (r.reason === 'restarted') this.sendSubscribe(sub);
      return;
    }
    if (r.reason === 'board_restarted' && this.boardListeners.size) this.sendVolatile('subscribe_board', this.boardData());
  }

  // ---- what screens call ----

  /** Sends a command that changes a case. Kept until answered, resent after reconnects. */
  command(type: string, data: Record<string, unknown>): Promise<Ack> {
    return this.enqueue(type, data, true);
  }

  /** Sends a command only worth sending now (`mark_read`): dropped if the socket closes. */
  volatile(type: string, data: Record<string, unknown>): Promise<Ack> {
    if (!this.authed) return Promise.reject(new CommandError('offline', 'not connected'));
    return this.enqueue(type, data, false);
  }

  private enqueue(type: string, data: unknown, durable: boolean): Promise<Ack> {
    return new Promise<Ack>((resolve, reject) => {
      const id = this.newId();
      this.pending.set(id, { id, type, data, resolve, reject, durable });
      this.countUnsent();
      if (this.authed) this.write({ v: 1, type, id, data });
    });
  }

  private sendVolatile(type: string, data: unknown) {
    this.enqueue(type, data, false).catch(() => {});
  }

  private dropVolatile() {
    for (const p of [...this.pending.values()]) {
      if (!p.durable) {
        this.pending.delete(p.id);
        p.reject(new CommandError('offline', 'connection lost'));
      }
    }
    this.subscribes.clear();
    for (const sub of this.cases.values()) sub.subscribing = null;
    this.countUnsent();
  }

  private countUnsent() {
    let n = 0;
    for (const p of this.pending.values()) if (p.durable) n++;
    this.unsent.value = n;
  }

  /** Follows a case from `since` (the last seq the caller already has; 0 = the whole log). */
  subscribeCase(caseId: string, since: number, handlers: CaseHandlers): () => void {
    const sub: CaseSub = { caseId, lastSeq: since, handlers, subscribing: null };
    this.cases.set(caseId, sub);
    if (this.authed) this.sendSubscribe(sub);
    return () => {
      if (this.cases.get(caseId) !== sub) return;
      this.cases.delete(caseId);
      if (this.authed) this.sendVolatile('unsubscribe', { case_id: caseId });
    };
  }

  private sendSubscribe(sub: CaseSub) {
    if (sub.subscribing) return; // its answer will resume from lastSeq anyway
    const id = `sub-${this.newId()}`;
    sub.subscribing = id;
    this.subscribes.set(id, sub.caseId);
    this.write({ v: 1, type: 'subscribe', id, data: { case_id: sub.caseId, since: sub.lastSeq } });
  }

  /** Tells the case's other subscribers that the user is typing (ephemeral, unanswered). */
  typing(caseId: string) {
    if (this.authed && this.cases.has(caseId)) this.write({ v: 1, type: 'typing', data: { case_id: caseId } });
  }

  /** Receives the status board: a snapshot now and after every reconnect, then changes. */
  watchBoard(listener: (f: BoardFrame) => void, orgId?: string): () => void {
    this.boardListeners.add(listener);
    if (orgId) this.boardOrg = orgId;
    if (this.authed) this.sendVolatile('subscribe_board', this.boardData());
    return () => {
      this.boardListeners.delete(listener);
      if (!this.boardListeners.size && this.authed) this.sendVolatile('unsubscribe_board', {});
    };
  }

  /** Asks for a fresh board snapshot (e.g. at midnight UTC, when `at_risk` flags move). */
  refreshBoard() {
    if (this.boardListeners.size && this.authed) this.sendVolatile('subscribe_board', this.boardData());
  }

  private boardData() {
    return this.boardOrg ? { org_id: this.boardOrg } : {};
  }

  watchInbox(listener: (i: InboxItem) => void): () => void {
    const first = this.inboxListeners.size === 0;
    this.inboxListeners.add(listener);
    if (first && this.authed) this.sendVolatile('subscribe_inbox', {});
    return () => {
      this.inboxListeners.delete(listener);
    };
  }
}
