// Activity by others in any case the user sees (protocol `inbox` frames): the case list marks
// those cases until the user opens them. In memory only.

import { signal } from '@preact/signals';
import type { InboxItem, RealtimeClient } from '../realtime';

/** Case id → the latest inbox item not yet seen. */
export const unseen = signal<Record<string, InboxItem>>({});
/** Every inbox item, for screens that react to others' changes (the case list refetches). */
export const lastItem = signal<InboxItem | null>(null);

let stop: (() => void) | null = null;

export function startInbox(rt: RealtimeClient) {
  if (stop) return;
  stop = rt.watchInbox((item) => {
    lastItem.value = item;
    if (openCase === item.case_id) return;
    unseen.value = { ...unseen.value, [item.case_id]: item };
  });
}

let openCase: string | null = null;

/** The case room on screen: its activity is seen as it happens. */
export function seeing(caseId: string | null) {
  openCase = caseId;
  if (caseId && unseen.value[caseId]) {
    const next = { ...unseen.value };
    delete next[caseId];
    unseen.value = next;
  }
}

export function resetInbox() {
  stop?.();
  stop = null;
  openCase = null;
  unseen.value = {};
  lastItem.value = null;
}
