// Pieces shared by the case list's search and the search inside a case room: a result's snippet
// with its matched words marked, what kind of text matched, where a result leads, and scrolling
// the conversation to a message found.
//
// A snippet is user text (chat, Rx notes, file names): it is rendered as text nodes, with the
// server's highlight ranges cut out of it as <mark> elements — never as HTML.

import type { ComponentChildren } from 'preact';
import type { SearchHit } from '../api';
import { fieldLabel, formatTime } from '../domain';
import './search.css';

const ROLE_LABEL = { doctor: 'Doctor', clinic: 'Clinic', lab: 'Lab' } as const;

/** What matched, in a word. */
export function kindLabel(h: SearchHit): string {
  switch (h.kind) {
    case 'label':
      return 'Case label';
    case 'message':
      return 'Message';
    case 'rx':
      return h.field ? 'Digital Rx' : 'Rx proposal';
    case 'file':
      return 'File';
    case 'person':
      return h.role ? ROLE_LABEL[h.role] : 'Person';
  }
}

/** The snippet, its highlight ranges as <mark>. Ranges out of order or out of bounds are ignored. */
export function Snippet({ text, highlights }: { text: string; highlights: [number, number][] }) {
  const parts: ComponentChildren[] = [];
  let at = 0;
  for (const [start, end] of highlights) {
    if (start < at || end <= start || end > text.length) continue;
    if (start > at) parts.push(text.slice(at, start));
    parts.push(<mark key={start}>{text.slice(start, end)}</mark>);
    at = end;
  }
  if (at < text.length) parts.push(text.slice(at));
  return (
    <bdi class="hit-snippet" dir="auto">
      {parts}
    </bdi>
  );
}

/** Where a result leads: the message in the conversation, the file, the Rx, or the case. */
export function hitHref(h: SearchHit, inRoom = false): string {
  const base = `/cases/${encodeURIComponent(h.case_id)}`;
  if (h.kind === 'message' && h.message_id) return `${base}?${inRoom ? 'tab=chat&' : ''}m=${encodeURIComponent(h.message_id)}`;
  if (h.kind === 'file' && h.file_id) return `${base}?tab=files&file=${encodeURIComponent(h.file_id)}`;
  if (h.kind === 'rx') return `${base}?tab=rx`;
  return base;
}

/** One result: kind, case (unless inside it), snippet, time. */
export function HitBody({ h, showCase }: { h: SearchHit; showCase: boolean }) {
  return (
    <>
      <span class="hit-head">
        <span class={`hit-kind hit-kind-${h.kind}`}>{kindLabel(h)}</span>
        {showCase && (
          <bdi class="hit-case" dir="auto">
            {h.case_label}
          </bdi>
        )}
        {h.kind !== 'person' && h.kind !== 'label' && <time class="muted small">{formatTime(h.at)}</time>}
      </span>
      <span class="hit-text">
        {h.kind === 'rx' && h.field && <span class="muted">{fieldLabel(h.field)}: </span>}
        <Snippet text={h.snippet} highlights={h.highlights} />
      </span>
    </>
  );
}

/** Whether a query has something to look for (the server wants a letter or a digit). */
export function searchable(q: string): boolean {
  return /[\p{L}\p{N}]/u.test(q);
}

/** Scrolls the conversation to a message and marks it found; false while it is not rendered. */
export function revealMessage(messageId: string): boolean {
  const el = document.querySelector<HTMLElement>(`.timeline [data-message-id="${CSS.escape(messageId)}"]`);
  if (!el) return false;
  document.querySelectorAll('.msg-found').forEach((e) => e.classList.remove('msg-found'));
  el.classList.add('msg-found');
  el.scrollIntoView({ block: 'center' });
  return true;
}
