//! What the actors need from storage. The server implements [`CaseStore`] on SQLite and
//! PostgreSQL; unit tests implement it in memory.

use articula_protocol::{CaseId, CaseStatus, EventData, MessageId, OrgId, UserId};
use futures_util::future::BoxFuture;

/// One durable event of a case's log.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    /// The case.
    pub case_id: CaseId,
    /// Gapless per-case sequence number, from 1.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    /// Who did it.
    pub actor: UserId,
    /// The command id that created it (exactly-once retries).
    pub client_id: Option<String>,
    /// Digest of the command that created it, to tell a retry from another command reusing
    /// the id (`None` for events without a client id, and for events stored before digests).
    pub digest: Option<u64>,
    /// The address the command came from, for its audit entry (never sent to clients).
    pub ip: Option<String>,
    /// What happened.
    pub data: EventData,
}

/// The case row as the actor computed it after an event: the projection the REST API and the
/// status board read. The actor is the only source of this derived state.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseRow {
    /// The case.
    pub case_id: CaseId,
    /// Its clinic.
    pub clinic_id: OrgId,
    /// Label.
    pub label: String,
    /// Status.
    pub status: CaseStatus,
    /// Status before `on_hold`.
    pub status_before_hold: Option<CaseStatus>,
    /// Due date `YYYY-MM-DD`.
    pub due_date: Option<String>,
    /// Lab routing.
    pub lab_id: Option<OrgId>,
    /// Last activity (ms).
    pub last_activity: i64,
    /// Latest seq.
    pub last_seq: u64,
    /// Seq of the last Rx change.
    pub rx_version: u64,
}

/// Something to make durable in a group commit.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // events are the common case; boxing them would cost an allocation each
pub enum PersistItem {
    /// A new event, with the case row after it.
    Event {
        /// The event.
        event: StoredEvent,
        /// The case row after the event.
        row: CaseRow,
    },
    /// A snapshot of the case's state after the event of `seq` (stored with that event).
    Snapshot {
        /// The case.
        case_id: CaseId,
        /// The seq it folds up to.
        seq: u64,
        /// Its format.
        version: u32,
        /// The state, serialised by the case actor.
        data: String,
    },
    /// A read receipt (not part of the event log).
    ReadMark {
        /// The case.
        case_id: CaseId,
        /// Who read.
        user_id: UserId,
        /// Up to which seq.
        seq: u64,
        /// When (ms).
        at: i64,
    },
}

impl PersistItem {
    /// The case it belongs to.
    pub fn case_id(&self) -> CaseId {
        match self {
            PersistItem::Event { event, .. } => event.case_id,
            PersistItem::Snapshot { case_id, .. } | PersistItem::ReadMark { case_id, .. } => *case_id,
        }
    }
}

/// A stored snapshot of a case's state.
#[derive(Clone, Debug)]
pub struct LoadedSnapshot {
    /// The seq it folds up to.
    pub seq: u64,
    /// The state.
    pub data: String,
}

/// What a case actor loads when it starts: its latest snapshot of the wanted format (if any),
/// the events after it (the whole log when there is none), and the read marks.
#[derive(Clone, Debug, Default)]
pub struct LoadedCase {
    /// The latest snapshot.
    pub snapshot: Option<LoadedSnapshot>,
    /// The events after the snapshot, in seq order.
    pub events: Vec<StoredEvent>,
    /// Read marks: user → seq.
    pub reads: Vec<(UserId, u64)>,
}

/// A chat message as the store knows it (for messages the case actor no longer remembers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// Author.
    pub author: UserId,
    /// Deleted.
    pub deleted: bool,
    /// Seq of the event that posted it.
    pub seq: u64,
}

/// The seq and command digest of the event a command id created, if any.
pub type FoundCommand = Result<Option<(u64, Option<u64>)>, StoreError>;

/// Whether retrying a failed write can help.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// The database is unreachable, overloaded, restarting or out of space: retry later.
    Transient,
    /// The data itself was refused (a constraint, an encoding): the same write fails again.
    Permanent,
    /// An event reuses a command id already stored for the same user and case.
    Duplicate,
}

/// A storage failure. Details are for the log only.
#[derive(Clone, Debug, thiserror::Error)]
#[error("store: {message}")]
pub struct StoreError {
    /// Whether a retry can help.
    pub kind: StoreErrorKind,
    /// What failed (for the log).
    pub message: String,
}

impl StoreError {
    /// A failure a retry may not meet.
    pub fn transient(message: impl Into<String>) -> Self {
        Self { kind: StoreErrorKind::Transient, message: message.into() }
    }

    /// A failure that a retry meets again.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self { kind: StoreErrorKind::Permanent, message: message.into() }
    }
}

/// The storage port of the actors.
pub trait CaseStore: Send + Sync + 'static {
    /// Loads a case: its latest snapshot of format `snapshot_version` and the events after it;
    /// `None` when the case does not exist.
    fn load(
        &self,
        case_id: CaseId,
        snapshot_version: u32,
    ) -> BoxFuture<'static, Result<Option<LoadedCase>, StoreError>>;

    /// Makes all items durable in one transaction, or none of them.
    fn commit(&self, items: Vec<PersistItem>) -> BoxFuture<'static, Result<(), StoreError>>;

    /// A chat message of a case, as committed.
    fn message(
        &self,
        case_id: CaseId,
        message_id: MessageId,
    ) -> BoxFuture<'static, Result<Option<StoredMessage>, StoreError>>;

    /// The event a command id created: its seq and command digest.
    fn find_command(
        &self,
        case_id: CaseId,
        actor: UserId,
        client_id: String,
    ) -> BoxFuture<'static, FoundCommand>;

    /// Housekeeping that must not run during a commit and should not race one (SQLite empties
    /// its write-ahead log here): run by the group commit after a commit's replies went out and
    /// before the next commit starts. `None` when there is nothing to do.
    fn between_commits(&self) -> Option<BoxFuture<'static, ()>> {
        None
    }
}
