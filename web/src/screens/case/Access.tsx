// People & access: the case's per-case grants in force (who, what, until when, given by), shown
// to every member of the case; giving and revoking them for the case's doctor, an owner of its
// clinic and holders of `manage`; support access (read only, at most 30 days) for owners. The
// server decides (src/http/grants.rs, actors/src/case/decide.rs); its refusals are shown in words.

import { useEffect, useRef, useState } from 'preact/hooks';
import * as api from '../../api';
import { errorText } from '../../components/CaseBits';
import { formatDue, type Me, type Role } from '../../domain';
import { nameOf } from '../../state/people';

export const CAPABILITY_LABEL: Record<api.Capability, string> = {
  view: 'read the case',
  chat: 'chat',
  upload: 'add files',
  edit_rx: 'edit the Rx',
  approve: 'approve designs',
  manage: 'manage access',
};
const CAPABILITIES: api.Capability[] = ['view', 'chat', 'upload', 'edit_rx', 'approve', 'manage'];

const ROLE_LABEL: Record<Role, string> = {
  doctor: 'doctor',
  clinic_admin: 'clinic admin',
  lab_tech: 'lab technician',
  lab_admin: 'lab admin',
  owner: 'owner',
  auditor: 'auditor',
};

/** Support access lasts at most this long (the server's rule). */
const SUPPORT_MAX_DAYS = 30;
const DAY_MS = 86_400_000;

/** The last millisecond of a YYYY-MM-DD day in UTC (the day the user picked is included). */
export function endOfDay(date: string): number {
  return Date.parse(`${date}T23:59:59.999Z`);
}

function dateIn(days: number): string {
  return new Date(Date.now() + days * DAY_MS).toISOString().slice(0, 10);
}

/** "until 12 Jan 2027" or "until revoked". */
export function untilText(until: number | null): string {
  return until === null ? 'until revoked' : `until ${formatDue(new Date(until).toISOString().slice(0, 10))}`;
}

export function capabilityWords(caps: api.Capability[]): string {
  const words = caps.map((c) => CAPABILITY_LABEL[c]);
  return words.length <= 1 ? (words[0] ?? '') : `${words.slice(0, -1).join(', ')} and ${words[words.length - 1]}`;
}

export interface AccessProps {
  caseId: string;
  user: Me;
  grants: api.GrantView[];
  /** Ask the server again (after a change made here; live events do it for the room). */
  reload: () => Promise<void> | void;
  /** May give and revoke grants: the case's doctor, an owner of its clinic, a holder of `manage`. */
  mayManage: boolean;
  /** An owner of the case's clinic (passes on anything; gives support access). */
  owner: boolean;
  /** The case's doctor (passes on anything). */
  doctor: boolean;
}

type Pending = { grant: api.GrantView };

export function Access(p: AccessProps) {
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [pending, setPending] = useState<Pending | null>(null);
  const [busy, setBusy] = useState(false);
  const mine = p.grants.find((g) => g.user_id === p.user.id);
  // What this user may pass on: everything for the doctor and owners, else what they hold.
  const passable = p.doctor || p.owner ? CAPABILITIES : (mine?.capabilities ?? ['view']);

  async function revoke() {
    if (!pending) return;
    const g = pending.grant;
    setBusy(true);
    setError(null);
    setDone(null);
    try {
      await api.revokeGrant(p.caseId, g.user_id);
      setDone(`${g.name} no longer has ${g.support ? 'support access' : 'access'} to this case.`);
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
      setPending(null);
      await p.reload();
    }
  }

  const said = (text: string) => {
    setError(null);
    setDone(text);
    void p.reload();
  };

  return (
    <div class="access">
      <div class="panel-head">
        <h2>People &amp; access</h2>
      </div>
      <p class="muted small">
        Access given for this case only, on top of what each person’s role gives. Taking it back closes the case on
        their devices at once.
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
      {p.grants.length === 0 ? (
        <p class="muted" data-testid="no-grants">
          Nobody has been given access to this case.
        </p>
      ) : (
        <ul class="plain grant-list" aria-label="Access given for this case">
          {p.grants.map((g) => (
            <li class="grant" data-grant={g.name} data-testid="grant">
              <div>
                <strong class="grant-name">{g.user_id === p.user.id ? `${g.name} (you)` : g.name}</strong>
                {g.support && <span class="badge badge-support">Support</span>}
              </div>
              <div class="grant-what">
                May {capabilityWords(g.capabilities)}, {untilText(g.until)}.
              </div>
              <div class="muted small">Given by {g.given_by_name ?? nameOf(g.given_by, p.user.id)}</div>
              {p.mayManage && g.user_id !== p.user.id && (
                <button
                  type="button"
                  class="btn btn-small"
                  aria-label={`Revoke access of ${g.name}`}
                  onClick={() => setPending({ grant: g })}
                >
                  Revoke
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      {pending && <ConfirmRevoke grant={pending.grant} busy={busy} onConfirm={() => void revoke()} onCancel={() => setPending(null)} />}
      {p.mayManage && <GiveAccess {...p} passable={passable} onDone={said} onError={setError} />}
      {p.owner && <GiveSupport {...p} onDone={said} onError={setError} />}
    </div>
  );
}

function ConfirmRevoke(props: { grant: api.GrantView; busy: boolean; onConfirm: () => void; onCancel: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    return () => d?.close();
  }, []);
  const g = props.grant;
  return (
    <dialog
      ref={ref}
      class="confirm"
      aria-labelledby="revoke-title"
      aria-describedby="revoke-text"
      onCancel={(e) => {
        e.preventDefault();
        props.onCancel();
      }}
    >
      <h2 id="revoke-title">Revoke {g.support ? 'the support access' : 'the access'} of {g.name}?</h2>
      <p id="revoke-text">
        {g.name} loses what it gave at once: unless their role lets them see this case, it closes on their devices
        within a second.
      </p>
      <div class="actions">
        <button type="button" class="btn btn-danger" disabled={props.busy} onClick={props.onConfirm}>
          Revoke
        </button>
        <button type="button" class="btn btn-quiet" disabled={props.busy} onClick={props.onCancel}>
          Cancel
        </button>
      </div>
    </dialog>
  );
}

interface Person {
  user_id: string;
  name: string;
  roles: string[];
}

/** One entry per person: "Tomás Tech — lab technician, Demo Lab". */
function people(list: api.Grantable[]): Person[] {
  const out: Person[] = [];
  for (const g of list) {
    const role = g.role ? `${ROLE_LABEL[g.role] ?? g.role}${g.org_name ? `, ${g.org_name}` : ''}` : 'support account';
    const have = out.find((x) => x.user_id === g.user_id);
    if (have) have.roles.push(role);
    else out.push({ user_id: g.user_id, name: g.name, roles: [role] });
  }
  return out;
}

function GiveAccess(
  p: AccessProps & { passable: api.Capability[]; onDone: (t: string) => void; onError: (t: string | null) => void },
) {
  const [list, setList] = useState<Person[] | null>(null);
  const [who, setWho] = useState('');
  const [caps, setCaps] = useState<api.Capability[]>(['view', 'chat']);
  const [until, setUntil] = useState('');
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    api.grantable(p.caseId).then(
      (l) => setList(people(l)),
      (e) => p.onError(errorText(e)),
    );
  }, [p.caseId]);

  const toggle = (c: api.Capability, on: boolean) =>
    setCaps((now) => (on ? [...new Set([...now, c])] : now.filter((x) => x !== c)));

  async function submit(e: Event) {
    e.preventDefault();
    const person = list?.find((x) => x.user_id === who);
    if (!person) return;
    setBusy(true);
    p.onError(null);
    try {
      const chosen = CAPABILITIES.filter((c) => c === 'view' || caps.includes(c));
      await api.giveGrant(p.caseId, who, { capabilities: chosen, ...(until ? { until: endOfDay(until) } : {}) });
      p.onDone(`${person.name} may now ${capabilityWords(chosen)}, ${untilText(until ? endOfDay(until) : null)}.`);
      setWho('');
      setUntil('');
    } catch (err) {
      p.onError(errorText(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form class="stack give-access" onSubmit={submit} aria-labelledby="give-access-title">
      <h3 id="give-access-title">Give access</h3>
      <label class="field">
        <span>Person</span>
        <select value={who} onChange={(e) => setWho(e.currentTarget.value)} required>
          <option value="">{list === null ? 'Loading…' : 'Choose someone of the clinic or the lab'}</option>
          {(list ?? []).map((x) => (
            <option value={x.user_id}>
              {x.name} — {x.roles.join('; ')}
            </option>
          ))}
        </select>
      </label>
      <fieldset class="caps">
        <legend>They may</legend>
        {CAPABILITIES.filter((c) => p.passable.includes(c)).map((c) => (
          <label class="check">
            <input
              type="checkbox"
              checked={c === 'view' || caps.includes(c)}
              disabled={c === 'view'}
              onChange={(e) => toggle(c, e.currentTarget.checked)}
            />
            {CAPABILITY_LABEL[c]}
            {c === 'view' && <span class="muted small"> (always)</span>}
          </label>
        ))}
      </fieldset>
      <label class="field">
        <span>Until (optional)</span>
        <input type="date" min={dateIn(0)} max={dateIn(364)} value={until} onInput={(e) => setUntil(e.currentTarget.value)} />
        <small class="muted">Included; leave empty for “until revoked”.</small>
      </label>
      <div class="actions">
        <button type="submit" class="btn btn-primary" disabled={busy || !who}>
          {busy ? 'Giving…' : 'Give access'}
        </button>
      </div>
    </form>
  );
}

function GiveSupport(p: AccessProps & { onDone: (t: string) => void; onError: (t: string | null) => void }) {
  const [email, setEmail] = useState('');
  const [until, setUntil] = useState(dateIn(7));
  const [busy, setBusy] = useState(false);

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    p.onError(null);
    try {
      const found = await api.grantable(p.caseId, email.trim());
      if (!found.length) {
        p.onError(`No active account has the e-mail ${email.trim()}.`);
        return;
      }
      const account = found[0];
      await api.giveGrant(p.caseId, account.user_id, { capabilities: ['view'], support: true, until: endOfDay(until) });
      p.onDone(`${account.name} may read this case, ${untilText(endOfDay(until))}.`);
      setEmail('');
    } catch (err) {
      p.onError(errorText(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form class="stack give-support" onSubmit={submit} aria-labelledby="give-support-title">
      <h3 id="give-support-title">Support access</h3>
      <p class="muted small">
        Lets a support account read this case (nothing else) for at most {SUPPORT_MAX_DAYS} days. Every member of the
        case sees a banner while it lasts.
      </p>
      <label class="field">
        <span>Support account e-mail</span>
        <input type="email" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
      </label>
      <label class="field">
        <span>Until</span>
        <input
          type="date"
          required
          min={dateIn(0)}
          max={dateIn(SUPPORT_MAX_DAYS - 1)}
          value={until}
          onInput={(e) => setUntil(e.currentTarget.value)}
        />
      </label>
      <div class="actions">
        <button type="submit" class="btn btn-primary" disabled={busy || !email.trim() || !until}>
          {busy ? 'Giving…' : 'Give support access'}
        </button>
      </div>
    </form>
  );
}

/** The banner every member sees while a support grant is in force. */
export function SupportBanner({ grants, me }: { grants: api.GrantView[]; me: string }) {
  const support = grants.filter((g) => g.support);
  if (!support.length) return null;
  return (
    <div class="support-banner" role="status" data-testid="support-banner">
      {support.map((g) => (
        <p>
          <strong>Support access:</strong> {g.user_id === me ? 'you' : g.name} can read this case{' '}
          {untilText(g.until)}, given by {g.given_by_name ?? nameOf(g.given_by, me)}.
        </p>
      ))}
    </div>
  );
}
