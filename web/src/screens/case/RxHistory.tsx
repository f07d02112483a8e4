// Every Rx change, proposal and signature (`GET /cases/{id}/rx/history`), newest first; for one
// tooth when a tooth is selected. Refetched when the Rx changes while it is open.

import { useEffect, useState } from 'preact/hooks';
import * as api from '../../api';
import { displayValue, fieldLabel, formatTime, type CaseEvent, type Me } from '../../domain';
import { revisionOf } from '../../state/caseFold';
import type { CaseRoom } from '../../state/caseRoom';

export function RxHistory({ r, user, tooth }: { r: CaseRoom; user: Me; tooth: number | null }) {
  const [events, setEvents] = useState<CaseEvent[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const rev = r.rxRev.value;

  useEffect(() => {
    let live = true;
    api.rxHistory(r.id).then(
      (h) => live && setEvents(h.events),
      (e) => live && setError(e instanceof Error ? e.message : 'Could not load the history.'),
    );
    return () => {
      live = false;
    };
  }, [rev]);

  const prefix = tooth !== null ? `teeth.${tooth}.` : null;
  const s = r.state;
  const revAt = (seq: number) => (s ? revisionOf(s, seq) : 0);
  const rows: { seq: number; at: number; actor: string; text: string; revision: number | null }[] = [];
  for (const ev of [...(events ?? [])].reverse()) {
    const d = ev.data;
    const fields = (list: { field: string; value: string | null }[] = []) =>
      list.filter((c) => !prefix || c.field.startsWith(prefix));
    const describe = (list: { field: string; value: string | null }[]) =>
      list.map((c) => `${fieldLabel(c.field)} → ${displayValue(c.field, c.value)}`).join('; ');
    if (ev.kind === 'rx_edited') {
      const f = fields(d.changes);
      if (f.length) rows.push({ seq: ev.seq, at: ev.at, actor: ev.actor, text: `changed ${describe(f)}`, revision: revAt(ev.seq) });
    } else if (ev.kind === 'rx_proposed') {
      const f = fields(d.changes);
      if (f.length) rows.push({ seq: ev.seq, at: ev.at, actor: ev.actor, text: `proposed ${describe(f)}`, revision: null });
    } else if (ev.kind === 'rx_proposal_decided') {
      const f = fields(d.applied);
      if (!prefix || f.length)
        rows.push({ seq: ev.seq, at: ev.at, actor: ev.actor, text: d.accepted ? `accepted a proposal${f.length ? `: ${describe(f)}` : ''}` : 'declined a proposal', revision: d.accepted && (d.applied ?? []).length ? revAt(ev.seq) : null });
    } else if (ev.kind === 'rx_signed' && !prefix) {
      rows.push({ seq: ev.seq, at: ev.at, actor: ev.actor, text: `signed revision ${revAt(d.rx_version)}`, revision: null });
    }
  }

  return (
    <section class="history" aria-labelledby="history-title" data-testid="rx-history">
      <h3 id="history-title">{tooth !== null ? `History of tooth ${tooth}` : 'Rx history'}</h3>
      {error && <p class="error">{error}</p>}
      {events === null && !error && <p role="status">Loading…</p>}
      {events && rows.length === 0 && <p class="muted small">No changes yet.</p>}
      <ol class="plain history-list">
        {rows.map((row) => (
          <li>
            <span class="muted small">
              {formatTime(row.at)}
              {row.revision !== null && <> · revision {row.revision}</>}
            </span>{' '}
            <strong dir="auto">{r.name(row.actor, user.id)}</strong> <bdi>{row.text}</bdi>
          </li>
        ))}
      </ol>
    </section>
  );
}
