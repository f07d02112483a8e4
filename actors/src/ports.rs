//! What the actors need from storage. The server implements [`CaseStore`] on SQLite and
//! PostgreSQL; unit tests implement it in memory.

use articula_protocol::{CaseId, CaseStatus, EventData, OrgId, UserId};
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
    /// What happened.
    pub data: EventData,
}

/// The case row as the actor computed it after an event: the projection the REST API and the
/// status board read. The actor is the only source of this derived state.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseRow {
    /// The case.
    pub case_id: CaseId,
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

/// What a case actor loads when it starts: the whole log (the state is a fold over it) and the
/// read marks.
#[derive(Clone, Debug, Default)]
pub struct LoadedCase {
    /// Every event, in seq order.
    pub events: Vec<StoredEvent>,
    /// Read marks: user → seq.
    pub reads: Vec<(UserId, u64)>,
}

/// A storage failure. Details are for the log only.
#[derive(Clone, Debug, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(pub String);

/// The storage port of the actors.
pub trait CaseStore: Send + Sync + 'static {
    /// Loads a case's log; `None` when the case does not exist.
    fn load(&self, case_id: CaseId) -> BoxFuture<'static, Result<Option<LoadedCase>, StoreError>>;

    /// Makes all items durable in one transaction, or none of them.
    fn commit(&self, items: Vec<PersistItem>) -> BoxFuture<'static, Result<(), StoreError>>;

    /// Housekeeping that must not run during a commit and should not race one (SQLite empties
    /// its write-ahead log here): run by the group commit after a commit's replies went out and
    /// before the next commit starts. `None` when there is nothing to do.
    fn between_commits(&self) -> Option<BoxFuture<'static, ()>> {
        None
    }
}
