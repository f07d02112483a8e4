// Doctors open cases: a de-identified label (no patient name), a due date and the lab.

import { useEffect, useRef, useState } from 'preact/hooks';
import * as api from '../api';
import { errorText } from '../components/CaseBits';
import { LabelWarning, loadLabelNames, needsWarning } from '../components/LabelWarning';
import { hasRole, todayUtc, type Me, type Org } from '../domain';
import { navigate } from '../router';
import { learnLabs } from '../state/people';

export function NewCase({ user }: { user: Me }) {
  const [label, setLabel] = useState('');
  const [due, setDue] = useState('');
  const [lab, setLab] = useState('');
  const [labs, setLabs] = useState<Org[]>([]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [warning, setWarning] = useState(false);
  const labelInput = useRef<HTMLInputElement>(null);
  // Chosen once per form: a retry after a lost answer returns the same case instead of a second one.
  const [caseId] = useState(() => crypto.randomUUID());

  useEffect(() => {
    loadLabelNames();
    api.labs().then((l) => {
      setLabs(l);
      learnLabs(l);
    }, () => {});
  }, []);

  if (!hasRole(user, 'doctor')) {
    return (
      <section class="page">
        <h1 tabIndex={-1}>New case</h1>
        <p>Cases are opened by doctors.</p>
      </section>
    );
  }

  async function submit(e: Event) {
    e.preventDefault();
    if (needsWarning(label.trim())) {
      setWarning(true);
      return;
    }
    await create(false);
  }

  async function create(kept: boolean) {
    setBusy(true);
    setError(null);
    try {
      const c = await api.createCase({
        id: caseId,
        label: label.trim(),
        ...(due ? { due_date: due } : {}),
        ...(lab ? { lab_id: lab } : {}),
        ...(kept ? { label_warning: 'shown_and_kept' as const } : {}),
      });
      navigate(`/cases/${c.id}`);
    } catch (err) {
      setError(errorText(err));
      setBusy(false);
    }
  }

  return (
    <section class="page page-narrow">
      <h1 tabIndex={-1}>New case</h1>
      <form class="stack" onSubmit={submit}>
        <label class="field">
          <span>Label</span>
          <input
            required
            maxLength={200}
            ref={labelInput}
            value={label}
            onInput={(e) => {
              setLabel(e.currentTarget.value);
              setWarning(false);
            }}
            aria-describedby="label-help"
          />
          <small id="label-help" class="muted">
            For example “Crown 11 — shade A2”. No patient name is needed.
          </small>
        </label>
        {warning && (
          <LabelWarning
            busy={busy}
            onChange={() => {
              setWarning(false);
              labelInput.current?.focus();
              labelInput.current?.select();
            }}
            onKeep={() => void create(true)}
          />
        )}
        <label class="field">
          <span>Due date</span>
          <input type="date" min={todayUtc()} value={due} onInput={(e) => setDue(e.currentTarget.value)} />
        </label>
        <label class="field">
          <span>Lab</span>
          <select value={lab} onChange={(e) => setLab(e.currentTarget.value)}>
            <option value="">Choose later</option>
            {labs.map((l) => (
              <option value={l.id}>{l.name}</option>
            ))}
          </select>
        </label>
        <p class="muted small">The case starts as a draft: the lab sees it once you submit it.</p>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <div class="actions">
          <button type="submit" class="btn btn-primary" disabled={busy || warning || !label.trim()}>
            {busy ? 'Creating…' : 'Create case'}
          </button>
          <a class="btn btn-quiet" href="/cases">
            Cancel
          </a>
        </div>
      </form>
    </section>
  );
}
