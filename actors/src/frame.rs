//! Outbound frames, encoded once per codec and shared by every socket that receives them.

use std::sync::Arc;

use articula_protocol::{CaseId, Codec, Event, EventData, MessageId, ServerBody, ServerMessage, UserId};
use bytes::Bytes;

use crate::policy::Visibility;
use crate::ports::StoredEvent;

/// What a frame is, for the sockets that route it without decoding it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// A durable case event; `seq` is set.
    Event,
    /// Typing, presence, receipts: not durable, never replayed.
    Ephemeral,
    /// A status board change.
    Board,
    /// An inbox item.
    Inbox,
    /// Not for clients: a case actor restarted, and events up to `seq` are durable although
    /// subscribers may not have received them (their commit's broadcast was lost with the
    /// actor). Subscribers behind `seq` fetch the missing range from the log.
    Head,
}

/// A server frame in both encodings, each already a complete WebSocket frame: a socket writes
/// the shared bytes as they are (no per-socket encoding, framing or copy).
#[derive(Debug)]
pub struct Frame {
    /// What it is.
    pub kind: FrameKind,
    /// The case it is about.
    pub case_id: Option<CaseId>,
    /// The event's seq (0 when not an event).
    pub seq: u64,
    /// The case's doctor (board and inbox frames), so doctors' sockets keep only their own cases.
    pub doctor_id: Option<UserId>,
    /// Who caused it (inbox frames skip one's own actions, sockets skip their own typing).
    pub actor: Option<UserId>,
    /// Events: who may see the case after this event. A socket whose user no longer may loses
    /// the case at this frame and does not receive it.
    pub visibility: Option<Visibility>,
    /// Events posting or editing a chat message: the message (deleting it withdraws such
    /// frames from the resume ring).
    pub message_id: Option<MessageId>,
    /// The JSON encoding as a WebSocket text frame.
    pub ws_json: Bytes,
    /// The MessagePack encoding as a WebSocket binary frame.
    pub ws_msgpack: Bytes,
}

/// Encoding a server frame failed; only possible with a bug in the protocol types.
#[derive(Debug, thiserror::Error)]
#[error("frame encoding failed: {0}")]
pub struct FrameError(String);

impl Frame {
    /// Encodes `body` in both codecs.
    pub fn encode(kind: FrameKind, body: ServerBody) -> Result<Self, FrameError> {
        let msg = ServerMessage::from(body);
        let ws_json = Codec::Json.encode_server_frame(&msg).map_err(|e| FrameError(e.to_string()))?;
        let ws_msgpack = Codec::MsgPack.encode_server_frame(&msg).map_err(|e| FrameError(e.to_string()))?;
        Ok(Self {
            kind,
            case_id: None,
            seq: 0,
            doctor_id: None,
            actor: None,
            visibility: None,
            message_id: None,
            ws_json,
            ws_msgpack,
        })
    }

    /// The `event` frame of a stored event, with the case's visibility after it.
    pub fn event(ev: &StoredEvent, visibility: Visibility) -> Result<Arc<Self>, FrameError> {
        let body = ServerBody::Event(Event {
            case_id: ev.case_id,
            seq: ev.seq,
            at: ev.at,
            actor: ev.actor,
            data: ev.data.clone(),
        });
        let mut frame = Self::encode(FrameKind::Event, body)?;
        frame.case_id = Some(ev.case_id);
        frame.seq = ev.seq;
        frame.actor = Some(ev.actor);
        frame.visibility = Some(visibility);
        frame.message_id = match &ev.data {
            EventData::MessagePosted { message_id, .. } | EventData::MessageEdited { message_id, .. } => {
                Some(*message_id)
            }
            _ => None,
        };
        Ok(Arc::new(frame))
    }

    /// The internal marker of a restarted case's durable head (never written to a socket).
    pub fn head(case_id: CaseId, seq: u64) -> Arc<Self> {
        Arc::new(Self {
            kind: FrameKind::Head,
            case_id: Some(case_id),
            seq,
            doctor_id: None,
            actor: None,
            visibility: None,
            message_id: None,
            ws_json: Bytes::new(),
            ws_msgpack: Bytes::new(),
        })
    }

    /// An ephemeral frame about a case.
    pub fn ephemeral(case_id: CaseId, body: ServerBody) -> Result<Arc<Self>, FrameError> {
        let mut frame = Self::encode(FrameKind::Ephemeral, body)?;
        frame.case_id = Some(case_id);
        Ok(Arc::new(frame))
    }

    /// The WebSocket frame for a codec.
    pub fn wire(&self, codec: Codec) -> &Bytes {
        match codec {
            Codec::Json => &self.ws_json,
            Codec::MsgPack => &self.ws_msgpack,
        }
    }
}
