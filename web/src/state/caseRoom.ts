// One case room's live state: the fold of its event log (caseFold.ts) kept current by the
// realtime client, plus what is ephemeral (presence, typing, receipts) and what this user sent and
// is not yet confirmed. Rooms stay in memory (never on disk) while signed in, so coming back to a
// case resumes from its last seq instead of reloading the whole log.

import { signal } from '@preact/signals';
import * as api from '../api';
import type { CaseEvent, CaseStatus, CaseView, Participant, RxChange } from '../domain';
import { type Ack, type CaseSignal, CommandError, type RealtimeClient } from '../realtime';
import { applyEvent, type CaseState } from './caseFold';
import { labNames, learn, learnParticipants, people } from './people';

/** A message this user sent: shown at once, replaced by the real one when its event arrives. */
export interface Outgoing {
  key: string;
  text: string;
  attachments: string[];
  /** The message answered, if any. */
  replyTo: string | null;
  /** People the message mentions (`@Name` in the text). */
  mentions: string[];
  at: number;
  /** The seq from the ack; the message is confirmed once the event with this seq is applied. */
  seq: number | null;
  error: string | null;
  /** The failure may pass on a second try (the connection, not the server, failed). The
   * realtime client retries the server's retryable answers itself, so what reaches here from
   * the server was refused, and sending it again would be refused again. */
  retryable?: boolean;
}

const TYPING_SHOWN_MS = 4_000;
const RELOADS_VIEW = new Set([
  'case_updated',
  'status_changed',
  'approval_requested',
  'approval_decided',
  'grant_given',
  'grant_revoked',
  'grant_expired',
]);

export class CaseRoom {
  /** Bumped after each batch of applied events: read it to re-render on change. */
  readonly rev = signal(0);
  /** Text handed back to the composer (a refused message the author is editing). */
  readonly draft = signal<string | null>(null);
  state: CaseState | null = null;
  readonly view = signal<CaseView | null>(null);
  /** The case's head seq at the last subscribe: loaded once the fold reached it. */
  readonly loaded = signal(false);
  readonly lost = signal<string | null>(null);
  readonly presence = signal<string[]>([]);
  readonly typing = signal<Record<string, number>>({});
  readonly receipts = signal<Record<string, number>>({});
  readonly outbox = signal<Outgoing[]>([]);
  /** Seq of the last Rx-related event seen, so open Rx/approval panels know to refetch. */
  readonly rxRev = signal(0);
  readonly approvalsRev = signal(0);
  /** The grants in force (`GET /cases/{id}/grants`), reloaded after grant events; expired ones
   * drop out at their `until` even before the server's `grant_expired` arrives. */
  readonly grants = signal<api.GrantView[]>([]);
  /** Everyone who can see the case (for `@mentions`). */
  readonly participants = signal<Participant[]>([]);

  private head = 0;
  private flushQueued = false;
  private grantsStale = false;
  private grantsTimer: ReturnType<typeof setTimeout> | undefined;
  private typingTimer: ReturnType<typeof setTimeout> | undefined;
  private unsubscribe: (() => void) | null = null;
  private attached = 0;

  get inUse() {
    return this.attached > 0;
  }

  constructor(
    readonly id: string,
    private readonly rt: RealtimeClient,
  ) {}

  /** Starts following the case (ref-counted by the screens showing it). */
  attach() {
    this.attached++;
    if (this.attached > 1) return;
    this.lost.value = null;
    void this.loadView();
    this.unsubscribe = this.rt.subscribeCase(this.id, this.state?.seq ?? 0, {
      onEvent: (ev) => this.onEvent(ev),
      onSignal: (s) => this.onSignal(s),
      onSubscribed: (head) => {
        this.head = head;
        if ((this.state?.seq ?? 0) >= head) this.scheduleFlush();
      },
      onLost: (code, message) => {
        this.lost.value = code === 'not_found' ? 'This case does not exist or you may not see it.' : message;
      },
    });
  }

  detach() {
    this.attached = Math.max(0, this.attached - 1);
    if (this.attached > 0) return;
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.presence.value = [];
    this.typing.value = {};
    clearTimeout(this.grantsTimer);
  }

  async loadView() {
    try {
      const v = await api.getCase(this.id);
      learn(v.doctor_id, v.doctor_name);
      this.view.value = v;
    } catch (e) {
      if (e instanceof api.ApiError && e.status === 404) this.lost.value = 'This case does not exist or you may not see it.';
    }
    void this.loadParticipants();
    void this.loadGrants();
  }

  async loadGrants() {
    this.grantsStale = false;
    try {
      const list = await api.grants(this.id);
      for (const g of list) learn(g.user_id, g.name);
      this.setGrants(list);
    } catch {
      /* the case was lost (shown by `lost`), or the network: the next event asks again */
    }
  }

  private setGrants(list: api.GrantView[]) {
    const now = Date.now();
    const live = list.filter((g) => g.until === null || g.until > now);
    this.grants.value = live;
    clearTimeout(this.grantsTimer);
    const next = Math.min(...live.map((g) => g.until ?? Infinity));
    if (next !== Infinity) this.grantsTimer = setTimeout(() => this.setGrants(this.grants.value), Math.max(0, next - now) + 50);
  }

  private participantsAt = 0;

  /** Names for the ids in events, presence and receipts. Asked again (at most every 30 s) when
   * someone unknown shows up: a member who joined the organisation since. */
  async loadParticipants(unknown?: string) {
    if (unknown && (people.value[unknown] || Date.now() - this.participantsAt < 30_000)) return;
    this.participantsAt = Date.now();
    try {
      const list = await api.participants(this.id);
      learnParticipants(list);
      this.participants.value = list;
    } catch {
      /* names are a convenience: ids stay readable as "Member ·1a2b" */
    }
  }

  private onEvent(ev: CaseEvent) {
    this.state = applyEvent(this.state, ev);
    if (!people.value[ev.actor] && this.participantsAt) void this.loadParticipants(ev.actor);
    if (ev.kind.startsWith('rx_')) this.rxRev.value = ev.seq;
    if (ev.kind.startsWith('approval_') || ev.data?.voided_approvals?.length) this.approvalsRev.value = ev.seq;
    // The case view carries what the caller may do now (and the lab's name): read it again after
    // what can change either — live events only, not each event of a backlog being replayed.
    if (RELOADS_VIEW.has(ev.kind) && (this.state?.seq ?? 0) >= this.head && this.head > 0) void this.loadView();
    if (ev.kind.startsWith('grant_')) this.grantsStale = true;
    // Their message is here: they are no longer typing it (the typing signal would linger on).
    if (ev.kind === 'message_posted' && ev.actor in this.typing.value) {
      const { [ev.actor]: _, ...rest } = this.typing.value;
      this.typing.value = rest;
    }
    // A backlog (the whole log on first open, the missed events after a reconnect) is published
    // once complete, not frame by frame; live events at once.
    if ((this.state?.seq ?? 0) >= this.head) this.scheduleFlush();
  }

  private scheduleFlush() {
    if (this.flushQueued) return;
    this.flushQueued = true;
    // A microtask, not a timer: timers of background tabs are throttled to one a second.
    queueMicrotask(() => this.flush());
  }

  private flush() {
    this.flushQueued = false;
    const seq = this.state?.seq ?? 0;
    const box = this.outbox.value;
    if (box.some((o) => o.seq !== null && o.seq <= seq)) {
      this.outbox.value = box.filter((o) => o.seq === null || o.seq > seq);
    }
    this.checkLoaded();
    if (this.grantsStale) void this.loadGrants();
    this.rev.value++;
  }

  private checkLoaded() {
    if (!this.loaded.value && (this.state?.seq ?? 0) >= this.head && this.head > 0) this.loaded.value = true;
  }

  private onSignal(s: CaseSignal) {
    switch (s.type) {
      case 'presence':
        this.presence.value = s.data.users;
        for (const u of s.data.users) if (!people.value[u]) void this.loadParticipants(u);
        break;
      case 'receipt': {
        const cur = this.receipts.value[s.data.user_id] ?? 0;
        if (s.data.seq > cur) this.receipts.value = { ...this.receipts.value, [s.data.user_id]: s.data.seq };
        break;
      }
      case 'typing':
        this.typing.value = { ...this.typing.value, [s.data.user_id]: Date.now() + TYPING_SHOWN_MS };
        this.expireTyping();
        break;
    }
  }

  private expireTyping() {
    clearTimeout(this.typingTimer);
    const now = Date.now();
    const live = Object.entries(this.typing.value).filter(([, until]) => until > now);
    if (live.length !== Object.keys(this.typing.value).length) this.typing.value = Object.fromEntries(live);
    if (live.length) {
      const next = Math.min(...live.map(([, until]) => until)) - now;
      this.typingTimer = setTimeout(() => this.expireTyping(), next + 50);
    }
  }

  /** A person's name in this case: "You", a known name, else their organisation when their actions
   * tell it (only the lab proposes Rx changes…), else a short id. */
  name(id: string, me: string): string {
    if (id === me) return 'You';
    const known = people.value[id];
    if (known) return known;
    const short = id.replace(/-/g, '').slice(-4);
    const side = this.state?.sides[id];
    const lab = this.state?.labId ? (labNames.value[this.state.labId] ?? this.view.value?.lab_name) : null;
    if (side === 'lab' && lab) return `${lab} ·${short}`;
    if (side === 'clinic' && this.view.value) return `${this.view.value.clinic_name} ·${short}`;
    return `Member ·${short}`;
  }

  // ---- commands (all through the socket: ids make them exactly-once) ----

  private cmd(type: string, data: Record<string, unknown>): Promise<Ack> {
    return this.rt.command(type, { case_id: this.id, ...data });
  }

  /** Posts a message (with files of the case attached); it shows at once and is confirmed (or
   * marked failed) later. */
  post(text: string, attachments: string[] = [], replyTo: string | null = null, mentions: string[] = []) {
    const item: Outgoing = { key: crypto.randomUUID(), text, attachments, replyTo, mentions, at: Date.now(), seq: null, error: null };
    this.outbox.value = [...this.outbox.value, item];
    this.send(item);
  }

  private send(item: Outgoing) {
    this.cmd('post_message', {
      text: item.text,
      ...(item.attachments.length ? { attachments: item.attachments } : {}),
      ...(item.replyTo ? { reply_to: item.replyTo } : {}),
      ...(item.mentions.length ? { mentions: item.mentions } : {}),
    }).then(
      (ack) => {
        const seq = ack.seq ?? 0;
        const applied = (this.state?.seq ?? 0) >= seq;
        this.outbox.value = applied
          ? this.outbox.value.filter((o) => o.key !== item.key)
          : this.outbox.value.map((o) => (o.key === item.key ? { ...o, seq } : o));
      },
      (e: Error) => {
        const retryable = !(e instanceof CommandError);
        this.outbox.value = this.outbox.value.map((o) => (o.key === item.key ? { ...o, error: e.message, retryable } : o));
      },
    );
  }

  retry(key: string) {
    const item = this.outbox.value.find((o) => o.key === key);
    if (!item) return;
    const again = { ...item, error: null };
    this.outbox.value = this.outbox.value.map((o) => (o.key === key ? again : o));
    this.send(again);
  }

  discard(key: string) {
    this.outbox.value = this.outbox.value.filter((o) => o.key !== key);
  }

  /** Hands a refused message back to the composer, to be corrected and sent as a new one. */
  editFailed(key: string) {
    const item = this.outbox.value.find((o) => o.key === key);
    if (!item) return;
    this.discard(key);
    this.draft.value = item.text;
  }

  edit(messageId: string, text: string) {
    return this.cmd('edit_message', { message_id: messageId, text });
  }

  remove(messageId: string) {
    return this.cmd('delete_message', { message_id: messageId });
  }

  typingNow() {
    this.rt.typing(this.id);
  }

  /** Marks the case read up to its latest seq (only if that moves this user's mark). */
  markRead(meId: string) {
    const seq = this.state?.seq ?? 0;
    if (!seq || (this.receipts.value[meId] ?? 0) >= seq) return;
    this.receipts.value = { ...this.receipts.value, [meId]: seq };
    this.rt.volatile('mark_read', { case_id: this.id, seq }).catch(() => {
      // Not connected: the mark is sent again when the room is next seen.
      const r = { ...this.receipts.value };
      if (r[meId] === seq) delete r[meId];
      this.receipts.value = r;
    });
  }

  editRx(changes: RxChange[]) {
    return this.cmd('edit_rx', { changes });
  }

  signRx(version: number) {
    return this.cmd('sign_rx', { rx_version: version });
  }

  proposeRx(changes: RxChange[], note: string) {
    return this.cmd('propose_rx', { changes, ...(note.trim() ? { note: note.trim() } : {}) });
  }

  decideProposal(proposalId: string, accept: boolean, comment: string) {
    return this.cmd('decide_rx_proposal', { proposal_id: proposalId, accept, ...(comment.trim() ? { comment } : {}) });
  }

  requestApproval(sha256: string, comment: string) {
    return this.cmd('request_approval', { file_sha256: sha256, ...(comment.trim() ? { comment } : {}) });
  }

  decideApproval(approvalId: string, decision: 'approve' | 'reject', comment: string) {
    return this.cmd('decide_approval', { approval_id: approvalId, decision, ...(comment.trim() ? { comment } : {}) });
  }

  setStatus(status: CaseStatus, reason: string) {
    return this.cmd('set_status', { status, ...(reason.trim() ? { reason: reason.trim() } : {}) });
  }

  updateCase(fields: { label?: string; due_date?: string | null; lab_id?: string | null }) {
    return this.cmd('update_case', fields);
  }
}

// ---- the rooms of this page ----

const MAX_ROOMS = 8;
const rooms = new Map<string, CaseRoom>();

export function room(id: string, rt: RealtimeClient): CaseRoom {
  let r = rooms.get(id);
  if (r) {
    rooms.delete(id); // most recently used last
  } else {
    r = new CaseRoom(id, rt);
  }
  rooms.set(id, r);
  // Forget the least recently used rooms nobody shows.
  for (const [key, old] of rooms) {
    if (rooms.size <= MAX_ROOMS) break;
    if (old !== r && !old.inUse) rooms.delete(key);
  }
  return r;
}

export function forgetRooms() {
  for (const r of rooms.values()) r.detach();
  rooms.clear();
}
