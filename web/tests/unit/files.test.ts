// The files round's pure parts: kinds from extensions, previews from detected types, sizes, and
// the fold of `file_added` / `voice_transcribed`.

import { describe, expect, it } from 'vitest';
import { declaredType, defaultKind, formatSize, previewKind, type CaseEvent } from '../../src/domain';
import { applyEvent, type CaseState } from '../../src/state/caseFold';

describe('file kinds and previews', () => {
  it('picks a sensible kind from the extension and the side', () => {
    expect(defaultKind('crown_11.stl', '', 'lab')).toBe('design');
    expect(defaultKind('prep_11.STL', '', 'clinic')).toBe('scan');
    expect(defaultKind('arch.ply', '', 'clinic')).toBe('scan');
    expect(defaultKind('shade.HEIC', '', 'clinic')).toBe('photo');
    expect(defaultKind('shade.jpg', 'image/jpeg', 'lab')).toBe('photo');
    expect(defaultKind('referral.pdf', '', 'clinic')).toBe('document');
    expect(defaultKind('note.webm', 'audio/webm', 'clinic')).toBe('voice_note');
    expect(defaultKind('note.m4a', '', 'lab')).toBe('voice_note');
    expect(defaultKind('whatever', '', 'lab')).toBe('design');
  });

  it('declares a type the browser did not know', () => {
    expect(declaredType('a.stl', '')).toBe('model/stl');
    expect(declaredType('a.bin', '')).toBe('application/octet-stream');
    expect(declaredType('a.stl', 'application/sla')).toBe('application/sla');
  });

  it('previews by the type the server detected, not the name', () => {
    expect(previewKind('model/stl')).toBe('mesh');
    expect(previewKind('model/ply')).toBe('mesh');
    expect(previewKind('image/png')).toBe('image');
    expect(previewKind('image/heic')).toBe('none');
    expect(previewKind('application/pdf')).toBe('pdf');
    expect(previewKind('audio/webm')).toBe('audio');
  });

  it('formats sizes', () => {
    expect(formatSize(999)).toBe('999 B');
    expect(formatSize(1536)).toBe('1.5 KB');
    expect(formatSize(6_000_084)).toBe('6.0 MB');
    expect(formatSize(456_000)).toBe('456 KB');
    expect(formatSize(2_500_000_000)).toBe('2.5 GB');
  });
});

describe('files in the case fold', () => {
  let seq = 0;
  const ev = (kind: string, data: any, actor = 'tech'): CaseEvent => ({ case_id: 'c', seq: ++seq, at: seq * 1000, actor, kind, data });

  it('adds files and their transcripts (as a new object)', () => {
    let s: CaseState | null = null;
    for (const e of [
      ev('case_created', { label: 'x', clinic_id: 'k', doctor_id: 'doc', lab_id: 'l', due_date: null }, 'doc'),
      ev('file_added', { file_id: 'f1', name: 'crown.stl', size: 684084, content_type: 'model/stl', sha256: 'ab', file_kind: 'design', voided_approvals: [] }),
      ev('file_added', { file_id: 'v1', name: 'voice.webm', size: 5000, content_type: 'audio/webm', sha256: 'cd', file_kind: 'voice_note' }, 'doc'),
    ])
      s = applyEvent(s, e);
    const before = s!.files.v1;
    expect(s!.files.f1).toMatchObject({ name: 'crown.stl', kind: 'design', by: 'tech', seq: 2, transcript: null });
    s = applyEvent(s, ev('voice_transcribed', { file_id: 'v1', text: 'tighter contact' }, 'doc'));
    expect(s!.files.v1.transcript).toBe('tighter contact');
    expect(s!.files.v1).not.toBe(before);
    // Both files are lines of the conversation; the transcript is not.
    expect(s!.timeline.filter((t) => t.type === 'note' && t.note.kind === 'file_added')).toHaveLength(2);
    expect(s!.timeline.some((t) => t.type === 'note' && t.note.kind === 'voice_transcribed')).toBe(false);
  });
});
