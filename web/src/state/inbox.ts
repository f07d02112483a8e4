// Activity by others in any case the user sees (protocol `inbox` frames) and unread counts.
//
// Counts come from the server (`GET /unread`: messages by others after the user's read mark, and
// how many of them mention the user), are kept current by inbox frames (a message by someone
// else adds one), and are fetched again whenever they could have drifted: at start, when the
// socket is back after an outage (frames sent meanwhile were missed) and when the page becomes
// visible (another tab may have read a case). The case room on screen marks its case read, so
// its count is zero while the user is in it. In memory only.

import { computed, signal } from '@preact/signals';
import * as api from '../api';
import type { InboxItem, RealtimeClient } from '../realtime';

export interface Unread {
  count: number;
  mentions: number;
}

/** Case id → the latest inbox item not yet seen (any kind of activity). */
export const unseen = signal<Record<string, InboxItem>>({});
/** Every inbox item, for screens that react to others' changes (the case list refetches). */
export const lastItem = signal<InboxItem | null>(null);
/** Case id → unread messages (only cases that have some). */
export const unread = signal<Record<string, Unread>>({});
/** Unread messages in all cases: the header and the tab title show it. */
/** Case id → how many messages were unread when the user last came to the case (the room draws
 * its "new messages" divider above the first of them). */
export const entered = signal<Record<string, number>>({});
export const unreadTotal = computed(() => Object.values(unread.value).reduce((n, u) => n + u.count, 0));

let stop: (() => void) | null = null;
let stopState: (() => void) | null = null;
let me: string | null = null;
let generation = 0;

export function startInbox(rt: RealtimeClient, userId: string) {
  if (stop) return;
  me = userId;
  stop = rt.watchInbox((item) => {
    lastItem.value = item;
    if (item.kind === 'message_posted' && !(openCase === item.case_id && pageVisible())) {
      const was = unread.value[item.case_id] ?? { count: 0, mentions: 0 };
      const mentioned = !!me && (item.mentions ?? []).includes(me);
      unread.value = { ...unread.value, [item.case_id]: { count: was.count + 1, mentions: was.mentions + (mentioned ? 1 : 0) } };
    }
    if (openCase === item.case_id) return;
    unseen.value = { ...unseen.value, [item.case_id]: item };
  });
  // Back online after an outage: the frames of the outage are not replayed, so ask again.
  let prev = rt.state.value;
  stopState = rt.state.subscribe((s) => {
    if (s === 'open' && prev !== 'open') void refreshUnread();
    prev = s;
  });
  document.addEventListener('visibilitychange', onVisible);
  void refreshUnread();
}

function pageVisible() {
  return document.visibilityState === 'visible';
}

function onVisible() {
  if (pageVisible()) {
    void refreshUnread();
    if (openCase) clear(openCase);
  }
}

/** Asks the server for the counts (a later answer wins over an earlier one). */
export async function refreshUnread() {
  const mine = ++generation;
  try {
    const { cases } = await api.unread();
    if (mine !== generation || !stop) return;
    const next: Record<string, Unread> = {};
    for (const c of cases) if (c.unread > 0 && !(c.case_id === openCase && pageVisible())) next[c.case_id] = { count: c.unread, mentions: c.mentions };
    unread.value = next;
  } catch {
    /* offline or signed out: the next reconnect asks again */
  }
}

let openCase: string | null = null;

function clear(caseId: string) {
  const was = unread.value[caseId];
  if (was) {
    entered.value = { ...entered.value, [caseId]: was.count };
    const next = { ...unread.value };
    delete next[caseId];
    unread.value = next;
  }
}

/** The case room on screen: its activity is seen as it happens. */
export function seeing(caseId: string | null) {
  if (openCase && openCase !== caseId && entered.value[openCase] !== undefined) {
    // Leaving the room: its divider goes (the next visit draws its own).
    const { [openCase]: _, ...rest } = entered.value;
    entered.value = rest;
  }
  openCase = caseId;
  if (caseId && unseen.value[caseId]) {
    const next = { ...unseen.value };
    delete next[caseId];
    unseen.value = next;
  }
  if (caseId && pageVisible()) clear(caseId);
}

export function resetInbox() {
  stop?.();
  stopState?.();
  document.removeEventListener('visibilitychange', onVisible);
  stop = null;
  stopState = null;
  openCase = null;
  me = null;
  generation++;
  unseen.value = {};
  unread.value = {};
  entered.value = {};
  lastItem.value = null;
}
