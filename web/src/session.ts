// Who is signed in, and keeping the session alive.
//
// Tokens live in HttpOnly cookies the page never sees. The access token lasts `expires_in`
// (15 min); the refresh token is single use, and presenting a spent one revokes the whole session.
// Every tab shares the cookie jar, so two refreshes in flight at once (two tabs, or a timer and a
// 401 in one tab) would send the same refresh token twice. Hence:
// - one refresh at a time per tab (a shared promise), and across tabs a Web Lock around the
//   request: refreshes that follow each other send the newest cookie, which is safe;
// - tabs tell each other over a BroadcastChannel when they refreshed, so the others skip a
//   refresh they no longer need and reschedule theirs; and when someone signs out.
// Nothing here is stored on the device except the last portal used (a UI preference).

import { signal } from '@preact/signals';
import * as api from './api';
import type { Me, Portal } from './domain';

export const me = signal<Me | null>(null);
export const portal = signal<Portal>(preferredPortal());
/** Why the last session ended, shown on the sign-in page. */
export const endedReason = signal<string | null>(null);
/** True until the first check of the cookies finished. */
export const booting = signal(true);

const PORTAL_PREF = 'articula.portal';
const PENDING_LOGOUT = 'articula.pendingLogout';
const REFRESH_LOCK = 'articula-auth-refresh';
/** Refresh this long before the access token expires. */
const REFRESH_MARGIN_MS = 120_000;

type Message =
  | { type: 'refreshed'; at: number; expiresIn: number; portal: Portal }
  | { type: 'signed-out'; reason: string | null }
  | { type: 'signed-in' };

const channel: BroadcastChannel | null = typeof BroadcastChannel === 'function' ? new BroadcastChannel('articula-auth') : null;

let lastRefreshAt = 0;
let expiresAt = 0;
let inFlight: Promise<boolean> | null = null;
let timer: ReturnType<typeof setTimeout> | undefined;
const signOutHooks: (() => void)[] = [];

function preferredPortal(): Portal {
  try {
    return localStorage.getItem(PORTAL_PREF) === 'lab' ? 'lab' : 'clinic';
  } catch {
    return 'clinic';
  }
}

export function rememberPortal(p: Portal) {
  portal.value = p;
  try {
    localStorage.setItem(PORTAL_PREF, p);
  } catch {
    /* private mode: the preference is only a convenience */
  }
}

/** Registers cleanup to run when the session ends (close the socket, drop stores). */
export function onSignOut(fn: () => void) {
  signOutHooks.push(fn);
}

function issued(res: api.SignedIn, at: number) {
  lastRefreshAt = at;
  expiresAt = at + res.expires_in * 1000;
  me.value = res.user;
  rememberPortal(res.portal);
  schedule();
}

/** Last time the user touched this page: refreshing ahead of time only while they use it keeps
 * the server's inactivity limit meaningful (an idle tab lets its access token lapse; the next
 * action refreshes on demand, or finds the session ended). */
let lastActivity = Date.now();
for (const type of ['pointerdown', 'keydown']) {
  addEventListener(type, () => (lastActivity = Date.now()), { capture: true, passive: true });
}

function schedule() {
  clearTimeout(timer);
  if (!me.value || !expiresAt) return;
  // A little jitter so tabs that learned the same expiry do not all wake at once.
  const due = expiresAt - REFRESH_MARGIN_MS - Math.random() * 15_000;
  timer = setTimeout(() => {
    if (lastActivity > lastRefreshAt) refresh(Date.now()).catch(() => {});
  }, Math.max(5_000, due - Date.now()));
}

/** Refreshes the session unless someone refreshed after `since` (when the failed request was
 * sent). Resolves true when the cookies are fresh, false when the session is over. */
export function refresh(since: number): Promise<boolean> {
  if (lastRefreshAt > since) return Promise.resolve(true);
  if (!inFlight) {
    inFlight = withLock(() => doRefresh(since)).finally(() => {
      inFlight = null;
    });
  }
  return inFlight;
}

async function withLock<T>(fn: () => Promise<T>): Promise<T> {
  if (typeof navigator !== 'undefined' && navigator.locks) {
    return navigator.locks.request(REFRESH_LOCK, fn);
  }
  return fn();
}

async function doRefresh(since: number): Promise<boolean> {
  // Another tab may have refreshed while this one waited for the lock.
  if (lastRefreshAt > since) return true;
  const at = Date.now();
  try {
    const res = await api.refresh();
    issued(res, at);
    channel?.postMessage({ type: 'refreshed', at, expiresIn: res.expires_in, portal: res.portal } satisfies Message);
    return true;
  } catch (e) {
    if (e instanceof api.ApiError && (e.status === 401 || e.code === 'csrf_failed')) {
      // The session is over. At start (nobody signed in yet) that just means: show sign-in.
      if (me.value) endSession(reasonOf(e.code), true);
      return false;
    }
    // Network trouble: the session may still be fine; let the caller retry later.
    throw e;
  }
}

function reasonOf(code: string): string | null {
  switch (code) {
    case 'token_reused':
      return 'For your safety this session was ended: its refresh token was used twice. Please sign in again.';
    case 'session_revoked':
      return 'Your session was ended (signed out elsewhere, or by an administrator).';
    case 'token_expired':
      return 'Your session expired. Please sign in again.';
    default:
      return null;
  }
}

api.setRefresher((since) => refresh(since).catch(() => false));

/** At start: are the cookies of a live session here? One refresh tells us who, and until when. */
export async function boot() {
  if (takeFlag(PENDING_LOGOUT)) {
    try {
      await api.logout();
    } catch {
      /* still unreachable: refresh below fails too, or finds the session ended */
    }
  }
  if (!api.csrfToken()) {
    // No CSRF cookie (it lives as long as the refresh cookie): nobody is signed in here.
    booting.value = false;
    return;
  }
  try {
    // Another tab may have refreshed just now (then this one skips its own refresh): the cookies
    // are fresh either way, and /me says who is signed in.
    if ((await refresh(Date.now())) && !me.value) adopt(await api.me());
  } catch {
    // Offline at start: try the current access cookie, if any.
    try {
      adopt(await api.me());
    } catch {
      me.value = null;
    }
  } finally {
    booting.value = false;
  }
}

/** `/me` says who is signed in, and on which portal (the header's colours and sign-in links). */
function adopt(m: Me) {
  me.value = m;
  if (m.portal) rememberPortal(m.portal);
}

export async function signIn(email: string, password: string, p: Portal) {
  const at = Date.now();
  const res = await api.login(email, password, p);
  endedReason.value = null;
  issued(res, at);
  channel?.postMessage({ type: 'signed-in' } satisfies Message);
}

/** Signs out this session (or every device), everywhere in this browser. */
export async function signOut(everywhere = false) {
  const end = () => (everywhere ? api.logoutAll() : api.logout());
  signingOut = true;
  try {
    // Under the refresh lock: no tab's refresh is in flight meanwhile, whose answer, arriving
    // after the sign-out's, would set the cookies of the ended session again.
    await withLock(async () => {
      try {
        await end();
      } catch (e) {
        if (!(e instanceof api.ApiError && e.status === 401)) throw e;
        // The access cookie lapsed: renew it once (the lock is held, so directly), then end.
        await api.refresh();
        await end();
      }
    });
  } catch {
    // Unreachable server: the cookies are still valid. Remember to end the session at the next
    // start, before anything else, so a shared device does not sign back in by itself.
    try {
      sessionStorage.setItem(PENDING_LOGOUT, '1');
    } catch {
      /* ignore */
    }
  }
  finishSession(null, true);
}

/** True while this page signs out: the server ends the session (and closes this page's socket,
 * code 4001) before its answer to the sign-out arrives; leaving the page at the socket's close
 * would abort that answer, and with it the removal of the cookies. */
let signingOut = false;

/** Clears everything this page holds about the session and shows the sign-in page. The reload
 * drops all in-memory state (case content included) for certain. */
export function endSession(reason: string | null, broadcast: boolean) {
  if (signingOut) return; // signOut() finishes it once the server answered
  finishSession(reason, broadcast);
}

function finishSession(reason: string | null, broadcast: boolean) {
  clearTimeout(timer);
  if (broadcast) channel?.postMessage({ type: 'signed-out', reason } satisfies Message);
  for (const fn of signOutHooks) {
    try {
      fn();
    } catch {
      /* cleanup must not stop the sign-out */
    }
  }
  me.value = null;
  lastRefreshAt = 0;
  expiresAt = 0;
  try {
    const pending = sessionStorage.getItem(PENDING_LOGOUT);
    sessionStorage.clear();
    if (pending) sessionStorage.setItem(PENDING_LOGOUT, pending);
    if (reason) sessionStorage.setItem('articula.ended', reason);
  } catch {
    /* ignore */
  }
  location.replace(`/${portal.value}/sign-in`);
}

function takeFlag(key: string): boolean {
  try {
    const v = sessionStorage.getItem(key);
    sessionStorage.removeItem(key);
    return v !== null;
  } catch {
    return false;
  }
}

/** The reason a previous page recorded before it reloaded into the sign-in page. */
export function takeEndedReason() {
  try {
    const r = sessionStorage.getItem('articula.ended');
    sessionStorage.removeItem('articula.ended');
    endedReason.value = r;
  } catch {
    /* ignore */
  }
}

channel?.addEventListener('message', (e: MessageEvent<Message>) => {
  const m = e.data;
  if (m.type === 'refreshed') {
    lastRefreshAt = Math.max(lastRefreshAt, m.at);
    expiresAt = m.at + m.expiresIn * 1000;
    portal.value = m.portal;
    schedule();
  } else if (m.type === 'signed-out') {
    if (me.value) endSession(m.reason, false);
  } else if (m.type === 'signed-in') {
    // Another tab signed in: this one, if it shows the sign-in page, follows.
    if (!me.value) location.replace('/');
  }
});
