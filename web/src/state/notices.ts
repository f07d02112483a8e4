// Incident notices the signed-in user has not acknowledged (GET /api/v1/notices). Asked at
// sign-in, every minute, and when the page becomes visible again; "I have read this" records the
// acknowledgement on the server, so a notice stays until then on every device.

import { signal } from '@preact/signals';
import * as api from '../api';

export const notices = signal<api.Notice[]>([]);
export const noticeError = signal<string | null>(null);

const EVERY_MS = 60_000;

export async function loadNotices() {
  try {
    notices.value = await api.myNotices();
  } catch {
    /* kept as it was: the next poll asks again */
  }
}

export async function acknowledge(id: string) {
  try {
    await api.ackNotice(id);
    noticeError.value = null;
    notices.value = notices.value.filter((n) => n.id !== id);
  } catch (e) {
    noticeError.value = e instanceof Error ? e.message : 'Something went wrong.';
  }
}

/** Follows the user's notices while signed in; returns the function that stops it. */
export function followNotices(): () => void {
  void loadNotices();
  const timer = setInterval(() => void loadNotices(), EVERY_MS);
  const onVisible = () => {
    if (document.visibilityState === 'visible') void loadNotices();
  };
  document.addEventListener('visibilitychange', onVisible);
  return () => {
    clearInterval(timer);
    document.removeEventListener('visibilitychange', onVisible);
    notices.value = [];
  };
}
