//! Articula's actors: one [`CaseActor`] per live case (the only writer of its case), the
//! [`CaseRegistry`] that finds or starts them, the [`PersistenceActor`] that commits the events
//! of all cases in groups, and the hubs that carry board and inbox updates.
//!
//! No HTTP and no SQL here: storage is reached through the [`ports::CaseStore`] trait, which the
//! server implements for SQLite and PostgreSQL.

pub mod case;
pub mod clock;
pub mod error;
pub mod frame;
pub mod hubs;
pub mod persistence;
pub mod policy;
pub mod ports;
pub mod registry;
pub mod rx;
pub mod text;

pub use case::{
    Answer, Backlog, CaseActor, CaseCommand, Command, CommandReply, PresenceGuard, Reply, Subscribe,
    Subscription, command_digest,
};
pub use error::CommandError;
pub use frame::{Frame, FrameKind};
pub use hubs::OrgHubs;
pub use persistence::{PersistenceActor, PersistenceConfig, QueueDepth};
pub use policy::{CaseAccess, Principal, Visibility};
pub use registry::{CaseConfig, CaseRegistry};
