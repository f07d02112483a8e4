// The Digital Rx: the tooth chart, each tooth's restoration / material / shade / margin /
// occlusion / notes, the case notes, and how changes are made:
// - the case's doctor edits (`edit_rx`), the lab proposes (`propose_rx`), others read;
// - every change names the version it was based on. If someone changed the field first, the
//   server applies nothing and answers `rx_conflict` with the current values: the user sees them
//   and chooses to keep theirs or re-apply their own (now based on the current version).

import { useEffect, useRef, useState } from 'preact/hooks';
import { errorText } from '../../components/CaseBits';
import {
  displayValue,
  fieldLabel,
  MARGINS,
  MATERIALS,
  MAX_NOTE_CHARS,
  OCCLUSIONS,
  RESTORATIONS,
  VITA_3D_MASTER,
  VITA_CLASSICAL,
  formatTime,
  labSide,
  type CaseAccess,
  type Me,
  mayPrescribe,
  type RxChange,
  type RxConflict,
  type ToothAttribute,
} from '../../domain';
import { CommandError } from '../../realtime';
import { revisionOf } from '../../state/caseFold';
import type { CaseRoom } from '../../state/caseRoom';
import { Proposals } from './Proposals';
import { RxHistory } from './RxHistory';
import { ToothChart } from './ToothChart';

/** An unsaved change: the value and the version of the field it was based on. */
interface Draft {
  value: string | null;
  base: number;
}

const SELECTS: { attr: Exclude<ToothAttribute, 'notes'>; label: string; options: string[] | { group: string; options: string[] }[] }[] = [
  { attr: 'restoration', label: 'Restoration', options: RESTORATIONS },
  { attr: 'material', label: 'Material', options: MATERIALS },
  {
    attr: 'shade',
    label: 'Shade',
    options: [
      { group: 'VITA classical', options: VITA_CLASSICAL },
      { group: 'VITA 3D-Master', options: VITA_3D_MASTER },
    ],
  },
  { attr: 'margin', label: 'Margin', options: MARGINS },
  { attr: 'occlusion', label: 'Occlusion', options: OCCLUSIONS },
];

export function RxPanel({ r, user, access }: { r: CaseRoom; user: Me; access: CaseAccess }) {
  r.rev.value;
  const s = r.state!;
  const [selected, setSelected] = useState<number | null>(null);
  const [draft, setDraft] = useState<Record<string, Draft>>({});
  const [note, setNote] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [conflicts, setConflicts] = useState<RxConflict[]>([]);
  const [done, setDone] = useState<string | null>(null);
  const [showHistory, setShowHistory] = useState(false);
  // The conflict's choices appear at the bottom of the panel: bring them into view.
  const conflictBox = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (conflicts.length) conflictBox.current?.scrollIntoView({ block: 'nearest' });
  }, [conflicts.length > 0]);

  const mayEdit = mayPrescribe(access);
  const mayPropose = !mayEdit && labSide(access);
  const editable = (mayEdit || mayPropose) && s.status !== 'closed' && s.status !== 'cancelled';

  const saved = (field: string) => s.rx[field]?.value ?? null;
  const value = (field: string) => (field in draft ? draft[field].value : saved(field));

  function change(field: string, raw: string) {
    const v = raw === '' ? null : raw;
    setDone(null);
    setDraft((d) => {
      const next = { ...d };
      if (v === saved(field)) {
        delete next[field]; // the field already has this value: nothing to send
      } else {
        // Keep the version the user started from: a change made meanwhile must surface as a conflict.
        next[field] = { value: v, base: field in d ? d[field].base : (s.rx[field]?.version ?? 0) };
      }
      return next;
    });
  }

  async function submit(changes: Record<string, Draft>) {
    const list: RxChange[] = Object.entries(changes).map(([field, d]) => ({ field, base_version: d.base, value: d.value }));
    if (!list.length) return;
    setBusy(true);
    setError(null);
    setDone(null);
    try {
      if (mayEdit) await r.editRx(list);
      else await r.proposeRx(list, note);
      setDraft({});
      setConflicts([]);
      setNote('');
      setDone(mayEdit ? 'Saved.' : 'Proposal sent to the doctor.');
    } catch (e) {
      if (e instanceof CommandError && e.code === 'rx_conflict') {
        setConflicts((e.details?.conflicts ?? []) as RxConflict[]);
      } else {
        setError(errorText(e));
      }
    } finally {
      setBusy(false);
    }
  }

  /** Keep the current value: drop the user's change of this field. */
  function keepTheirs(field: string) {
    const next = { ...draft };
    delete next[field];
    setDraft(next);
    setConflicts((c) => c.filter((x) => x.field !== field));
  }

  /** Re-apply the user's value on top of the current version, and send again. */
  function reapply(c: RxConflict) {
    const next = { ...draft, [c.field]: { ...draft[c.field], base: c.version } };
    setDraft(next);
    setConflicts((list) => list.filter((x) => x.field !== c.field));
    if (conflicts.length <= 1) void submit(next);
  }

  const changedTeeth = new Set(
    Object.keys(draft)
      .map((f) => /^teeth\.(\d+)\./.exec(f)?.[1])
      .filter(Boolean)
      .map(Number),
  );
  const count = Object.keys(draft).length;

  return (
    <div class="rx" data-testid="rx">
      <div class="panel-head">
        <h2>Digital Rx</h2>
        <span class="muted small" data-testid="rx-revision">
          Revision {s.rxRevision}
          {s.rxSigned !== null && (s.rxSigned === s.rxVersion ? ' · signed' : ` · signed at revision ${revisionOf(s, s.rxSigned)}`)}
        </span>
        <button type="button" class="btn btn-small btn-quiet" aria-expanded={showHistory} onClick={() => setShowHistory(!showHistory)}>
          {showHistory ? 'Hide history' : 'History'}
        </button>
      </div>
      {!editable && (
        <p class="muted small">
          {access.clinicAdmin && !access.doctor ? 'Only the case’s doctor edits the Rx.' : 'The Rx can no longer change.'}
        </p>
      )}
      {mayPropose && editable && <p class="muted small">Changes you make here are sent to the doctor as a proposal.</p>}

      <Proposals r={r} user={user} access={access} part="open" />

      <ToothChart state={s} value={value} selected={selected} onSelect={(t) => setSelected(selected === t ? null : t)} changed={changedTeeth} />

      {selected !== null && (
        <fieldset class="tooth-editor" data-testid="tooth-editor">
          <legend>Tooth {selected}</legend>
          <div class="grid-fields">
            {SELECTS.map(({ attr, label, options }) => {
              const field = `teeth.${selected}.${attr}`;
              return (
                <label class="field">
                  <span>{label}</span>
                  <select
                    name={field}
                    value={value(field) ?? ''}
                    disabled={!editable}
                    class={field in draft ? 'changed' : undefined}
                    onChange={(e) => change(field, e.currentTarget.value)}
                  >
                    <option value="">—</option>
                    {typeof options[0] === 'string'
                      ? (options as string[]).map((o) => <option value={o}>{displayValue(field, o)}</option>)
                      : (options as { group: string; options: string[] }[]).map((g) => (
                          <optgroup label={g.group}>
                            {g.options.map((o) => (
                              <option value={o}>{o}</option>
                            ))}
                          </optgroup>
                        ))}
                  </select>
                  <FieldStatus r={r} field={field} draft={draft[field]} me={user.id} />
                </label>
              );
            })}
          </div>
          <label class="field">
            <span>Notes for tooth {selected}</span>
            <textarea
              name={`teeth.${selected}.notes`}
              rows={2}
              maxLength={MAX_NOTE_CHARS}
              disabled={!editable}
              value={value(`teeth.${selected}.notes`) ?? ''}
              onInput={(e) => change(`teeth.${selected}.notes`, e.currentTarget.value)}
            />
            <FieldStatus r={r} field={`teeth.${selected}.notes`} draft={draft[`teeth.${selected}.notes`]} me={user.id} />
          </label>
        </fieldset>
      )}
      {selected === null && <p class="muted small">Select a tooth to see or change its prescription.</p>}

      <label class="field">
        <span>Case notes</span>
        <textarea name="notes" rows={3} maxLength={MAX_NOTE_CHARS} disabled={!editable} value={value('notes') ?? ''} onInput={(e) => change('notes', e.currentTarget.value)} />
        <FieldStatus r={r} field="notes" draft={draft.notes} me={user.id} />
      </label>

      <div class="rx-footer" data-testid="rx-footer">
        {conflicts.length > 0 && (
          <div class="conflict" role="alert" data-testid="rx-conflict" ref={conflictBox}>
            <h3>Someone changed {conflicts.length === 1 ? 'this field' : 'these fields'} first</h3>
            <p>Nothing was saved. Compare and choose, field by field:</p>
            <ul>
              {conflicts.map((c) => (
                <li data-field={c.field}>
                  <strong>{fieldLabel(c.field)}</strong>: now <strong data-testid="conflict-current">{displayValue(c.field, c.value)}</strong>
                  {s.rx[c.field] && <span class="muted"> (by {r.name(s.rx[c.field].by, user.id)}, version {c.version})</span>}; yours:{' '}
                  <strong>{displayValue(c.field, draft[c.field]?.value)}</strong>
                  <div class="actions">
                    <button type="button" class="btn btn-small" onClick={() => reapply(c)} disabled={busy}>
                      Re-apply mine
                    </button>
                    <button type="button" class="btn btn-small btn-quiet" onClick={() => keepTheirs(c.field)}>
                      Keep theirs
                    </button>
                  </div>
                </li>
              ))}
            </ul>
          </div>
        )}

        {editable && (
          <div class="rx-actions">
            {mayPropose && count > 0 && (
              <label class="field field-grow">
                <span>Note to the doctor</span>
                <input value={note} maxLength={2000} onInput={(e) => setNote(e.currentTarget.value)} placeholder="Why this change?" />
              </label>
            )}
            <span class="muted small" aria-live="polite">
              {count ? `${count} unsaved change${count === 1 ? '' : 's'}` : done ?? ''}
            </span>
            <button type="button" class="btn btn-primary" disabled={!count || busy || conflicts.length > 0} onClick={() => void submit(draft)}>
              {busy ? 'Sending…' : mayEdit ? 'Save Rx' : 'Propose changes'}
            </button>
            {count > 0 && (
              <button type="button" class="btn btn-quiet" onClick={() => { setDraft({}); setConflicts([]); }}>
                Discard
              </button>
            )}
            {mayEdit && !count && s.rxVersion > 0 && s.rxSigned !== s.rxVersion && <SignButton r={r} version={s.rxVersion} />}
          </div>
        )}
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
      </div>

      <Proposals r={r} user={user} access={access} part="decided" />
      {showHistory && <RxHistory r={r} user={user} tooth={selected} />}
    </div>
  );
}

/** Under a field: who set it and when, and whether it changed since the user began editing it. */
function FieldStatus({ r, field, draft, me }: { r: CaseRoom; field: string; draft?: Draft; me: string }) {
  const f = r.state!.rx[field];
  if (draft && f && f.version > draft.base) {
    return (
      <small class="warn">
        Changed by {r.name(f.by, me)} meanwhile: now {displayValue(field, f.value)}
      </small>
    );
  }
  if (!f) return null;
  return (
    <small class="muted">
      {r.name(f.by, me)}, {formatTime(f.at)} · revision {r.state ? revisionOf(r.state, f.version) : ''}
    </small>
  );
}

function SignButton({ r, version }: { r: CaseRoom; version: number }) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  return (
    <>
      <button
        type="button"
        class="btn"
        disabled={busy}
        onClick={async () => {
          setBusy(true);
          setError(null);
          try {
            await r.signRx(version);
          } catch (e) {
            setError(e instanceof CommandError && e.code === 'rx_conflict' ? 'The Rx changed meanwhile: read it again, then sign.' : errorText(e));
          } finally {
            setBusy(false);
          }
        }}
      >
        Sign Rx (version {version})
      </button>
      {error && (
        <span class="error small" role="alert">
          {error}
        </span>
      )}
    </>
  );
}
