// Rx changes the lab proposed: the doctor accepts (applied with the same version check as an
// edit) or declines; the lab sees where its proposals stand.

import { useState } from 'preact/hooks';
import { errorText } from '../../components/CaseBits';
import { displayValue, fieldLabel, formatTime, labSide, mayPrescribe, type CaseAccess, type Me } from '../../domain';
import { CommandError } from '../../realtime';
import type { Proposal } from '../../state/caseFold';
import type { CaseRoom } from '../../state/caseRoom';

/** `open`: the proposals waiting for a decision, shown at the top of the Rx panel so that they are
 * seen when they arrive; `decided`: the list's end, with the decided ones folded. */
export function Proposals({ r, user, access, part }: { r: CaseRoom; user: Me; access: CaseAccess; part: 'open' | 'decided' }) {
  r.rev.value;
  const all = Object.values(r.state!.proposals).sort((a, b) => b.seq - a.seq);
  if (!all.length) return null;
  const open = all.filter((p) => p.status === 'open');
  const decided = all.filter((p) => p.status !== 'open');
  if (part === 'open') {
    if (!open.length) return null;
    return (
      <section class="proposals-open" aria-labelledby="proposals-open-title" data-testid="proposals-open">
        <h3 id="proposals-open-title">
          {mayPrescribe(access) ? `Lab proposal${open.length === 1 ? '' : 's'} to decide` : 'Waiting for the doctor'} ({open.length})
        </h3>
        <ul class="plain">
          {open.map((p) => (
            <ProposalItem key={p.id} p={p} r={r} user={user} access={access} />
          ))}
        </ul>
      </section>
    );
  }
  return (
    <section class="proposals" aria-labelledby="proposals-title">
      <h3 id="proposals-title">Lab proposals</h3>
      {open.length === 0 && <p class="muted small">No proposal is waiting.</p>}
      {open.length > 0 && <p class="muted small">{open.length} waiting: see the top of the Rx.</p>}
      {decided.length > 0 && (
        <details>
          <summary>Decided proposals ({decided.length})</summary>
          <ul class="plain">
            {decided.map((p) => (
              <ProposalItem key={p.id} p={p} r={r} user={user} access={access} />
            ))}
          </ul>
        </details>
      )}
    </section>
  );
}

function ProposalItem({ p, r, user, access }: { p: Proposal; r: CaseRoom; user: Me; access: CaseAccess }) {
  const [comment, setComment] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const s = r.state!;

  async function decide(accept: boolean) {
    setBusy(true);
    setError(null);
    try {
      await r.decideProposal(p.id, accept, comment);
    } catch (e) {
      if (e instanceof CommandError && e.code === 'rx_conflict') {
        const fields = ((e.details?.conflicts ?? []) as { field: string; value: string | null }[])
          .map((c) => `${fieldLabel(c.field)} is now ${displayValue(c.field, c.value)}`)
          .join('; ');
        setError(`The Rx changed since the lab proposed this (${fields}). Decline it and ask the lab to propose again.`);
      } else {
        setError(errorText(e));
      }
    } finally {
      setBusy(false);
    }
  }

  return (
    <li class={`proposal proposal-${p.status}`} data-proposal-id={p.id}>
      <div class="small">
        <strong dir="auto">{r.name(p.by, user.id)}</strong> <span class="muted">{formatTime(p.at)}</span>{' '}
        {p.status !== 'open' && <span class={`badge badge-${p.status}`}>{p.status}</span>}
      </div>
      <ul class="changes">
        {p.changes.map((c) => (
          <li>
            {fieldLabel(c.field)}: {displayValue(c.field, s.rx[c.field]?.value)} → <strong>{displayValue(c.field, c.value)}</strong>
          </li>
        ))}
      </ul>
      {p.note && <p class="quote">“{p.note}”</p>}
      {p.comment && <p class="quote">Doctor: “{p.comment}”</p>}
      {p.status === 'open' && mayPrescribe(access) && (
        <div class="decide">
          <label class="field">
            <span>Comment (optional)</span>
            <input value={comment} maxLength={2000} onInput={(e) => setComment(e.currentTarget.value)} />
          </label>
          <div class="actions">
            <button type="button" class="btn btn-primary btn-small" disabled={busy} onClick={() => void decide(true)}>
              Accept
            </button>
            <button type="button" class="btn btn-small" disabled={busy} onClick={() => void decide(false)}>
              Decline
            </button>
          </div>
        </div>
      )}
      {p.status === 'open' && !mayPrescribe(access) && labSide(access) && <p class="muted small">Waiting for the doctor.</p>}
      {error && (
        <p class="error small" role="alert">
          {error}
        </p>
      )}
    </li>
  );
}
