// The cases the user may see, with search and filters (kept in the URL), updating live: board
// frames patch rows in place, others' activity (inbox) marks rows and refreshes the list.

import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import * as api from '../api';
import { StatusBadge, DueDate, UnreadBadge } from '../components/CaseBits';
import {
  boardOrgs,
  formatTime,
  hasRole,
  STATUSES,
  STATUS_LABEL,
  type CaseStatus,
  type CaseSummary,
  type CaseView,
  type Me,
} from '../domain';
import { realtime } from '../live';
import { navigate, search } from '../router';
import { lastItem, unread, unseen, type Unread } from '../state/inbox';
import { labNames, learnFromCases, learnLabs, people } from '../state/people';
import { SearchResults } from './SearchResults';

type Filters = Required<Pick<api.CaseFilters, 'status' | 'q' | 'lab_id' | 'doctor_id' | 'due_before'>>;

function filtersFromUrl(): Filters {
  const q = new URLSearchParams(search.value);
  return {
    status: (q.get('status') ?? '') as CaseStatus | '',
    q: q.get('q') ?? '',
    lab_id: q.get('lab_id') ?? '',
    doctor_id: q.get('doctor_id') ?? '',
    due_before: q.get('due_before') ?? '',
  };
}

/** Whether a case (after a live change) still belongs in the filtered list. */
function matches(c: CaseView, f: Filters): boolean {
  if (f.status && c.status !== f.status) return false;
  if (f.q && !c.label.toLowerCase().includes(f.q.trim().toLowerCase())) return false;
  if (f.lab_id && c.lab_id !== f.lab_id) return false;
  if (f.doctor_id && c.doctor_id !== f.doctor_id) return false;
  if (f.due_before && (!c.due_date || c.due_date > f.due_before)) return false;
  return true;
}

export function CaseList({ user }: { user: Me }) {
  const filters = useMemo(filtersFromUrl, [search.value]);
  const [qInput, setQInput] = useState(filters.q);
  const [cases, setCases] = useState<CaseView[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const reload = useRef<() => void>(() => {});
  const filtersRef = useRef(filters);
  filtersRef.current = filters;

  // Fetch on filter change; refetch (debounced) when others change cases.
  useEffect(() => {
    let live = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const load = async () => {
      try {
        const list = await api.listCases(filters);
        if (!live) return;
        learnFromCases(list);
        setCases(list);
        setError(null);
      } catch (e) {
        if (live) setError(e instanceof Error ? e.message : 'Could not load the cases.');
      }
    };
    reload.current = () => {
      clearTimeout(timer);
      timer = setTimeout(load, 300);
    };
    void load();
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [filters]);

  useEffect(() => {
    api.labs().then(learnLabs, () => {});
  }, []);

  // Live: a board summary patches its row; a case we do not list yet means: refetch.
  useEffect(() => {
    const orgs = boardOrgs(user);
    return realtime.watchBoard((f) => {
      if (f.snapshot) return;
      setCases((prev) => {
        if (!prev) return prev;
        let next = prev;
        for (const s of f.cases) {
          const i = next.findIndex((c) => c.id === s.case_id);
          if (i < 0) {
            reload.current();
            continue;
          }
          if (s.seq < next[i].last_seq) continue;
          const row = patch(next[i], s);
          next = next.slice();
          if (matches(row, filtersRef.current)) next[i] = row;
          else next.splice(i, 1);
        }
        for (const id of f.removed ?? []) next = next.filter((c) => c.id !== id);
        return next === prev ? prev : sortByActivity(next);
      });
    }, orgs.length > 1 ? orgs[0].org_id : undefined);
  }, [user]);

  useEffect(() => {
    if (lastItem.value && ['case_created', 'case_updated', 'status_changed'].includes(lastItem.value.kind)) reload.current();
  }, [lastItem.value]);

  useEffect(() => setQInput(filters.q), [filters.q]);

  function setFilter(key: keyof Filters, value: string) {
    const q = new URLSearchParams(search.value);
    if (value) q.set(key, value);
    else q.delete(key);
    const s = q.toString();
    navigate(`/cases${s ? `?${s}` : ''}`, true);
  }

  // Search as the user types, without a request per keystroke.
  useEffect(() => {
    if (qInput === filters.q) return;
    const t = setTimeout(() => setFilter('q', qInput.trim()), 300);
    return () => clearTimeout(t);
  }, [qInput]);

  // Doctors see only their own cases; labs work for one lab: those filters would be noise.
  const doctors = hasRole(user, 'doctor') && !hasRole(user, 'clinic_admin') ? [] : Object.entries(people.value);
  const clinicSide = hasRole(user, 'doctor') || hasRole(user, 'clinic_admin');
  const labs = clinicSide ? Object.entries(labNames.value) : [];
  const anyFilter = Object.values(filters).some(Boolean);

  return (
    <section class="page">
      <div class="page-head">
        <h1 tabIndex={-1}>Cases</h1>
        {hasRole(user, 'doctor') && (
          <a class="btn btn-primary" href="/cases/new">
            New case
          </a>
        )}
      </div>
      <form class="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <label class="field field-grow">
          <span>Search</span>
          <input type="search" placeholder="Words in labels, messages, Rx, files, names…" maxLength={200} value={qInput} onInput={(e) => setQInput(e.currentTarget.value)} />
        </label>
        <label class="field">
          <span>Status</span>
          <select value={filters.status} onChange={(e) => setFilter('status', e.currentTarget.value)}>
            <option value="">Any status</option>
            {STATUSES.map((s) => (
              <option value={s}>{STATUS_LABEL[s]}</option>
            ))}
          </select>
        </label>
        {doctors.length > 0 ? (
          <label class="field">
            <span>Doctor</span>
            <select value={filters.doctor_id} onChange={(e) => setFilter('doctor_id', e.currentTarget.value)}>
              <option value="">Any doctor</option>
              {doctors.map(([id, name]) => (
                <option value={id}>{name}</option>
              ))}
            </select>
          </label>
        ) : null}
        {labs.length > 0 && (
          <label class="field">
            <span>Lab</span>
            <select value={filters.lab_id} onChange={(e) => setFilter('lab_id', e.currentTarget.value)}>
              <option value="">Any lab</option>
              {labs.map(([id, name]) => (
                <option value={id}>{name}</option>
              ))}
            </select>
          </label>
        )}
        <label class="field">
          <span>Due on or before</span>
          <input type="date" value={filters.due_before} onChange={(e) => setFilter('due_before', e.currentTarget.value)} />
        </label>
        {anyFilter && (
          <button type="button" class="btn btn-quiet" onClick={() => navigate('/cases', true)}>
            Clear filters
          </button>
        )}
      </form>
      {filters.q && <SearchResults q={filters.q} />}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {filters.q && cases && <h2 class="search-results-title">Cases whose label contains “<bdi>{filters.q}</bdi>”</h2>}
      {cases === null && !error && <p role="status">Loading cases…</p>}
      {cases && cases.length === 0 && <p class="empty">{anyFilter ? 'No case matches these filters.' : 'No cases yet.'}</p>}
      {cases && cases.length > 0 && (
        <ul class="case-list" aria-label="Cases">
          {cases.map((c) => (
            <CaseRow c={c} fresh={!!unseen.value[c.id]} unread={unread.value[c.id]} />
          ))}
        </ul>
      )}
    </section>
  );
}

function CaseRow({ c, fresh, unread }: { c: CaseView; fresh: boolean; unread?: Unread }) {
  return (
    <li class={`case-row${c.at_risk ? ' at-risk' : ''}`} data-case-id={c.id}>
      <div class="case-row-main">
        <a class="case-link" dir="auto" href={`/cases/${c.id}`}>
          {c.label}
        </a>
        {unread ? (
          <UnreadBadge n={unread.count} mentions={unread.mentions} label="unread messages" testid="unread" />
        ) : fresh && (
          <span class="dot-new" title="New activity">
            <span class="visually-hidden">New activity</span>
          </span>
        )}
      </div>
      <div class="case-row-meta">
        <StatusBadge status={c.status} />
        <DueDate due={c.due_date} atRisk={c.at_risk} />
        <span class="muted">{c.doctor_name}</span>
        <span class="muted">{c.lab_name ?? 'No lab yet'}</span>
        <span class="muted small">Active {formatTime(c.last_activity)}</span>
      </div>
    </li>
  );
}

function patch(c: CaseView, s: CaseSummary): CaseView {
  return {
    ...c,
    label: s.label,
    status: s.status,
    due_date: s.due_date,
    at_risk: s.at_risk,
    lab_id: s.lab_id,
    lab_name: s.lab_id ? (labNames.value[s.lab_id] ?? c.lab_name) : null,
    last_activity: s.last_activity,
    last_seq: s.seq,
  };
}

function sortByActivity(list: CaseView[]): CaseView[] {
  return [...list].sort((a, b) => b.last_activity - a.last_activity);
}
