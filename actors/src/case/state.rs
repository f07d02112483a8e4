//! A case's state as a fold over its event log. The case actor rebuilds it from its latest
//! snapshot and the events after it when it starts, and applies each new event to it; nothing
//! else computes it.
//!
//! What grows with a case's history is bounded here, because cases live for years: chat
//! messages are remembered only for the latest [`MESSAGE_CACHE`] touched (older ones are looked
//! up in the store when someone edits, deletes or replies to them), and command ids for the
//! latest [`COMMAND_WINDOW`] commands (a retry of an older one is caught by the database's
//! unique index on `(case_id, actor_id, client_id)`).

use std::collections::{BTreeMap, HashMap, VecDeque};

use articula_protocol::{
    ApprovalId, ApprovalStatus, CaseId, CaseStatus, CaseSummary, Decision, EventData, FileId, FileKind,
    MessageId, OrgId, ProposalId, RxChange, UserId,
};

use serde::{Deserialize, Serialize};

use crate::policy::{self, GrantRule, Visibility};
use crate::ports::{CaseRow, StoredEvent};

/// Chat messages whose author and state the actor keeps in memory.
pub const MESSAGE_CACHE: usize = 2048;
/// Command ids the actor remembers for exactly-once retries.
pub const COMMAND_WINDOW: usize = 1024;
/// The snapshot format; a snapshot of another version is ignored and rebuilt from the log.
pub const SNAPSHOT_VERSION: u32 = 1;

/// One Rx field: its value and the seq of the event that last changed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RxField {
    /// Current value.
    pub value: Option<String>,
    /// Version = seq of the last change.
    pub version: u64,
}

/// An approval request.
#[derive(Clone, Debug, Serialize, Deserialize)]
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
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Proposal {
    /// The proposed changes.
    pub changes: Vec<RxChange>,
    /// Still waiting for the doctor.
    pub open: bool,
}

/// A file of the case.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FileRef {
    /// SHA-256, hex.
    pub sha256: String,
    /// Kind.
    pub kind: FileKind,
}

/// A chat message's author and whether it was deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageRef {
    /// Author.
    pub author: UserId,
    /// Soft-deleted.
    pub deleted: bool,
    /// Seq of the event that posted it.
    pub seq: u64,
}

/// The latest messages touched (posted, edited, deleted, looked up), bounded.
#[derive(Clone, Debug, Default)]
pub struct MessageCache {
    map: HashMap<MessageId, (MessageRef, u64)>,
    /// (touch seq, message) in touch order; stale pairs are skipped when evicting.
    order: VecDeque<(u64, MessageId)>,
    /// Whether some message of the case is not in the cache (evicted, or never loaded).
    incomplete: bool,
}

impl MessageCache {
    /// The message, when remembered.
    pub fn get(&self, id: &MessageId) -> Option<&MessageRef> {
        self.map.get(id).map(|(m, _)| m)
    }

    /// Whether a message missing from the cache may still exist (then the store knows).
    pub fn incomplete(&self) -> bool {
        self.incomplete
    }

    /// Remembers a message as touched at `touch` (a seq; in-flight changes are the newest, so
    /// they are never evicted before they are durable).
    pub fn put(&mut self, id: MessageId, m: MessageRef, touch: u64) {
        self.map.insert(id, (m, touch));
        self.order.push_back((touch, id));
        while self.map.len() > MESSAGE_CACHE {
            let Some((t, old)) = self.order.pop_front() else { break };
            if self.map.get(&old).is_some_and(|(_, latest)| *latest == t) {
                self.map.remove(&old);
                self.incomplete = true;
            }
        }
        // Stale pairs (messages touched again later) would otherwise accumulate.
        if self.order.len() > 4 * MESSAGE_CACHE {
            let map = &self.map;
            self.order.retain(|(t, id)| map.get(id).is_some_and(|(_, latest)| latest == t));
        }
    }

    fn mark_incomplete(&mut self) {
        self.incomplete = true;
    }

    /// How many are remembered.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// A command id's effect: the seq of the event it created and a digest of the command, so that
/// a retry with the same id but another command is told apart from a real retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandMark {
    /// The event it created.
    pub seq: u64,
    /// Digest of the command ([`super::command_digest`]); `None` for events stored before
    /// digests existed.
    pub digest: Option<u64>,
}

/// The latest command ids, bounded.
#[derive(Clone, Debug, Default)]
pub struct CommandWindow {
    map: HashMap<(UserId, String), CommandMark>,
    order: VecDeque<(UserId, String)>,
}

impl CommandWindow {
    /// The effect of a command id, when remembered.
    pub fn get(&self, user: UserId, id: &str) -> Option<CommandMark> {
        self.map.get(&(user, id.to_owned())).copied()
    }

    /// Remembers a command id.
    pub fn insert(&mut self, user: UserId, id: String, mark: CommandMark) {
        let key = (user, id);
        if self.map.insert(key.clone(), mark).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > COMMAND_WINDOW {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }

    /// How many are remembered.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
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
    /// The latest messages.
    pub messages: MessageCache,
    /// The latest command ids: (user, client id) → the event they created.
    pub commands: CommandWindow,
    /// Per-case grants (sorted by user), as the visibility rule reads them.
    pub grants: std::sync::Arc<[GrantRule]>,
}

/// A case state as stored in a snapshot (format [`SNAPSHOT_VERSION`]): everything but the
/// message cache.
#[derive(Serialize, Deserialize)]
struct SnapshotV1 {
    id: CaseId,
    label: String,
    clinic_id: OrgId,
    doctor_id: UserId,
    lab_id: Option<OrgId>,
    status: CaseStatus,
    status_before_hold: Option<CaseStatus>,
    due_date: Option<String>,
    seq: u64,
    last_activity: i64,
    rx: BTreeMap<String, RxField>,
    rx_version: u64,
    approvals: Vec<(ApprovalId, Approval)>,
    proposals: Vec<(ProposalId, Proposal)>,
    files: Vec<(FileId, FileRef)>,
    /// Oldest first.
    commands: Vec<(UserId, String, CommandMark)>,
    /// Per-case grants (absent in snapshots made before grants existed).
    #[serde(default)]
    grants: Vec<GrantRule>,
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
            messages: MessageCache::default(),
            commands: CommandWindow::default(),
            grants: std::sync::Arc::from(Vec::new()),
        };
        for ev in events {
            state.apply(ev, ev.digest);
        }
        Some(state)
    }

    /// The state as a snapshot (JSON), to be stored with the event of seq `self.seq`.
    pub fn snapshot(&self) -> Result<String, serde_json::Error> {
        let mut approvals: Vec<_> = self.approvals.iter().map(|(k, v)| (*k, v.clone())).collect();
        approvals.sort_by_key(|(k, _)| *k);
        let mut proposals: Vec<_> = self.proposals.iter().map(|(k, v)| (*k, v.clone())).collect();
        proposals.sort_by_key(|(k, _)| *k);
        let mut files: Vec<_> = self.files.iter().map(|(k, v)| (*k, v.clone())).collect();
        files.sort_by_key(|(k, _)| *k);
        let commands = self
            .commands
            .order
            .iter()
            .filter_map(|k| self.commands.map.get(k).map(|m| (k.0, k.1.clone(), *m)))
            .collect();
        serde_json::to_string(&SnapshotV1 {
            id: self.id,
            label: self.label.clone(),
            clinic_id: self.clinic_id,
            doctor_id: self.doctor_id,
            lab_id: self.lab_id,
            status: self.status,
            status_before_hold: self.status_before_hold,
            due_date: self.due_date.clone(),
            seq: self.seq,
            last_activity: self.last_activity,
            rx: self.rx.clone(),
            rx_version: self.rx_version,
            approvals,
            proposals,
            files,
            commands,
            grants: self.grants.to_vec(),
        })
    }

    /// A state from a snapshot of this format. Its message cache is empty and marked incomplete:
    /// messages are looked up in the store when needed.
    pub fn from_snapshot(data: &str) -> Result<Self, serde_json::Error> {
        let s: SnapshotV1 = serde_json::from_str(data)?;
        let mut commands = CommandWindow::default();
        for (user, id, mark) in s.commands {
            commands.insert(user, id, mark);
        }
        let mut messages = MessageCache::default();
        messages.mark_incomplete();
        Ok(Self {
            id: s.id,
            label: s.label,
            clinic_id: s.clinic_id,
            doctor_id: s.doctor_id,
            lab_id: s.lab_id,
            status: s.status,
            status_before_hold: s.status_before_hold,
            due_date: s.due_date,
            seq: s.seq,
            last_activity: s.last_activity,
            rx: s.rx,
            rx_version: s.rx_version,
            approvals: s.approvals.into_iter().collect(),
            proposals: s.proposals.into_iter().collect(),
            files: s.files.into_iter().collect(),
            messages,
            commands,
            grants: s.grants.into(),
        })
    }

    /// Applies one event (with the digest of the command that made it, when known). Events are
    /// validated before they exist, so this never fails.
    pub fn apply(&mut self, ev: &StoredEvent, digest: Option<u64>) {
        self.seq = ev.seq;
        self.last_activity = ev.at;
        if let Some(id) = &ev.client_id {
            self.commands.insert(ev.actor, id.clone(), CommandMark { seq: ev.seq, digest });
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
                self.messages.put(
                    *message_id,
                    MessageRef { author: ev.actor, deleted: false, seq: ev.seq },
                    ev.seq,
                );
            }
            EventData::MessageEdited { message_id, .. } => {
                // Validated against a remembered (or looked-up) message, so it is here.
                if let Some(m) = self.messages.get(message_id).copied() {
                    self.messages.put(*message_id, m, ev.seq);
                }
            }
            EventData::MessageDeleted { message_id } => {
                if let Some(m) = self.messages.get(message_id).copied() {
                    self.messages.put(*message_id, MessageRef { deleted: true, ..m }, ev.seq);
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
                    // A decided proposal is never applied again: its changes live in the log.
                    p.changes = Vec::new();
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
            EventData::GrantGiven { .. }
            | EventData::GrantRevoked { .. }
            | EventData::GrantExpired { .. } => {
                // One rule for the state and for readers replaying events.
                self.grants = self.visibility().after(&ev.data).grants;
            }
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

    /// Who may see the case, as it is now.
    pub fn visibility(&self) -> Visibility {
        let effective =
            if self.status == CaseStatus::OnHold { self.status_before_hold } else { Some(self.status) };
        Visibility {
            clinic_id: self.clinic_id,
            doctor_id: self.doctor_id,
            lab_id: self.lab_id,
            submitted: effective != Some(CaseStatus::Draft),
            grants: self.grants.clone(),
        }
    }

    /// Whether the lab can see the case: routed to it and submitted (a draft put on hold is
    /// still a draft).
    pub fn lab_visible(&self) -> bool {
        self.visibility().lab_visible()
    }

    /// The projection row after the latest event.
    pub fn row(&self) -> CaseRow {
        CaseRow {
            case_id: self.id,
            clinic_id: self.clinic_id,
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
            days_needed: policy::lead_days(self.status, self.status_before_hold),
            days_left: policy::days_left(self.due_date.as_deref(), today),
            last_activity: self.last_activity,
            doctor_id: self.doctor_id,
            clinic_id: self.clinic_id,
            lab_id: self.lab_id,
            seq: self.seq,
        }
    }
}

#[cfg(test)]
mod tests {
    use articula_protocol::{CaseStatus, EventData, MessageId, OrgId, UserId};

    use super::*;
    use crate::policy::{CaseAccess, Principal};

    struct Log {
        events: Vec<StoredEvent>,
        case: CaseId,
        doctor: UserId,
    }

    impl Log {
        fn new(lab: Option<OrgId>) -> (Self, OrgId) {
            let (case, doctor, clinic) = (CaseId::new(), UserId::new(), OrgId::new());
            let mut log = Self { events: Vec::new(), case, doctor };
            log.push(EventData::CaseCreated {
                label: "Crown".into(),
                clinic_id: clinic,
                doctor_id: doctor,
                lab_id: lab,
                due_date: None,
            });
            (log, clinic)
        }

        fn push(&mut self, data: EventData) -> &StoredEvent {
            let seq = self.events.len() as u64 + 1;
            let client_id = Some(format!("c{seq}"));
            self.events.push(StoredEvent {
                case_id: self.case,
                seq,
                at: seq as i64,
                actor: self.doctor,
                client_id,
                digest: Some(seq),
                ip: None,
                data,
            });
            self.events.last().unwrap_or_else(|| unreachable!())
        }

        fn status(&mut self, from: CaseStatus, to: CaseStatus) {
            self.push(EventData::StatusChanged { from, to, reason: None });
        }
    }

    #[test]
    fn the_visibility_replayed_from_events_is_the_states_at_every_event() {
        let (lab, other_lab) = (OrgId::new(), OrgId::new());
        let (mut log, _) = Log::new(Some(lab));
        use CaseStatus::*;
        log.status(Draft, OnHold);
        log.status(OnHold, Draft);
        log.status(Draft, Submitted);
        log.status(Submitted, OnHold);
        log.push(EventData::CaseUpdated { label: None, due_date: None, lab_id: Some(Some(other_lab)) });
        log.status(OnHold, Submitted);
        log.status(Submitted, Received);
        let mut state = CaseState::from_log(&log.events[..1]).unwrap_or_else(|| unreachable!());
        let mut replayed = state.visibility();
        let mut seen = Vec::new();
        for ev in &log.events[1..] {
            state.apply(ev, ev.digest);
            replayed = replayed.after(&ev.data);
            assert_eq!(replayed, state.visibility(), "after seq {}", ev.seq);
            seen.push(state.lab_visible());
        }
        // A draft put on hold is still a draft; once submitted, hold does not hide it.
        assert_eq!(seen, [false, false, true, true, true, true, true]);
    }

    #[test]
    fn the_lab_sees_a_case_only_while_routed_to_it_and_submitted() {
        let lab = OrgId::new();
        let (mut log, clinic) = Log::new(Some(lab));
        let tech = Principal::new(UserId::new(), [(lab, articula_protocol::Role::LabTech)]);
        let admin = Principal::new(UserId::new(), [(clinic, articula_protocol::Role::ClinicAdmin)]);
        let colleague = Principal::new(UserId::new(), [(clinic, articula_protocol::Role::Doctor)]);
        let mut state = CaseState::from_log(&log.events).unwrap_or_else(|| unreachable!());
        assert!(!CaseAccess::of(&tech, &state.visibility()).any());
        assert!(CaseAccess::of(&admin, &state.visibility()).clinic_admin);
        assert!(!CaseAccess::of(&colleague, &state.visibility()).any(), "doctors see their own cases only");
        log.status(CaseStatus::Draft, CaseStatus::Submitted);
        state.apply(&log.events[1], None);
        assert!(CaseAccess::of(&tech, &state.visibility()).lab_tech);
    }

    #[test]
    fn a_snapshot_restores_everything_but_the_message_cache() {
        let (mut log, _) = Log::new(None);
        log.push(EventData::MessagePosted {
            message_id: MessageId::new(),
            text: "hi".into(),
            attachments: vec![],
            reply_to: None,
            mentions: vec![],
        });
        log.push(EventData::RxEdited {
            changes: vec![articula_protocol::RxFieldValue {
                field: "teeth.11.shade".into(),
                value: Some("A2".into()),
            }],
            voided_approvals: vec![],
        });
        let state = CaseState::from_log(&log.events).unwrap_or_else(|| unreachable!());
        let back =
            CaseState::from_snapshot(&state.snapshot().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((back.seq, back.rx_version, back.status), (3, 3, CaseStatus::Draft));
        assert_eq!(back.rx, state.rx);
        assert_eq!(back.commands.get(log.doctor, "c2"), Some(CommandMark { seq: 2, digest: Some(2) }));
        assert!(back.messages.is_empty() && back.messages.incomplete());
        assert!(!state.messages.incomplete());
    }

    #[test]
    fn memory_of_messages_and_command_ids_is_bounded() {
        let (mut log, _) = Log::new(None);
        for _ in 0..(MESSAGE_CACHE + COMMAND_WINDOW) {
            log.push(EventData::MessagePosted {
                message_id: MessageId::new(),
                text: "x".into(),
                attachments: vec![],
                reply_to: None,
                mentions: vec![],
            });
        }
        let state = CaseState::from_log(&log.events).unwrap_or_else(|| unreachable!());
        assert_eq!(state.messages.len(), MESSAGE_CACHE);
        assert!(state.messages.incomplete());
        assert_eq!(state.commands.len(), COMMAND_WINDOW);
        assert!(state.commands.get(log.doctor, "c2").is_none());
        let last = format!("c{}", log.events.len());
        assert!(state.commands.get(log.doctor, &last).is_some());
    }
}
