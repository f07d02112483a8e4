// A case's state as a fold over its event log — the browser's twin of the server's
// actors/src/case/state.rs. The containers are updated in place (a resumed backlog can be long),
// but an item that changes (a message edited, a proposal decided) is replaced by a new object, so
// components receiving it see a new prop and redraw. Unknown event kinds are skipped (v1 only
// adds kinds).

import { transitionSide, type CaseEvent, type CaseStatus, type RxChange } from '../domain';

export interface Message {
  id: string;
  seq: number;
  author: string;
  text: string;
  at: number;
  editedAt: number | null;
  deleted: boolean;
  attachments: string[];
  replyTo: string | null;
  /** Users the message mentions. */
  mentions: string[];
}

/** A line in the conversation that is not a message: a status change, an Rx edit… */
export interface Note {
  seq: number;
  at: number;
  actor: string;
  kind: string;
  data: any;
}

export type TimelineItem = { type: 'message'; message: Message } | { type: 'note'; note: Note };

export interface RxField {
  value: string | null;
  /** Seq of the event that last changed it: the `base_version` of the next edit. */
  version: number;
  by: string;
  at: number;
}

export interface Proposal {
  id: string;
  seq: number;
  by: string;
  at: number;
  changes: RxChange[];
  note: string | null;
  status: 'open' | 'accepted' | 'declined';
  comment: string | null;
}

/** A file of the case, from `file_added`. The files round builds its list and previews on this. */
export interface CaseFile {
  id: string;
  seq: number;
  by: string;
  at: number;
  name: string;
  size: number;
  contentType: string;
  sha256: string;
  kind: 'scan' | 'photo' | 'design' | 'voice_note' | 'document';
  transcript: string | null;
}

export interface CaseState {
  id: string;
  label: string;
  clinicId: string;
  doctorId: string;
  labId: string | null;
  status: CaseStatus;
  statusBeforeHold: CaseStatus | null;
  dueDate: string | null;
  seq: number;
  lastActivity: number;
  rx: Record<string, RxField>;
  rxVersion: number;
  /** What people see: the Rx's revision in this case, 1, 2, 3… (the nth change of the Rx). The
   * version above is the seq of that change, the concurrency token the server wants back. */
  rxRevision: number;
  /** Seq of an Rx change → its revision. */
  rxRevisionOf: Record<number, number>;
  /** Rx version the doctor last signed, if any. */
  rxSigned: number | null;
  proposals: Record<string, Proposal>;
  files: Record<string, CaseFile>;
  messages: Record<string, Message>;
  /** Messages and notes in seq order. */
  timeline: TimelineItem[];
  /** Message id → its index in `timeline`. */
  messageAt: Record<string, number>;
  /** Which side a user acted for, learned from actions only that side may take. The socket
   * names people by id only; this lets the room say "Demo Lab" instead of a bare id. */
  sides: Record<string, 'clinic' | 'lab'>;
}

/** Event kinds only one side can cause (actors/src/case/decide.rs). */
const SIDE_OF_KIND: Record<string, 'clinic' | 'lab'> = {
  case_created: 'clinic',
  case_updated: 'clinic',
  rx_edited: 'clinic',
  rx_signed: 'clinic',
  rx_proposal_decided: 'clinic',
  approval_decided: 'clinic',
  rx_proposed: 'lab',
  approval_requested: 'lab',
};

const NOTE_KINDS = new Set([
  'status_changed',
  'case_updated',
  'rx_edited',
  'rx_signed',
  'rx_proposed',
  'rx_proposal_decided',
  'approval_requested',
  'approval_decided',
  'file_added',
]);

/** Applies one event (the caller guarantees seq order). Returns the state, created by the first event. */
export function applyEvent(state: CaseState | null, ev: CaseEvent): CaseState | null {
  if (!state) {
    if (ev.kind !== 'case_created') return null;
    const d = ev.data;
    state = {
      id: ev.case_id,
      label: d.label,
      clinicId: d.clinic_id,
      doctorId: d.doctor_id,
      labId: d.lab_id ?? null,
      status: 'draft',
      statusBeforeHold: null,
      dueDate: d.due_date ?? null,
      seq: 0,
      lastActivity: ev.at,
      rx: {},
      rxVersion: 0,
      rxRevision: 0,
      rxRevisionOf: {},
      rxSigned: null,
      proposals: {},
      files: {},
      messages: {},
      timeline: [],
      messageAt: {},
      sides: {},
    };
  }
  const s = state;
  const d = ev.data ?? {};
  s.seq = ev.seq;
  s.lastActivity = ev.at;
  const side = ev.kind === 'status_changed' ? transitionSide(d.from, d.to) : SIDE_OF_KIND[ev.kind];
  if (side && !s.sides[ev.actor]) s.sides[ev.actor] = side;
  switch (ev.kind) {
    case 'case_updated':
      if ('label' in d && d.label != null) s.label = d.label;
      if ('due_date' in d) s.dueDate = d.due_date;
      if ('lab_id' in d) s.labId = d.lab_id;
      break;
    case 'status_changed':
      if (d.to === 'on_hold') s.statusBeforeHold = d.from;
      else if (d.from === 'on_hold') s.statusBeforeHold = null;
      s.status = d.to;
      break;
    case 'message_posted': {
      const m: Message = {
        id: d.message_id,
        seq: ev.seq,
        author: ev.actor,
        text: d.text,
        at: ev.at,
        editedAt: null,
        deleted: false,
        attachments: d.attachments ?? [],
        replyTo: d.reply_to ?? null,
        mentions: d.mentions ?? [],
      };
      s.messages[m.id] = m;
      s.messageAt[m.id] = s.timeline.length;
      s.timeline.push({ type: 'message', message: m });
      break;
    }
    case 'message_edited':
      replaceMessage(s, d.message_id, { text: d.text, editedAt: ev.at });
      break;
    case 'message_deleted':
      replaceMessage(s, d.message_id, { deleted: true, text: '' });
      break;
    case 'rx_edited':
      for (const c of d.changes ?? []) s.rx[c.field] = { value: c.value ?? null, version: ev.seq, by: ev.actor, at: ev.at };
      s.rxVersion = ev.seq;
      s.rxRevisionOf[ev.seq] = ++s.rxRevision;
      break;
    case 'rx_signed':
      s.rxSigned = d.rx_version;
      break;
    case 'rx_proposed':
      s.proposals[d.proposal_id] = {
        id: d.proposal_id,
        seq: ev.seq,
        by: ev.actor,
        at: ev.at,
        changes: d.changes ?? [],
        note: d.note ?? null,
        status: 'open',
        comment: null,
      };
      break;
    case 'rx_proposal_decided': {
      const p = s.proposals[d.proposal_id];
      if (p) s.proposals[p.id] = { ...p, status: d.accepted ? 'accepted' : 'declined', comment: d.comment ?? null };
      const applied = d.applied ?? [];
      for (const c of applied) s.rx[c.field] = { value: c.value ?? null, version: ev.seq, by: ev.actor, at: ev.at };
      if (applied.length) {
        s.rxVersion = ev.seq;
        s.rxRevisionOf[ev.seq] = ++s.rxRevision;
      }
      break;
    }
    case 'approval_requested':
      if (s.status === 'received' || s.status === 'in_design' || s.status === 'approved') s.status = 'awaiting_approval';
      break;
    case 'approval_decided':
      if (s.status === 'awaiting_approval') s.status = d.decision === 'approve' ? 'approved' : 'in_design';
      break;
    case 'file_added':
      s.files[d.file_id] = {
        id: d.file_id,
        seq: ev.seq,
        by: ev.actor,
        at: ev.at,
        name: d.name,
        size: d.size,
        contentType: d.content_type,
        sha256: d.sha256,
        kind: d.file_kind,
        transcript: null,
      };
      break;
    case 'voice_transcribed': {
      const f = s.files[d.file_id];
      if (f) s.files[f.id] = { ...f, transcript: d.text };
      break;
    }
    default:
      break;
  }
  if (NOTE_KINDS.has(ev.kind)) s.timeline.push({ type: 'note', note: { seq: ev.seq, at: ev.at, actor: ev.actor, kind: ev.kind, data: d } });
  return s;
}

/** Changed items are new objects: screens compare by reference to know what to redraw. */
function replaceMessage(s: CaseState, id: string, patch: Partial<Message>) {
  const m = s.messages[id];
  if (!m) return;
  const next = { ...m, ...patch };
  s.messages[id] = next;
  s.timeline[s.messageAt[id]] = { type: 'message', message: next };
}

/** The revision people know an Rx version (a seq) by; 0 is the empty Rx before any change. */
export function revisionOf(s: CaseState, version: number): number {
  if (version === 0) return 0;
  const known = s.rxRevisionOf[version];
  if (known !== undefined) return known;
  // Not a seq of an Rx change (an older client's number): the revision in force at that seq.
  let best = 0;
  for (const [seq, rev] of Object.entries(s.rxRevisionOf)) if (Number(seq) <= version && rev > best) best = rev;
  return best;
}
