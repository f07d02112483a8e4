// Moves the case along its workflow: only the steps this user's side may make are offered
// (domain.ts mirrors actors/src/policy.rs; the server still decides).

import { useState } from 'preact/hooks';
import { errorText } from '../../components/CaseBits';
import { allowedTransitions, STATUS_LABEL, type CaseAccess, type CaseStatus } from '../../domain';
import type { CaseRoom } from '../../state/caseRoom';

export function StatusControl({ r, access }: { r: CaseRoom; access: CaseAccess }) {
  const s = r.state!;
  const options = allowedTransitions(access);
  const [to, setTo] = useState<CaseStatus | ''>('');
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  if (!options.length) {
    if (s.status === 'draft' && !s.labId && access.doctor) {
      return <p class="muted small">Choose a lab in Details before submitting this draft.</p>;
    }
    return null;
  }
  const target = to && options.includes(to) ? to : '';
  const needsWhy = target === 'on_hold' || target === 'cancelled' || target === 'remake_requested';

  async function submit(e: Event) {
    e.preventDefault();
    if (!target) return;
    setBusy(true);
    setError(null);
    try {
      await r.setStatus(target, reason);
      setTo('');
      setReason('');
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form class="status-control" onSubmit={submit}>
      <label class="field field-inline">
        <span>Move to</span>
        <select value={target} onChange={(e) => setTo(e.currentTarget.value as CaseStatus)} data-testid="status-select">
          <option value="">Choose a status…</option>
          {options.map((o) => (
            <option value={o}>{o === s.statusBeforeHold && s.status === 'on_hold' ? `Resume: ${STATUS_LABEL[o]}` : STATUS_LABEL[o]}</option>
          ))}
        </select>
      </label>
      {needsWhy && (
        <label class="field field-inline field-grow">
          <span>Reason</span>
          <input value={reason} maxLength={2000} onInput={(e) => setReason(e.currentTarget.value)} placeholder="Optional, shown to everyone on the case" />
        </label>
      )}
      <button type="submit" class="btn" disabled={!target || busy}>
        {busy ? 'Saving…' : 'Change status'}
      </button>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}
