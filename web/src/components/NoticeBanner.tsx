// The newest unacknowledged incident notice, at the top of every page (under the header) until
// "I have read this" is pressed. Its text is plain text from an owner or the operator: rendered
// as text (pre-wrap), never as HTML. A long body scrolls inside the banner, so the button stays
// on screen at phone sizes.

import { useEffect } from 'preact/hooks';
import { formatTime } from '../domain';
import { acknowledge, followNotices, noticeError, notices } from '../state/notices';

export function NoticeBanner({ userId }: { userId: string }) {
  useEffect(() => followNotices(), [userId]);
  const list = notices.value;
  if (!list.length) return null;
  const n = list[0];
  const from = n.org_name ?? 'the Articula operator';
  return (
    <section class="incident" role="region" aria-labelledby="incident-title" data-testid="incident-notice">
      <div class="incident-inner">
        <p class="incident-kicker">
          Incident notice{list.length > 1 ? ` · 1 of ${list.length}` : ''} · from {from} · {formatTime(n.published_at)}
        </p>
        <h2 id="incident-title" class="incident-title">
          {n.title}
        </h2>
        <div class="incident-body" tabIndex={0}>
          {n.body}
        </div>
        {noticeError.value && (
          <p class="error" role="alert">
            {noticeError.value}
          </p>
        )}
        <button type="button" class="btn btn-primary" onClick={() => void acknowledge(n.id)}>
          I have read this
        </button>
      </div>
    </section>
  );
}
