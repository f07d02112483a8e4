use serde::{Deserialize, Serialize};

use super::domain::{Capability, CaseStatus, Decision, FileKind, RxChange, RxFieldValue};
use super::ids::{ApprovalId, FileId, MessageId, OrgId, ProposalId, UserId};

/// What happened in a case. Each variant is one durable event in the case's log; the wire carries
/// it as `"kind": <snake_case name>, "data": {…}` inside an `event` frame.
///
/// Kinds are only ever added within v1. Audit and notification subscribers read these.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum EventData {
    /// The case was opened by its doctor.
    CaseCreated {
        /// De-identified label.
        label: String,
        /// The clinic.
        clinic_id: OrgId,
        /// The prescribing doctor.
        doctor_id: UserId,
        /// The lab, if routed at creation.
        lab_id: Option<OrgId>,
        /// Due date `YYYY-MM-DD`.
        due_date: Option<String>,
    },
    /// Case metadata changed; only the changed fields are present.
    CaseUpdated {
        /// New label.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label: Option<String>,
        /// New due date (`Some(None)` clears it).
        #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
        #[ts(optional, type = "string | null")]
        due_date: Option<Option<String>>,
        /// New lab routing (`Some(None)` removes it).
        #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
        #[ts(optional, type = "string | null")]
        lab_id: Option<Option<OrgId>>,
    },
    /// The case moved to another status.
    StatusChanged {
        /// Status before.
        from: CaseStatus,
        /// Status after.
        to: CaseStatus,
        /// Why, in the actor's words.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A chat message was posted.
    MessagePosted {
        /// The message.
        message_id: MessageId,
        /// Its text.
        text: String,
        /// Files attached to it.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<FileId>,
        /// The message it answers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<MessageId>,
        /// People it mentions.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mentions: Vec<UserId>,
    },
    /// A chat message was edited by its author.
    MessageEdited {
        /// The message.
        message_id: MessageId,
        /// The new text.
        text: String,
    },
    /// A chat message was deleted by its author (soft delete: the log keeps the event).
    MessageDeleted {
        /// The message.
        message_id: MessageId,
    },
    /// Rx fields were changed by the doctor. Each field's new version is this event's `seq`.
    RxEdited {
        /// The fields and their new values.
        changes: Vec<RxFieldValue>,
        /// Approvals voided by this change.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        voided_approvals: Vec<ApprovalId>,
    },
    /// The doctor signed the Rx at its current version.
    RxSigned {
        /// The Rx version signed (the seq of its last change).
        rx_version: u64,
    },
    /// The lab proposed Rx changes for the doctor to accept or decline.
    RxProposed {
        /// The proposal.
        proposal_id: ProposalId,
        /// The proposed changes with the versions they were based on.
        changes: Vec<RxChange>,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// The doctor accepted or declined a proposal; accepted changes are applied by this event.
    RxProposalDecided {
        /// The proposal.
        proposal_id: ProposalId,
        /// Accepted (applied) or declined.
        accepted: bool,
        /// The doctor's comment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
        /// The fields applied (empty when declined).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        applied: Vec<RxFieldValue>,
        /// Approvals voided by the applied changes.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        voided_approvals: Vec<ApprovalId>,
    },
    /// The lab asked the doctor to approve a design file at an Rx version.
    ApprovalRequested {
        /// The approval.
        approval_id: ApprovalId,
        /// The design file.
        file_id: FileId,
        /// Its SHA-256, hex.
        file_sha256: String,
        /// The Rx version the design was made for.
        rx_version: u64,
        /// A note for the doctor.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    /// The doctor approved or rejected a design.
    ApprovalDecided {
        /// The approval.
        approval_id: ApprovalId,
        /// Approve or reject.
        decision: Decision,
        /// The doctor's comment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    /// A file was added to the case.
    FileAdded {
        /// The file.
        file_id: FileId,
        /// Its display name.
        name: String,
        /// Size in bytes.
        size: u64,
        /// Media type detected from its content.
        content_type: String,
        /// SHA-256 of the content, hex.
        sha256: String,
        /// What the file is for.
        file_kind: FileKind,
        /// Approvals voided because this file is a newer design.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        voided_approvals: Vec<ApprovalId>,
    },
    /// A voice note's transcript arrived.
    VoiceTranscribed {
        /// The voice note.
        file_id: FileId,
        /// The transcript.
        text: String,
    },
    /// A user was given capabilities on this case (replacing any grant they had).
    GrantGiven {
        /// Who holds it.
        user_id: UserId,
        /// What it allows (always includes `view`).
        capabilities: Vec<Capability>,
        /// Until when, ms since the Unix epoch; absent: until revoked.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<i64>,
        /// Read access for a support account (members see a banner while it lasts).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        support: bool,
    },
    /// A grant was taken back.
    GrantRevoked {
        /// Who held it.
        user_id: UserId,
    },
    /// A grant reached its end time.
    GrantExpired {
        /// Who held it.
        user_id: UserId,
    },
}

impl EventData {
    /// The snake_case kind name, as on the wire and in the event log.
    pub fn kind(&self) -> &'static str {
        match self {
            EventData::CaseCreated { .. } => "case_created",
            EventData::CaseUpdated { .. } => "case_updated",
            EventData::StatusChanged { .. } => "status_changed",
            EventData::MessagePosted { .. } => "message_posted",
            EventData::MessageEdited { .. } => "message_edited",
            EventData::MessageDeleted { .. } => "message_deleted",
            EventData::RxEdited { .. } => "rx_edited",
            EventData::RxSigned { .. } => "rx_signed",
            EventData::RxProposed { .. } => "rx_proposed",
            EventData::RxProposalDecided { .. } => "rx_proposal_decided",
            EventData::ApprovalRequested { .. } => "approval_requested",
            EventData::ApprovalDecided { .. } => "approval_decided",
            EventData::FileAdded { .. } => "file_added",
            EventData::VoiceTranscribed { .. } => "voice_transcribed",
            EventData::GrantGiven { .. } => "grant_given",
            EventData::GrantRevoked { .. } => "grant_revoked",
            EventData::GrantExpired { .. } => "grant_expired",
        }
    }

    /// Approvals this event voids.
    pub fn voided_approvals(&self) -> &[ApprovalId] {
        match self {
            EventData::RxEdited { voided_approvals, .. }
            | EventData::RxProposalDecided { voided_approvals, .. }
            | EventData::FileAdded { voided_approvals, .. } => voided_approvals,
            _ => &[],
        }
    }
}

/// Distinguishes "absent" (no change) from `null` (cleared) for optional fields of an update.
pub mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Serializes the inner option (absent values are skipped by `skip_serializing_if`).
    pub fn serialize<T: Serialize, S: Serializer>(
        value: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    /// A present field, even `null`, becomes `Some(_)`.
    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}
