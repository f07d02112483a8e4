// The REST API (/api/v1, see src/http/ and /api/v1/openapi.json). Browsers authenticate with
// HttpOnly cookies; every state-changing request echoes the readable CSRF cookie in
// `X-CSRF-Token`. A 401 for an expired access token triggers one refresh (coordinated across
// tabs by session.ts) and one retry.

import type {
  ApprovalView,
  FileKind,
  Participant,
  CaseEvent,
  CaseStatus,
  CaseView,
  Me,
  Org,
  Portal,
  Role,
  SessionInfo,
} from './domain';

const BASE = '/api/v1';
const CSRF_COOKIE = '__Host-articula_csrf';

/** An error answered by the server: `{"error": code, "message", "details"?}`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The CSRF token: a readable cookie that only pages of this origin can read. */
export function csrfToken(): string | null {
  for (const part of document.cookie.split(';')) {
    const [name, ...rest] = part.trim().split('=');
    if (name === CSRF_COOKIE) return decodeURIComponent(rest.join('='));
  }
  return null;
}

/** Codes of a 401 that a refresh can cure. An absent access cookie (its max-age is the token's
 * lifetime) reads as `unauthorized`, so that one counts too. */
const REFRESHABLE = new Set(['token_expired', 'unauthorized']);

type Refresher = (failedRequestStartedAt: number) => Promise<boolean>;
let refresher: Refresher = async () => false;

/** session.ts installs the refresh routine here (this module must not import it: a cycle). */
export function setRefresher(fn: Refresher) {
  refresher = fn;
}

interface RequestOptions {
  body?: unknown;
  /** Retry once after a refresh on 401 (not for the auth endpoints themselves). */
  retry?: boolean;
}

export async function request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
  const { body, retry = true } = opts;
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD') {
    const csrf = csrfToken();
    if (csrf) headers['X-CSRF-Token'] = csrf;
  }
  const startedAt = Date.now();
  const res = await fetch(BASE + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    // Case content must never land in the HTTP cache (the server also says no-store).
    cache: 'no-store',
  });
  if (res.ok) {
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }
  const err = await toError(res);
  if (res.status === 401 && retry && REFRESHABLE.has(err.code) && (await refresher(startedAt))) {
    return request<T>(method, path, { ...opts, retry: false });
  }
  throw err;
}

async function toError(res: Response): Promise<ApiError> {
  try {
    const j = (await res.json()) as { error?: string; message?: string; details?: unknown };
    return new ApiError(res.status, j.error ?? 'internal', j.message ?? res.statusText, j.details);
  } catch {
    return new ApiError(res.status, res.status >= 500 ? 'internal' : 'unknown', res.statusText);
  }
}

function query(params: Record<string, string | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

// ---- auth ----

export interface SignedIn {
  expires_in: number;
  csrf_token: string;
  session_id: string;
  portal: Portal;
  user: Me;
}

export const login = (email: string, password: string, portal: Portal) =>
  request<SignedIn>('POST', '/auth/login', {
    body: { email, password, portal, mode: 'cookie' },
    retry: false,
  });

/** Rotates the refresh cookie. Callers must serialise this (session.ts does): a refresh token
 * presented twice revokes the whole session. */
export const refresh = () => request<SignedIn>('POST', '/auth/refresh', { retry: false });
export const logout = () => request<void>('POST', '/auth/logout', { retry: false });
export const logoutAll = () => request<{ revoked: number }>('POST', '/auth/logout-all', { retry: false });
export const sessions = () => request<SessionInfo[]>('GET', '/auth/sessions');
export const endSession = (id: string) => request<void>('DELETE', `/auth/sessions/${encodeURIComponent(id)}`);
export const me = () => request<Me>('GET', '/me');

// ---- cases ----

export interface CaseFilters {
  status?: CaseStatus | '';
  q?: string;
  lab_id?: string;
  doctor_id?: string;
  due_before?: string;
}

export const labs = () => request<Org[]>('GET', '/labs');
export const listCases = (f: CaseFilters = {}) =>
  request<CaseView[]>('GET', `/cases${query({ ...f, limit: '500' })}`);
export const getCase = (id: string) => request<CaseView>('GET', `/cases/${encodeURIComponent(id)}`);

// ---- search ----

export type SearchKind = 'label' | 'message' | 'rx' | 'file' | 'person';

/** One result of `GET /search`. `snippet` is plain text (render it as text, never as HTML);
 * `highlights` are `[start, end)` ranges of it in UTF-16 units (JavaScript string indices). */
export interface SearchHit {
  case_id: string;
  case_label: string;
  kind: SearchKind;
  seq?: number;
  message_id?: string;
  file_id?: string;
  field?: string;
  role?: 'doctor' | 'clinic' | 'lab';
  snippet: string;
  highlights: [number, number][];
  at: number;
}

export interface SearchPage {
  results: SearchHit[];
  next_offset: number | null;
}

/** Full-text search over the cases the user may see (only `caseId`, when given). */
export const searchCases = (q: string, opts: { caseId?: string; offset?: number; limit?: number } = {}) =>
  request<SearchPage>(
    'GET',
    `/search${query({ q, case_id: opts.caseId, offset: opts.offset ? String(opts.offset) : undefined, limit: opts.limit ? String(opts.limit) : undefined })}`,
  );
/** `id` (a UUID chosen by the client) makes creation idempotent: a retry returns the same case. */
/** `label_warning: 'shown_and_kept'`: the user saw the "looks like a patient's name" warning and
 * kept the label (the server audits that, without the label). */
export type LabelWarning = 'shown_and_kept';
export const createCase = (body: {
  id?: string;
  label: string;
  due_date?: string;
  lab_id?: string;
  label_warning?: LabelWarning;
}) => request<CaseView>('POST', '/cases', { body });
export const patchCase = (
  id: string,
  body: { label?: string; due_date?: string | null; lab_id?: string | null; label_warning?: LabelWarning },
) => request<CaseView>('PATCH', `/cases/${encodeURIComponent(id)}`, { body });
/** The operator's list of names a label is matched against (lower case). */
export const labelNames = () => request<{ names: string[] }>('GET', '/label-names');
export const rxHistory = (id: string) =>
  request<{ events: CaseEvent[] }>('GET', `/cases/${encodeURIComponent(id)}/rx/history`);
export const approvals = (id: string) =>
  request<ApprovalView[]>('GET', `/cases/${encodeURIComponent(id)}/approvals`);

export const participants = (id: string) =>
  request<Participant[]>('GET', `/cases/${encodeURIComponent(id)}/participants`);

// ---- per-case grants (src/http/grants.rs) ----

export type Capability = 'view' | 'chat' | 'upload' | 'edit_rx' | 'approve' | 'manage';

/** A grant in force. */
export interface GrantView {
  user_id: string;
  name: string;
  capabilities: Capability[];
  /** ms; null: until revoked. */
  until: number | null;
  support: boolean;
  given_by: string;
  given_by_name: string | null;
  given_at: number;
}

/** Someone a grant may go to (one of their roles), or a support account found by e-mail. */
export interface Grantable {
  user_id: string;
  name: string;
  role: Role | null;
  org_id: string | null;
  org_name: string | null;
}

const grantsPath = (id: string) => `/cases/${encodeURIComponent(id)}/grants`;
export const grants = (id: string) => request<GrantView[]>('GET', grantsPath(id));
export const giveGrant = (
  id: string,
  userId: string,
  body: { capabilities: Capability[]; until?: number; support?: boolean },
) => request<GrantView[]>('PUT', `${grantsPath(id)}/${encodeURIComponent(userId)}`, { body });
export const revokeGrant = (id: string, userId: string) =>
  request<void>('DELETE', `${grantsPath(id)}/${encodeURIComponent(userId)}`);
export const grantable = (id: string, email?: string) =>
  request<Grantable[]>('GET', `/cases/${encodeURIComponent(id)}/grantable${query({ email })}`);

// ---- files ----
// Uploads go through tus (uploads.ts: tus-js-client at UPLOAD_ENDPOINT); every file of a case is
// also in its event log (`file_added`), which is what the case room shows.

export const UPLOAD_ENDPOINT = `${BASE}/uploads/`;

export interface FileView {
  id: string;
  name: string;
  size: number;
  sha256: string;
  content_type: string;
  kind: FileKind;
  uploaded_by: string;
  created_at: number;
  seq: number | null;
}

export const caseFiles = (id: string) => request<FileView[]>('GET', `/cases/${encodeURIComponent(id)}/files`);

/** A signed download link: 5 minutes, this user and session only (the download itself is
 * authenticated by the cookie too). */
export const fileLink = (fileId: string) =>
  request<{ url: string; expires_at: number }>('POST', `/files/${encodeURIComponent(fileId)}/link`);

// ---- organisation (owners) and incident notices ----

export interface MemberView {
  user_id: string;
  name: string;
  email: string;
  /** Roles in this organisation; empty for a former member. */
  roles: Role[];
  status: 'active' | 'invited' | 'revoked';
  sessions: number;
  last_seen: number | null;
}

export interface Notice {
  id: string;
  /** Absent: a notice from the operator to every organisation. */
  org_id: string | null;
  org_name: string | null;
  title: string;
  body: string;
  published_by: string | null;
  published_by_name: string | null;
  published_at: number;
}

export interface NoticeStats extends Notice {
  acks: number;
  members: number;
}

const org = (id: string) => `/orgs/${encodeURIComponent(id)}`;

export const members = (orgId: string) => request<MemberView[]>('GET', `${org(orgId)}/members`);
export const removeRole = (orgId: string, userId: string, role: Role) =>
  request<void>('DELETE', `${org(orgId)}/members/${encodeURIComponent(userId)}/roles/${role}`);
export const endMemberSessions = (orgId: string, userId: string) =>
  request<{ revoked: number }>('DELETE', `${org(orgId)}/members/${encodeURIComponent(userId)}/sessions`);
export const orgNotices = (orgId: string) => request<NoticeStats[]>('GET', `${org(orgId)}/notices`);
export const publishNotice = (orgId: string, body: { title: string; body: string }) =>
  request<Notice>('POST', `${org(orgId)}/notices`, { body });
export const myNotices = () => request<Notice[]>('GET', '/notices');
export const ackNotice = (id: string) => request<void>('POST', `/notices/${encodeURIComponent(id)}/ack`);

// ---- the audit log (owners and auditors; src/http/audit.rs) ----

/** One entry of an organisation's audit chain. `details` is a JSON object in a string, exactly
 * as hashed; it holds ids, counts and flags, never message or Rx text. */
export interface AuditEntry {
  n: number;
  at: number;
  org_id: string;
  actor_id: string | null;
  ip: string | null;
  action: string;
  target: string | null;
  case_id: string | null;
  details: string;
  source: string;
  prev_hash: string;
  hash: string;
}

/** Filters of a read or an export: ids, an action prefix, times in ms (`until` exclusive). */
export interface AuditQuery {
  org_id?: string;
  user?: string;
  action?: string;
  case?: string;
  from?: number;
  until?: number;
}

export type AuditVerify =
  | { ok: true; entries: number; last_hash: string }
  | { ok: false; broken: { n: number; reason: string } };

const auditParams = (q: AuditQuery): Record<string, string | undefined> => ({
  org_id: q.org_id,
  user: q.user,
  action: q.action,
  case: q.case,
  from: q.from === undefined ? undefined : String(q.from),
  until: q.until === undefined ? undefined : String(q.until),
});

/** A page in chain order (oldest first); `next` is the `after` of the following page. */
export const auditPage = (q: AuditQuery, after?: number, limit?: number) => {
  const paging = { after: after === undefined ? undefined : String(after), limit: limit === undefined ? undefined : String(limit) };
  return request<{ entries: AuditEntry[]; next: number | null }>('GET', `/audit${query({ ...auditParams(q), ...paging })}`);
};

/** The export's address: a plain GET the browser downloads (the cookie authenticates it). */
export const auditExportUrl = (q: AuditQuery, format: 'csv' | 'jsonl') =>
  `${BASE}/audit/export${query({ format, ...auditParams(q) })}`;

export const auditVerify = (orgId: string) => request<AuditVerify>('GET', `/audit/verify${query({ org_id: orgId })}`);

// ---- unread counts ----

export interface UnreadCase {
  case_id: string;
  /** Messages by others after the caller's read mark. */
  unread: number;
  /** Of those, the ones that mention the caller. */
  mentions: number;
  /** The caller's read mark (0: never read). */
  read_seq: number;
}
export const unread = () => request<{ cases: UnreadCase[] }>('GET', '/unread');
