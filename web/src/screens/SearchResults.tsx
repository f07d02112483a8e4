// The case list's search: everything the user may see that matches — case labels, chat
// messages, Rx values and notes, file names, the doctor, clinic and lab — best first, each
// linking to where it is (a message opens the conversation scrolled to it).

import { useEffect, useState } from 'preact/hooks';
import * as api from '../api';
import { errorText } from '../components/CaseBits';
import { HitBody, hitHref, searchable } from '../components/Search';

const PAGE = 20;

export function SearchResults({ q }: { q: string }) {
  const [hits, setHits] = useState<api.SearchHit[] | null>(null);
  const [next, setNext] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loadingMore, setLoadingMore] = useState(false);
  const ok = searchable(q);

  useEffect(() => {
    setHits(null);
    setNext(null);
    setError(null);
    if (!ok) return;
    let live = true;
    api.searchCases(q, { limit: PAGE }).then(
      (page) => {
        if (!live) return;
        setHits(page.results);
        setNext(page.next_offset);
      },
      (e) => {
        if (live) setError(errorText(e));
      },
    );
    return () => {
      live = false;
    };
  }, [q]);

  async function more() {
    if (next === null) return;
    setLoadingMore(true);
    try {
      const page = await api.searchCases(q, { limit: PAGE, offset: next });
      setHits((h) => [...(h ?? []), ...page.results]);
      setNext(page.next_offset);
    } catch (e) {
      setError(errorText(e));
    } finally {
      setLoadingMore(false);
    }
  }

  return (
    <section class="search-results" aria-labelledby="search-results-title">
      <h2 id="search-results-title" class="search-results-title">
        Matches in labels, messages, Rx, files and people
      </h2>
      {!ok && <p class="muted small">Type a word (letters or digits) to search everything.</p>}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {ok && hits === null && !error && (
        <p class="muted small" role="status">
          Searching…
        </p>
      )}
      {hits && hits.length === 0 && (
        <p class="muted small" role="status">
          Nothing matches in the cases you can see.
        </p>
      )}
      {hits && hits.length > 0 && (
        <ul class="hits" aria-label="Matches">
          {hits.map((h, i) => (
            <li key={i} class="hit" data-kind={h.kind}>
              <a class="hit-link" href={hitHref(h)}>
                <HitBody h={h} showCase />
              </a>
            </li>
          ))}
        </ul>
      )}
      {next !== null && (
        <button type="button" class="btn btn-small btn-quiet" disabled={loadingMore} onClick={() => void more()}>
          {loadingMore ? 'Loading…' : 'More results'}
        </button>
      )}
    </section>
  );
}
