// The status board: columns by status, due dates, at-risk cases standing out, live.
// Clinic admins see every case of the clinic, lab members the cases routed to the lab, doctors
// their own (the server decides the scope from the memberships).

import { useEffect, useState } from 'preact/hooks';
import * as api from '../api';
import { DueDate, StatusBadge, UnreadBadge } from '../components/CaseBits';
import { boardOrgs, hasRole, type Me } from '../domain';
import { realtime } from '../live';
import { applyBoard, COLUMNS, columnCards, type Cards } from '../state/board';
import { unread, unseen } from '../state/inbox';
import { learnFromCases, people } from '../state/people';

export function Board({ user }: { user: Me }) {
  const orgs = boardOrgs(user);
  const [org, setOrg] = useState(orgs[0]?.org_id);
  const [cards, setCards] = useState<Cards | null>(null);

  useEffect(() => {
    setCards(null);
    return realtime.watchBoard((f) => setCards((prev) => applyBoard(prev ?? {}, f)), orgs.length > 1 ? org : undefined);
  }, [org]);

  // Doctors' names for the cards (the board's summaries carry ids only).
  useEffect(() => {
    api.listCases().then(learnFromCases, () => {});
  }, []);

  // `at_risk` is computed for the current UTC day: take a fresh snapshot when the day turns.
  useEffect(() => {
    const now = new Date();
    const midnight = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1, 0, 0, 5);
    const t = setTimeout(() => realtime.refreshBoard(), midnight - now.getTime());
    return () => clearTimeout(t);
  }, [cards === null]);

  const list = cards ? Object.values(cards) : [];
  const atRisk = list.filter((c) => c.at_risk).length;
  const orgName = orgs.find((o) => o.org_id === org)?.org_name;
  const isLab = orgs.find((o) => o.org_id === org)?.org_kind === 'lab';
  const columns = COLUMNS.filter((c) => !(isLab && c.key === 'draft'));

  return (
    <section class="page page-wide">
      <div class="page-head">
        <h1 tabIndex={-1}>{isLab ? 'Lab board' : hasRole(user, 'clinic_admin') ? 'Clinic board' : 'My board'}</h1>
        {orgs.length > 1 && (
          <label class="field field-inline">
            <span>Organisation</span>
            <select value={org} onChange={(e) => setOrg(e.currentTarget.value)}>
              {orgs.map((o) => (
                <option value={o.org_id}>{o.org_name}</option>
              ))}
            </select>
          </label>
        )}
      </div>
      <p class="muted" aria-live="polite">
        {cards === null
          ? 'Loading the board…'
          : `${orgName ?? ''} · ${list.length} case${list.length === 1 ? '' : 's'}${atRisk ? ` · ${atRisk} at risk` : ''} · updates live`}
      </p>
      {cards && (
        <p class="risk-legend small" data-testid="risk-legend">
          <span class="badge badge-risk">At risk</span> fewer days are left before the due date than a case at its stage
          still needs; each card says how many.
        </p>
      )}
      {cards && (
        // Every column at a glance: the ones with cases, their counts and at-risk cases, one tap away.
        <nav class="board-index" aria-label="Board columns">
          {columns.map((col) => {
            const items = columnCards(cards, col.statuses);
            if (!items.length) return null;
            const risky = items.filter((c) => c.at_risk).length;
            return (
              <button
                type="button"
                class={`board-chip${risky ? ' board-chip-risk' : ''}`}
                data-chip={col.key}
                onClick={() => {
                  const el = document.querySelector(`[data-column="${col.key}"]`);
                  el?.scrollIntoView({ block: 'nearest', inline: 'nearest' });
                  document.getElementById(`col-${col.key}`)?.focus();
                }}
              >
                {col.title} <span class="count">{items.length}</span>
                {risky > 0 && <span class="badge badge-risk">{risky} at risk</span>}
              </button>
            );
          })}
        </nav>
      )}
      {cards && (
        <div class="board" data-testid="board">
          {columns.map((col) => {
            const items = columnCards(cards, col.statuses);
            return (
              <section class={`board-col${items.length ? '' : ' board-col-empty'}`} aria-labelledby={`col-${col.key}`} data-column={col.key}>
                <h2 id={`col-${col.key}`} class="board-col-title" tabIndex={-1}>
                  <span class="board-col-name">{col.title}</span> <span class="count">{items.length}</span>
                </h2>
                <ul class="board-cards">
                  {items.map((c) => (
                    <li class={`card${c.at_risk ? ' at-risk' : ''}`} data-case-id={c.case_id} data-status={c.status}>
                      <div class="card-title">
                        <a class="card-link" dir="auto" href={`/cases/${c.case_id}`}>
                          {c.label}
                        </a>
                        {unread.value[c.case_id] ? (
                          <UnreadBadge n={unread.value[c.case_id].count} mentions={unread.value[c.case_id].mentions} label="unread messages" testid="unread" />
                        ) : unseen.value[c.case_id] && (
                          <span class="dot-new" title="New activity">
                            <span class="visually-hidden">New activity</span>
                          </span>
                        )}
                      </div>
                      {col.statuses.length > 1 && <StatusBadge status={c.status} />}
                      <DueDate due={c.due_date} atRisk={c.at_risk} needed={c.days_needed} left={c.days_left} />
                      <span class="muted small">{people.value[c.doctor_id] ?? ''}</span>
                    </li>
                  ))}
                </ul>
              </section>
            );
          })}
        </div>
      )}
    </section>
  );
}
