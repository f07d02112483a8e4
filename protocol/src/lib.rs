//! The Articula wire protocol, version 1.
//!
//! Every WebSocket frame is an envelope `{"v":1, "type", "id", "data"}`. Clients send
//! [`ClientMessage`]s, the server answers with [`ServerMessage`]s. Two codecs carry the same
//! envelope: JSON text frames (`articula.v1+json`) and MessagePack binary frames
//! (`articula.v1+msgpack`, maps with field names). This crate does no I/O.
//!
//! Changes inside v1 are additive only; a breaking change becomes v2 plus a converter.

pub mod codec;
pub mod v1;

pub use codec::{Codec, DecodeError};
pub use v1::*;

/// The protocol version carried in every envelope.
pub const VERSION: u8 = 1;
