// Search inside one case room (`GET /search?case_id=`): messages, Rx, files, label and people of
// this case. A message found opens the conversation scrolled to it, marked; so does a link to
// `/cases/{id}?m={message_id}` from the case list's search.

import { useEffect, useRef, useState } from 'preact/hooks';
import * as api from '../../api';
import { errorText } from '../../components/CaseBits';
import { HitBody, hitHref, revealMessage, searchable } from '../../components/Search';
import { navigate, search } from '../../router';
import type { CaseRoom } from '../../state/caseRoom';

export function RoomSearch({ r }: { r: CaseRoom }) {
  const [open, setOpen] = useState(false);
  const [q, setQ] = useState('');
  const [hits, setHits] = useState<api.SearchHit[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const input = useRef<HTMLInputElement>(null);

  useFoundMessage(r);

  useEffect(() => {
    const text = q.trim();
    if (!searchable(text)) {
      setHits(null);
      setError(null);
      return;
    }
    let live = true;
    const t = setTimeout(() => {
      api.searchCases(text, { caseId: r.id, limit: 20 }).then(
        (page) => {
          if (!live) return;
          setHits(page.results);
          setError(null);
        },
        (e) => {
          if (live) setError(errorText(e));
        },
      );
    }, 250);
    return () => {
      live = false;
      clearTimeout(t);
    };
  }, [q, r.id]);

  useEffect(() => {
    if (open) input.current?.focus();
  }, [open]);

  if (!open) {
    return (
      <div class="room-search">
        <button type="button" class="btn btn-small btn-quiet" aria-expanded="false" onClick={() => setOpen(true)}>
          Search this case
        </button>
      </div>
    );
  }
  return (
    <div class="room-search room-search-open" role="search">
      <div class="room-search-bar">
        <label class="visually-hidden" for="room-search-q">
          Search this case
        </label>
        <input
          id="room-search-q"
          ref={input}
          type="search"
          placeholder="Search this case…"
          maxLength={200}
          value={q}
          onInput={(e) => setQ(e.currentTarget.value)}
          onKeyDown={(e) => {
            if (e.key === 'Escape') close();
          }}
        />
        <button type="button" class="btn btn-small btn-quiet" aria-expanded="true" onClick={close}>
          Close
        </button>
      </div>
      {error && (
        <p class="error small" role="alert">
          {error}
        </p>
      )}
      {hits && hits.length === 0 && <p class="muted small" role="status">Nothing in this case matches.</p>}
      {hits && hits.length > 0 && (
        <ul class="hits hits-room" aria-label="Found in this case">
          {hits.map((h) => (
            <li key={`${h.kind}-${h.message_id ?? h.file_id ?? h.field ?? h.role ?? ''}-${h.seq ?? ''}`} class="hit">
              <a
                class="hit-link"
                href={hitHref(h, true)}
                onClick={(e) => {
                  if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
                  e.preventDefault();
                  const to = hitHref(h, true);
                  // Asked again for the message the page is at: show it again.
                  if (location.pathname + location.search === to && h.message_id) revealMessage(h.message_id);
                  else navigate(to, true);
                  setOpen(false);
                }}
              >
                <HitBody h={h} showCase={false} />
              </a>
            </li>
          ))}
        </ul>
      )}
    </div>
  );

  function close() {
    setOpen(false);
    setQ('');
  }
}

/** Follows `?m={message_id}`: once the conversation shows that message, scrolls it into view and
 * marks it (once per address asking for it; the chat then stops following the newest, as when the
 * user scrolls up to read). */
function useFoundMessage(r: CaseRoom) {
  const asked = search.value;
  const wanted = new URLSearchParams(asked).get('m');
  const shown = useRef<string | null>(null);
  const rev = r.rev.value;
  const loaded = r.loaded.value;
  useEffect(() => {
    if (!wanted || !loaded || shown.current === asked) return;
    // The conversation may not show it yet (a narrow screen switching to the chat tab): try
    // again whenever the page changes, until it does.
    const attempt = () => {
      if (!revealMessage(wanted)) return false;
      shown.current = asked;
      return true;
    };
    if (attempt()) return;
    const watch = new MutationObserver(() => {
      if (attempt()) watch.disconnect();
    });
    watch.observe(document.body, { childList: true, subtree: true });
    return () => watch.disconnect();
  }, [asked, loaded, rev]);
}
