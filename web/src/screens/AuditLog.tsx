// The audit log (issue 18), for an organisation's owners and auditors: the chain's entries with
// filters kept in the page's address, paged in chain order (oldest first: the order the API
// pages in, the export holds and the check walks), an entry's details on demand, the exports as
// downloads with the same filters, and the check of the chain in words. Entries hold ids and
// flags only: no case content appears here because the API has none to give.
//
// Names: owners read their members (`GET /orgs/{org}/members`) and see names; that list is for
// owners only, so an auditor sees people by their user id (and themselves by name).

import { useEffect, useRef, useState } from 'preact/hooks';
import * as api from '../api';
import {
  ACTION_PREFIXES,
  actionText,
  type AuditFilters,
  filtersFromSearch,
  filtersToSearch,
  isFiltered,
  localDate,
  PAGE_SIZES,
  pageSize,
  parseDetails,
  shortId,
  targetText,
  toQuery,
} from '../audit';
import { errorText } from '../components/CaseBits';
import { useMedia } from '../components/useMedia';
import type { Me, Membership } from '../domain';
import { navigate, search } from '../router';
import './audit.css';

interface Readable {
  org_id: string;
  org_name: string;
  owner: boolean;
}

/** The organisations whose log this person may read (owner wins over auditor). */
export function readableOrgs(user: Me): Readable[] {
  const out = new Map<string, Readable>();
  for (const m of user.memberships as Membership[]) {
    if (m.role !== 'owner' && m.role !== 'auditor') continue;
    const had = out.get(m.org_id);
    out.set(m.org_id, { org_id: m.org_id, org_name: m.org_name, owner: (had?.owner ?? false) || m.role === 'owner' });
  }
  return [...out.values()];
}

export function AuditLog({ user }: { user: Me }) {
  const orgs = readableOrgs(user);
  if (orgs.length === 0) {
    return (
      <section class="page page-narrow">
        <h1 tabIndex={-1}>Audit log</h1>
        <p role="alert" class="notice">
          The audit log is not available to your role: only the owners and auditors of an organisation can read it.
        </p>
        <p>
          <a href="/">Go to the start page</a>
        </p>
      </section>
    );
  }
  return <AuditLogPage user={user} orgs={orgs} />;
}

function AuditLogPage({ user, orgs }: { user: Me; orgs: Readable[] }) {
  const filters = filtersFromSearch(search.value);
  const org = orgs.find((o) => o.org_id === filters.org) ?? orgs[0];
  const key = `${org.org_id}|${filtersToSearch({ ...filters, org: '' })}`;

  const [entries, setEntries] = useState<api.AuditEntry[] | null>(null);
  const [next, setNext] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loadingMore, setLoadingMore] = useState(false);
  const [names, setNames] = useState<Map<string, string>>(new Map());
  const [members, setMembers] = useState<api.MemberView[] | null>(null);
  const [open, setOpen] = useState<Set<number>>(new Set());
  const [verify, setVerify] = useState<{ ok: boolean; text: string } | null>(null);
  const [verifying, setVerifying] = useState(false);
  // Answers to an older request (filters changed since) are dropped.
  const asked = useRef(0);

  const checked = toQuery({ ...filters, org: org.org_id });
  const query = 'query' in checked ? checked.query : null;

  async function loadFirst() {
    const id = ++asked.current;
    setEntries(null);
    setNext(null);
    setOpen(new Set());
    setError(null);
    if (!query) {
      setError('error' in checked ? checked.error : null);
      setEntries([]);
      return;
    }
    try {
      const page = await api.auditPage(query, undefined, pageSize(filters));
      if (id !== asked.current) return;
      setEntries(page.entries);
      setNext(page.next);
    } catch (e) {
      if (id !== asked.current) return;
      setError(readError(e));
      setEntries([]);
    }
  }

  async function loadMore() {
    if (!query || next === null) return;
    const id = asked.current;
    setLoadingMore(true);
    try {
      const page = await api.auditPage(query, next, pageSize(filters));
      if (id !== asked.current) return;
      setEntries((had) => [...(had ?? []), ...page.entries]);
      setNext(page.next);
    } catch (e) {
      if (id === asked.current) setError(readError(e));
    } finally {
      setLoadingMore(false);
    }
  }

  useEffect(() => {
    void loadFirst();
  }, [key]);

  useEffect(() => {
    setVerify(null);
    const own = new Map([[user.id, user.name]]);
    setNames(own);
    setMembers(null);
    if (!org.owner) return;
    api.members(org.org_id).then(
      (list) => {
        setMembers(list);
        setNames(new Map([...list.map((m) => [m.user_id, m.name] as [string, string]), [user.id, user.name]]));
      },
      // Names are a convenience: without them people show by id.
      () => {},
    );
  }, [org.org_id]);

  async function runVerify() {
    setVerifying(true);
    setVerify(null);
    try {
      const v = await api.auditVerify(org.org_id);
      setVerify(
        v.ok
          ? { ok: true, text: `Chain intact: ${v.entries} ${v.entries === 1 ? 'entry' : 'entries'}.` }
          : { ok: false, text: `Broken at entry ${v.broken.n}: ${v.broken.reason}` },
      );
    } catch (e) {
      setVerify({ ok: false, text: `The check could not run: ${readError(e)}` });
    } finally {
      setVerifying(false);
    }
  }

  const apply = (f: AuditFilters) => {
    const to = `/audit${filtersToSearch({ ...f, org: orgs.length > 1 ? org.org_id : '' })}`;
    if (to === location.pathname + location.search) void loadFirst();
    else navigate(to);
  };

  const who = (id: string | null) => {
    if (!id) return { text: 'System', title: undefined };
    const name = names.get(id);
    return name ? { text: id === user.id ? `${name} (you)` : name, title: id } : { text: `User ${shortId(id)}`, title: id };
  };

  const toggle = (n: number) =>
    setOpen((s) => {
      const t = new Set(s);
      if (t.has(n)) t.delete(n);
      else t.add(n);
      return t;
    });

  const filtered = isFiltered(filters);
  // On a phone the filters fold away under a summary that counts them, so the entries show.
  const narrow = useMedia('(max-width: 720px)');
  const active = (['user', 'action', 'case', 'from', 'to'] as const).filter((k) => filters[k]).length;
  const form = <FilterForm key={key} filters={filters} orgs={orgs} org={org} members={members} onApply={apply} />;

  return (
    <section class="page audit-page">
      <div class="page-head">
        <h1 tabIndex={-1}>Audit log</h1>
        <div class="audit-actions">
          <ExportLink query={query} format="csv" label="Export CSV" onError={setError} />
          <ExportLink query={query} format="jsonl" label="Export JSON Lines" onError={setError} />
          <button type="button" class="btn" disabled={verifying} onClick={() => void runVerify()}>
            {verifying ? 'Checking…' : 'Verify chain'}
          </button>
        </div>
      </div>
      <p class="muted small">
        {org.org_name} · oldest first, in the order of the chain. Narrow it by date to see recent activity; the exports
        hold every entry that matches the filters.
      </p>
      {verify && (
        <p class={verify.ok ? 'ok-note' : 'error audit-broken'} role={verify.ok ? 'status' : 'alert'} data-testid="verify-result">
          {verify.text}
        </p>
      )}
      {narrow ? (
        <details class="audit-filter-box">
          <summary>Filters{active ? ` · ${active} active` : ''}</summary>
          {form}
        </details>
      ) : (
        form
      )}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {entries === null && <p role="status">Loading the audit log…</p>}
      {entries && entries.length === 0 && !error && (
        <p class="empty" role="status">
          {filtered ? 'No entries match these filters.' : 'The audit log of this organisation is empty.'}
        </p>
      )}
      {entries && entries.length > 0 && (
        <>
          <p class="muted small" role="status" data-testid="audit-count">
            {entries.length === 1 ? '1 entry' : `${entries.length} entries`} shown{next !== null ? ', more after them' : ''}.
            {!org.owner && ' People are shown by their user id: the list of members is for owners.'}
          </p>
          <table class="audit-table" aria-label={`Audit log of ${org.org_name}`}>
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Who</th>
                <th scope="col">Action</th>
                <th scope="col">On what</th>
                <th scope="col">IP address</th>
                <th scope="col">
                  <span class="visually-hidden">Details</span>
                </th>
              </tr>
            </thead>
            {entries.map((e) => (
              <Row
                key={e.n}
                entry={e}
                who={who(e.actor_id)}
                open={open.has(e.n)}
                onToggle={() => toggle(e.n)}
                onFilter={(f) => apply({ ...filters, ...f })}
              />
            ))}
          </table>
          {next !== null && (
            <div class="actions audit-more">
              <button type="button" class="btn" disabled={loadingMore} onClick={() => void loadMore()}>
                {loadingMore ? 'Loading…' : 'Load more'}
              </button>
            </div>
          )}
        </>
      )}
    </section>
  );
}

function readError(e: unknown): string {
  if (e instanceof api.ApiError && e.status === 403)
    return 'You may not read the audit log of this organisation (only its owners and auditors can).';
  return errorText(e);
}

/** An entry's time in the reader's locale, to the second (the UTC time is in its title). */
const LOCAL_TIME: Intl.DateTimeFormatOptions = {
  year: 'numeric',
  month: 'short',
  day: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
};

function Row({
  entry: e,
  who,
  open,
  onToggle,
  onFilter,
}: {
  entry: api.AuditEntry;
  who: { text: string; title?: string };
  open: boolean;
  onToggle: () => void;
  onFilter: (f: Partial<AuditFilters>) => void;
}) {
  const details = parseDetails(e.details);
  const at = new Date(e.at);
  const utc = `${at.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
  const what = actionText(e.action, details);
  const id = `audit-entry-${e.n}`;
  return (
    <tbody class={open ? 'audit-entry audit-open' : 'audit-entry'} data-action={e.action} data-n={e.n}>
      <tr>
        <td data-label="Time" class="audit-time">
          <time dateTime={at.toISOString()} title={utc}>
            {at.toLocaleString(undefined, LOCAL_TIME)}
          </time>
        </td>
        <td data-label="Who" class="audit-who" title={who.title}>
          {who.text}
        </td>
        <td data-label="Action" class="audit-action" title={e.action}>
          {what}
        </td>
        <td data-label="On what" class="audit-target" title={e.target ?? undefined}>
          {targetText(e.target) || <span class="muted">—</span>}
          {e.case_id && e.target !== `case:${e.case_id}` && <div class="muted small">in case {shortId(e.case_id)}</div>}
        </td>
        <td data-label="IP address" class="audit-ip">
          {e.ip ?? <span class="muted">—</span>}
        </td>
        <td class="audit-toggle">
          <button
            type="button"
            class="btn btn-small"
            aria-expanded={open}
            aria-controls={id}
            onClick={onToggle}
            aria-label={`Details of entry ${e.n}`}
          >
            {open ? 'Hide' : 'Details'}
          </button>
        </td>
      </tr>
      {open && (
        <tr class="audit-details-row">
          <td colSpan={6} id={id}>
            <dl class="facts audit-facts">
              <dt>Entry</dt>
              <dd>
                {e.n} · {e.source}
              </dd>
              <dt>Time (UTC)</dt>
              <dd>{utc}</dd>
              <dt>Action</dt>
              <dd>
                <code>{e.action}</code>
              </dd>
              <dt>Who</dt>
              <dd>
                {e.actor_id ? (
                  <>
                    <code>{e.actor_id}</code>{' '}
                    <button type="button" class="link" onClick={() => onFilter({ user: e.actor_id ?? '' })}>
                      Only this person
                    </button>
                  </>
                ) : (
                  'System'
                )}
              </dd>
              {e.target && (
                <>
                  <dt>On what</dt>
                  <dd>
                    <code>{e.target}</code>
                  </dd>
                </>
              )}
              {e.case_id && (
                <>
                  <dt>Case</dt>
                  <dd>
                    <code>{e.case_id}</code>{' '}
                    <button type="button" class="link" onClick={() => onFilter({ case: e.case_id ?? '' })}>
                      Only this case
                    </button>
                  </dd>
                </>
              )}
              <dt>Details</dt>
              <dd>
                {Object.keys(details).length ? (
                  <pre class="audit-json">{JSON.stringify(details, null, 2)}</pre>
                ) : (
                  <span class="muted">none</span>
                )}
              </dd>
              <dt>Hash</dt>
              <dd class="audit-hash">
                <code>{e.hash}</code>
              </dd>
              <dt>Previous hash</dt>
              <dd class="audit-hash">
                <code>{e.prev_hash}</code>
              </dd>
            </dl>
          </td>
        </tr>
      )}
    </tbody>
  );
}

/** A plain link to the export, so the browser downloads it with the page's cookies. A click
 * first makes sure the session is fresh (an expired access cookie would answer the download
 * with a 401 page instead of the file). */
function ExportLink({
  query,
  format,
  label,
  onError,
}: {
  query: api.AuditQuery | null;
  format: 'csv' | 'jsonl';
  label: string;
  onError: (e: string) => void;
}) {
  if (!query) return null;
  const href = api.auditExportUrl(query, format);
  const click = async (e: MouseEvent) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    try {
      await api.me();
    } catch (err) {
      onError(errorText(err));
      return;
    }
    const a = document.createElement('a');
    a.href = href;
    a.download = '';
    document.body.append(a);
    a.click();
    a.remove();
  };
  return (
    <a class="btn" href={href} download onClick={(e) => void click(e)}>
      {label}
    </a>
  );
}

const OTHER = '__other';

function FilterForm({
  filters,
  orgs,
  org,
  members,
  onApply,
}: {
  filters: AuditFilters;
  orgs: Readable[];
  org: Readable;
  members: api.MemberView[] | null;
  onApply: (f: AuditFilters) => void;
}) {
  const known = ACTION_PREFIXES.some((p) => p.value === filters.action);
  const [f, setF] = useState<AuditFilters>(filters);
  const [choice, setChoice] = useState(filters.action ? (known ? filters.action : OTHER) : '');
  const [problem, setProblem] = useState<string | null>(null);

  const set = (k: keyof AuditFilters) => (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).value });

  function submit(e: Event) {
    e.preventDefault();
    const next = { ...f, org: f.org || org.org_id, action: choice === OTHER ? f.action.trim() : choice };
    const checked = toQuery(next);
    if ('error' in checked) {
      setProblem(checked.error);
      return;
    }
    setProblem(null);
    onApply(next);
  }

  const today = () => {
    const d = localDate(Date.now());
    const next = { ...f, from: d, to: d, action: choice === OTHER ? f.action.trim() : choice };
    setF(next);
    onApply(next);
  };

  const people = members ? [...members].sort((a, b) => a.name.localeCompare(b.name)) : null;
  return (
    <form class="filters audit-filters" aria-label="Filter the audit log" onSubmit={submit}>
      {orgs.length > 1 && (
        <div class="field">
          <label for="audit-org">Organisation</label>
          <select id="audit-org" value={f.org || org.org_id} onChange={set('org')}>
            {orgs.map((o) => (
              <option value={o.org_id}>{o.org_name}</option>
            ))}
          </select>
        </div>
      )}
      <div class="field">
        <label for="audit-user">{people ? 'Person' : 'User id'}</label>
        {people ? (
          <select id="audit-user" value={f.user} onChange={set('user')}>
            <option value="">Anyone</option>
            {people.map((m) => (
              <option value={m.user_id}>
                {m.name}
                {m.roles.length === 0 ? ' (former member)' : ''}
              </option>
            ))}
            {f.user && !people.some((m) => m.user_id === f.user) && <option value={f.user}>User {shortId(f.user)}</option>}
          </select>
        ) : (
          <input id="audit-user" value={f.user} onInput={set('user')} placeholder="anyone" spellcheck={false} autoComplete="off" />
        )}
      </div>
      <div class="field">
        <label for="audit-action">Action</label>
        <select id="audit-action" value={choice} onChange={(e) => setChoice((e.target as HTMLSelectElement).value)}>
          <option value="">Any action</option>
          {ACTION_PREFIXES.map((p) => (
            <option value={p.value}>{p.label}</option>
          ))}
          <option value={OTHER}>Other (type the start of its name)…</option>
        </select>
      </div>
      {choice === OTHER && (
        <div class="field">
          <label for="audit-action-text">Action starting with</label>
          <input
            id="audit-action-text"
            value={f.action}
            onInput={set('action')}
            placeholder="e.g. case.file_"
            spellcheck={false}
            autoComplete="off"
          />
        </div>
      )}
      <div class="field">
        <label for="audit-case">Case id</label>
        <input id="audit-case" value={f.case} onInput={set('case')} placeholder="any case" spellcheck={false} autoComplete="off" />
      </div>
      <div class="field">
        <label for="audit-from">From</label>
        <input id="audit-from" type="date" value={f.from} onInput={set('from')} />
      </div>
      <div class="field">
        <label for="audit-to">To (inclusive)</label>
        <input id="audit-to" type="date" value={f.to} onInput={set('to')} />
      </div>
      <div class="field audit-per-page">
        <label for="audit-limit">Per page</label>
        <select id="audit-limit" value={String(pageSize(f))} onChange={set('limit')}>
          {PAGE_SIZES.map((n) => (
            <option value={String(n)}>{n}</option>
          ))}
        </select>
      </div>
      <div class="actions audit-filter-actions">
        <button type="submit" class="btn btn-primary">
          Apply filters
        </button>
        <button type="button" class="btn" onClick={today}>
          Today
        </button>
        <a class="btn btn-quiet" href={orgs.length > 1 ? `/audit?org=${encodeURIComponent(org.org_id)}` : '/audit'}>
          Clear
        </a>
      </div>
      {problem && (
        <p class="error audit-problem" role="alert">
          {problem}
        </p>
      )}
    </form>
  );
}
