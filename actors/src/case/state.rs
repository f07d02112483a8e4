//! A case's state as a fold over its event log. The case actor rebuilds it from the log when it
//! starts, and applies each new event to it; nothing else computes it.

use std::collections::{BTreeMap, HashMap};

use articula_protocol::{
    ApprovalId, ApprovalStatus, CaseId, CaseStatus, CaseSummary, Decision, EventData, FileId, FileKind,
    MessageId, OrgId, ProposalId, RxChange, UserId,
};

use crate::policy;
use crate::ports::{CaseRow, StoredEvent};

/// One Rx field: its value and the seq of the event that last changed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RxField {
    /// Current value.
    pub value: Option<String>,
    /// Version = seq of the last change.
    pub version: u64,
}

/// An approval request.
#[derive(Clone, Debug)]
pub struct Approval {
    /// The design file.
    pub file_id: FileId,
    /// Its SHA-256.
    pub file_sha256: String,
    /// The Rx version at request time.
    pub rx_version: u64,
    /// State.
    pub status: ApprovalStatus,
}

/// A lab proposal.
#[derive(Clone, Debug)]
pub struct Proposal {
    /// The proposed changes.
    pub changes: Vec<RxChange>,
    /// Still waiting for the doctor.
    pub open: bool,
}

/// A file of the case.
#[derive(Clone, Debug)]
pub struct FileRef {
    /// SHA-256, hex.
    pub sha256: String,
    /// Kind.
    pub kind: FileKind,
}

/// A chat message's author and whether it was deleted.
#[derive(Clone, Copy, Debug)]
pub struct MessageRef {
    /// Author.
    pub author: UserId,
    /// Soft-deleted.
    pub deleted: bool,
}

/// The whole state of a case.
#[derive(Clone, Debug)]
pub struct CaseState {
    /// The case.
    pub id: CaseId,
    /// Label.
    pub label: String,
    /// Clinic.
    pub clinic_id: OrgId,
    /// Doctor.
    pub doctor_id: UserId,
    /// Lab routing.
    pub lab_id: Option<OrgId>,
    /// Status.
    pub status: CaseStatus,
    /// Status to resume to after `on_hold`.
    pub status_before_hold: Option<CaseStatus>,
    /// Due date.
    pub due_date: Option<String>,
    /// Latest seq.
    pub seq: u64,
    /// Time of the latest event.
    pub last_activity: i64,
    /// Rx fields by path.
    pub rx: BTreeMap<String, RxField>,
    /// Seq of the last Rx change (the Rx version approvals refer to).
    pub rx_version: u64,
    /// Approvals.
    pub approvals: HashMap<ApprovalId, Approval>,
    /// Proposals.
    pub proposals: HashMap<ProposalId, Proposal>,
    /// Files.
    pub files: HashMap<FileId, FileRef>,
    /// Messages.
    pub messages: HashMap<MessageId, MessageRef>,
    /// Command ids seen: (user, client id) → seq of the event they created.
    pub commands: HashMap<(UserId, String), u64>,
}

impl CaseState {
    /// Rebuilds the state from the full log. `None` if the log does not start with `case_created`.
    pub fn from_log(events: &[StoredEvent]) -> Option<Self> {
        let first = events.first()?;
        let EventData::CaseCreated { label, clinic_id, doctor_id, lab_id, due_date } = &first.data else {
            return None;
        };
        let mut state = Self {
            id: first.case_id,
            label: label.clone(),
            clinic_id: *clinic_id,
            doctor_id: *doctor_id,
            lab_id: *lab_id,
            status: CaseStatus::Draft,
            status_before_hold: None,
            due_date: due_date.clone(),
            seq: 0,
            last_activity: first.at,
            rx: BTreeMap::new(),
            rx_version: 0,
            approvals: HashMap::new(),
            proposals: HashMap::new(),
            files: HashMap::new(),
            messages: HashMap::new(),
            commands: HashMap::new(),
        };
        for ev in events {
            state.apply(ev);
        }
        Some(state)
    }

    /// Applies one event. Events are validated before they exist, so this never fails.
    pub fn apply(&mut self, ev: &StoredEvent) {
        self.seq = ev.seq;
        self.last_activity = ev.at;
        if let Some(id) = &ev.client_id {
            self.commands.insert((ev.actor, id.clone()), ev.seq);
        }
        for id in ev.data.voided_approvals() {
            if let Some(a) = self.approvals.get_mut(id) {
                a.status = ApprovalStatus::Voided;
            }
        }
        match &ev.data {
            EventData::CaseCreated { .. } => {}
            EventData::CaseUpdated { label, due_date, lab_id } => {
                if let Some(l) = label {
                    self.label = l.clone();
                }
                if let Some(d) = due_date {
                    self.due_date = d.clone();
                }
                if let Some(l) = lab_id {
                    self.lab_id = *l;
                }
            }
            EventData::StatusChanged { from, to, .. } => self.set_status(*from, *to),
            EventData::MessagePosted { message_id, .. } => {
                self.messages.insert(*message_id, MessageRef { author: ev.actor, deleted: false });
            }
            EventData::MessageEdited { .. } => {}
            EventData::MessageDeleted { message_id } => {
                if let Some(m) = self.messages.get_mut(message_id) {
                    m.deleted = true;
                }
            }
            EventData::RxEdited { changes, .. } => {
                for c in changes {
                    self.rx.insert(c.field.clone(), RxField { value: c.value.clone(), version: ev.seq });
                }
                self.rx_version = ev.seq;
            }
            EventData::RxSigned { .. } => {}
            EventData::RxProposed { proposal_id, changes, .. } => {
                self.proposals.insert(*proposal_id, Proposal { changes: changes.clone(), open: true });
            }
            EventData::RxProposalDecided { proposal_id, applied, .. } => {
                if let Some(p) = self.proposals.get_mut(proposal_id) {
                    p.open = false;
                }
                for c in applied {
                    self.rx.insert(c.field.clone(), RxField { value: c.value.clone(), version: ev.seq });
                }
                if !applied.is_empty() {
                    self.rx_version = ev.seq;
                }
            }
            EventData::ApprovalRequested { approval_id, file_id, file_sha256, rx_version, .. } => {
                self.approvals.insert(
                    *approval_id,
                    Approval {
                        file_id: *file_id,
                        file_sha256: file_sha256.clone(),
                        rx_version: *rx_version,
                        status: ApprovalStatus::Pending,
                    },
                );
                if matches!(self.status, CaseStatus::Received | CaseStatus::InDesign | CaseStatus::Approved) {
                    self.status = CaseStatus::AwaitingApproval;
                }
            }
            EventData::ApprovalDecided { approval_id, decision, .. } => {
                if let Some(a) = self.approvals.get_mut(approval_id) {
                    a.status = match decision {
                        Decision::Approve => ApprovalStatus::Approved,
                        Decision::Reject => ApprovalStatus::Rejected,
                    };
                }
                if self.status == CaseStatus::AwaitingApproval {
                    self.status = match decision {
                        Decision::Approve => CaseStatus::Approved,
                        Decision::Reject => CaseStatus::InDesign,
                    };
                }
            }
            EventData::FileAdded { file_id, sha256, file_kind, .. } => {
                self.files.insert(*file_id, FileRef { sha256: sha256.clone(), kind: *file_kind });
            }
            EventData::VoiceTranscribed { .. } => {}
        }
    }

    fn set_status(&mut self, from: CaseStatus, to: CaseStatus) {
        if to == CaseStatus::OnHold {
            self.status_before_hold = Some(from);
        } else if from == CaseStatus::OnHold {
            self.status_before_hold = None;
        }
        self.status = to;
    }

    /// Approvals that a change of the Rx voids: every pending or approved one.
    pub fn approvals_voided_by_rx_change(&self) -> Vec<ApprovalId> {
        let mut ids: Vec<_> = self
            .approvals
            .iter()
            .filter(|(_, a)| matches!(a.status, ApprovalStatus::Pending | ApprovalStatus::Approved))
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        ids
    }

    /// Approvals that a new design file voids: those on any other design file (the design changed).
    pub fn approvals_voided_by_design(&self, new_sha256: &str) -> Vec<ApprovalId> {
        let mut ids: Vec<_> = self
            .approvals
            .iter()
            .filter(|(_, a)| matches!(a.status, ApprovalStatus::Pending | ApprovalStatus::Approved))
            .filter(|(_, a)| a.file_sha256 != new_sha256)
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        ids
    }

    /// Whether the lab can see the case: routed to it and no longer a draft.
    pub fn lab_visible(&self) -> bool {
        self.lab_id.is_some() && self.status != CaseStatus::Draft
    }

    /// The projection row after the latest event.
    pub fn row(&self) -> CaseRow {
        CaseRow {
            case_id: self.id,
            label: self.label.clone(),
            status: self.status,
            status_before_hold: self.status_before_hold,
            due_date: self.due_date.clone(),
            lab_id: self.lab_id,
            last_activity: self.last_activity,
            last_seq: self.seq,
            rx_version: self.rx_version,
        }
    }

    /// The board summary, with the at-risk flag computed for `today`.
    pub fn summary(&self, today: time::Date) -> CaseSummary {
        CaseSummary {
            case_id: self.id,
            label: self.label.clone(),
            status: self.status,
            due_date: self.due_date.clone(),
            at_risk: policy::at_risk(self.status, self.status_before_hold, self.due_date.as_deref(), today),
            last_activity: self.last_activity,
            doctor_id: self.doctor_id,
            clinic_id: self.clinic_id,
            lab_id: self.lab_id,
            seq: self.seq,
        }
    }
}
