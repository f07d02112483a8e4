// An owner's organisation page (issue 18): the members with their roles and sessions, taking a
// role back or ending someone's sessions (after a confirmation that names the person and says
// what happens), and incident notices with how many members acknowledged them.

import { useEffect, useRef, useState } from 'preact/hooks';
import * as api from '../api';
import { errorText } from '../components/CaseBits';
import { formatTime, type Membership, type Me, type Role } from '../domain';
import { loadNotices } from '../state/notices';

const ROLE_LABEL: Record<Role, string> = {
  doctor: 'Doctor',
  clinic_admin: 'Clinic admin',
  lab_tech: 'Lab technician',
  lab_admin: 'Lab admin',
  owner: 'Owner',
  auditor: 'Auditor',
};

/** How often the table is asked again while the page is open (sessions come and go). */
const REFRESH_MS = 15_000;

type Pending = { kind: 'role'; member: api.MemberView; role: Role } | { kind: 'sessions'; member: api.MemberView };

export function Organisation({ org, user }: { org: Membership; user: Me }) {
  return (
    <div class="org-page">
      <Members org={org} user={user} />
      <Notices org={org} />
    </div>
  );
}

function Members({ org, user }: { org: Membership; user: Me }) {
  const [list, setList] = useState<api.MemberView[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [pending, setPending] = useState<Pending | null>(null);
  const [busy, setBusy] = useState(false);

  const load = () =>
    api.members(org.org_id).then(
      (l) => setList(l),
      (e) => setError(errorText(e)),
    );

  useEffect(() => {
    void load();
    const t = setInterval(() => void load(), REFRESH_MS);
    return () => clearInterval(t);
  }, [org.org_id]);

  async function confirm() {
    if (!pending) return;
    setBusy(true);
    setError(null);
    setDone(null);
    try {
      if (pending.kind === 'role') {
        await api.removeRole(org.org_id, pending.member.user_id, pending.role);
        setDone(`${pending.member.name} is no longer ${ROLE_LABEL[pending.role].toLowerCase()} of ${org.org_name}.`);
      } else {
        const r = await api.endMemberSessions(org.org_id, pending.member.user_id);
        setDone(`${r.revoked === 1 ? 'One session' : `${r.revoked} sessions`} of ${pending.member.name} ended.`);
      }
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
      setPending(null);
      await load();
    }
  }

  return (
    <section class="org-section" aria-labelledby={`members-${org.org_id}`}>
      <h2 id={`members-${org.org_id}`}>Members of {org.org_name}</h2>
      <p class="muted small">
        Taking a role back ends what it gives at once: the person’s open cases close on their devices within a second.
        Ending sessions signs them out everywhere.
      </p>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {done && (
        <p class="ok-note" role="status">
          {done}
        </p>
      )}
      {list === null && !error && <p role="status">Loading members…</p>}
      {list && (
        <table class="members" aria-label={`Members of ${org.org_name}`}>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">E-mail</th>
              <th scope="col">Roles</th>
              <th scope="col">Sessions</th>
            </tr>
          </thead>
          <tbody>
            {list.map((m) => (
              <tr data-member={m.email} class={m.roles.length ? undefined : 'member-former'}>
                <th scope="row" class="member-name">
                  {m.name}
                  {m.user_id === user.id && <span class="muted small"> (you)</span>}
                  {m.status !== 'active' && <span class="badge badge-voided">{m.status}</span>}
                </th>
                <td class="member-email" data-label="E-mail">
                  {m.email}
                </td>
                <td data-label="Roles">
                  {m.roles.length === 0 && <span class="muted">Former member</span>}
                  <ul class="plain role-list">
                    {m.roles.map((r) => (
                      <li>
                        <span class="role-name">{ROLE_LABEL[r]}</span>
                        <button
                          type="button"
                          class="btn btn-small"
                          aria-label={`Remove role ${ROLE_LABEL[r]} of ${m.name}`}
                          onClick={() => setPending({ kind: 'role', member: m, role: r })}
                        >
                          Remove role
                        </button>
                      </li>
                    ))}
                  </ul>
                </td>
                <td data-label="Sessions">
                  <span class="session-count" data-testid="session-count">
                    {m.sessions === 0 ? 'none' : m.sessions === 1 ? '1 active' : `${m.sessions} active`}
                  </span>
                  {m.last_seen && <span class="muted small"> · last seen {formatTime(m.last_seen)}</span>}
                  {m.sessions > 0 && m.user_id !== user.id && (
                    <div>
                      <button
                        type="button"
                        class="btn btn-small"
                        aria-label={`End sessions of ${m.name}`}
                        onClick={() => setPending({ kind: 'sessions', member: m })}
                      >
                        End sessions
                      </button>
                    </div>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {pending && <Confirm org={org} pending={pending} busy={busy} onConfirm={() => void confirm()} onCancel={() => setPending(null)} />}
    </section>
  );
}

function Confirm({
  org,
  pending,
  busy,
  onConfirm,
  onCancel,
}: {
  org: Membership;
  pending: Pending;
  busy: boolean;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    return () => d?.close();
  }, []);
  const who = pending.member.name;
  const [title, text, action] =
    pending.kind === 'role'
      ? [
          `Remove ${who}’s role ${ROLE_LABEL[pending.role].toLowerCase()}?`,
          `${who} loses what being ${ROLE_LABEL[pending.role].toLowerCase()} of ${org.org_name} gives at once: their open cases close on their devices within a second, and they cannot open them again. Their sessions stay; end them too if they should not be signed in at all.`,
          'Remove role',
        ]
      : [
          `End every session of ${who}?`,
          `${who} is signed out on every device at once: their open cases close on their devices within a second. They can sign in again while they keep a role.`,
          'End sessions',
        ];
  return (
    <dialog ref={ref} class="confirm" aria-labelledby="confirm-title" aria-describedby="confirm-text" onCancel={(e) => { e.preventDefault(); onCancel(); }}>
      <h2 id="confirm-title">{title}</h2>
      <p id="confirm-text">{text}</p>
      <div class="actions">
        <button type="button" class="btn btn-danger" disabled={busy} onClick={onConfirm}>
          {action}
        </button>
        <button type="button" class="btn btn-quiet" disabled={busy} onClick={onCancel}>
          Cancel
        </button>
      </div>
    </dialog>
  );
}

function Notices({ org }: { org: Membership }) {
  const [list, setList] = useState<api.NoticeStats[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [form, setForm] = useState({ title: '', happened: '', scope: '', todo: '' });
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState<string | null>(null);

  const load = () =>
    api.orgNotices(org.org_id).then(
      (l) => setList(l),
      (e) => setError(errorText(e)),
    );

  useEffect(() => {
    void load();
    const t = setInterval(() => void load(), REFRESH_MS);
    return () => clearInterval(t);
  }, [org.org_id]);

  const set = (k: keyof typeof form) => (e: Event) => setForm({ ...form, [k]: (e.target as HTMLInputElement).value });

  async function publish(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setDone(null);
    const body = [
      `What happened:\n${form.happened.trim()}`,
      `Scope:\n${form.scope.trim()}`,
      `What you should do:\n${form.todo.trim()}`,
    ].join('\n\n');
    try {
      await api.publishNotice(org.org_id, { title: form.title, body });
      setForm({ title: '', happened: '', scope: '', todo: '' });
      setDone('Published: every member sees it until they acknowledge it.');
      await load();
      void loadNotices();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section class="org-section" aria-labelledby={`notices-${org.org_id}`}>
      <h2 id={`notices-${org.org_id}`}>Incident notices</h2>
      <form class="stack notice-form" onSubmit={(e) => void publish(e)} aria-label="Publish incident notice">
        <h3>Publish incident notice</h3>
        <label class="field">
          Title
          <input required maxLength={200} value={form.title} onInput={set('title')} />
        </label>
        <label class="field">
          What happened
          <textarea required rows={3} value={form.happened} onInput={set('happened')} />
        </label>
        <label class="field">
          Scope
          <textarea required rows={2} value={form.scope} onInput={set('scope')} />
        </label>
        <label class="field">
          What users should do
          <textarea required rows={2} value={form.todo} onInput={set('todo')} />
        </label>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        {done && (
          <p class="ok-note" role="status">
            {done}
          </p>
        )}
        <div class="actions">
          <button type="submit" class="btn btn-primary" disabled={busy}>
            Publish notice
          </button>
        </div>
      </form>
      {list && list.length === 0 && <p class="muted">No notices yet.</p>}
      {list && list.length > 0 && (
        <ul class="plain notice-list" aria-label="Published notices">
          {list.map((n) => (
            <li class="notice-item" data-notice={n.title}>
              <strong>{n.title}</strong>
              <div class="muted small">
                {formatTime(n.published_at)} · {n.org_id ? (n.published_by_name ?? 'an owner') : 'the operator, to every organisation'}
              </div>
              <div class="ack-count" data-testid="ack-count">
                {n.acks} of {n.members} {n.members === 1 ? 'member' : 'members'} acknowledged
              </div>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
