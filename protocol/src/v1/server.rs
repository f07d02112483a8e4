use serde::{Deserialize, Serialize};

use super::client::frames;
use super::domain::CaseSummary;
use super::error::ErrorCode;
use super::event::EventData;
use super::ids::{CaseId, OrgId, UserId};

/// A frame from the server: `{"v":1, "type", "data"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct ServerMessage {
    /// Protocol version, always 1.
    pub v: u8,
    /// The frame.
    #[serde(flatten)]
    pub body: ServerBody,
}

impl From<ServerBody> for ServerMessage {
    fn from(body: ServerBody) -> Self {
        Self { v: crate::VERSION, body }
    }
}

frames!(
    /// Every frame the server sends.
    ServerBody {
        /// The socket is authenticated.
        "welcome" => Welcome(Welcome),
        /// A command succeeded.
        "ack" => Ack(Ack),
        /// A command (or frame) failed; nothing changed.
        "error" => Error(ErrorFrame),
        /// A durable case event.
        "event" => Event(Event),
        /// Someone is typing in a case (ephemeral).
        "typing" => Typing(TypingFrame),
        /// Who is in a case now (ephemeral).
        "presence" => Presence(Presence),
        /// Someone read a case up to a seq.
        "receipt" => Receipt(Receipt),
        /// Status board cases (a snapshot, or changes).
        "board" => Board(Board),
        /// Activity in one of the user's cases.
        "inbox" => Inbox(Inbox),
        /// The client fell behind or lost access; resubscribe (with `since`) if still allowed.
        "resync" => Resync(Resync),
        /// Answer to `ping`.
        "pong" => Pong(Pong),
    }
);

/// `welcome`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Welcome {
    /// The authenticated user.
    pub user_id: UserId,
    /// Seconds between server heartbeats.
    pub heartbeat_secs: u64,
    /// Largest accepted frame, bytes.
    pub max_frame_bytes: u64,
}

/// `ack`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Ack {
    /// The command id.
    pub id: String,
    /// The seq of the event the command created; for `subscribe`, the case's latest seq.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// `error`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct ErrorFrame {
    /// The command id, when the frame carried a readable one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What went wrong.
    pub code: ErrorCode,
    /// A human explanation (never internals).
    pub message: String,
    /// Machine-readable details, e.g. the current value on `rx_conflict`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "unknown")]
    pub details: Option<serde_json::Value>,
}

/// `event`: one durable case event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Event {
    /// The case.
    pub case_id: CaseId,
    /// Gapless per-case sequence number, from 1.
    pub seq: u64,
    /// When it was committed, milliseconds since the Unix epoch.
    pub at: i64,
    /// Who did it.
    pub actor: UserId,
    /// `kind` and `data`.
    #[serde(flatten)]
    pub data: EventData,
}

/// `typing`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct TypingFrame {
    /// The case.
    pub case_id: CaseId,
    /// Who is typing.
    pub user_id: UserId,
}

/// `presence`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Presence {
    /// The case.
    pub case_id: CaseId,
    /// Users subscribed to the case right now.
    pub users: Vec<UserId>,
}

/// `receipt`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Receipt {
    /// The case.
    pub case_id: CaseId,
    /// Who read.
    pub user_id: UserId,
    /// Read up to and including this seq.
    pub seq: u64,
}

/// `board`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Board {
    /// The organisation whose board this is.
    pub org_id: OrgId,
    /// True for the full board sent on subscribe; false for changes.
    pub snapshot: bool,
    /// Cases added or changed (all cases when `snapshot`).
    pub cases: Vec<CaseSummary>,
    /// Cases that left the board (e.g. routed to another lab).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<CaseId>,
}

/// `inbox`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Inbox {
    /// The case.
    pub case_id: CaseId,
    /// Its label.
    pub label: String,
    /// The event's seq.
    pub seq: u64,
    /// The event's kind.
    pub kind: String,
    /// Who did it.
    pub actor: UserId,
    /// When, milliseconds since the Unix epoch.
    pub at: i64,
    /// For `message_posted`: the people the message mentions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<UserId>,
}

/// `resync`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Resync {
    /// The case, or none for the whole socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_id: Option<CaseId>,
    /// `lagged`, `access_changed`, `restarted`…
    pub reason: String,
    /// The last seq delivered on this socket for the case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<u64>,
}

/// `pong`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Pong {
    /// The ping's id, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}
