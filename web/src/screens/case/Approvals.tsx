// Design approvals (`GET /cases/{id}/approvals`): the lab requests one on an exact design file
// (its SHA-256) at the current Rx version; the doctor approves, or rejects with a comment.
// A later change of the design or the Rx voids it (the server marks it `voided`).

import { useEffect, useRef, useState } from 'preact/hooks';
import * as api from '../../api';
import { errorText } from '../../components/CaseBits';
import { MeshViewer } from '../../components/MeshViewer';
import { formatTime, labSide, mayApprove, type ApprovalView, type CaseAccess, type Me } from '../../domain';
import { revisionOf } from '../../state/caseFold';
import type { CaseRoom } from '../../state/caseRoom';

const STATUS_TEXT: Record<ApprovalView['status'], string> = {
  pending: 'Waiting for the doctor',
  approved: 'Approved',
  rejected: 'Rejected',
  voided: 'Void (the design or the Rx changed)',
};

export function Approvals({ r, user, access }: { r: CaseRoom; user: Me; access: CaseAccess }) {
  const [list, setList] = useState<ApprovalView[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const rev = r.approvalsRev.value;

  useEffect(() => {
    let live = true;
    api.approvals(r.id).then(
      (a) => live && setList(a.sort((x, y) => y.seq - x.seq)),
      (e) => live && setError(errorText(e)),
    );
    return () => {
      live = false;
    };
  }, [rev]);

  return (
    <div class="approvals" data-testid="approvals">
      <div class="panel-head">
        <h2>Approvals</h2>
      </div>
      {labSide(access) && <RequestApproval r={r} list={list} />}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {list === null && !error && <p role="status">Loading approvals…</p>}
      {list && list.length === 0 && <p class="muted">No approval has been requested yet.</p>}
      <ul class="plain">
        {(list ?? []).map((a) => (
          <ApprovalItem key={a.id} a={a} r={r} user={user} access={access} />
        ))}
      </ul>
    </div>
  );
}

function ApprovalItem({ a, r, user, access }: { a: ApprovalView; r: CaseRoom; user: Me; access: CaseAccess }) {
  r.rev.value;
  const file = r.state?.files[a.file_id];
  const [comment, setComment] = useState('');
  const [rejecting, setRejecting] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  // The design is shown while a decision is due; decided ones show it on request.
  const [showDesign, setShowDesign] = useState(a.status === 'pending');
  useEffect(() => {
    if (a.status === 'pending') setShowDesign(true);
  }, [a.status]);
  // A decision due from this user is brought into view when it appears (live or on opening).
  const bar = useRef<HTMLDivElement>(null);
  const due = a.status === 'pending' && mayApprove(access);
  useEffect(() => {
    if (due) bar.current?.scrollIntoView({ block: 'nearest' });
  }, [due]);

  async function decide(decision: 'approve' | 'reject') {
    if (decision === 'reject' && !comment.trim()) {
      setError('Tell the lab what to change: a rejection needs a comment.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await r.decideApproval(a.id, decision, comment);
      setRejecting(false);
      setComment('');
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <li class={`approval approval-${a.status}`} data-approval-id={a.id}>
      <div>
        <span class={`badge badge-${a.status}`}>{STATUS_TEXT[a.status]}</span>
      </div>
      <div class="small">
        Design <strong dir="auto">{file?.name ?? 'file'}</strong> <code title={a.file_sha256}>{a.file_sha256.slice(0, 12)}…</code> at Rx revision {revisionOf(r.state!, a.rx_version)}
      </div>
      <div class="muted small">
        Requested by <bdi>{r.name(a.requested_by, user.id)}</bdi>, {formatTime(a.requested_at)}
      </div>
      {a.comment && <p class="quote">“{a.comment}”</p>}
      {a.decided_by && (
        <p class="small">
          {a.status === 'approved' ? 'Approved' : 'Rejected'} by <bdi>{r.name(a.decided_by, user.id)}</bdi>
          {a.decided_at ? `, ${formatTime(a.decided_at)}` : ''}
          {a.decision_comment ? `: “${a.decision_comment}”` : ''}
        </p>
      )}
      {a.status === 'pending' && mayApprove(access) && (
        <div class="decide decide-bar" ref={bar} data-testid="decide-bar">
          {rejecting && (
            <label class="field">
              <span>What should the lab change? (required)</span>
              <textarea required rows={2} maxLength={2000} value={comment} onInput={(e) => setComment(e.currentTarget.value)} />
            </label>
          )}
          <div class="actions">
            {!rejecting && (
              <button type="button" class="btn btn-primary" disabled={busy} onClick={() => void decide('approve')}>
                Approve design
              </button>
            )}
            {rejecting ? (
              <>
                <button type="button" class="btn btn-danger" disabled={busy || !comment.trim()} onClick={() => void decide('reject')}>
                  Reject with comment
                </button>
                <button type="button" class="btn btn-quiet" onClick={() => setRejecting(false)}>
                  Cancel
                </button>
              </>
            ) : (
              <button type="button" class="btn" onClick={() => setRejecting(true)}>
                Reject…
              </button>
            )}
          </div>
        </div>
      )}
      {file && (
        <div class="approval-design">
          {showDesign ? (
            <MeshViewer fileId={file.id} name={file.name} size={file.size} contentType={file.contentType} compact />
          ) : null}
          <button type="button" class="link" aria-expanded={showDesign ? 'true' : 'false'} onClick={() => setShowDesign(!showDesign)}>
            {showDesign ? 'Hide the design' : 'Show the design in 3D'}
          </button>
        </div>
      )}
      {error && (
        <p class="error small" role="alert">
          {error}
        </p>
      )}
    </li>
  );
}

/** The lab asks for approval of one of the case's design files (shown once the case has one). */
function RequestApproval({ r, list }: { r: CaseRoom; list: ApprovalView[] | null }) {
  r.rev.value;
  const s = r.state!;
  const designs = Object.values(s.files).filter((f) => f.kind === 'design').sort((a, b) => b.seq - a.seq);
  const [sha, setSha] = useState('');
  const [comment, setComment] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [again, setAgain] = useState(false);
  const possible = ['received', 'in_design', 'awaiting_approval', 'approved'].includes(s.status);
  // Once an approval is pending or given, asking again is the exception (a new design): the form
  // folds behind a button instead of standing above the doctor's answer.
  const answered = s.status === 'approved' || (list ?? []).some((a) => a.status === 'pending');
  useEffect(() => {
    if (!answered) setAgain(false);
  }, [answered]);

  if (!designs.length) {
    return <p class="muted small">No design file in this case yet: an approval is always requested on a design file.</p>;
  }
  if (!possible) return null;
  if (answered && !again) {
    return (
      <p class="request-again">
        <button type="button" class="btn btn-small" aria-expanded="false" onClick={() => setAgain(true)}>
          Request another approval…
        </button>
      </p>
    );
  }
  const chosen = sha || designs[0].sha256;

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await r.requestApproval(chosen, comment);
      setComment('');
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form class="request-approval stack" onSubmit={submit}>
      <label class="field">
        <span>Design file</span>
        <select value={chosen} onChange={(e) => setSha(e.currentTarget.value)}>
          {designs.map((f) => (
            <option value={f.sha256}>
              {f.name} ({formatTime(f.at)})
            </option>
          ))}
        </select>
      </label>
      <label class="field">
        <span>Comment (optional)</span>
        <input value={comment} maxLength={2000} onInput={(e) => setComment(e.currentTarget.value)} />
      </label>
      <button type="submit" class="btn btn-primary" disabled={busy}>
        Request approval at Rx revision {s.rxRevision}
      </button>
      {error && (
        <p class="error small" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}
