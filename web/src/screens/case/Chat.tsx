// The case's conversation: messages and what happened to the case, in seq order; typing,
// read receipts; editing and deleting one's own messages.
//
// Bidirectional text is rendered inert: every message body is its own block with `dir="auto"`,
// and every name, label, file name or quoted comment inside a sentence is its own `<bdi>`. So
// an override (U+202E) or an isolate left open in one of them — chat keeps such characters, and
// names stored before the name rule may have them — reorders only its own text, never the
// sentence around it or the messages after it.

import { Fragment, type ComponentChildren } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { errorText } from '../../components/CaseBits';
import { AudioPlayer } from '../../components/FilePreview';
import { displayValue, fieldLabel, formatDue, formatSize, formatTime, KIND_LABEL, mayChat, STATUS_LABEL, type CaseAccess, type CaseStatus, type Me } from '../../domain';
import { describeProgress, dismiss, uploads } from '../../files/uploads';
import { navigate } from '../../router';
import type { CaseFile, CaseState, Message, Note } from '../../state/caseFold';
import type { CaseRoom } from '../../state/caseRoom';
import { labNames } from '../../state/people';
import { mayUpload } from './Files';
import { recordingSupported, VoiceRecorder } from './VoiceRecorder';

/** Shows a file of the case in the Files panel (its preview opened). */
function openFile(r: CaseRoom, fileId: string) {
  navigate(`/cases/${r.id}?tab=files&file=${encodeURIComponent(fileId)}`, true);
}

const TYPING_EVERY_MS = 1_500;

export function Chat({ r, user, access }: { r: CaseRoom; user: Me; access: CaseAccess }) {
  r.rev.value;
  const s = r.state!;
  const outbox = r.outbox.value;
  const logRef = useRef<HTMLDivElement>(null);
  const stick = useRef(true);

  // Keep the newest in view unless the user scrolled up to read.
  useLayoutEffect(() => {
    const el = logRef.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [s.seq, outbox.length]);

  // What is on screen is read: tell the others (only while the page is actually visible).
  useEffect(() => {
    const mark = () => {
      if (document.visibilityState === 'visible' && r.loaded.value) r.markRead(user.id);
    };
    mark();
    document.addEventListener('visibilitychange', mark);
    return () => document.removeEventListener('visibilitychange', mark);
  }, [s.seq, r.loaded.value]);

  const myLast = [...s.timeline].reverse().find((t) => t.type === 'message' && t.message.author === user.id && !t.message.deleted);
  const typing = Object.keys(r.typing.value).filter((u) => u !== user.id);

  return (
    <div class="chat">
      <div
        class="timeline"
        ref={logRef}
        role="log"
        aria-live="polite"
        aria-label="Conversation"
        tabIndex={0}
        onScroll={(e) => {
          const el = e.currentTarget;
          stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
        }}
      >
        <ol class="timeline-items">
        {!r.loaded.value && <li class="note">Loading the conversation…</li>}
        {r.loaded.value && !s.timeline.some((t) => t.type === 'message') && !outbox.length && (
          <li class="note">No messages yet. Everyone working on this case reads them here.</li>
        )}
        {s.timeline.map((item) =>
          item.type === 'message' ? (
            <MessageItem
              key={item.message.id}
              m={item.message}
              r={r}
              me={user.id}
              seenBy={myLast?.type === 'message' && myLast.message.id === item.message.id ? seenBy(r, item.message.seq, user.id) : null}
            />
          ) : item.note.kind === 'file_added' && item.note.data.file_kind === 'voice_note' && s.files[item.note.data.file_id] ? (
            <VoiceNoteItem key={`n${item.note.seq}`} f={s.files[item.note.data.file_id]} r={r} me={user.id} />
          ) : (
            <li key={`n${item.note.seq}`} class="note" data-seq={item.note.seq}>
              <span>{describe(r, item.note, user.id)}</span>{' '}
              {item.note.kind === 'file_added' && (
                <button type="button" class="link" onClick={() => openFile(r, item.note.data.file_id)}>
                  Show
                </button>
              )}{' '}
              <time class="muted">{formatTime(item.note.at)}</time>
            </li>
          ),
        )}
        {outbox.map((o) => (
          <li key={o.key} class={`msg msg-own msg-pending${o.error ? ' msg-failed' : ''}`} data-pending="true">
            <div class="msg-text" dir="auto">
              {o.text}
            </div>
            {o.attachments.length > 0 && <Attachments ids={o.attachments} s={s} r={r} />}
            <div class="msg-meta">
              {o.error ? (
                <>
                  <span class="error" role="alert">
                    Not sent: {o.error}
                  </span>
                  {o.retryable ? (
                    <button type="button" class="link" onClick={() => r.retry(o.key)}>
                      Retry
                    </button>
                  ) : (
                    <button type="button" class="link" onClick={() => r.editFailed(o.key)}>
                      Edit
                    </button>
                  )}
                  <button type="button" class="link" onClick={() => r.discard(o.key)}>
                    Discard
                  </button>
                </>
              ) : (
                <span class="muted">{o.seq ? 'Sent' : 'Sending…'}</span>
              )}
            </div>
          </li>
        ))}
        </ol>
      </div>
      <p class="typing muted small" aria-live="polite">
        {typing.length ? (
          <>
            {listOf(typing.map((u) => r.name(u, user.id)))} {typing.length > 1 ? 'are' : 'is'} typing…
          </>
        ) : (
          ''
        )}
      </p>
      {mayUpload(access) && <VoiceUploads r={r} />}
      {mayChat(access) && <Composer r={r} />}
    </div>
  );
}

/** A voice note in the conversation: who, the player, and the transcript once it arrives. */
function VoiceNoteItem({ f, r, me }: { f: CaseFile; r: CaseRoom; me: string }) {
  return (
    <li class={`msg msg-voice${f.by === me ? ' msg-own' : ''}`} data-seq={f.seq} data-file-id={f.id} data-testid="voice-note">
      <div class="msg-head">
        <bdi class="msg-author">{r.name(f.by, me)}</bdi> <time class="muted">{formatTime(f.at)}</time>
        <span class="muted"> · voice note</span>
      </div>
      <AudioPlayer file={f} />
      {f.transcript ? (
        <p class="transcript small" data-testid="transcript">
          <span class="visually-hidden">Transcript: </span>“<bdi>{f.transcript}</bdi>”
        </p>
      ) : null}
    </li>
  );
}

/** Voice notes of this case on their way to the server (and any that failed). */
function VoiceUploads({ r }: { r: CaseRoom }) {
  const list = uploads.value.filter((u) => u.caseId === r.id && u.kind === 'voice_note' && u.state !== 'done');
  if (!list.length) return null;
  return (
    <ul class="plain voice-uploads">
      {list.map((u) => (
        <li key={u.key} class="small" data-testid="voice-upload">
          {u.state === 'failed' ? (
            <>
              <span class="error" role="alert">
                Voice note not sent: {u.error}
              </span>{' '}
              <button type="button" class="link" onClick={() => dismiss(u.key)}>
                Dismiss
              </button>
            </>
          ) : (
            <span role="status" class="muted">
              Sending the voice note… {describeProgress(u)}
              {u.error ? ` — ${u.error}` : ''}
            </span>
          )}
        </li>
      ))}
    </ul>
  );
}

/** Files attached to a message: name and kind; a click shows the file in the Files panel. */
function Attachments({ ids, s, r }: { ids: string[]; s: CaseState; r: CaseRoom }) {
  return (
    <ul class="attachments" aria-label="Attachments">
      {ids.map((id) => {
        const f = s.files[id];
        return (
          <li key={id}>
            <button type="button" class="attachment" onClick={() => openFile(r, id)} title={f ? `${KIND_LABEL[f.kind]} · ${formatSize(f.size)}` : undefined}>
              <span class="attachment-kind" aria-hidden="true">
                {f ? KIND_LABEL[f.kind] : 'File'}
              </span>
              <bdi class="attachment-name">{f?.name ?? 'a file'}</bdi>
            </button>
          </li>
        );
      })}
    </ul>
  );
}

function seenBy(r: CaseRoom, seq: number, me: string): string[] {
  return Object.entries(r.receipts.value)
    .filter(([u, read]) => u !== me && read >= seq)
    .map(([u]) => r.name(u, me));
}

function MessageItem({ m, r, me, seenBy }: { m: Message; r: CaseRoom; me: string; seenBy: string[] | null }) {
  const own = m.author === me;
  const [editing, setEditing] = useState(false);
  const [text, setText] = useState(m.text);
  const [error, setError] = useState<string | null>(null);
  const [confirmDelete, setConfirmDelete] = useState(false);

  async function save(e: Event) {
    e.preventDefault();
    if (!text.trim() || text.trim() === m.text) {
      setEditing(false);
      return;
    }
    setError(null);
    try {
      await r.edit(m.id, text.trim());
      setEditing(false);
    } catch (err) {
      setError(errorText(err));
    }
  }

  async function del() {
    setError(null);
    try {
      await r.remove(m.id);
    } catch (err) {
      setError(errorText(err));
    }
    setConfirmDelete(false);
  }

  return (
    <li class={`msg${own ? ' msg-own' : ''}${m.deleted ? ' msg-deleted' : ''}`} data-seq={m.seq} data-message-id={m.id}>
      <div class="msg-head">
        <bdi class="msg-author">{r.name(m.author, me)}</bdi> <time class="muted">{formatTime(m.at)}</time>
        {m.editedAt && !m.deleted && <span class="muted"> · edited</span>}
      </div>
      {m.deleted ? (
        <div class="msg-text muted">Message deleted</div>
      ) : editing ? (
        <form class="msg-edit" onSubmit={save}>
          <label class="visually-hidden" for={`edit-${m.id}`}>
            Edit message
          </label>
          <textarea id={`edit-${m.id}`} dir="auto" value={text} maxLength={10000} onInput={(e) => setText(e.currentTarget.value)} rows={2} />
          <div class="actions">
            <button type="submit" class="btn btn-small">
              Save
            </button>
            <button type="button" class="btn btn-small btn-quiet" onClick={() => { setEditing(false); setText(m.text); }}>
              Cancel
            </button>
          </div>
        </form>
      ) : (
        <div class="msg-text" dir="auto">
          {m.text}
        </div>
      )}
      {!m.deleted && m.attachments.length > 0 && <Attachments ids={m.attachments} s={r.state!} r={r} />}
      {own && !m.deleted && !editing && (
        <div class="msg-actions">
          {confirmDelete ? (
            <>
              <span>Delete this message?</span>
              <button type="button" class="link link-danger" onClick={() => void del()}>
                Delete
              </button>
              <button type="button" class="link" onClick={() => setConfirmDelete(false)}>
                Keep
              </button>
            </>
          ) : (
            <>
              <button type="button" class="link" onClick={() => { setText(m.text); setEditing(true); }}>
                Edit
              </button>
              <button type="button" class="link" onClick={() => setConfirmDelete(true)}>
                Delete
              </button>
            </>
          )}
        </div>
      )}
      {seenBy && (
        <div class="msg-receipt muted small" data-testid="receipt">
          {seenBy.length ? <>Seen by {listOf(seenBy)}</> : 'Delivered'}
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

function Composer({ r }: { r: CaseRoom }) {
  const [text, setText] = useState('');
  const [attached, setAttached] = useState<string[]>([]);
  const [picking, setPicking] = useState(false);
  const lastTyping = useRef(0);
  const s = r.state!;
  const handedBack = r.draft.value;
  useEffect(() => {
    if (handedBack !== null) {
      setText(handedBack);
      r.draft.value = null;
    }
  }, [handedBack]);
  const files = Object.values(s.files).sort((a, b) => b.seq - a.seq);

  function send(e?: Event) {
    e?.preventDefault();
    const ids = attached.filter((id) => s.files[id]);
    // The server wants words with every message: files sent alone are named.
    const t = text.trim() || (ids.length ? `Attached: ${ids.map((id) => s.files[id].name).join(', ')}` : '');
    if (!t) return;
    r.post(t, ids);
    setText('');
    setAttached([]);
    setPicking(false);
    lastTyping.current = 0;
  }

  function toggle(id: string) {
    setAttached(attached.includes(id) ? attached.filter((x) => x !== id) : [...attached, id]);
  }

  return (
    <div class="composer-wrap">
      {picking && (
        <fieldset class="attach-picker" data-testid="attach-picker">
          <legend>Attach files of this case</legend>
          {files.length === 0 ? (
            <p class="muted small">No files yet: add them in the Files panel.</p>
          ) : (
            <ul class="plain">
              {files.map((f) => (
                <li key={f.id}>
                  <label class="check">
                    <input type="checkbox" checked={attached.includes(f.id)} onChange={() => toggle(f.id)} />
                    <span>
                      <bdi>{f.name}</bdi> <span class="muted small">({KIND_LABEL[f.kind]}, {formatSize(f.size)})</span>
                    </span>
                  </label>
                </li>
              ))}
            </ul>
          )}
        </fieldset>
      )}
      {attached.length > 0 && (
        <ul class="attachments attachments-draft" aria-label="Attached to the next message">
          {attached.map((id) => (
            <li key={id}>
              <span class="attachment">
                <bdi class="attachment-name">{s.files[id]?.name ?? 'file'}</bdi>
                <button type="button" class="link" aria-label={`Remove ${s.files[id]?.name ?? 'file'}`} onClick={() => toggle(id)}>
                  ×
                </button>
              </span>
            </li>
          ))}
        </ul>
      )}
      <form class="composer" onSubmit={send}>
        <button
          type="button"
          class="btn btn-icon"
          aria-expanded={picking ? 'true' : 'false'}
          aria-label="Attach files"
          title="Attach files of this case"
          onClick={() => setPicking(!picking)}
        >
          <svg aria-hidden="true" width="20" height="20" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">
            <path d="M21.4 11.1l-8.5 8.5a5.5 5.5 0 0 1-7.8-7.8l8.5-8.5a3.7 3.7 0 0 1 5.2 5.2l-8.5 8.5a1.8 1.8 0 0 1-2.6-2.6l7.8-7.8" />
          </svg>
        </button>
        <label class="visually-hidden" for="composer-text">
          Message
        </label>
        <textarea
          id="composer-text"
          dir="auto"
          placeholder="Write a message…"
          rows={2}
          maxLength={10000}
          value={text}
          onInput={(e) => {
            setText(e.currentTarget.value);
            const now = Date.now();
            if (now - lastTyping.current > TYPING_EVERY_MS) {
              lastTyping.current = now;
              r.typingNow();
            }
          }}
          onKeyDown={(e) => {
            // Enter sends, Shift+Enter starts a new line (IME composition is left alone).
            if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) send(e);
          }}
        />
        <button type="submit" class="btn btn-primary" disabled={!text.trim() && !attached.length}>
          Send
        </button>
      </form>
      {recordingSupported() && <VoiceRecorder r={r} />}
    </div>
  );
}

/** Names, each isolated: `Ana, Tom`. */
function listOf(names: string[]): ComponentChildren {
  return names.map((n, i) => (
    <Fragment key={i}>
      {i > 0 && ', '}
      <bdi>{n}</bdi>
    </Fragment>
  ));
}

/** A quoted comment or reason, isolated from the sentence around it. */
function quoted(text: string | null | undefined): ComponentChildren {
  return text ? (
    <>
      {' '}— “<bdi>{text}</bdi>”
    </>
  ) : null;
}

/** A sentence for an event that is not a chat message; what people typed is isolated in it. */
function describe(r: CaseRoom, n: Note, me: string): ComponentChildren {
  const who = <bdi>{r.name(n.actor, me)}</bdi>;
  const d = n.data;
  switch (n.kind) {
    case 'status_changed':
      return (
        <>
          {who} moved the case from {STATUS_LABEL[d.from as CaseStatus] ?? d.from} to {STATUS_LABEL[d.to as CaseStatus] ?? d.to}
          {quoted(d.reason)}.
        </>
      );
    case 'case_updated': {
      const parts: ComponentChildren[] = [];
      if (d.label != null)
        parts.push(
          <>
            renamed the case “<bdi>{d.label}</bdi>”
          </>,
        );
      if ('due_date' in d) parts.push(d.due_date ? `set the due date to ${formatDue(d.due_date)}` : 'cleared the due date');
      if ('lab_id' in d)
        parts.push(
          d.lab_id ? (
            <>
              routed the case to <bdi>{labNames.value[d.lab_id] ?? 'a lab'}</bdi>
            </>
          ) : (
            'removed the lab'
          ),
        );
      return (
        <>
          {who} {parts.length ? parts.map((p, i) => (
                <Fragment key={i}>
                  {i > 0 && ', '}
                  {p}
                </Fragment>
              )) : 'updated the case'}.
        </>
      );
    }
    case 'rx_edited':
      return (
        <>
          {who} changed the Rx: {changes(d.changes)}.
        </>
      );
    case 'rx_signed':
      return (
        <>
          {who} signed the Rx (version {d.rx_version}).
        </>
      );
    case 'rx_proposed':
      return (
        <>
          {who} proposed Rx changes: {changes(d.changes)}
          {quoted(d.note)}.
        </>
      );
    case 'rx_proposal_decided':
      return (
        <>
          {who} {d.accepted ? 'accepted' : 'declined'} the lab’s Rx proposal{quoted(d.comment)}.
        </>
      );
    case 'approval_requested':
      return (
        <>
          {who} asked for approval of a design{quoted(d.comment)}.
        </>
      );
    case 'approval_decided':
      return (
        <>
          {who} {d.decision === 'approve' ? 'approved the design' : 'rejected the design'}
          {quoted(d.comment)}.
        </>
      );
    case 'file_added': {
      const kind = d.file_kind && KIND_LABEL[d.file_kind as keyof typeof KIND_LABEL];
      return (
        <>
          {who} added {kind ? `the ${kind.toLowerCase()} ` : ''}
          <bdi class="file-name">{d.name}</bdi>
          {d.voided_approvals?.length ? ' (earlier design approvals are void)' : ''}.
        </>
      );
    }
    default:
      return (
        <>
          {who}: {n.kind}
        </>
      );
  }
}

function changes(list: { field: string; value: string | null }[] = []): ComponentChildren {
  return (
    <>
      {list.slice(0, 3).map((c, i) => (
        <Fragment key={c.field}>
          {i > 0 && ', '}
          {fieldLabel(c.field)} → {c.value === null ? 'cleared' : <bdi>{displayValue(c.field, c.value)}</bdi>}
        </Fragment>
      ))}
      {list.length > 3 ? ` and ${list.length - 3} more` : ''}
    </>
  );
}
