//! Validation of case commands: pure functions from (state, caller, command) to the event the
//! command produces, or the error that refuses it. Nothing here mutates anything.

use articula_protocol::{
    ApprovalId, ApprovalStatus, CaseStatus, Decision, ErrorCode, EventData, FileKind, ProposalId, RxChange,
    RxFieldValue,
};
use serde_json::json;

use super::CaseCommand;
use super::state::CaseState;
use crate::error::CommandError;
use crate::policy::{self, CaseAccess};
use crate::rx;
use crate::text::{self, TextKind};

/// Longest chat message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 10_000;
/// Most attachments on one message.
pub const MAX_ATTACHMENTS: usize = 20;
/// People one message may mention.
pub const MAX_MENTIONS: usize = 20;
/// Longest label, in characters.
pub const MAX_LABEL_CHARS: usize = 200;
/// Longest comment or reason, in characters.
pub const MAX_COMMENT_CHARS: usize = 2_000;

/// Longest transcript, in characters.
pub const MAX_TRANSCRIPT_CHARS: usize = 100_000;

/// Free text (chat, comments, notes, transcripts) checked by the one text rule ([`text::clean`]).
fn text(field: &str, value: &str, max: usize) -> Result<String, CommandError> {
    text::clean(field, value, TextKind::Prose, max).map_err(|e| CommandError::invalid(e.0))
}

/// A name people recognise a case by (labels): no controls, no bidi or invisible characters.
fn name(field: &str, value: &str, max: usize) -> Result<String, CommandError> {
    text::clean(field, value, TextKind::Name, max).map_err(|e| CommandError::invalid(e.0))
}

fn comment(value: &Option<String>) -> Result<Option<String>, CommandError> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(c) => text("comment", c, MAX_COMMENT_CHARS).map(Some),
    }
}

/// The message a command refers to that the state does not remember although it may exist:
/// the actor looks it up in the store before deciding.
pub fn message_to_look_up(state: &CaseState, cmd: &CaseCommand) -> Option<articula_protocol::MessageId> {
    let id = match cmd {
        CaseCommand::PostMessage(m) => m.reply_to?,
        CaseCommand::EditMessage(m) => m.message_id,
        CaseCommand::DeleteMessage(m) => m.message_id,
        _ => return None,
    };
    (state.messages.get(&id).is_none() && state.messages.incomplete()).then_some(id)
}

fn not_finished(state: &CaseState) -> Result<(), CommandError> {
    if state.status.is_terminal() {
        return Err(CommandError::new(
            ErrorCode::Conflict,
            format!("the case is {}; it can no longer change", state.status),
        ));
    }
    Ok(())
}

/// Checks Rx changes: known fields, valid values, no field twice, and (when `check_versions`)
/// that every field is still at the version the change was based on.
fn check_rx_changes(
    state: &CaseState,
    changes: &[RxChange],
    check_versions: bool,
) -> Result<Vec<RxFieldValue>, CommandError> {
    if changes.is_empty() {
        return Err(CommandError::new(ErrorCode::InvalidRx, "no Rx changes given"));
    }
    if changes.len() > rx::MAX_CHANGES {
        return Err(CommandError::new(
            ErrorCode::InvalidRx,
            format!("at most {} fields per change", rx::MAX_CHANGES),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(changes.len());
    for c in changes {
        if !seen.insert(c.field.as_str()) {
            return Err(CommandError::new(ErrorCode::InvalidRx, format!("{} given twice", c.field)));
        }
        let value = match c.value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            Some(v) => Some(
                text::clean(&c.field, v, TextKind::Prose, rx::MAX_NOTE_CHARS)
                    .map_err(|e| CommandError::new(ErrorCode::InvalidRx, e.0))?,
            ),
            None => None,
        };
        let value = value.as_deref();
        rx::validate(&c.field, value)?;
        // Attaching and detaching name a file of this case (files are never removed from one).
        if let Some(file) = c.field.strip_prefix("attachments.").and_then(rx::attachment)
            && !state.files.contains_key(&file)
        {
            return Err(CommandError::new(
                ErrorCode::InvalidRx,
                format!("file {file} is not a file of this case"),
            ));
        }
        out.push(RxFieldValue { field: c.field.clone(), value: value.map(str::to_owned) });
    }
    if check_versions {
        let conflicts: Vec<_> = changes
            .iter()
            .filter_map(|c| {
                let current = state.rx.get(&c.field);
                let version = current.map_or(0, |f| f.version);
                (version != c.base_version).then(|| {
                    json!({
                        "field": c.field,
                        "value": current.and_then(|f| f.value.clone()),
                        "version": version,
                    })
                })
            })
            .collect();
        if !conflicts.is_empty() {
            let fields: Vec<_> =
                conflicts.iter().filter_map(|c| c["field"].as_str().map(str::to_owned)).collect();
            return Err(CommandError::new(
                ErrorCode::RxConflict,
                format!("changed by someone else since you loaded it: {}", fields.join(", ")),
            )
            .with_details(json!({ "conflicts": conflicts })));
        }
    }
    Ok(out)
}

/// Decides what a command does to the case.
pub fn decide(state: &CaseState, access: &CaseAccess, cmd: &CaseCommand) -> Result<EventData, CommandError> {
    match cmd {
        CaseCommand::PostMessage(m) => {
            access.require(access.may_chat(), "chat in this case")?;
            // A message may be only attachments; otherwise it needs text.
            let text = if m.text.trim().is_empty() && !m.attachments.is_empty() {
                String::new()
            } else {
                text("text", &m.text, MAX_MESSAGE_CHARS)?
            };
            if m.attachments.len() > MAX_ATTACHMENTS {
                return Err(CommandError::invalid(format!("at most {MAX_ATTACHMENTS} attachments")));
            }
            if let Some(f) = m.attachments.iter().find(|f| !state.files.contains_key(f)) {
                return Err(CommandError::invalid(format!("file {f} is not a file of this case")));
            }
            if let Some(r) = m.reply_to
                && state.messages.get(&r).is_none()
            {
                return Err(CommandError::not_found("message replied to"));
            }
            if m.mentions.len() > MAX_MENTIONS {
                return Err(CommandError::invalid(format!("at most {MAX_MENTIONS} mentions")));
            }
            // Who is mentioned is not checked against who sees the case: a mention only ever
            // reaches people who see it (their inbox and unread counts are filtered by access).
            let mut mentions = Vec::with_capacity(m.mentions.len());
            for u in &m.mentions {
                if !mentions.contains(u) {
                    mentions.push(*u);
                }
            }
            Ok(EventData::MessagePosted {
                message_id: articula_protocol::MessageId::new(),
                text,
                attachments: m.attachments.clone(),
                reply_to: m.reply_to,
                mentions,
            })
        }
        CaseCommand::EditMessage(m) => {
            access.require(access.may_chat(), "chat in this case")?;
            let msg = state.messages.get(&m.message_id).ok_or_else(|| CommandError::not_found("message"))?;
            if msg.author != access.user_id {
                return Err(CommandError::forbidden("only the author may edit a message"));
            }
            if msg.deleted {
                return Err(CommandError::new(ErrorCode::Conflict, "the message was deleted"));
            }
            let text = text("text", &m.text, MAX_MESSAGE_CHARS)?;
            Ok(EventData::MessageEdited { message_id: m.message_id, text })
        }
        CaseCommand::DeleteMessage(m) => {
            access.require(access.may_chat(), "chat in this case")?;
            let msg = state.messages.get(&m.message_id).ok_or_else(|| CommandError::not_found("message"))?;
            if msg.author != access.user_id {
                return Err(CommandError::forbidden("only the author may delete a message"));
            }
            if msg.deleted {
                return Err(CommandError::new(ErrorCode::Conflict, "the message was already deleted"));
            }
            Ok(EventData::MessageDeleted { message_id: m.message_id })
        }
        CaseCommand::EditRx(e) => {
            access.require(access.may_prescribe(), "edit the Rx (only the case's doctor may)")?;
            not_finished(state)?;
            let changes = check_rx_changes(state, &e.changes, true)?;
            Ok(EventData::RxEdited { changes, voided_approvals: state.approvals_voided_by_rx_change() })
        }
        CaseCommand::SignRx(s) => {
            access.require(access.may_prescribe(), "sign the Rx (only the case's doctor may)")?;
            not_finished(state)?;
            if s.rx_version != state.rx_version {
                return Err(CommandError::new(
                    ErrorCode::RxConflict,
                    "the Rx changed since the version you signed",
                )
                .with_details(json!({ "rx_version": state.rx_version })));
            }
            Ok(EventData::RxSigned { rx_version: state.rx_version })
        }
        CaseCommand::ProposeRx(p) => {
            access.require(access.lab_side(), "propose Rx changes (the lab does)")?;
            not_finished(state)?;
            let checked = check_rx_changes(state, &p.changes, true)?;
            // What is stored is what was checked (values trimmed and normalised).
            let changes = p
                .changes
                .iter()
                .zip(checked)
                .map(|(c, v)| RxChange { field: v.field, base_version: c.base_version, value: v.value })
                .collect();
            Ok(EventData::RxProposed { proposal_id: ProposalId::new(), changes, note: comment(&p.note)? })
        }
        CaseCommand::DecideRxProposal(d) => {
            access.require(access.may_prescribe(), "decide Rx proposals (only the case's doctor may)")?;
            not_finished(state)?;
            let proposal =
                state.proposals.get(&d.proposal_id).ok_or_else(|| CommandError::not_found("proposal"))?;
            if !proposal.open {
                return Err(CommandError::new(ErrorCode::Conflict, "the proposal was already decided"));
            }
            let (applied, voided) = if d.accept {
                (check_rx_changes(state, &proposal.changes, true)?, state.approvals_voided_by_rx_change())
            } else {
                (Vec::new(), Vec::new())
            };
            Ok(EventData::RxProposalDecided {
                proposal_id: d.proposal_id,
                accepted: d.accept,
                comment: comment(&d.comment)?,
                applied,
                voided_approvals: voided,
            })
        }
        CaseCommand::RequestApproval(r) => {
            access.require(access.lab_side(), "request approvals (the lab does)")?;
            use CaseStatus::*;
            if !matches!(state.status, Received | InDesign | AwaitingApproval | Approved) {
                return Err(CommandError::new(
                    ErrorCode::InvalidTransition,
                    format!("approvals cannot be requested while the case is {}", state.status),
                ));
            }
            let sha = r.file_sha256.to_ascii_lowercase();
            let file = state
                .files
                .iter()
                .filter(|(_, f)| f.sha256 == sha && f.kind == FileKind::Design)
                .map(|(id, _)| *id)
                .max()
                .ok_or_else(|| CommandError::not_found("design file with this SHA-256"))?;
            if state.approvals.values().any(|a| a.file_sha256 == sha && a.status == ApprovalStatus::Pending) {
                return Err(CommandError::new(
                    ErrorCode::Conflict,
                    "an approval of this design is already pending",
                ));
            }
            Ok(EventData::ApprovalRequested {
                approval_id: ApprovalId::new(),
                file_id: file,
                file_sha256: sha,
                rx_version: state.rx_version,
                comment: comment(&r.comment)?,
            })
        }
        CaseCommand::DecideApproval(d) => {
            access.require(access.may_approve(), "approve designs (only the case's doctor may)")?;
            let approval =
                state.approvals.get(&d.approval_id).ok_or_else(|| CommandError::not_found("approval"))?;
            match approval.status {
                ApprovalStatus::Pending => {}
                ApprovalStatus::Voided => {
                    return Err(CommandError::new(
                        ErrorCode::Conflict,
                        "this approval was voided by a later change to the design or the Rx",
                    ));
                }
                _ => return Err(CommandError::new(ErrorCode::Conflict, "this approval was already decided")),
            }
            let comment = comment(&d.comment)?;
            if d.decision == Decision::Reject && comment.is_none() {
                return Err(CommandError::invalid("a rejection needs a comment for the lab"));
            }
            Ok(EventData::ApprovalDecided { approval_id: d.approval_id, decision: d.decision, comment })
        }
        CaseCommand::SetStatus(s) => {
            policy::check_transition(
                access,
                state.status,
                s.status,
                state.status_before_hold,
                state.lab_id.is_some(),
            )?;
            Ok(EventData::StatusChanged { from: state.status, to: s.status, reason: comment(&s.reason)? })
        }
        CaseCommand::UpdateCase(u) => decide_update(state, access, u),
        CaseCommand::AddFile(f) => {
            access.require(access.may_upload(), "upload files to this case")?;
            let voided = if f.kind == FileKind::Design {
                state.approvals_voided_by_design(&f.sha256)
            } else {
                Vec::new()
            };
            Ok(EventData::FileAdded {
                file_id: f.file_id,
                name: f.name.clone(),
                size: f.size,
                content_type: f.content_type.clone(),
                sha256: f.sha256.clone(),
                file_kind: f.kind,
                voided_approvals: voided,
            })
        }
        CaseCommand::AddTranscript { file_id, text: t } => {
            match state.files.get(file_id) {
                Some(f) if f.kind == FileKind::VoiceNote => {}
                _ => return Err(CommandError::not_found("voice note")),
            }
            Ok(EventData::VoiceTranscribed {
                file_id: *file_id,
                text: text("transcript", t, MAX_TRANSCRIPT_CHARS)?,
            })
        }
        CaseCommand::GiveGrant { user_id, capabilities, until, support, grantee_orgs } => {
            decide_grant(state, access, *user_id, capabilities, *until, *support, grantee_orgs)
        }
        CaseCommand::RevokeGrant { user_id } => {
            access.require(access.may_manage(), "manage grants on this case")?;
            let now = crate::clock::now_ms();
            if !state.grants.iter().any(|g| g.user_id == *user_id && g.live(now)) {
                return Err(CommandError::not_found("grant"));
            }
            Ok(EventData::GrantRevoked { user_id: *user_id })
        }
    }
}

/// Longest a grant may run (ms): a year; support grants 30 days.
const MAX_GRANT_MS: i64 = 365 * 86_400_000;
const MAX_SUPPORT_GRANT_MS: i64 = 30 * 86_400_000;

fn decide_grant(
    state: &CaseState,
    access: &CaseAccess,
    user_id: articula_protocol::UserId,
    capabilities: &[articula_protocol::Capability],
    until: Option<i64>,
    support: bool,
    grantee_orgs: &[articula_protocol::OrgId],
) -> Result<EventData, CommandError> {
    use articula_protocol::Capability;
    access.require(access.may_manage(), "manage grants on this case")?;
    let caps = policy::Caps::of(capabilities);
    if caps.is_empty() {
        return Err(CommandError::invalid("a grant needs at least one capability (view)"));
    }
    if user_id == access.user_id {
        return Err(CommandError::invalid("you cannot give yourself a grant"));
    }
    if user_id == state.doctor_id {
        return Err(CommandError::invalid("the case's doctor already holds every capability"));
    }
    let now = crate::clock::now_ms();
    if until.is_some_and(|u| u <= now) {
        return Err(CommandError::invalid("until must be in the future"));
    }
    if support {
        access.require(access.clinic_owner, "give support access (an owner of the clinic does)")?;
        if caps != policy::Caps::of(&[Capability::View]) {
            return Err(CommandError::invalid("support access is read access (view) only"));
        }
        match until {
            Some(u) if u - now <= MAX_SUPPORT_GRANT_MS => {}
            _ => return Err(CommandError::invalid("support access needs an end, at most 30 days ahead")),
        }
    } else {
        if until.is_some_and(|u| u - now > MAX_GRANT_MS) {
            return Err(CommandError::invalid("a grant may last at most a year"));
        }
        let member = grantee_orgs.contains(&state.clinic_id)
            || state.lab_id.is_some_and(|l| grantee_orgs.contains(&l));
        if !member {
            // Not "not found": the caller chose this user, and may know who they are.
            return Err(CommandError::invalid(
                "grants go to members of the case's clinic or of its lab (support access excepted)",
            ));
        }
    }
    if !access.grantable().covers(caps) {
        return Err(CommandError::forbidden("you may only pass on capabilities you hold yourself"));
    }
    Ok(EventData::GrantGiven { user_id, capabilities: caps.list(), until, support })
}

fn decide_update(
    state: &CaseState,
    access: &CaseAccess,
    u: &articula_protocol::UpdateCase,
) -> Result<EventData, CommandError> {
    access.require(access.clinic_side(), "change the case's details (the clinic does)")?;
    not_finished(state)?;
    let label = match &u.label {
        Some(l) => Some(name("label", l, MAX_LABEL_CHARS)?).filter(|l| *l != state.label),
        None => None,
    };
    let due_date = match &u.due_date {
        Some(Some(d)) => {
            if crate::clock::parse_date(d).is_none() {
                return Err(CommandError::invalid("due_date must be a date YYYY-MM-DD"));
            }
            Some(Some(d.clone())).filter(|d| *d != state.due_date)
        }
        Some(None) => Some(None).filter(|_| state.due_date.is_some()),
        None => None,
    };
    let lab_id = match u.lab_id {
        Some(lab) if lab != state.lab_id => {
            // Clinic admins route cases; a doctor may choose the lab of their own draft.
            let doctor_draft = access.doctor && state.status == CaseStatus::Draft;
            access
                .require(access.clinic_admin || doctor_draft, "route cases to labs (a clinic admin does)")?;
            if !matches!(state.status, CaseStatus::Draft | CaseStatus::Submitted) {
                return Err(CommandError::new(
                    ErrorCode::Conflict,
                    "the lab has received the case; it can no longer be re-routed",
                ));
            }
            if lab.is_none() && state.status != CaseStatus::Draft {
                return Err(CommandError::new(ErrorCode::Conflict, "a submitted case needs a lab"));
            }
            Some(lab)
        }
        _ => None,
    };
    if label.is_none() && due_date.is_none() && lab_id.is_none() {
        return Err(CommandError::invalid("nothing to change"));
    }
    Ok(EventData::CaseUpdated { label, due_date, lab_id })
}
