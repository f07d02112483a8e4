// The pure parts: the case fold, the board merge, the workflow mirror.

import { describe, expect, it } from 'vitest';
import type { CaseEvent, CaseSummary } from '../../src/domain';
import { applyBoard } from '../../src/state/board';
import { applyEvent, revisionOf, type CaseState } from '../../src/state/caseFold';
import { formatDay, localDay } from '../../src/domain';

let seq = 0;
const ev = (kind: string, data: any, actor = 'doc'): CaseEvent => ({ case_id: 'c', seq: ++seq, at: seq * 1000, actor, kind, data });

function fold(events: CaseEvent[]): CaseState {
  let s: CaseState | null = null;
  for (const e of events) s = applyEvent(s, e);
  return s!;
}

describe('case fold', () => {
  it('tracks Rx versions field by field, like the server', () => {
    seq = 0;
    const s = fold([
      ev('case_created', { label: 'Crown 11', clinic_id: 'k', doctor_id: 'doc', lab_id: null, due_date: null }),
      ev('rx_edited', { changes: [{ field: 'teeth.11.shade', value: 'A2' }, { field: 'notes', value: 'x' }] }),
      ev('rx_proposed', { proposal_id: 'p', changes: [{ field: 'teeth.11.material', base_version: 0, value: 'zirconia' }] }, 'tech'),
      ev('rx_proposal_decided', { proposal_id: 'p', accepted: true, applied: [{ field: 'teeth.11.material', value: 'zirconia' }] }),
      ev('rx_edited', { changes: [{ field: 'teeth.11.shade', value: null }] }),
    ]);
    expect(s.rx['teeth.11.shade']).toMatchObject({ value: null, version: 5 });
    expect(s.rx['notes']).toMatchObject({ value: 'x', version: 2 });
    expect(s.rx['teeth.11.material']).toMatchObject({ value: 'zirconia', version: 4, by: 'doc' });
    expect(s.rxVersion).toBe(5);
    expect(s.proposals.p.status).toBe('accepted');
    // People see revisions 1, 2, 3 (one per change of the Rx), never the seqs 2, 4, 5.
    expect(s.rxRevision).toBe(3);
    expect([2, 4, 5].map((v) => revisionOf(s, v))).toEqual([1, 2, 3]);
    expect(revisionOf(s, 0)).toBe(0);
    // A version that is not an Rx change's seq (the proposal at 3) reads as the revision then.
    expect(revisionOf(s, 3)).toBe(1);
  });

  it('names days for the separators: today, yesterday, then the date', () => {
    const now = new Date(2026, 11, 7, 10, 30).getTime();
    expect(formatDay(new Date(2026, 11, 7, 0, 5).getTime(), now)).toBe('Today');
    expect(formatDay(new Date(2026, 11, 6, 23, 55).getTime(), now)).toBe('Yesterday');
    expect(formatDay(new Date(2026, 11, 1, 12).getTime(), now)).toMatch(/1/);
    expect(formatDay(new Date(2025, 11, 1, 12).getTime(), now)).toMatch(/2025/);
    expect(localDay(new Date(2026, 0, 3, 23, 59).getTime())).toBe('2026-01-03');
  });

  it('keeps who a message mentions and what it answers', () => {
    seq = 0;
    const s = fold([
      ev('case_created', { label: 'x', clinic_id: 'k', doctor_id: 'doc', lab_id: null, due_date: null }),
      ev('message_posted', { message_id: 'm1', text: 'hello' }),
      ev('message_posted', { message_id: 'm2', text: '@Ana yes', reply_to: 'm1', mentions: ['doc'] }, 'tech'),
    ]);
    expect(s.messages.m2).toMatchObject({ replyTo: 'm1', mentions: ['doc'] });
    expect(s.messages.m1.mentions).toEqual([]);
  });

  it('edits and deletes messages as new objects, in place in the timeline', () => {
    seq = 0;
    const s = fold([
      ev('case_created', { label: 'x', clinic_id: 'k', doctor_id: 'doc', lab_id: null, due_date: null }),
      ev('message_posted', { message_id: 'm1', text: 'hello' }),
      ev('status_changed', { from: 'draft', to: 'submitted' }),
      ev('message_posted', { message_id: 'm2', text: 'second' }, 'tech'),
    ]);
    const before = s.timeline[0];
    applyEvent(s, ev('message_edited', { message_id: 'm1', text: 'hello!' }));
    applyEvent(s, ev('message_deleted', { message_id: 'm2' }, 'tech'));
    expect(s.timeline[0]).not.toBe(before);
    expect(s.timeline.map((t) => (t.type === 'message' ? `${t.message.text}|${t.message.deleted}` : t.note.kind))).toEqual([
      'hello!|false',
      'status_changed',
      '|true',
    ]);
    expect(s.status).toBe('submitted');
  });

  it('follows approvals and holds through the status', () => {
    seq = 0;
    const s = fold([
      ev('case_created', { label: 'x', clinic_id: 'k', doctor_id: 'doc', lab_id: 'lab', due_date: '2026-12-01' }),
      ev('status_changed', { from: 'draft', to: 'submitted' }),
      ev('status_changed', { from: 'submitted', to: 'received' }, 'tech'),
      ev('approval_requested', { approval_id: 'a', file_id: 'f', file_sha256: 'ab', rx_version: 0 }, 'tech'),
    ]);
    expect(s.status).toBe('awaiting_approval');
    applyEvent(s, ev('approval_decided', { approval_id: 'a', decision: 'reject', comment: 'margin' }));
    expect(s.status).toBe('in_design');
    applyEvent(s, ev('status_changed', { from: 'in_design', to: 'on_hold' }, 'tech'));
    expect(s.statusBeforeHold).toBe('in_design');
    applyEvent(s, ev('status_changed', { from: 'on_hold', to: 'in_design' }, 'tech'));
    expect(s.statusBeforeHold).toBeNull();
    // Who acted for which side, from steps only that side may take.
    expect(s.sides).toEqual({ doc: 'clinic', tech: 'lab' });
  });
});

describe('board merge', () => {
  const card = (id: string, status: string, seq: number): CaseSummary =>
    ({ case_id: id, label: id, status, seq, due_date: null, at_risk: false, last_activity: 0, doctor_id: 'd', clinic_id: 'k', lab_id: null }) as CaseSummary;

  it('replaces on snapshot, applies newer summaries only, removes', () => {
    let cards = applyBoard({}, { org_id: 'k', snapshot: true, cases: [card('a', 'draft', 3), card('b', 'received', 5)] });
    cards = applyBoard(cards, { org_id: 'k', snapshot: false, cases: [card('a', 'submitted', 4)] });
    expect(cards.a.status).toBe('submitted');
    cards = applyBoard(cards, { org_id: 'k', snapshot: false, cases: [card('a', 'draft', 3)] }); // older: ignored
    expect(cards.a.status).toBe('submitted');
    cards = applyBoard(cards, { org_id: 'k', snapshot: false, cases: [], removed: ['b'] });
    expect(Object.keys(cards)).toEqual(['a']);
    cards = applyBoard(cards, { org_id: 'k', snapshot: true, cases: [card('c', 'shipped', 9)] });
    expect(Object.keys(cards)).toEqual(['c']);
  });
});
