// The case's conversation: messages and what happened to the case, in seq order; typing,
// read receipts; editing and deleting one's own messages.
//
// Bidirectional text is rendered inert: every message body is its own block with `dir="auto"`,
// and every name, label, file name or quoted comment inside a sentence is its own `<bdi>`. So
// an override (U+202E) or an isolate left open in one of them — chat keeps such characters, and
// names stored before the name rule may have them — reorders only its own text, never the
// sentence around it or the messages after it.

import { Fragment, type ComponentChildren } from 'preact';
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';
import { errorText } from '../../components/CaseBits';
import { AudioPlayer } from '../../components/FilePreview';
import {
  defaultKind,
  displayValue,
  fieldLabel,
  formatClock,
  formatDay,
  formatDue,
  formatFull,
  formatSize,
  KIND_LABEL,
  labSide,
  localDay,
  mayChat,
  STATUS_LABEL,
  type CaseAccess,
  type CaseStatus,
  type Me,
} from '../../domain';
import { cancel, describeProgress, dismiss, startUpload, uploads } from '../../files/uploads';
import { navigate } from '../../router';
import { revisionOf, type CaseFile, type CaseState, type Message, type Note } from '../../state/caseFold';
import type { CaseRoom } from '../../state/caseRoom';
import { entered } from '../../state/inbox';
import { labNames, people } from '../../state/people';
import './chat.css';
import { mayUpload } from './Files';
import { recordingSupported, VoiceRecorder } from './VoiceRecorder';

/** Shows a file of the case in the Files panel (its preview opened). */
function openFile(r: CaseRoom, fileId: string) {
  navigate(`/cases/${r.id}?tab=files&file=${encodeURIComponent(fileId)}`, true);
}

const TYPING_EVERY_MS = 1_500;
/** A press this long on a touch screen shows a time's full date. */
const LONG_PRESS_MS = 500;

export function Chat({ r, user, access }: { r: CaseRoom; user: Me; access: CaseAccess }) {
  r.rev.value;
  const s = r.state!;
  const outbox = r.outbox.value;
  const logRef = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  const [replyTo, setReplyTo] = useState<Message | null>(null);

  // The "new messages" divider: above the first of the messages that were unread when the user
  // came in (counted back from the newest, as the server counted them: others', not deleted).
  const cameWith = entered.value[r.id] ?? 0;
  const loaded = r.loaded.value;
  const dividerSeq = useMemo(() => {
    if (!loaded || cameWith <= 0) return null;
    let n = 0;
    for (let i = s.timeline.length - 1; i >= 0; i--) {
      const t = s.timeline[i];
      if (t.type === 'message' && t.message.author !== user.id && !t.message.deleted && ++n === cameWith) return t.message.seq;
    }
    return null;
    // Computed once per visit: later messages do not move it.
  }, [cameWith, loaded]);
  const dividerShown = useRef<number | null>(null);

  // Keep the newest in view unless the user scrolled up to read; on arrival with unread
  // messages, show the first of them (below the divider) instead.
  useLayoutEffect(() => {
    const el = logRef.current;
    if (!el) return;
    if (dividerSeq !== null && dividerShown.current !== dividerSeq) {
      const d = el.querySelector<HTMLElement>('[data-testid="new-divider"]');
      if (d) {
        dividerShown.current = dividerSeq;
        el.scrollTop = Math.max(0, el.scrollTop + d.getBoundingClientRect().top - el.getBoundingClientRect().top - 8);
        stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
        return;
      }
    }
    if (stick.current) el.scrollTop = el.scrollHeight;
  }, [s.seq, outbox.length, dividerSeq]);

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
  const mayPost = mayChat(access);

  const rows: ComponentChildren[] = [];
  let day = '';
  for (const item of s.timeline) {
    const at = item.type === 'message' ? item.message.at : item.note.at;
    const seq = item.type === 'message' ? item.message.seq : item.note.seq;
    const d = localDay(at);
    if (d !== day) {
      day = d;
      rows.push(
        <li key={`day-${d}`} class="day-sep" data-testid="day-separator">
          <time dateTime={d}>{formatDay(at)}</time>
        </li>,
      );
    }
    if (seq === dividerSeq) {
      rows.push(
        <li key="new-divider" class="new-divider" data-testid="new-divider">
          <span>New messages</span>
        </li>,
      );
    }
    rows.push(
      item.type === 'message' ? (
        <MessageItem
          key={item.message.id}
          m={item.message}
          r={r}
          me={user.id}
          onReply={mayPost ? () => setReplyTo(item.message) : null}
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
          <Stamp at={item.note.at} />
        </li>
      ),
    );
  }

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
        {rows}
        {outbox.map((o) => (
          <li key={o.key} class={`msg msg-own msg-pending${o.error ? ' msg-failed' : ''}`} data-pending="true">
            {o.replyTo && <ReplyQuote r={r} id={o.replyTo} me={user.id} />}
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
      <p class="typing muted small" aria-live="polite" data-testid="typing">
        {typing.length ? (
          <>
            {listOf(typing.map((u) => r.name(u, user.id)))} {typing.length > 1 ? 'are' : 'is'} typing…
          </>
        ) : (
          ''
        )}
      </p>
      {mayUpload(access) && <VoiceUploads r={r} />}
      {mayPost && (
        <Composer r={r} me={user.id} replyTo={replyTo} clearReply={() => setReplyTo(null)} upload={mayUpload(access) ? (labSide(access) ? 'lab' : 'clinic') : null} />
      )}
    </div>
  );
}

/** A time: the clock in the line, the full date on hover (title) or on a long press. */
function Stamp({ at }: { at: number }) {
  const [full, setFull] = useState(false);
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const stop = () => clearTimeout(timer.current);
  return (
    <time
      class="muted stamp"
      dateTime={new Date(at).toISOString()}
      title={formatFull(at)}
      onPointerDown={(e) => {
        if (e.pointerType !== 'touch') return;
        stop();
        timer.current = setTimeout(() => setFull(true), LONG_PRESS_MS);
      }}
      onPointerUp={stop}
      onPointerCancel={stop}
      onPointerLeave={stop}
      onClick={() => full && setFull(false)}
    >
      {full ? formatFull(at) : formatClock(at)}
    </time>
  );
}

/** The message a message answers, quoted above it; a click shows the original. */
function ReplyQuote({ r, id, me }: { r: CaseRoom; id: string; me: string }) {
  const m = r.state?.messages[id];
  const excerpt = !m ? 'an earlier message' : m.deleted ? 'Message deleted' : m.text.length > 140 ? `${m.text.slice(0, 140)}…` : m.text;
  return (
    <button
      type="button"
      class="reply-quote"
      data-testid="reply-quote"
      onClick={() => {
        const el = document.getElementById(`msg-${id}`);
        if (!el) return;
        el.scrollIntoView({ block: 'center' });
        el.classList.remove('msg-flash');
        void el.offsetWidth; // restart the animation
        el.classList.add('msg-flash');
      }}
    >
      <span class="visually-hidden">In reply to </span>
      {m && <bdi class="reply-author">{r.name(m.author, me)}</bdi>}
      <span class="reply-text" dir="auto">
        {excerpt}
      </span>
    </button>
  );
}

/** A message's text with its `@mentions` marked (the person mentioned sees theirs stronger). */
function withMentions(m: Message, r: CaseRoom, me: string): ComponentChildren {
  if (!m.mentions.length) return m.text;
  const names = m.mentions
    .map((id) => ({ id, name: people.value[id] ?? r.participants.value.find((p) => p.user_id === id)?.name }))
    .filter((x): x is { id: string; name: string } => !!x.name)
    .sort((a, b) => b.name.length - a.name.length);
  const out: ComponentChildren[] = [];
  let rest = m.text;
  let key = 0;
  while (rest) {
    let hit: { at: number; id: string; name: string } | null = null;
    for (const n of names) {
      const at = rest.indexOf(`@${n.name}`);
      if (at >= 0 && (!hit || at < hit.at)) hit = { at, ...n };
    }
    if (!hit) break;
    if (hit.at > 0) out.push(rest.slice(0, hit.at));
    out.push(
      <mark key={key++} class={`mention${hit.id === me ? ' mention-me' : ''}`}>
        @<bdi>{hit.name}</bdi>
      </mark>,
    );
    rest = rest.slice(hit.at + hit.name.length + 1);
  }
  if (rest) out.push(rest);
  return out;
}

/** A voice note in the conversation: who, the player, and the transcript once it arrives. */
function VoiceNoteItem({ f, r, me }: { f: CaseFile; r: CaseRoom; me: string }) {
  return (
    <li class={`msg msg-voice${f.by === me ? ' msg-own' : ''}`} data-seq={f.seq} data-file-id={f.id} data-testid="voice-note">
      <div class="msg-head">
        <bdi class="msg-author">{r.name(f.by, me)}</bdi> <Stamp at={f.at} />
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

function MessageItem({ m, r, me, seenBy, onReply }: { m: Message; r: CaseRoom; me: string; seenBy: string[] | null; onReply: (() => void) | null }) {
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

  const actions: { label: string; run: () => void; danger?: boolean }[] = [];
  if (!m.deleted && !editing) {
    if (onReply) actions.push({ label: 'Reply', run: onReply });
    if (own) {
      actions.push({ label: 'Edit', run: () => { setText(m.text); setEditing(true); } });
      actions.push({ label: 'Delete', run: () => setConfirmDelete(true), danger: true });
    }
  }
  const mentioned = m.mentions.includes(me) && !own;

  return (
    <li
      id={`msg-${m.id}`}
      class={`msg${own ? ' msg-own' : ''}${m.deleted ? ' msg-deleted' : ''}${mentioned ? ' msg-mentioned' : ''}`}
      data-seq={m.seq}
      data-message-id={m.id}
    >
      <div class="msg-head">
        <bdi class="msg-author">{r.name(m.author, me)}</bdi> <Stamp at={m.at} />
        {m.editedAt && !m.deleted && <span class="muted"> · edited</span>}
        {actions.length > 0 && <ActionsMenu actions={actions} />}
      </div>
      {m.replyTo && !m.deleted && <ReplyQuote r={r} id={m.replyTo} me={me} />}
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
          {withMentions(m, r, me)}
        </div>
      )}
      {!m.deleted && m.attachments.length > 0 && <Attachments ids={m.attachments} s={r.state!} r={r} />}
      {confirmDelete && (
        <div class="msg-actions" role="group" aria-label="Delete this message?">
          <span>Delete this message?</span>
          <button type="button" class="btn btn-small btn-danger" onClick={() => void del()}>
            Delete
          </button>
          <button type="button" class="btn btn-small btn-quiet" onClick={() => setConfirmDelete(false)}>
            Keep
          </button>
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

/** One button per message opening its actions (Reply, Edit, Delete) as a menu: one tab stop per
 * message instead of three, arrow keys inside, Escape closes (WAI-ARIA menu button). */
function ActionsMenu({ actions }: { actions: { label: string; run: () => void; danger?: boolean }[] }) {
  const [open, setOpen] = useState(false);
  const button = useRef<HTMLButtonElement>(null);
  const menu = useRef<HTMLUListElement>(null);
  useEffect(() => {
    if (!open) return;
    menu.current?.querySelector<HTMLElement>('[role="menuitem"]')?.focus();
    const away = (e: PointerEvent) => {
      if (!menu.current?.contains(e.target as Node) && !button.current?.contains(e.target as Node)) setOpen(false);
    };
    document.addEventListener('pointerdown', away);
    return () => document.removeEventListener('pointerdown', away);
  }, [open]);
  const close = () => {
    setOpen(false);
    button.current?.focus();
  };
  return (
    <span class="msg-menu">
      <button
        ref={button}
        type="button"
        class="btn-icon msg-menu-button"
        aria-haspopup="menu"
        aria-expanded={open ? 'true' : 'false'}
        aria-label="Message actions"
        onClick={() => setOpen(!open)}
        onKeyDown={(e) => {
          if (e.key === 'ArrowDown') {
            e.preventDefault();
            setOpen(true);
          }
        }}
      >
        <svg aria-hidden="true" width="18" height="18" viewBox="0 0 24 24" fill="currentColor">
          <circle cx="5" cy="12" r="2" />
          <circle cx="12" cy="12" r="2" />
          <circle cx="19" cy="12" r="2" />
        </svg>
      </button>
      {open && (
        <ul
          ref={menu}
          class="msg-menu-list"
          role="menu"
          aria-label="Message actions"
          onKeyDown={(e) => {
            const items = [...(menu.current?.querySelectorAll<HTMLElement>('[role="menuitem"]') ?? [])];
            const i = items.indexOf(document.activeElement as HTMLElement);
            if (e.key === 'Escape' || e.key === 'Tab') {
              e.preventDefault();
              close();
            } else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
              e.preventDefault();
              items[(i + (e.key === 'ArrowDown' ? 1 : -1) + items.length) % items.length]?.focus();
            }
          }}
        >
          {actions.map((a) => (
            <li key={a.label} role="none">
              <button
                type="button"
                role="menuitem"
                tabIndex={-1}
                class={`msg-menu-item${a.danger ? ' link-danger' : ''}`}
                onClick={() => {
                  setOpen(false);
                  a.run();
                }}
              >
                {a.label}
              </button>
            </li>
          ))}
        </ul>
      )}
    </span>
  );
}

/** The `@word` being typed just before the caret, if any. */
function mentionQuery(text: string, caret: number): { start: number; query: string } | null {
  const before = text.slice(0, caret);
  const m = /(^|\s)@([^\s@]{0,30})$/.exec(before);
  return m ? { start: caret - m[2].length - 1, query: m[2] } : null;
}

function Composer({
  r,
  me,
  replyTo,
  clearReply,
  upload,
}: {
  r: CaseRoom;
  me: string;
  replyTo: Message | null;
  clearReply: () => void;
  /** The side uploads are for (it picks the default kind), or null when the user may not upload. */
  upload: 'clinic' | 'lab' | null;
}) {
  const [text, setText] = useState('');
  const [attached, setAttached] = useState<string[]>([]);
  /** Upload keys (files/uploads.ts) of new files this message will carry once they are in. */
  const [sending, setSending] = useState<string[]>([]);
  const [picking, setPicking] = useState(false);
  const [mentions, setMentions] = useState<{ id: string; name: string }[]>([]);
  const [suggest, setSuggest] = useState<{ start: number; query: string } | null>(null);
  const [active, setActive] = useState(0);
  const [inputKey, setInputKey] = useState(0);
  const area = useRef<HTMLTextAreaElement>(null);
  const lastTyping = useRef(0);
  const s = r.state!;
  const handedBack = r.draft.value;
  useEffect(() => {
    if (handedBack !== null) {
      setText(handedBack);
      r.draft.value = null;
    }
  }, [handedBack]);
  useEffect(() => {
    if (replyTo) area.current?.focus();
  }, [replyTo]);
  const files = Object.values(s.files).sort((a, b) => b.seq - a.seq);

  // New files from the paperclip: once an upload is in and its `file_added` event here, it is an
  // attachment like any other.
  const mine = uploads.value.filter((u) => sending.includes(u.key));
  useEffect(() => {
    const arrived = mine.filter((u) => u.state === 'done' && u.fileId && s.files[u.fileId]);
    if (!arrived.length) return;
    setAttached((a) => [...a, ...arrived.map((u) => u.fileId!).filter((id) => !a.includes(id))]);
    setSending((k) => k.filter((key) => !arrived.some((u) => u.key === key)));
    for (const u of arrived) dismiss(u.key);
  });
  const waiting = mine.some((u) => u.state !== 'done' && u.state !== 'failed') || mine.some((u) => u.state === 'done');

  const candidates = suggest
    ? r.participants.value
        .filter((p) => p.user_id !== me)
        .filter((p) => {
          const q = suggest.query.toLocaleLowerCase();
          return !q || p.name.toLocaleLowerCase().split(/\s+/).some((w) => w.startsWith(q)) || p.name.toLocaleLowerCase().startsWith(q);
        })
        .slice(0, 8)
    : [];

  function choose(p: { user_id: string; name: string }) {
    if (!suggest) return;
    const caret = area.current?.selectionStart ?? text.length;
    const next = `${text.slice(0, suggest.start)}@${p.name} ${text.slice(caret)}`;
    setText(next);
    if (!mentions.some((x) => x.id === p.user_id)) setMentions([...mentions, { id: p.user_id, name: p.name }]);
    setSuggest(null);
    const at = suggest.start + p.name.length + 2;
    queueMicrotask(() => {
      area.current?.focus();
      area.current?.setSelectionRange(at, at);
    });
  }

  function send(e?: Event) {
    e?.preventDefault();
    if (waiting) return;
    const ids = attached.filter((id) => s.files[id]);
    // The server wants words with every message: files sent alone are named.
    const t = text.trim() || (ids.length ? `Attached: ${ids.map((id) => s.files[id].name).join(', ')}` : '');
    if (!t) return;
    const named = mentions.filter((m) => t.includes(`@${m.name}`)).map((m) => m.id);
    r.post(t, ids, replyTo?.id ?? null, named);
    setText('');
    setAttached([]);
    setMentions([]);
    setSuggest(null);
    setPicking(false);
    clearReply();
    lastTyping.current = 0;
  }

  function toggle(id: string) {
    setAttached(attached.includes(id) ? attached.filter((x) => x !== id) : [...attached, id]);
  }

  function pickNew(e: Event) {
    const input = e.currentTarget as HTMLInputElement;
    const list = [...(input.files ?? [])];
    setInputKey((k) => k + 1); // a fresh input: the same file can be picked again
    if (!list.length || !upload) return;
    setPicking(false);
    void Promise.all(list.map((f) => startUpload(f, { caseId: r.id, kind: defaultKind(f.name, f.type, upload) }))).then((keys) =>
      setSending((k) => [...k, ...keys]),
    );
  }

  const listId = 'mention-list';
  const showList = suggest !== null && candidates.length > 0;

  return (
    <div class="composer-wrap">
      {picking && (
        <fieldset class="attach-picker" data-testid="attach-picker">
          <legend>Attach files</legend>
          {upload && (
            <label class="btn btn-small upload-new">
              Upload a new file…
              <input key={inputKey} type="file" multiple class="visually-hidden" data-testid="composer-upload" onChange={pickNew} />
            </label>
          )}
          {files.length === 0 ? (
            <p class="muted small">No files in this case yet.</p>
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
      {replyTo && (
        <div class="replying" data-testid="replying">
          <span class="muted small">Replying to</span> <bdi class="reply-author">{r.name(replyTo.author, me)}</bdi>
          <span class="reply-text small" dir="auto">
            {replyTo.text.length > 80 ? `${replyTo.text.slice(0, 80)}…` : replyTo.text}
          </span>
          <button type="button" class="btn-icon" aria-label="Cancel the reply" onClick={clearReply}>
            ×
          </button>
        </div>
      )}
      {(attached.length > 0 || mine.length > 0) && (
        <ul class="attachments attachments-draft" aria-label="Attached to the next message">
          {attached.map((id) => (
            <li key={id}>
              <span class="attachment">
                <bdi class="attachment-name">{s.files[id]?.name ?? 'file'}</bdi>
                <button type="button" class="btn-icon" aria-label={`Remove ${s.files[id]?.name ?? 'file'}`} onClick={() => toggle(id)}>
                  ×
                </button>
              </span>
            </li>
          ))}
          {mine.map((u) => (
            <li key={u.key} data-testid="composer-upload-item" data-state={u.state}>
              <span class={`attachment${u.state === 'failed' ? ' attachment-failed' : ''}`}>
                <bdi class="attachment-name">{u.name}</bdi>
                <progress max={u.size || 1} value={u.sent} aria-label={`Upload of ${u.name}`} aria-valuetext={describeProgress(u)} />
                <span class="small" role="status">
                  {u.state === 'failed' ? `Not uploaded: ${u.error ?? ''}` : describeProgress(u)}
                </span>
                <button
                  type="button"
                  class="btn-icon"
                  aria-label={`Remove ${u.name}`}
                  onClick={() => {
                    if (u.state !== 'done' && u.state !== 'failed') cancel(u.key);
                    dismiss(u.key);
                    setSending((k) => k.filter((x) => x !== u.key));
                  }}
                >
                  ×
                </button>
              </span>
            </li>
          ))}
        </ul>
      )}
      {showList && (
        <ul class="mention-list" id={listId} role="listbox" aria-label="People in this case" data-testid="mention-list">
          {candidates.map((p, i) => (
            <li
              key={p.user_id}
              id={`mention-${p.user_id}`}
              role="option"
              aria-selected={i === active ? 'true' : 'false'}
              class={i === active ? 'active' : undefined}
              onPointerDown={(e) => {
                e.preventDefault(); // keep the focus in the message box
                choose(p);
              }}
            >
              <bdi>{p.name}</bdi> <span class="muted small">{p.side === 'lab' ? 'Lab' : 'Clinic'}</span>
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
          title={upload ? 'Attach a new file or a file of this case' : 'Attach files of this case'}
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
          ref={area}
          dir="auto"
          placeholder="Write a message… (@ to mention)"
          rows={2}
          maxLength={10000}
          value={text}
          aria-autocomplete="list"
          aria-expanded={showList ? 'true' : 'false'}
          aria-controls={showList ? listId : undefined}
          aria-activedescendant={showList && candidates[active] ? `mention-${candidates[active].user_id}` : undefined}
          onInput={(e) => {
            const el = e.currentTarget;
            setText(el.value);
            const q = mentionQuery(el.value, el.selectionStart ?? el.value.length);
            setSuggest(q);
            if (q) {
              setActive(0);
              if (!r.participants.value.length) void r.loadParticipants();
            }
            const now = Date.now();
            if (now - lastTyping.current > TYPING_EVERY_MS) {
              lastTyping.current = now;
              r.typingNow();
            }
          }}
          onKeyDown={(e) => {
            if (showList) {
              if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
                e.preventDefault();
                setActive((active + (e.key === 'ArrowDown' ? 1 : -1) + candidates.length) % candidates.length);
                return;
              }
              if ((e.key === 'Enter' || e.key === 'Tab') && !e.isComposing) {
                e.preventDefault();
                choose(candidates[Math.min(active, candidates.length - 1)]);
                return;
              }
              if (e.key === 'Escape') {
                e.preventDefault();
                setSuggest(null);
                return;
              }
            }
            if (e.key === 'Escape' && replyTo) {
              clearReply();
              return;
            }
            // Enter sends, Shift+Enter starts a new line (IME composition is left alone).
            if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) send(e);
          }}
        />
        <button type="submit" class="btn btn-primary" disabled={waiting || (!text.trim() && !attached.length)}>
          Send
        </button>
      </form>
      {waiting && (
        <p class="muted small" role="status">
          The message goes once its files are uploaded.
        </p>
      )}
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
          {who} signed the Rx (revision {revisionOf(r.state!, d.rx_version)}).
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
