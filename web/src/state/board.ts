// The status board: a snapshot, then one summary per change (protocol `board` frames).
// A summary replaces the card only if its seq is not older than the card's: frames of one case
// can cross (a snapshot read while a change was in flight), and an older one must not win.

import type { CaseStatus, CaseSummary } from '../domain';
import type { BoardFrame } from '../realtime';

export type Cards = Record<string, CaseSummary>;

export function applyBoard(cards: Cards, f: BoardFrame): Cards {
  if (f.snapshot) {
    const next: Cards = {};
    for (const c of f.cases) next[c.case_id] = c;
    return next;
  }
  let next = cards;
  for (const c of f.cases) {
    const have = next[c.case_id];
    if (have && c.seq < have.seq) continue;
    if (next === cards) next = { ...cards };
    next[c.case_id] = c;
  }
  for (const id of f.removed ?? []) {
    if (!(id in next)) continue;
    if (next === cards) next = { ...cards };
    delete next[id];
  }
  return next;
}

/** Board columns, left to right. Finished cases share one column at the end. */
export const COLUMNS: { key: string; title: string; statuses: CaseStatus[] }[] = [
  { key: 'draft', title: 'Draft', statuses: ['draft'] },
  { key: 'submitted', title: 'Submitted', statuses: ['submitted'] },
  { key: 'received', title: 'Received', statuses: ['received'] },
  { key: 'in_design', title: 'In design', statuses: ['in_design'] },
  { key: 'awaiting_approval', title: 'Awaiting approval', statuses: ['awaiting_approval'] },
  { key: 'approved', title: 'Approved', statuses: ['approved'] },
  { key: 'in_production', title: 'In production', statuses: ['in_production'] },
  { key: 'shipped', title: 'Shipped', statuses: ['shipped'] },
  { key: 'delivered', title: 'Delivered', statuses: ['delivered'] },
  { key: 'remake_requested', title: 'Remake requested', statuses: ['remake_requested'] },
  { key: 'on_hold', title: 'On hold', statuses: ['on_hold'] },
  { key: 'finished', title: 'Closed or cancelled', statuses: ['closed', 'cancelled'] },
];

/** Cards of a column: at-risk first, then by due date (none last), then label. */
export function columnCards(cards: Cards, statuses: CaseStatus[]): CaseSummary[] {
  return Object.values(cards)
    .filter((c) => statuses.includes(c.status))
    .sort(
      (a, b) =>
        Number(b.at_risk) - Number(a.at_risk) ||
        (a.due_date ?? '9999').localeCompare(b.due_date ?? '9999') ||
        a.label.localeCompare(b.label),
    );
}
