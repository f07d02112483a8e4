use serde::{Deserialize, Serialize};

use super::domain::{CaseStatus, Decision, RxChange};
use super::event::double_option;
use super::ids::{ApprovalId, CaseId, FileId, MessageId, OrgId, ProposalId, UserId};

/// Declares a family of frames: the enum (serde: `"type"` + `"data"`), the wire name of each
/// variant, and the table the decoder dispatches on. One list, so encoding, decoding and the
/// documentation of the type names cannot drift apart.
macro_rules! frames {
    ($(#[$m:meta])* $enum:ident { $( $(#[$d:meta])* $wire:literal => $var:ident($data:ty) ),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ts_rs::TS)]
        #[serde(tag = "type", content = "data")]
        pub enum $enum {
            $( $(#[$d])* #[serde(rename = $wire)] $var($data), )+
        }

        impl $enum {
            /// Every wire type name of this family.
            pub const TYPES: &'static [&'static str] = &[$($wire),+];

            /// The wire type name of this frame.
            pub fn type_name(&self) -> &'static str {
                match self { $( Self::$var(_) => $wire, )+ }
            }

            #[allow(dead_code)] // the server decodes only client frames
            pub(crate) fn from_parts<S: crate::codec::DataSource>(
                ty: &str,
                data: S,
            ) -> Result<Self, crate::codec::BodyError> {
                match ty {
                    $( $wire => data.parse::<$data>().map(Self::$var), )+
                    _ => Err(crate::codec::BodyError::UnknownType),
                }
            }
        }
    };
}
pub(crate) use frames;

/// A frame from a client: `{"v":1, "id", "type", "data"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct ClientMessage {
    /// Protocol version, always 1.
    pub v: u8,
    /// Client-chosen command id (1–64 characters, unique per user, a UUID is best). The answer to
    /// the frame carries it; retrying a command with the same id never repeats its effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The command.
    #[serde(flatten)]
    pub body: ClientBody,
}

impl ClientMessage {
    /// A v1 frame with an id.
    pub fn new(id: impl Into<String>, body: ClientBody) -> Self {
        Self { v: crate::VERSION, id: Some(id.into()), body }
    }
}

/// Longest accepted command id.
pub const MAX_COMMAND_ID_LEN: usize = 64;

frames!(
    /// Every command a client can send.
    ClientBody {
        /// Authenticate the socket when no cookie or `Authorization` header was sent.
        "auth" => Auth(Auth),
        /// Receive a case's events after `since`, then live ones.
        "subscribe" => Subscribe(Subscribe),
        /// Stop receiving a case's events.
        "unsubscribe" => Unsubscribe(CaseRef),
        /// Post a chat message.
        "post_message" => PostMessage(PostMessage),
        /// Edit one's own chat message.
        "edit_message" => EditMessage(EditMessage),
        /// Delete one's own chat message (soft delete).
        "delete_message" => DeleteMessage(MessageRef),
        /// Mark the case read up to `seq`.
        "mark_read" => MarkRead(MarkRead),
        /// Tell the case's subscribers the user is typing (ephemeral).
        "typing" => Typing(CaseRef),
        /// Edit Rx fields (doctor).
        "edit_rx" => EditRx(EditRx),
        /// Sign the Rx at its current version (doctor).
        "sign_rx" => SignRx(SignRx),
        /// Propose Rx changes (lab).
        "propose_rx" => ProposeRx(ProposeRx),
        /// Accept or decline a lab proposal (doctor).
        "decide_rx_proposal" => DecideRxProposal(DecideRxProposal),
        /// Ask the doctor to approve a design file (lab).
        "request_approval" => RequestApproval(RequestApproval),
        /// Approve or reject a design (doctor).
        "decide_approval" => DecideApproval(DecideApproval),
        /// Move the case to another status.
        "set_status" => SetStatus(SetStatus),
        /// Change the case's label, due date or lab routing.
        "update_case" => UpdateCase(UpdateCase),
        /// Receive the status board of an organisation.
        "subscribe_board" => SubscribeBoard(SubscribeBoard),
        /// Stop receiving the status board.
        "unsubscribe_board" => UnsubscribeBoard(Empty),
        /// Receive the user's inbox (activity in cases the user can see, by others).
        "subscribe_inbox" => SubscribeInbox(Empty),
        /// Keep-alive; answered with `pong`.
        "ping" => Ping(Empty),
    }
);

impl ClientBody {
    /// The case a command is about, if any.
    pub fn case_id(&self) -> Option<CaseId> {
        use ClientBody::*;
        match self {
            Subscribe(s) => Some(s.case_id),
            Unsubscribe(c) | Typing(c) => Some(c.case_id),
            PostMessage(c) => Some(c.case_id),
            EditMessage(c) => Some(c.case_id),
            DeleteMessage(c) => Some(c.case_id),
            MarkRead(c) => Some(c.case_id),
            EditRx(c) => Some(c.case_id),
            SignRx(c) => Some(c.case_id),
            ProposeRx(c) => Some(c.case_id),
            DecideRxProposal(c) => Some(c.case_id),
            RequestApproval(c) => Some(c.case_id),
            DecideApproval(c) => Some(c.case_id),
            SetStatus(c) => Some(c.case_id),
            UpdateCase(c) => Some(c.case_id),
            Auth(_) | SubscribeBoard(_) | UnsubscribeBoard(_) | SubscribeInbox(_) | Ping(_) => None,
        }
    }
}

/// No data.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// `auth`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// An access token.
    pub token: String,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth { token: *** }")
    }
}

/// `subscribe`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct Subscribe {
    /// The case.
    pub case_id: CaseId,
    /// The last `seq` the client has; absent or 0 replays the whole log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
}

/// A command that names only a case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct CaseRef {
    /// The case.
    pub case_id: CaseId,
}

/// `post_message`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    /// The case.
    pub case_id: CaseId,
    /// The text (1–10,000 characters).
    pub text: String,
    /// Files of the case to attach.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<FileId>,
    /// The message answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<MessageId>,
    /// People the message mentions (`@Name` in its text): at most 20, each counted in that
    /// person's unread mentions and told in their inbox.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<UserId>,
}

/// `edit_message`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct EditMessage {
    /// The case.
    pub case_id: CaseId,
    /// The message.
    pub message_id: MessageId,
    /// The new text.
    pub text: String,
}

/// A command that names a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct MessageRef {
    /// The case.
    pub case_id: CaseId,
    /// The message.
    pub message_id: MessageId,
}

/// `mark_read`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct MarkRead {
    /// The case.
    pub case_id: CaseId,
    /// Read up to and including this seq.
    pub seq: u64,
}

/// `edit_rx`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct EditRx {
    /// The case.
    pub case_id: CaseId,
    /// The changes, applied together or not at all.
    pub changes: Vec<RxChange>,
}

/// `sign_rx`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct SignRx {
    /// The case.
    pub case_id: CaseId,
    /// The Rx version the doctor read and signs.
    pub rx_version: u64,
}

/// `propose_rx`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct ProposeRx {
    /// The case.
    pub case_id: CaseId,
    /// The proposed changes.
    pub changes: Vec<RxChange>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `decide_rx_proposal`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct DecideRxProposal {
    /// The case.
    pub case_id: CaseId,
    /// The proposal.
    pub proposal_id: ProposalId,
    /// Accept (apply) or decline.
    pub accept: bool,
    /// A comment for the lab.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// `request_approval`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct RequestApproval {
    /// The case.
    pub case_id: CaseId,
    /// SHA-256 (hex) of a design file of the case.
    pub file_sha256: String,
    /// A note for the doctor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// `decide_approval`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct DecideApproval {
    /// The case.
    pub case_id: CaseId,
    /// The approval.
    pub approval_id: ApprovalId,
    /// Approve or reject.
    pub decision: Decision,
    /// The doctor's comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// `set_status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct SetStatus {
    /// The case.
    pub case_id: CaseId,
    /// The new status.
    pub status: CaseStatus,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `update_case`: only the present fields change; `null` clears.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct UpdateCase {
    /// The case.
    pub case_id: CaseId,
    /// New label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// New due date `YYYY-MM-DD`, or null to clear.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    #[ts(optional, type = "string | null")]
    pub due_date: Option<Option<String>>,
    /// New lab, or null to unroute.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    #[ts(optional, type = "string | null")]
    pub lab_id: Option<Option<OrgId>>,
}

/// `subscribe_board`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct SubscribeBoard {
    /// The organisation, when the user belongs to more than one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<OrgId>,
}
