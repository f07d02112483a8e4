//! The two codecs of v1 and the envelope rules shared by both.
//!
//! Decoding a client frame is done in two steps — envelope first, then `data` by `type` — so that
//! every error can name the frame's `id` when it was readable, and the server can answer each
//! command with exactly one `ack` or `error`.

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::v1::{ClientBody, ClientMessage, ErrorCode, MAX_COMMAND_ID_LEN, ServerMessage};

/// WebSocket subprotocol of the JSON codec (text frames).
pub const JSON_SUBPROTOCOL: &str = "articula.v1+json";
/// WebSocket subprotocol of the MessagePack codec (binary frames).
pub const MSGPACK_SUBPROTOCOL: &str = "articula.v1+msgpack";

/// The longest header of an unmasked WebSocket frame (64-bit length).
const MAX_WS_HEADER: usize = 10;

/// A wire codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// JSON text frames.
    Json,
    /// MessagePack binary frames (maps with field names).
    MsgPack,
}

/// Why a frame could not be decoded. `id` is set when the envelope's id was readable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct DecodeError {
    /// The frame's command id, if readable.
    pub id: Option<String>,
    /// The error code to answer with.
    pub code: ErrorCode,
    /// What is wrong, for humans.
    pub message: String,
}

impl DecodeError {
    fn new(id: Option<String>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self { id, code, message: message.into() }
    }
}

/// Encoding failed (only for values serde cannot represent; never for protocol types).
#[derive(Debug, thiserror::Error)]
#[error("encode: {0}")]
pub struct EncodeError(String);

impl Codec {
    /// Every codec, preferred first.
    pub const ALL: [Codec; 2] = [Codec::Json, Codec::MsgPack];

    /// The codec a WebSocket subprotocol names.
    pub fn from_subprotocol(name: &str) -> Option<Codec> {
        match name {
            JSON_SUBPROTOCOL => Some(Codec::Json),
            MSGPACK_SUBPROTOCOL => Some(Codec::MsgPack),
            _ => None,
        }
    }

    /// The WebSocket subprotocol name of this codec.
    pub fn subprotocol(self) -> &'static str {
        match self {
            Codec::Json => JSON_SUBPROTOCOL,
            Codec::MsgPack => MSGPACK_SUBPROTOCOL,
        }
    }

    /// Whether frames of this codec travel as WebSocket binary frames.
    pub fn is_binary(self) -> bool {
        self == Codec::MsgPack
    }

    /// Encodes a server frame.
    pub fn encode_server(self, msg: &ServerMessage) -> Result<Vec<u8>, EncodeError> {
        self.encode(msg)
    }

    /// Encodes a server frame as a complete WebSocket frame (RFC 6455 §5.2: FIN, text for JSON
    /// or binary for MessagePack, unmasked as server frames are), ready to be written to a socket
    /// as is. A frame that goes to many sockets is encoded once and its bytes are shared.
    pub fn encode_server_frame(self, msg: &ServerMessage) -> Result<Bytes, EncodeError> {
        // The payload is serialised after room for the longest header, which is then written
        // right before it: one allocation, no copy.
        let mut buf = vec![0u8; MAX_WS_HEADER];
        match self {
            Codec::Json => serde_json::to_writer(&mut buf, msg).map_err(|e| EncodeError(e.to_string()))?,
            Codec::MsgPack => {
                rmp_serde::encode::write_named(&mut buf, msg).map_err(|e| EncodeError(e.to_string()))?
            }
        }
        let len = buf.len() - MAX_WS_HEADER;
        let opcode: u8 = if self.is_binary() { 0x2 } else { 0x1 };
        let mut header = [0u8; MAX_WS_HEADER];
        header[0] = 0x80 | opcode;
        let header_len = if len < 126 {
            header[1] = len as u8;
            2
        } else if let Ok(short) = u16::try_from(len) {
            header[1] = 126;
            header[2..4].copy_from_slice(&short.to_be_bytes());
            4
        } else {
            header[1] = 127;
            header[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        };
        let start = MAX_WS_HEADER - header_len;
        buf[start..MAX_WS_HEADER].copy_from_slice(&header[..header_len]);
        Ok(Bytes::from(buf).slice(start..))
    }

    /// Encodes a client frame (clients, tests and load generators).
    pub fn encode_client(self, msg: &ClientMessage) -> Result<Vec<u8>, EncodeError> {
        self.encode(msg)
    }

    fn encode<T: Serialize>(self, value: &T) -> Result<Vec<u8>, EncodeError> {
        match self {
            Codec::Json => serde_json::to_vec(value).map_err(|e| EncodeError(e.to_string())),
            Codec::MsgPack => rmp_serde::to_vec_named(value).map_err(|e| EncodeError(e.to_string())),
        }
    }

    /// Decodes a server frame (clients, tests and load generators).
    pub fn decode_server(self, bytes: &[u8]) -> Result<ServerMessage, DecodeError> {
        self.decode_plain(bytes)
    }

    /// Decodes any type with this codec's plain serde rules.
    pub fn decode_plain<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, DecodeError> {
        let res = match self {
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
            Codec::MsgPack => rmp_serde::from_slice(bytes).map_err(|e| e.to_string()),
        };
        res.map_err(|m| DecodeError::new(None, ErrorCode::MalformedFrame, m))
    }

    /// Decodes a client frame with the envelope rules of v1.
    pub fn decode_client(self, bytes: &[u8]) -> Result<ClientMessage, DecodeError> {
        match self {
            Codec::Json => {
                let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
                    DecodeError::new(None, ErrorCode::MalformedFrame, format!("invalid JSON: {e}"))
                })?;
                let serde_json::Value::Object(map) = value else {
                    return Err(DecodeError::new(
                        None,
                        ErrorCode::MalformedFrame,
                        "a frame must be an object",
                    ));
                };
                finish(map.into_iter().map(|(k, v)| (Some(k), v)))
            }
            Codec::MsgPack => {
                let mut rd = bytes;
                let value = rmpv::decode::read_value(&mut rd).map_err(|e| {
                    DecodeError::new(None, ErrorCode::MalformedFrame, format!("invalid MessagePack: {e}"))
                })?;
                if !rd.is_empty() {
                    return Err(DecodeError::new(
                        None,
                        ErrorCode::MalformedFrame,
                        "trailing bytes after the frame",
                    ));
                }
                let rmpv::Value::Map(entries) = value else {
                    return Err(DecodeError::new(None, ErrorCode::MalformedFrame, "a frame must be a map"));
                };
                finish(entries.into_iter().map(|(k, v)| (k.as_str().map(str::to_owned), v)))
            }
        }
    }
}

/// A format-independent view of one decoded value (JSON or MessagePack).
pub(crate) trait DataSource: Sized {
    fn parse<T: DeserializeOwned>(self) -> Result<T, BodyError>;
    fn as_u64(&self) -> Option<u64>;
    fn into_string(self) -> Option<String>;
    fn empty() -> Self;
}

/// Why a frame's `data` did not fit its `type`.
#[derive(Debug)]
pub(crate) enum BodyError {
    UnknownType,
    Invalid(String),
}

impl DataSource for serde_json::Value {
    fn parse<T: DeserializeOwned>(self) -> Result<T, BodyError> {
        serde_json::from_value(self).map_err(|e| BodyError::Invalid(e.to_string()))
    }
    fn as_u64(&self) -> Option<u64> {
        serde_json::Value::as_u64(self)
    }
    fn into_string(self) -> Option<String> {
        match self {
            serde_json::Value::String(s) => Some(s),
            _ => None,
        }
    }
    fn empty() -> Self {
        serde_json::Value::Object(serde_json::Map::new())
    }
}

impl DataSource for rmpv::Value {
    fn parse<T: DeserializeOwned>(self) -> Result<T, BodyError> {
        // rmpv's own deserializer cannot read enums written as strings; rmp-serde can, so the
        // (small) data value is re-encoded and read by rmp-serde.
        let mut buf = Vec::new();
        rmpv::encode::write_value(&mut buf, &self).map_err(|e| BodyError::Invalid(e.to_string()))?;
        rmp_serde::from_slice(&buf).map_err(|e| BodyError::Invalid(e.to_string()))
    }
    fn as_u64(&self) -> Option<u64> {
        rmpv::Value::as_u64(self)
    }
    fn into_string(self) -> Option<String> {
        match self {
            rmpv::Value::String(s) => s.into_str(),
            _ => None,
        }
    }
    fn empty() -> Self {
        rmpv::Value::Map(Vec::new())
    }
}

/// Applies the envelope rules to the entries of a decoded frame.
fn finish<D: DataSource>(
    entries: impl Iterator<Item = (Option<String>, D)>,
) -> Result<ClientMessage, DecodeError> {
    let mut v = None;
    let mut ty = None;
    let mut id = None;
    let mut data = None;
    let mut unknown = None;
    for (key, value) in entries {
        match key.as_deref() {
            Some("v") => v = Some(value),
            Some("type") => ty = Some(value),
            Some("id") => id = Some(value),
            Some("data") => data = Some(value),
            other => unknown = Some(other.unwrap_or("<non-string key>").to_owned()),
        }
    }

    let id = match id {
        None => None,
        Some(raw) => match raw.into_string() {
            Some(s) if !s.is_empty() && s.len() <= MAX_COMMAND_ID_LEN => Some(s),
            _ => {
                return Err(DecodeError::new(
                    None,
                    ErrorCode::ValidationFailed,
                    format!("`id` must be a string of 1 to {MAX_COMMAND_ID_LEN} characters"),
                ));
            }
        },
    };
    let fail = |code, msg: String| Err(DecodeError::new(id.clone(), code, msg));

    match v.as_ref().and_then(DataSource::as_u64) {
        Some(1) => {}
        Some(other) => {
            return fail(
                ErrorCode::UnsupportedVersion,
                format!("protocol version {other} is not supported; this server speaks v1"),
            );
        }
        None => return fail(ErrorCode::UnsupportedVersion, "`v` must be 1".into()),
    }
    if let Some(key) = unknown {
        return fail(ErrorCode::UnknownField, format!("unknown envelope field `{key}`"));
    }
    let Some(ty) = ty.and_then(DataSource::into_string) else {
        return fail(ErrorCode::MalformedFrame, "`type` must be a string".into());
    };
    let body = ClientBody::from_parts(&ty, data.unwrap_or_else(D::empty));
    match body {
        Ok(body) => Ok(ClientMessage { v: crate::VERSION, id, body }),
        Err(BodyError::UnknownType) => fail(ErrorCode::UnknownType, format!("unknown frame type `{ty}`")),
        Err(BodyError::Invalid(msg)) => {
            let code = if msg.contains("unknown field") {
                ErrorCode::UnknownField
            } else {
                ErrorCode::ValidationFailed
            };
            fail(code, format!("invalid `{ty}` data: {msg}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_the_id_when_readable() {
        let err = Codec::Json.decode_client(br#"{"v":1,"id":"c1","type":"nope","data":{}}"#).err();
        assert_eq!(err.as_ref().map(|e| e.code), Some(ErrorCode::UnknownType));
        assert_eq!(err.and_then(|e| e.id).as_deref(), Some("c1"));
    }

    #[test]
    fn wrong_version_is_refused() {
        let err = Codec::Json.decode_client(br#"{"v":2,"id":"c1","type":"ping"}"#).err();
        assert_eq!(err.map(|e| e.code), Some(ErrorCode::UnsupportedVersion));
    }

    #[test]
    fn unknown_fields_are_refused_in_envelope_and_data() {
        let err = Codec::Json.decode_client(br#"{"v":1,"type":"ping","x":1}"#).err();
        assert_eq!(err.map(|e| e.code), Some(ErrorCode::UnknownField));
        let err = Codec::Json.decode_client(br#"{"v":1,"id":"a","type":"ping","data":{"x":1}}"#).err();
        assert_eq!(err.map(|e| e.code), Some(ErrorCode::UnknownField));
    }

    #[test]
    fn server_frames_are_complete_websocket_frames() {
        use crate::v1::{Pong, ServerBody};
        let short = ServerMessage::from(ServerBody::Pong(Pong { id: Some("p".into()) }));
        for codec in Codec::ALL {
            let payload = codec.encode_server(&short).expect("encode");
            let frame = codec.encode_server_frame(&short).expect("frame");
            assert_eq!(frame[0], if codec.is_binary() { 0x82 } else { 0x81 }, "FIN + opcode");
            assert_eq!(frame[1] as usize, payload.len(), "7-bit length, no mask");
            assert_eq!(&frame[2..], &payload[..]);
        }
        // 16-bit and 64-bit lengths.
        for (n, header) in [(300usize, 4usize), (70_000, 10)] {
            let long = ServerMessage::from(ServerBody::Pong(Pong { id: Some("x".repeat(n)) }));
            let payload = Codec::Json.encode_server(&long).expect("encode");
            let frame = Codec::Json.encode_server_frame(&long).expect("frame");
            let len = if header == 4 {
                assert_eq!(frame[1], 126);
                u16::from_be_bytes([frame[2], frame[3]]) as usize
            } else {
                assert_eq!(frame[1], 127);
                u64::from_be_bytes(frame[2..10].try_into().expect("8 bytes")) as usize
            };
            assert_eq!(len, payload.len());
            assert_eq!(&frame[header..], &payload[..]);
        }
    }

    #[test]
    fn garbage_is_malformed() {
        for codec in Codec::ALL {
            let err = codec.decode_client(b"\xc1\xff not a frame").err();
            assert_eq!(err.map(|e| e.code), Some(ErrorCode::MalformedFrame), "{codec:?}");
        }
    }

    #[test]
    fn wrong_types_in_data_fail_validation() {
        let err =
            Codec::Json.decode_client(br#"{"v":1,"id":"a","type":"subscribe","data":{"case_id":5}}"#).err();
        assert_eq!(err.map(|e| e.code), Some(ErrorCode::ValidationFailed));
    }
}
