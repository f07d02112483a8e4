// The audit log viewer's pure parts: actions in words, the filters as they stand in the page's
// address (dates a person reads) and as the API takes them (ids and milliseconds).

import type { AuditQuery } from './api';
import { STATUS_LABEL, type CaseStatus } from './domain';

/** The actions people meet most, in words; any other is shown as its code. */
export const ACTION_LABEL: Record<string, string> = {
  'auth.login': 'Signed in',
  'auth.login_failed': 'Sign-in failed',
  'auth.login_locked': 'Sign-in refused: account locked',
  'auth.refresh_token_reused': 'Stolen session suspected (refresh token reused)',
  'auth.session_ended': 'Session ended',
  'auth.sessions_ended': 'All sessions ended',
  'case.case_created': 'Case created',
  'case.case_updated': 'Case details changed',
  'case.status_changed': 'Case status changed',
  'case.message_posted': 'Message posted',
  'case.message_edited': 'Message edited',
  'case.message_deleted': 'Message deleted',
  'case.rx_edited': 'Prescription edited',
  'case.rx_signed': 'Prescription signed',
  'case.rx_proposed': 'Prescription change proposed',
  'case.rx_proposal_decided': 'Prescription proposal decided',
  'case.approval_requested': 'Approval requested',
  'case.approval_decided': 'Approval decided',
  'case.file_added': 'File added',
  'case.voice_transcribed': 'Voice note transcribed',
  'case.grant_given': 'Case access granted',
  'case.grant_revoked': 'Case access revoked',
  'case.grant_expired': 'Case access expired',
  'case.label_warning': 'Case label kept despite the patient-name warning',
  'file.link_issued': 'Download link issued',
  'file.download': 'File downloaded',
  'membership.granted': 'Role granted',
  'membership.revoked': 'Role removed',
  'member.sessions_ended': 'Member’s sessions ended by an owner',
  'user.revoked': 'User revoked',
  'notice.published': 'Incident notice published',
  'notice.acknowledged': 'Incident notice acknowledged',
  'audit.read': 'Audit log read',
  'audit.export': 'Audit log exported',
  'audit.export_finished': 'Audit export finished',
  'audit.verify': 'Audit chain checked',
  'audit.denied': 'Audit log refused',
};

/** The action filter's choices: prefixes (`member` matches `member.` and `membership.`). */
export const ACTION_PREFIXES: { value: string; label: string }[] = [
  { value: 'auth.', label: 'Sign-ins and sessions' },
  { value: 'auth.login', label: 'Sign-ins (and failed ones)' },
  { value: 'auth.login_failed', label: 'Failed sign-ins' },
  { value: 'case.', label: 'Case activity' },
  { value: 'case.message_', label: 'Messages' },
  { value: 'case.rx_', label: 'Prescriptions' },
  { value: 'case.approval_', label: 'Approvals' },
  { value: 'case.status_changed', label: 'Status changes' },
  { value: 'file.', label: 'File downloads' },
  { value: 'member', label: 'Members and roles' },
  { value: 'notice.', label: 'Incident notices' },
  { value: 'audit.', label: 'Use of the audit log' },
];

/** An action in words, with what its details tell when that fits in a few words. */
export function actionText(action: string, details: Record<string, unknown> = {}): string {
  const base = ACTION_LABEL[action] ?? action;
  const status = (v: unknown) => STATUS_LABEL[v as CaseStatus] ?? String(v);
  if (action === 'case.status_changed' && details.to) return `${base}: ${status(details.from)} → ${status(details.to)}`;
  if (action === 'case.approval_decided' && typeof details.decision === 'string') return `${base}: ${details.decision}`;
  if (action === 'case.rx_proposal_decided' && typeof details.accepted === 'boolean')
    return `${base}: ${details.accepted ? 'accepted' : 'declined'}`;
  if (action === 'case.grant_given' && details.support === true) return 'Support access granted';
  if (action === 'audit.verify' && typeof details.ok === 'boolean') return `${base}: ${details.ok ? 'intact' : 'broken'}`;
  return base;
}

/** Parses an entry's details (a JSON object in a string); anything else reads as none. */
export function parseDetails(details: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(details);
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

const TARGET_KIND: Record<string, string> = {
  case: 'Case',
  message: 'Message',
  file: 'File',
  user: 'User',
  org: 'Organisation',
  session: 'Session',
  proposal: 'Proposal',
  approval: 'Approval',
  notice: 'Notice',
};

/** The first characters of an id: enough to tell entries apart at a glance. */
export const shortId = (id: string) => (id.length > 12 ? `${id.slice(0, 8)}…` : id);

/** `case:<uuid>` → `Case 1a2b3c4d…` (the whole target stays in the row's details). */
export function targetText(target: string | null): string {
  if (!target) return '';
  const i = target.indexOf(':');
  if (i < 0) return target;
  const kind = target.slice(0, i);
  return `${TARGET_KIND[kind] ?? kind} ${shortId(target.slice(i + 1))}`;
}

/** The filters as the page's address holds them (dates as `YYYY-MM-DD`, local days). */
export interface AuditFilters {
  org: string;
  user: string;
  action: string;
  case: string;
  from: string;
  to: string;
  /** Entries per page (not a filter: the exports hold every matching entry). */
  limit: string;
}

export const NO_FILTERS: AuditFilters = { org: '', user: '', action: '', case: '', from: '', to: '', limit: '' };

/** The page sizes offered; the first page of a read is the only one audited, so a size that
 * is too small costs nothing but clicks. */
export const PAGE_SIZES = [25, 50, 100, 200];
export const DEFAULT_PAGE_SIZE = 100;

export function pageSize(f: AuditFilters): number {
  const n = Number(f.limit);
  return PAGE_SIZES.includes(n) ? n : DEFAULT_PAGE_SIZE;
}

/** Whether any filter narrows the log (the organisation and the page size do not). */
export const isFiltered = (f: AuditFilters) => Boolean(f.user || f.action || f.case || f.from || f.to);

const KEYS = Object.keys(NO_FILTERS) as (keyof AuditFilters)[];

export function filtersFromSearch(search: string): AuditFilters {
  const q = new URLSearchParams(search);
  const f = { ...NO_FILTERS };
  for (const k of KEYS) f[k] = q.get(k)?.trim() ?? '';
  return f;
}

export function filtersToSearch(f: AuditFilters): string {
  const q = new URLSearchParams();
  for (const k of KEYS) if (f[k]) q.set(k, f[k]);
  const s = q.toString();
  return s ? `?${s}` : '';
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ACTION = /^[a-z0-9_.]{1,100}$/;

/** Local midnight at the start of `date` plus `days` days, in ms; null for no valid date. */
export function localDayStart(date: string, days = 0): number | null {
  const m = DATE.exec(date);
  if (!m) return null;
  const d = new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]) + days);
  return Number.isNaN(d.getTime()) ? null : d.getTime();
}

/** The date of `ms` in the local calendar, as `YYYY-MM-DD`. */
export function localDate(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

/** The filters as the API takes them (`until` exclusive: the day after `to`, 00:00 local), or
 * what is wrong with them, in words. */
export function toQuery(f: AuditFilters): { query: AuditQuery } | { error: string } {
  const query: AuditQuery = {};
  if (f.org) query.org_id = f.org;
  if (f.user) {
    if (!UUID.test(f.user)) return { error: 'User: give a user id (like 0f8e…-…), or choose someone from the list.' };
    query.user = f.user.toLowerCase();
  }
  if (f.action) {
    if (!ACTION.test(f.action))
      return { error: 'Action: the start of an action name, in lower-case letters, digits, “_” and “.” (like auth.login).' };
    query.action = f.action;
  }
  if (f.case) {
    if (!UUID.test(f.case)) return { error: 'Case: give the case id (a UUID, like 3c1d…-…).' };
    query.case = f.case.toLowerCase();
  }
  if (f.from) {
    const from = localDayStart(f.from);
    if (from === null) return { error: 'From: not a date.' };
    query.from = from;
  }
  if (f.to) {
    const until = localDayStart(f.to, 1);
    if (until === null) return { error: 'To: not a date.' };
    query.until = until;
  }
  if (query.from !== undefined && query.until !== undefined && query.from >= query.until)
    return { error: 'The “from” date is after the “to” date.' };
  return { query };
}
