// The case's details: label and due date (clinic side), lab routing (clinic admins until the
// lab has received the case; the doctor while it is their draft). Changes go through the socket (`update_case`), like every change.

import { useEffect, useRef, useState } from 'preact/hooks';
import * as api from '../../api';
import { errorText } from '../../components/CaseBits';
import { LabelWarning, loadLabelNames, needsWarning } from '../../components/LabelWarning';
import { clinicSide, formatDue, formatTime, STATUS_LABEL, type CaseAccess, type Me, type Org } from '../../domain';
import type { CaseRoom } from '../../state/caseRoom';
import { labNames, learnLabs } from '../../state/people';

export function Details({ r, user, access }: { r: CaseRoom; user: Me; access: CaseAccess }) {
  r.rev.value;
  const s = r.state!;
  const view = r.view.value;
  const finished = s.status === 'closed' || s.status === 'cancelled';
  const mayEdit = clinicSide(access) && !finished;
  const mayRoute = access.allowed.route;

  const [label, setLabel] = useState(s.label);
  const [due, setDue] = useState(s.dueDate ?? '');
  const [lab, setLab] = useState(s.labId ?? '');
  const [labs, setLabs] = useState<Org[]>([]);
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const [warning, setWarning] = useState(false);
  const labelInput = useRef<HTMLInputElement>(null);
  useEffect(() => {
    if (mayEdit) loadLabelNames();
  }, [mayEdit]);

  // Follow changes made by others while the form is untouched.
  useEffect(() => setLabel(s.label), [s.label]);
  useEffect(() => setDue(s.dueDate ?? ''), [s.dueDate]);
  useEffect(() => setLab(s.labId ?? ''), [s.labId]);
  useEffect(() => {
    if (mayRoute)
      api.labs().then((l) => {
        setLabs(l);
        learnLabs(l);
      }, () => {});
  }, [mayRoute]);

  async function submit(e: Event) {
    e.preventDefault();
    const fields: { label?: string; due_date?: string | null; lab_id?: string | null } = {};
    if (label.trim() !== s.label) fields.label = label.trim();
    if ((due || null) !== s.dueDate) fields.due_date = due || null;
    if (mayRoute && (lab || null) !== s.labId) fields.lab_id = lab || null;
    if (!Object.keys(fields).length) {
      setMessage({ ok: true, text: 'Nothing to change.' });
      return;
    }
    if (fields.label !== undefined && needsWarning(fields.label)) {
      setWarning(true);
      return;
    }
    await save(fields, false);
  }

  async function save(fields: { label?: string; due_date?: string | null; lab_id?: string | null }, kept: boolean) {
    setBusy(true);
    setMessage(null);
    setWarning(false);
    try {
      // Kept after the warning: through REST, which records that in the audit; else the socket.
      if (kept) await api.patchCase(r.id, { ...fields, label_warning: 'shown_and_kept' });
      else await r.updateCase(fields);
      setMessage({ ok: true, text: 'Saved.' });
    } catch (err) {
      setMessage({ ok: false, text: errorText(err) });
    } finally {
      setBusy(false);
    }
  }

  return (
    <div class="details">
      <div class="panel-head">
        <h2>Details</h2>
      </div>
      <dl class="facts">
        <dt>Status</dt>
        <dd>{STATUS_LABEL[s.status]}</dd>
        <dt>Doctor</dt>
        <dd>{view?.doctor_name ?? r.name(s.doctorId, user.id)}</dd>
        <dt>Clinic</dt>
        <dd>{view?.clinic_name ?? '—'}</dd>
        <dt>Lab</dt>
        <dd>{s.labId ? (labNames.value[s.labId] ?? view?.lab_name ?? '—') : 'Not routed yet'}</dd>
        <dt>Due</dt>
        <dd>{formatDue(s.dueDate)}</dd>
        <dt>Last activity</dt>
        <dd>{formatTime(s.lastActivity)}</dd>
      </dl>
      {mayEdit && (
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
            />
          </label>
          {warning && (
            <LabelWarning
              busy={busy}
              onChange={() => {
                setWarning(false);
                labelInput.current?.focus();
                labelInput.current?.select();
              }}
              onKeep={() => {
                const fields: { label?: string; due_date?: string | null; lab_id?: string | null } = { label: label.trim() };
                if ((due || null) !== s.dueDate) fields.due_date = due || null;
                if (mayRoute && (lab || null) !== s.labId) fields.lab_id = lab || null;
                void save(fields, true);
              }}
            />
          )}
          <label class="field">
            <span>Due date</span>
            <input type="date" value={due} onInput={(e) => setDue(e.currentTarget.value)} />
          </label>
          {mayRoute && (
            <label class="field">
              <span>Lab</span>
              <select value={lab} onChange={(e) => setLab(e.currentTarget.value)}>
                {(s.status === 'draft' || !s.labId) && <option value="">No lab</option>}
                {labs.map((l) => (
                  <option value={l.id}>{l.name}</option>
                ))}
              </select>
            </label>
          )}
          {!mayRoute && access.clinicAdmin && <p class="muted small">The lab has received the case: it can no longer be re-routed.</p>}
          <div class="actions">
            <button type="submit" class="btn btn-primary" disabled={busy}>
              {busy ? 'Saving…' : 'Save details'}
            </button>
            {message && (
              <span class={message.ok ? 'muted' : 'error'} role={message.ok ? 'status' : 'alert'}>
                {message.text}
              </span>
            )}
          </div>
        </form>
      )}
    </div>
  );
}
