// GENERATED from the protocol crate (protocol/tests/typescript.rs) — do not edit.
// `make generate` rewrites it; `make test` fails when it is stale.

export type CaseId = string;
export type UserId = string;
export type OrgId = string;
export type MessageId = string;
export type FileId = string;
export type ApprovalId = string;
export type ProposalId = string;
export type Role = "doctor" | "clinic_admin" | "lab_tech" | "lab_admin" | "owner" | "auditor";
export type OrgKind = "clinic" | "lab";
export type Portal = "clinic" | "lab";
export type CaseStatus = "draft" | "submitted" | "received" | "in_design" | "awaiting_approval" | "approved" | "in_production" | "shipped" | "delivered" | "closed" | "on_hold" | "remake_requested" | "cancelled";
export type FileKind = "scan" | "photo" | "design" | "voice_note" | "document";
export type Capability = "view" | "chat" | "upload" | "edit_rx" | "approve" | "manage";
export type Decision = "approve" | "reject";
export type ApprovalStatus = "pending" | "approved" | "rejected" | "voided";
export type ErrorCode = "malformed_frame" | "invalid_json" | "unknown_field" | "unknown_type" | "unsupported_version" | "frame_too_large" | "payload_too_large" | "validation_failed" | "invalid_email" | "unsupported_media_type" | "method_not_allowed" | "unauthorized" | "invalid_credentials" | "account_locked" | "wrong_portal" | "token_expired" | "token_invalid" | "token_reused" | "csrf_failed" | "session_revoked" | "forbidden" | "not_found" | "conflict" | "rx_conflict" | "invalid_rx" | "invalid_transition" | "rate_limited" | "not_subscribed" | "resync" | "invalid_file_type" | "file_too_large" | "malware_detected" | "checksum_mismatch" | "offset_mismatch" | "upload_locked" | "link_expired" | "unavailable" | "not_storable" | "internal";
export type RxChange = { 
/**
 * Field path: `notes`, `due_date`, `shade_system`, or `teeth.<FDI>.<attribute>`.
 */
field: string, 
/**
 * The field version the client saw.
 */
base_version: number, 
/**
 * The new value, or null to clear.
 */
value: string | null, };
export type RxFieldValue = { 
/**
 * Field path.
 */
field: string, 
/**
 * The new value, or null when cleared.
 */
value: string | null, };
export type CaseSummary = { 
/**
 * The case.
 */
case_id: CaseId, 
/**
 * De-identified label.
 */
label: string, 
/**
 * Current status.
 */
status: CaseStatus, 
/**
 * Due date, `YYYY-MM-DD`.
 */
due_date: string | null, 
/**
 * Due soon (or overdue) and not far enough along: `days_left < days_needed`.
 */
at_risk: boolean, 
/**
 * Days of lead time the case still needs at its status (the at-risk rule); null for
 * delivered and finished cases.
 */
days_needed: number | null, 
/**
 * Days from today (UTC) to the due date, negative once overdue; null without a due date.
 */
days_left: number | null, 
/**
 * Last activity, milliseconds since the Unix epoch.
 */
last_activity: number, 
/**
 * The prescribing doctor.
 */
doctor_id: UserId, 
/**
 * The clinic.
 */
clinic_id: OrgId, 
/**
 * The lab the case is routed to.
 */
lab_id: OrgId | null, 
/**
 * The case's latest event sequence number.
 */
seq: number, };
export type EventData = { "kind": "case_created", "data": { 
/**
 * De-identified label.
 */
label: string, 
/**
 * The clinic.
 */
clinic_id: OrgId, 
/**
 * The prescribing doctor.
 */
doctor_id: UserId, 
/**
 * The lab, if routed at creation.
 */
lab_id: OrgId | null, 
/**
 * Due date `YYYY-MM-DD`.
 */
due_date: string | null, } } | { "kind": "case_updated", "data": { 
/**
 * New label.
 */
label?: string | null, 
/**
 * New due date (`Some(None)` clears it).
 */
due_date?: string | null, 
/**
 * New lab routing (`Some(None)` removes it).
 */
lab_id?: string | null, } } | { "kind": "status_changed", "data": { 
/**
 * Status before.
 */
from: CaseStatus, 
/**
 * Status after.
 */
to: CaseStatus, 
/**
 * Why, in the actor's words.
 */
reason?: string | null, } } | { "kind": "message_posted", "data": { 
/**
 * The message.
 */
message_id: MessageId, 
/**
 * Its text.
 */
text: string, 
/**
 * Files attached to it.
 */
attachments?: Array<FileId>, 
/**
 * The message it answers.
 */
reply_to?: MessageId | null, 
/**
 * People it mentions.
 */
mentions?: Array<UserId>, } } | { "kind": "message_edited", "data": { 
/**
 * The message.
 */
message_id: MessageId, 
/**
 * The new text.
 */
text: string, } } | { "kind": "message_deleted", "data": { 
/**
 * The message.
 */
message_id: MessageId, } } | { "kind": "rx_edited", "data": { 
/**
 * The fields and their new values.
 */
changes: Array<RxFieldValue>, 
/**
 * Approvals voided by this change.
 */
voided_approvals?: Array<ApprovalId>, } } | { "kind": "rx_signed", "data": { 
/**
 * The Rx version signed (the seq of its last change).
 */
rx_version: number, } } | { "kind": "rx_proposed", "data": { 
/**
 * The proposal.
 */
proposal_id: ProposalId, 
/**
 * The proposed changes with the versions they were based on.
 */
changes: Array<RxChange>, 
/**
 * Why.
 */
note?: string | null, } } | { "kind": "rx_proposal_decided", "data": { 
/**
 * The proposal.
 */
proposal_id: ProposalId, 
/**
 * Accepted (applied) or declined.
 */
accepted: boolean, 
/**
 * The doctor's comment.
 */
comment?: string | null, 
/**
 * The fields applied (empty when declined).
 */
applied?: Array<RxFieldValue>, 
/**
 * Approvals voided by the applied changes.
 */
voided_approvals?: Array<ApprovalId>, } } | { "kind": "approval_requested", "data": { 
/**
 * The approval.
 */
approval_id: ApprovalId, 
/**
 * The design file.
 */
file_id: FileId, 
/**
 * Its SHA-256, hex.
 */
file_sha256: string, 
/**
 * The Rx version the design was made for.
 */
rx_version: number, 
/**
 * A note for the doctor.
 */
comment?: string | null, } } | { "kind": "approval_decided", "data": { 
/**
 * The approval.
 */
approval_id: ApprovalId, 
/**
 * Approve or reject.
 */
decision: Decision, 
/**
 * The doctor's comment.
 */
comment?: string | null, } } | { "kind": "file_added", "data": { 
/**
 * The file.
 */
file_id: FileId, 
/**
 * Its display name.
 */
name: string, 
/**
 * Size in bytes.
 */
size: number, 
/**
 * Media type detected from its content.
 */
content_type: string, 
/**
 * SHA-256 of the content, hex.
 */
sha256: string, 
/**
 * What the file is for.
 */
file_kind: FileKind, 
/**
 * Approvals voided because this file is a newer design.
 */
voided_approvals?: Array<ApprovalId>, } } | { "kind": "voice_transcribed", "data": { 
/**
 * The voice note.
 */
file_id: FileId, 
/**
 * The transcript.
 */
text: string, } } | { "kind": "grant_given", "data": { 
/**
 * Who holds it.
 */
user_id: UserId, 
/**
 * What it allows (always includes `view`).
 */
capabilities: Array<Capability>, 
/**
 * Until when, ms since the Unix epoch; absent: until revoked.
 */
until?: number | null, 
/**
 * Read access for a support account (members see a banner while it lasts).
 */
support?: boolean, } } | { "kind": "grant_revoked", "data": { 
/**
 * Who held it.
 */
user_id: UserId, } } | { "kind": "grant_expired", "data": { 
/**
 * Who held it.
 */
user_id: UserId, } };
export type ClientMessage = { 
/**
 * Protocol version, always 1.
 */
v: number, 
/**
 * Client-chosen command id (1–64 characters, unique per user, a UUID is best). The answer to
 * the frame carries it; retrying a command with the same id never repeats its effect.
 */
id?: string | null, } & ({ "type": "auth", "data": Auth } | { "type": "subscribe", "data": Subscribe } | { "type": "unsubscribe", "data": CaseRef } | { "type": "post_message", "data": PostMessage } | { "type": "edit_message", "data": EditMessage } | { "type": "delete_message", "data": MessageRef } | { "type": "mark_read", "data": MarkRead } | { "type": "typing", "data": CaseRef } | { "type": "edit_rx", "data": EditRx } | { "type": "sign_rx", "data": SignRx } | { "type": "propose_rx", "data": ProposeRx } | { "type": "decide_rx_proposal", "data": DecideRxProposal } | { "type": "request_approval", "data": RequestApproval } | { "type": "decide_approval", "data": DecideApproval } | { "type": "set_status", "data": SetStatus } | { "type": "update_case", "data": UpdateCase } | { "type": "subscribe_board", "data": SubscribeBoard } | { "type": "unsubscribe_board", "data": Empty } | { "type": "subscribe_inbox", "data": Empty } | { "type": "ping", "data": Empty });
export type ClientBody = { "type": "auth", "data": Auth } | { "type": "subscribe", "data": Subscribe } | { "type": "unsubscribe", "data": CaseRef } | { "type": "post_message", "data": PostMessage } | { "type": "edit_message", "data": EditMessage } | { "type": "delete_message", "data": MessageRef } | { "type": "mark_read", "data": MarkRead } | { "type": "typing", "data": CaseRef } | { "type": "edit_rx", "data": EditRx } | { "type": "sign_rx", "data": SignRx } | { "type": "propose_rx", "data": ProposeRx } | { "type": "decide_rx_proposal", "data": DecideRxProposal } | { "type": "request_approval", "data": RequestApproval } | { "type": "decide_approval", "data": DecideApproval } | { "type": "set_status", "data": SetStatus } | { "type": "update_case", "data": UpdateCase } | { "type": "subscribe_board", "data": SubscribeBoard } | { "type": "unsubscribe_board", "data": Empty } | { "type": "subscribe_inbox", "data": Empty } | { "type": "ping", "data": Empty };
export type Empty = Record<symbol, never>;
export type Auth = { 
/**
 * An access token.
 */
token: string, };
export type Subscribe = { 
/**
 * The case.
 */
case_id: CaseId, 
/**
 * The last `seq` the client has; absent or 0 replays the whole log.
 */
since?: number | null, };
export type CaseRef = { 
/**
 * The case.
 */
case_id: CaseId, };
export type PostMessage = { 
/**
 * The case.
 */
case_id: CaseId, 
/**
 * The text (1–10,000 characters).
 */
text: string, 
/**
 * Files of the case to attach.
 */
attachments?: Array<FileId>, 
/**
 * The message answered.
 */
reply_to?: MessageId | null, 
/**
 * People the message mentions (`@Name` in its text): at most 20, each counted in that
 * person's unread mentions and told in their inbox.
 */
mentions?: Array<UserId>, };
export type EditMessage = { 
/**
 * The case.
 */
case_id: CaseId, 
/**
 * The message.
 */
message_id: MessageId, 
/**
 * The new text.
 */
text: string, };
export type MessageRef = { 
/**
 * The case.
 */
case_id: CaseId, 
/**
 * The message.
 */
message_id: MessageId, };
export type MarkRead = { 
/**
 * The case.
 */
case_id: CaseId, 
/**
 * Read up to and including this seq.
 */
seq: number, };
export type EditRx = { 
/**
 * The case.
 */
case_id: CaseId, 
/**
 * The changes, applied together or not at all.
 */
changes: Array<RxChange>, };
export type SignRx = { 
/**
 * The case.
 */
case_id: CaseId, 
/**
 * The Rx version the doctor read and signs.
 */
rx_version: number, };
export type ProposeRx = { 
/**
 * The case.
 */
case_id: CaseId, 
/**
 * The proposed changes.
 */
changes: Array<RxChange>, 
/**
 * Why.
 */
note?: string | null, };
export type DecideRxProposal = { 
/**
 * The case.
 */
case_id: CaseId, 
/**
 * The proposal.
 */
proposal_id: ProposalId, 
/**
 * Accept (apply) or decline.
 */
accept: boolean, 
/**
 * A comment for the lab.
 */
comment?: string | null, };
export type RequestApproval = { 
/**
 * The case.
 */
case_id: CaseId, 
/**
 * SHA-256 (hex) of a design file of the case.
 */
file_sha256: string, 
/**
 * A note for the doctor.
 */
comment?: string | null, };
export type DecideApproval = { 
/**
 * The case.
 */
case_id: CaseId, 
/**
 * The approval.
 */
approval_id: ApprovalId, 
/**
 * Approve or reject.
 */
decision: Decision, 
/**
 * The doctor's comment.
 */
comment?: string | null, };
export type SetStatus = { 
/**
 * The case.
 */
case_id: CaseId, 
/**
 * The new status.
 */
status: CaseStatus, 
/**
 * Why.
 */
reason?: string | null, };
export type UpdateCase = { 
/**
 * The case.
 */
case_id: CaseId, 
/**
 * New label.
 */
label?: string | null, 
/**
 * New due date `YYYY-MM-DD`, or null to clear.
 */
due_date?: string | null, 
/**
 * New lab, or null to unroute.
 */
lab_id?: string | null, };
export type SubscribeBoard = { 
/**
 * The organisation, when the user belongs to more than one.
 */
org_id?: OrgId | null, };
export type ServerMessage = { 
/**
 * Protocol version, always 1.
 */
v: number, } & ({ "type": "welcome", "data": Welcome } | { "type": "ack", "data": Ack } | { "type": "error", "data": ErrorFrame } | { "type": "event", "data": Event } | { "type": "typing", "data": TypingFrame } | { "type": "presence", "data": Presence } | { "type": "receipt", "data": Receipt } | { "type": "board", "data": Board } | { "type": "inbox", "data": Inbox } | { "type": "resync", "data": Resync } | { "type": "pong", "data": Pong });
export type ServerBody = { "type": "welcome", "data": Welcome } | { "type": "ack", "data": Ack } | { "type": "error", "data": ErrorFrame } | { "type": "event", "data": Event } | { "type": "typing", "data": TypingFrame } | { "type": "presence", "data": Presence } | { "type": "receipt", "data": Receipt } | { "type": "board", "data": Board } | { "type": "inbox", "data": Inbox } | { "type": "resync", "data": Resync } | { "type": "pong", "data": Pong };
export type Welcome = { 
/**
 * The authenticated user.
 */
user_id: UserId, 
/**
 * Seconds between server heartbeats.
 */
heartbeat_secs: number, 
/**
 * Largest accepted frame, bytes.
 */
max_frame_bytes: number, };
export type Ack = { 
/**
 * The command id.
 */
id: string, 
/**
 * The seq of the event the command created; for `subscribe`, the case's latest seq.
 */
seq?: number | null, };
export type ErrorFrame = { 
/**
 * The command id, when the frame carried a readable one.
 */
id?: string | null, 
/**
 * What went wrong.
 */
code: ErrorCode, 
/**
 * A human explanation (never internals).
 */
message: string, 
/**
 * Machine-readable details, e.g. the current value on `rx_conflict`.
 */
details?: unknown, };
export type Event = { 
/**
 * The case.
 */
case_id: CaseId, 
/**
 * Gapless per-case sequence number, from 1.
 */
seq: number, 
/**
 * When it was committed, milliseconds since the Unix epoch.
 */
at: number, 
/**
 * Who did it.
 */
actor: UserId, } & ({ "kind": "case_created", "data": { 
/**
 * De-identified label.
 */
label: string, 
/**
 * The clinic.
 */
clinic_id: OrgId, 
/**
 * The prescribing doctor.
 */
doctor_id: UserId, 
/**
 * The lab, if routed at creation.
 */
lab_id: OrgId | null, 
/**
 * Due date `YYYY-MM-DD`.
 */
due_date: string | null, } } | { "kind": "case_updated", "data": { 
/**
 * New label.
 */
label?: string | null, 
/**
 * New due date (`Some(None)` clears it).
 */
due_date?: string | null, 
/**
 * New lab routing (`Some(None)` removes it).
 */
lab_id?: string | null, } } | { "kind": "status_changed", "data": { 
/**
 * Status before.
 */
from: CaseStatus, 
/**
 * Status after.
 */
to: CaseStatus, 
/**
 * Why, in the actor's words.
 */
reason?: string | null, } } | { "kind": "message_posted", "data": { 
/**
 * The message.
 */
message_id: MessageId, 
/**
 * Its text.
 */
text: string, 
/**
 * Files attached to it.
 */
attachments?: Array<FileId>, 
/**
 * The message it answers.
 */
reply_to?: MessageId | null, 
/**
 * People it mentions.
 */
mentions?: Array<UserId>, } } | { "kind": "message_edited", "data": { 
/**
 * The message.
 */
message_id: MessageId, 
/**
 * The new text.
 */
text: string, } } | { "kind": "message_deleted", "data": { 
/**
 * The message.
 */
message_id: MessageId, } } | { "kind": "rx_edited", "data": { 
/**
 * The fields and their new values.
 */
changes: Array<RxFieldValue>, 
/**
 * Approvals voided by this change.
 */
voided_approvals?: Array<ApprovalId>, } } | { "kind": "rx_signed", "data": { 
/**
 * The Rx version signed (the seq of its last change).
 */
rx_version: number, } } | { "kind": "rx_proposed", "data": { 
/**
 * The proposal.
 */
proposal_id: ProposalId, 
/**
 * The proposed changes with the versions they were based on.
 */
changes: Array<RxChange>, 
/**
 * Why.
 */
note?: string | null, } } | { "kind": "rx_proposal_decided", "data": { 
/**
 * The proposal.
 */
proposal_id: ProposalId, 
/**
 * Accepted (applied) or declined.
 */
accepted: boolean, 
/**
 * The doctor's comment.
 */
comment?: string | null, 
/**
 * The fields applied (empty when declined).
 */
applied?: Array<RxFieldValue>, 
/**
 * Approvals voided by the applied changes.
 */
voided_approvals?: Array<ApprovalId>, } } | { "kind": "approval_requested", "data": { 
/**
 * The approval.
 */
approval_id: ApprovalId, 
/**
 * The design file.
 */
file_id: FileId, 
/**
 * Its SHA-256, hex.
 */
file_sha256: string, 
/**
 * The Rx version the design was made for.
 */
rx_version: number, 
/**
 * A note for the doctor.
 */
comment?: string | null, } } | { "kind": "approval_decided", "data": { 
/**
 * The approval.
 */
approval_id: ApprovalId, 
/**
 * Approve or reject.
 */
decision: Decision, 
/**
 * The doctor's comment.
 */
comment?: string | null, } } | { "kind": "file_added", "data": { 
/**
 * The file.
 */
file_id: FileId, 
/**
 * Its display name.
 */
name: string, 
/**
 * Size in bytes.
 */
size: number, 
/**
 * Media type detected from its content.
 */
content_type: string, 
/**
 * SHA-256 of the content, hex.
 */
sha256: string, 
/**
 * What the file is for.
 */
file_kind: FileKind, 
/**
 * Approvals voided because this file is a newer design.
 */
voided_approvals?: Array<ApprovalId>, } } | { "kind": "voice_transcribed", "data": { 
/**
 * The voice note.
 */
file_id: FileId, 
/**
 * The transcript.
 */
text: string, } } | { "kind": "grant_given", "data": { 
/**
 * Who holds it.
 */
user_id: UserId, 
/**
 * What it allows (always includes `view`).
 */
capabilities: Array<Capability>, 
/**
 * Until when, ms since the Unix epoch; absent: until revoked.
 */
until?: number | null, 
/**
 * Read access for a support account (members see a banner while it lasts).
 */
support?: boolean, } } | { "kind": "grant_revoked", "data": { 
/**
 * Who held it.
 */
user_id: UserId, } } | { "kind": "grant_expired", "data": { 
/**
 * Who held it.
 */
user_id: UserId, } });
export type TypingFrame = { 
/**
 * The case.
 */
case_id: CaseId, 
/**
 * Who is typing.
 */
user_id: UserId, };
export type Presence = { 
/**
 * The case.
 */
case_id: CaseId, 
/**
 * Users subscribed to the case right now.
 */
users: Array<UserId>, };
export type Receipt = { 
/**
 * The case.
 */
case_id: CaseId, 
/**
 * Who read.
 */
user_id: UserId, 
/**
 * Read up to and including this seq.
 */
seq: number, };
export type Board = { 
/**
 * The organisation whose board this is.
 */
org_id: OrgId, 
/**
 * True for the full board sent on subscribe; false for changes.
 */
snapshot: boolean, 
/**
 * Cases added or changed (all cases when `snapshot`).
 */
cases: Array<CaseSummary>, 
/**
 * Cases that left the board (e.g. routed to another lab).
 */
removed?: Array<CaseId>, };
export type Inbox = { 
/**
 * The case.
 */
case_id: CaseId, 
/**
 * Its label.
 */
label: string, 
/**
 * The event's seq.
 */
seq: number, 
/**
 * The event's kind.
 */
kind: string, 
/**
 * Who did it.
 */
actor: UserId, 
/**
 * When, milliseconds since the Unix epoch.
 */
at: number, 
/**
 * For `message_posted`: the people the message mentions.
 */
mentions?: Array<UserId>, };
export type Resync = { 
/**
 * The case, or none for the whole socket.
 */
case_id?: CaseId | null, 
/**
 * `lagged`, `access_changed`, `restarted`…
 */
reason: string, 
/**
 * The last seq delivered on this socket for the case.
 */
last_seq?: number | null, };
export type Pong = { 
/**
 * The ping's id, if it had one.
 */
id?: string | null, };
