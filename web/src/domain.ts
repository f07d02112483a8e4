// The wire's domain types (protocol/src/v1) and the rules the UI needs to offer only what the
// server will accept. The server decides; these mirrors only keep the UI from offering
// buttons that would be refused.

// The wire's types are generated from the protocol crate (web/src/generated/protocol.ts, kept
// current by a test); the REST views below are written out here.
import type { CaseStatus } from './generated/protocol';
export type { CaseStatus, CaseSummary, FileKind, OrgKind, Portal, Role, RxChange } from './generated/protocol';
import type { FileKind, OrgKind, Portal, Role } from './generated/protocol';

export const STATUSES: CaseStatus[] = [
  'draft',
  'submitted',
  'received',
  'in_design',
  'awaiting_approval',
  'approved',
  'in_production',
  'shipped',
  'delivered',
  'closed',
  'on_hold',
  'remake_requested',
  'cancelled',
];

export const STATUS_LABEL: Record<CaseStatus, string> = {
  draft: 'Draft',
  submitted: 'Submitted',
  received: 'Received',
  in_design: 'In design',
  awaiting_approval: 'Awaiting approval',
  approved: 'Approved',
  in_production: 'In production',
  shipped: 'Shipped',
  delivered: 'Delivered',
  closed: 'Closed',
  on_hold: 'On hold',
  remake_requested: 'Remake requested',
  cancelled: 'Cancelled',
};

export interface Membership {
  org_id: string;
  org_name: string;
  org_kind: OrgKind;
  role: Role;
}

export interface Me {
  id: string;
  email: string;
  name: string;
  memberships: Membership[];
  /** The portal this session signed in on, and the session's id (since the files round). */
  portal?: Portal;
  session_id?: string;
}

/** A person who can see a case (`GET /cases/{id}/participants`). */
export interface Participant {
  user_id: string;
  name: string;
  roles: Role[];
  side: 'clinic' | 'lab';
}

export interface Org {
  id: string;
  name: string;
  kind: OrgKind;
}

/** A case as `GET /api/v1/cases` shows it (src/store/cases.rs CaseView). */
export interface CaseView {
  id: string;
  label: string;
  status: CaseStatus;
  status_before_hold: CaseStatus | null;
  due_date: string | null;
  at_risk: boolean;
  days_needed?: number | null;
  days_left?: number | null;
  clinic_id: string;
  clinic_name: string;
  doctor_id: string;
  doctor_name: string;
  lab_id: string | null;
  lab_name: string | null;
  created_at: number;
  last_activity: number;
  last_seq: number;
  rx_version: number;
  /** What the caller may do in the case now (`GET /cases/{id}` only). */
  allowed?: Allowed;
}

/** What the caller may do in a case now, computed by the server's own policy code
 * (actors/src/policy.rs) and sent with the case: the client offers exactly these. */
export interface Allowed {
  chat: boolean;
  upload: boolean;
  prescribe: boolean;
  propose: boolean;
  approve: boolean;
  manage: boolean;
  update: boolean;
  route: boolean;
  side: 'clinic' | 'lab' | null;
  transitions: CaseStatus[];
}

/** Until the server has said: nothing is offered. */
export const NOTHING_ALLOWED: Allowed = {
  chat: false,
  upload: false,
  prescribe: false,
  propose: false,
  approve: false,
  manage: false,
  update: false,
  route: false,
  side: null,
  transitions: [],
};

export interface SessionInfo {
  id: string;
  device: string;
  ip: string;
  portal: Portal;
  created_at: number;
  last_used_at: number;
  current: boolean;
}

export interface ApprovalView {
  id: string;
  seq: number;
  file_id: string;
  file_sha256: string;
  rx_version: number;
  requested_by: string;
  requested_at: number;
  comment: string | null;
  status: 'pending' | 'approved' | 'rejected' | 'voided';
  decided_by: string | null;
  decided_at: number | null;
  decision_comment: string | null;
  voided_seq: number | null;
}

/** One durable case event (the `data` of an `event` frame). */
export interface CaseEvent {
  case_id: string;
  seq: number;
  at: number;
  actor: string;
  kind: string;
  // The kind decides the shape; the fold in state/caseRoom.ts reads it.
  data: any;
}

export interface RxConflict {
  field: string;
  value: string | null;
  version: number;
}

// ---- The caller's relation to one case (actors/src/policy.rs CaseAccess) ----

export interface CaseAccess {
  /** The case's doctor / a clinic admin: for wording only ("only the case's doctor edits…"). */
  doctor: boolean;
  clinicAdmin: boolean;
  /** What the server says the caller may do (decisions are the server's; see `Allowed`). */
  allowed: Allowed;
}

/** The caller's access to a case: what the server allows (`allowed` of `GET /cases/{id}`), and
 * two facts for wording. */
export function caseAccess(me: Me, c: { doctor_id: string; clinic_id: string }, allowed: Allowed | undefined): CaseAccess {
  return {
    doctor: c.doctor_id === me.id,
    clinicAdmin: me.memberships.some((m) => m.org_id === c.clinic_id && m.role === 'clinic_admin'),
    allowed: allowed ?? NOTHING_ALLOWED,
  };
}

export const mayChat = (a: CaseAccess) => a.allowed.chat;
export const mayAddFiles = (a: CaseAccess) => a.allowed.upload;
export const mayPrescribe = (a: CaseAccess) => a.allowed.prescribe;
export const mayApprove = (a: CaseAccess) => a.allowed.approve;
export const clinicSide = (a: CaseAccess) => a.allowed.side === 'clinic';
export const labSide = (a: CaseAccess) => a.allowed.side === 'lab';

/** Roles that see case content. Owners and auditors do not (DESIGN §2). */
export const CASE_ROLES: Role[] = ['doctor', 'clinic_admin', 'lab_tech', 'lab_admin'];

export function hasCaseRole(me: Me): boolean {
  return me.memberships.some((m) => CASE_ROLES.includes(m.role));
}

/** Organisations where the user has a status board (clinic admins, doctors, lab members). */
export function boardOrgs(me: Me): Membership[] {
  const seen = new Map<string, Membership>();
  for (const m of me.memberships) if (CASE_ROLES.includes(m.role) && !seen.has(m.org_id)) seen.set(m.org_id, m);
  return [...seen.values()];
}

export function hasRole(me: Me, role: Role): boolean {
  return me.memberships.some((m) => m.role === role);
}

// ---- Which side a status change is made by (to name people by their organisation) ----
// Decisions on what a user may do come from the server (`Allowed`); this table only tells the
// case room that whoever moved a case from `received` to `in_design` acted for the lab.

type Side = 'clinic' | 'lab' | 'either';

const TRANSITIONS: [CaseStatus, CaseStatus, Side][] = [
  ['draft', 'submitted', 'clinic'],
  ['submitted', 'received', 'lab'],
  ['received', 'in_design', 'lab'],
  // `awaiting_approval` is reached only through `request_approval`, `approved` through the decision.
  ['awaiting_approval', 'in_design', 'lab'],
  ['received', 'in_production', 'lab'],
  ['in_design', 'in_production', 'lab'],
  ['approved', 'in_production', 'lab'],
  ['in_production', 'shipped', 'lab'],
  ['shipped', 'delivered', 'clinic'],
  ['delivered', 'closed', 'clinic'],
  ['delivered', 'remake_requested', 'clinic'],
  ['remake_requested', 'received', 'lab'],
];

/** Which side made a status change, when only one side may make it (null: either side). */
export function transitionSide(from: CaseStatus, to: CaseStatus): 'clinic' | 'lab' | null {
  if (to === 'cancelled') return 'clinic';
  const t = TRANSITIONS.find(([f, x]) => f === from && x === to);
  return t && t[2] !== 'either' ? t[2] : null;
}

/** The statuses this caller may move the case to now, in workflow order (the server's list). */
export function allowedTransitions(access: CaseAccess): CaseStatus[] {
  return access.allowed.transitions;
}

// ---- The Digital Rx (actors/src/rx.rs) ----

export const TOOTH_ATTRIBUTES = ['restoration', 'material', 'shade', 'margin', 'occlusion', 'notes'] as const;
export type ToothAttribute = (typeof TOOTH_ATTRIBUTES)[number];

export const RESTORATIONS = [
  'crown',
  'bridge_abutment',
  'bridge_pontic',
  'veneer',
  'inlay',
  'onlay',
  'implant_crown',
  'implant_abutment',
  'denture',
  'partial_denture',
  'temporary',
  'night_guard',
];

export const MATERIALS = [
  'zirconia',
  'lithium_disilicate',
  'feldspathic',
  'pfm',
  'full_cast_gold',
  'cocr',
  'titanium',
  'composite',
  'pmma',
  'acrylic',
];

export const VITA_CLASSICAL = [
  'A1', 'A2', 'A3', 'A3.5', 'A4', 'B1', 'B2', 'B3', 'B4', 'C1', 'C2', 'C3', 'C4', 'D2', 'D3', 'D4',
  'BL1', 'BL2', 'BL3', 'BL4',
];

export const VITA_3D_MASTER = [
  '0M1', '0M2', '0M3', '1M1', '1M2', '2L1.5', '2L2.5', '2M1', '2M2', '2M3', '2R1.5', '2R2.5', '3L1.5',
  '3L2.5', '3M1', '3M2', '3M3', '3R1.5', '3R2.5', '4L1.5', '4L2.5', '4M1', '4M2', '4M3', '4R1.5', '4R2.5',
  '5M1', '5M2', '5M3',
];

export const MARGINS = ['chamfer', 'deep_chamfer', 'shoulder', 'shoulder_bevel', 'knife_edge', 'feather_edge'];
export const OCCLUSIONS = ['light', 'medium', 'heavy', 'no_contact'];
export const MAX_NOTE_CHARS = 2000;

/** Permanent teeth in FDI notation, as a dentist reads the chart: upper 18→11 | 21→28, lower 48→41 | 31→38. */
export const UPPER_TEETH = [18, 17, 16, 15, 14, 13, 12, 11, 21, 22, 23, 24, 25, 26, 27, 28];
export const LOWER_TEETH = [48, 47, 46, 45, 44, 43, 42, 41, 31, 32, 33, 34, 35, 36, 37, 38];

export const toothField = (tooth: number, attr: ToothAttribute) => `teeth.${tooth}.${attr}`;

/** `crown` → `Crown`, `lithium_disilicate` → `Lithium disilicate`; shades stay as they are. */
export function humanize(value: string): string {
  if (/^[A-Z0-9]/.test(value)) return value;
  const words = value.replace(/_/g, ' ');
  return words === 'pfm' ? 'PFM' : words === 'cocr' ? 'CoCr' : words === 'pmma' ? 'PMMA' : words[0].toUpperCase() + words.slice(1);
}

/** A field's value as people read it (free-text notes stay as typed). */
export function displayValue(field: string, value: string | null | undefined): string {
  if (value === null || value === undefined || value === '') return '—';
  if (field === 'notes' || field.endsWith('.notes')) return value;
  return humanize(value);
}

/** A readable name for an Rx field path: `teeth.11.shade` → `Tooth 11 · shade`. */
export function fieldLabel(field: string): string {
  const parts = field.split('.');
  if (parts.length === 3 && parts[0] === 'teeth') return `Tooth ${parts[1]} · ${parts[2]}`;
  if (field === 'notes') return 'Case notes';
  return field;
}

// ---- Dates ----

/** Today as YYYY-MM-DD in UTC (the server computes `at_risk` for the UTC day). */
export function todayUtc(): string {
  return new Date().toISOString().slice(0, 10);
}

export function formatDue(due: string | null): string {
  if (!due) return 'No due date';
  const d = new Date(`${due}T00:00:00Z`);
  return d.toLocaleDateString(undefined, { day: 'numeric', month: 'short', year: 'numeric', timeZone: 'UTC' });
}

export function formatTime(ms: number): string {
  const d = new Date(ms);
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay
    ? d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })
    : d.toLocaleString(undefined, { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });
}

/** The local calendar day of a time, `YYYY-MM-DD` (for day separators and `<time datetime>`). */
export function localDay(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

/** A day separator's words: "Today", "Yesterday", else the weekday and the date. */
export function formatDay(ms: number, now = Date.now()): string {
  const day = localDay(ms);
  if (day === localDay(now)) return 'Today';
  if (day === localDay(now - 86_400_000)) return 'Yesterday';
  const d = new Date(ms);
  const sameYear = d.getFullYear() === new Date(now).getFullYear();
  return d.toLocaleDateString(undefined, { weekday: 'long', day: 'numeric', month: 'long', ...(sameYear ? {} : { year: 'numeric' }) });
}

/** The clock time only (the day separator above says which day). */
export function formatClock(ms: number): string {
  return new Date(ms).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}

/** Date and time in full, for a tooltip or a long press. */
export function formatFull(ms: number): string {
  return new Date(ms).toLocaleString(undefined, { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

// ---- Files (src/http/files.rs, src/files/sniff.rs) ----

export const FILE_KINDS: FileKind[] = ['scan', 'photo', 'design', 'voice_note', 'document'];

export const KIND_LABEL: Record<FileKind, string> = {
  scan: 'Scan',
  photo: 'Photo',
  design: 'Design',
  voice_note: 'Voice note',
  document: 'Document',
};

/** What the server accepts for each kind — it judges by content, never by the name. */
export const KIND_ACCEPTS: Record<FileKind, string> = {
  scan: 'STL, PLY or OBJ',
  design: 'STL, PLY or OBJ',
  photo: 'JPEG, PNG or HEIC',
  voice_note: 'WAV, Ogg, WebM or MP4 audio',
  document: 'PDF, JPEG or PNG',
};

/** The file picker's hint: extensions and types the kind's formats usually have. */
export const KIND_PICKER_ACCEPT: Record<FileKind, string> = {
  scan: '.stl,.ply,.obj',
  design: '.stl,.ply,.obj',
  photo: 'image/jpeg,image/png,image/heic,image/heif,.jpg,.jpeg,.png,.heic,.heif',
  voice_note: 'audio/*,.wav,.ogg,.opus,.oga,.webm,.m4a,.mp4',
  document: 'application/pdf,.pdf,image/jpeg,image/png,.jpg,.jpeg,.png',
};

const EXT_TYPE: Record<string, string> = {
  stl: 'model/stl',
  ply: 'model/ply',
  obj: 'model/obj',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  png: 'image/png',
  heic: 'image/heic',
  heif: 'image/heic',
  pdf: 'application/pdf',
  wav: 'audio/wav',
  ogg: 'audio/ogg',
  oga: 'audio/ogg',
  opus: 'audio/ogg',
  webm: 'audio/webm',
  m4a: 'audio/mp4',
  mp4: 'audio/mp4',
};

export function extensionOf(name: string): string {
  const i = name.lastIndexOf('.');
  return i > 0 ? name.slice(i + 1).toLowerCase() : '';
}

/** The declared type sent along (the server detects the real one from the bytes). */
export function declaredType(name: string, browserType: string): string {
  return browserType || EXT_TYPE[extensionOf(name)] || 'application/octet-stream';
}

/** A sensible kind for a file picked by someone on `side`: meshes are scans when the clinic sends
 * them and designs when the lab does; photos, audio and PDFs by their extension. */
export function defaultKind(name: string, browserType: string, side: 'clinic' | 'lab'): FileKind {
  const type = declaredType(name, browserType);
  if (type.startsWith('model/')) return side === 'lab' ? 'design' : 'scan';
  if (type === 'application/pdf') return 'document';
  if (type.startsWith('audio/') || type === 'video/webm') return 'voice_note';
  if (type.startsWith('image/')) return 'photo';
  return side === 'lab' ? 'design' : 'scan';
}

/** How a stored file can be previewed, from the type the server detected. */
export type PreviewKind = 'mesh' | 'image' | 'pdf' | 'audio' | 'none';

export function previewKind(contentType: string): PreviewKind {
  if (contentType === 'model/stl' || contentType === 'model/ply' || contentType === 'model/obj') return 'mesh';
  // No browser but Safari decodes HEIC: those photos are offered as downloads.
  if (contentType === 'image/jpeg' || contentType === 'image/png') return 'image';
  if (contentType === 'application/pdf') return 'pdf';
  if (contentType.startsWith('audio/')) return 'audio';
  return 'none';
}

/** 1536 → "1.5 KB", 7340032 → "7.3 MB" (decimal units, as file managers show them). */
export function formatSize(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = bytes;
  let i = -1;
  do {
    v /= 1000;
    i++;
  } while (v >= 1000 && i < units.length - 1);
  return `${v >= 100 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}
