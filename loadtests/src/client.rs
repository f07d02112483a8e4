//! The load client's side of the wire: connecting (from a chosen 127.0.0.x source address),
//! Articula's protocol v1 in both codecs and Socket.IO 5 over Engine.IO 4, reduced to what the
//! scenarios need: subscribe, post, and reading events, acks and resyncs.
//!
//! Event frames are the hot path (a million and more a second), so they are read with a small
//! scanner over the known field names; every other frame, and every frame in `--full-decode`
//! mode (the smoke run), goes through the protocol crate's decoder.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use articula_protocol::{
    CaseId, ClientBody, ClientMessage, Codec, EventData, PostMessage, ServerBody, Subscribe,
};
use futures_util::{SinkExt, StreamExt};
use memchr::memmem;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

/// A client socket.
pub type Ws = WebSocketStream<TcpStream>;

/// Client read buffer: big enough to take many frames per read, small enough for 10k sockets.
/// tungstenite zeroes it before every read (also the one that ends in `WouldBlock`), so bigger
/// is not free.
fn read_buffer() -> usize {
    std::env::var("LT_READ_BUFFER").ok().and_then(|v| v.parse().ok()).unwrap_or(8 * 1024)
}

/// The protocol a target speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// Articula v1 (the server and the baseline).
    Articula(Codec),
    /// Socket.IO 5 over Engine.IO 4, websocket transport (the peer).
    SocketIo,
}

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// Server address.
    pub addr: SocketAddr,
    /// The protocol.
    pub wire: Wire,
    /// Bearer token (Articula only).
    pub token: String,
    /// Decode every frame with the protocol crate (slow, strict) instead of scanning events.
    pub full_decode: bool,
}

/// Nanoseconds since the Unix epoch: the clock both sender and receiver read.
pub fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// The `n`th source address of the spread (127.0.0.1 … 127.0.0.`spread`).
pub fn source_ip(n: usize, spread: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (n % spread.max(1)) as u8))
}

/// What a frame from the server means to the load client.
#[derive(Debug)]
pub enum Incoming {
    /// A case event. `case` is `None` when the fast scanner could not tell (Socket.IO).
    Event {
        /// The event's case, when known.
        case: Option<CaseId>,
        /// Its seq.
        seq: u64,
        /// The send time carried in the text (`t=<unix ns>`), for load messages.
        sent_ns: Option<u64>,
    },
    /// A command succeeded.
    Ack {
        /// The command id.
        id: String,
        /// The seq (head for subscribe).
        seq: Option<u64>,
    },
    /// The socket fell behind (or similar) and must resubscribe.
    Resync {
        /// Why.
        reason: String,
        /// The last seq delivered.
        last_seq: Option<u64>,
    },
    /// A command failed.
    Error {
        /// The command id.
        id: Option<String>,
        /// Code and message.
        what: String,
    },
    /// Engine.IO ping: answer with pong.
    EioPing,
    /// The socket closed (with the close code, if any).
    Closed(Option<u16>),
    /// Anything else (welcome, presence, receipts, WebSocket pings…).
    Other,
}

/// Opens a WebSocket to the endpoint from `src` and completes the protocol's greeting.
pub async fn connect(ep: &Endpoint, src: IpAddr, recv_buffer: Option<u32>) -> Result<Ws> {
    let sock = match recv_buffer {
        None => TcpSocket::new_v4()?,
        Some(size) => {
            // A slow client on a real network: a small receive buffer, and an Ethernet-sized
            // segment so that the server's kernel does not buffer megabytes on its behalf (on
            // loopback the segment would be 64 KiB and the send buffer would grow with it).
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            s.set_recv_buffer_size(size as usize)?;
            s.set_tcp_mss(1400)?;
            s.set_nonblocking(true)?;
            TcpSocket::from_std_stream(s.into())
        }
    };
    sock.bind(SocketAddr::new(src, 0)).with_context(|| format!("binding {src}"))?;
    let stream = sock.connect(ep.addr).await.with_context(|| format!("connecting to {}", ep.addr))?;
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default().read_buffer_size(read_buffer());
    match ep.wire {
        Wire::Articula(codec) => {
            let mut req = format!("ws://{}/api/v1/ws", ep.addr).into_client_request()?;
            let h = req.headers_mut();
            h.insert("authorization", HeaderValue::from_str(&format!("Bearer {}", ep.token))?);
            h.insert("sec-websocket-protocol", HeaderValue::from_static(codec.subprotocol()));
            let (mut ws, _) = client_async_with_config(req, stream, Some(config)).await?;
            loop {
                match next(&mut ws, ep).await? {
                    Incoming::Other => {
                        // The first frame is `welcome`; nothing else comes before it.
                        return Ok(ws);
                    }
                    Incoming::Closed(code) => bail!("closed before welcome ({code:?})"),
                    Incoming::Error { what, .. } => bail!("refused: {what}"),
                    _ => continue,
                }
            }
        }
        Wire::SocketIo => {
            let req =
                format!("ws://{}/socket.io/?EIO=4&transport=websocket", ep.addr).into_client_request()?;
            let (mut ws, _) = client_async_with_config(req, stream, Some(config)).await?;
            let open = text_frame(&mut ws).await?;
            if !open.starts_with('0') {
                bail!("expected an Engine.IO open packet, got {open:.40}");
            }
            ws.send(Message::text("40")).await?;
            loop {
                let t = text_frame(&mut ws).await?;
                if t.starts_with("40") {
                    return Ok(ws);
                }
                if t == "2" {
                    ws.send(Message::text("3")).await?;
                }
            }
        }
    }
}

async fn text_frame(ws: &mut Ws) -> Result<String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(t.to_string()),
            Some(Ok(Message::Close(c))) => bail!("closed: {c:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => bail!("closed"),
        }
    }
}

/// Reads and interprets the next frame.
pub async fn next(ws: &mut Ws, ep: &Endpoint) -> Result<Incoming> {
    match ws.next().await {
        Some(Ok(m)) => interpret(&m, ep),
        Some(Err(e)) => Err(e.into()),
        None => Ok(Incoming::Closed(None)),
    }
}

/// Interprets one frame.
pub fn interpret(m: &Message, ep: &Endpoint) -> Result<Incoming> {
    let bytes: &[u8] = match m {
        Message::Text(t) => t.as_bytes(),
        Message::Binary(b) => b,
        Message::Close(c) => return Ok(Incoming::Closed(c.as_ref().map(|c| u16::from(c.code)))),
        _ => return Ok(Incoming::Other),
    };
    match ep.wire {
        Wire::Articula(codec) => {
            if !ep.full_decode {
                let fast = match codec {
                    Codec::Json => scan_json_event(bytes),
                    Codec::MsgPack => scan_msgpack_event(bytes),
                };
                if let Some(ev) = fast {
                    return Ok(ev);
                }
            }
            decode_articula(codec, bytes)
        }
        Wire::SocketIo => interpret_sio(bytes),
    }
}

fn decode_articula(codec: Codec, bytes: &[u8]) -> Result<Incoming> {
    let msg = codec.decode_server(bytes).map_err(|e| anyhow!("undecodable server frame: {e}"))?;
    Ok(match msg.body {
        ServerBody::Event(ev) => {
            let sent_ns = match &ev.data {
                EventData::MessagePosted { text, .. } => parse_stamp(text.as_bytes()),
                _ => None,
            };
            Incoming::Event { case: Some(ev.case_id), seq: ev.seq, sent_ns }
        }
        ServerBody::Ack(a) => Incoming::Ack { id: a.id, seq: a.seq },
        ServerBody::Resync(r) => Incoming::Resync { reason: r.reason, last_seq: r.last_seq },
        ServerBody::Error(e) => Incoming::Error { id: e.id, what: format!("{}: {}", e.code, e.message) },
        _ => Incoming::Other,
    })
}

/// `t=<digits>` at the start of a message text.
fn parse_stamp(text: &[u8]) -> Option<u64> {
    text.strip_prefix(b"t=").and_then(|d| digits(d).map(|(v, _)| v))
}

fn digits(b: &[u8]) -> Option<(u64, usize)> {
    let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || n > 19 {
        return None;
    }
    let v = b[..n].iter().fold(0u64, |acc, c| acc * 10 + u64::from(c - b'0'));
    Some((v, n))
}

/// A field name searched in every event frame, with its searcher built once.
struct Field(LazyLock<memmem::Finder<'static>>);

macro_rules! field {
    ($name:ident, $needle:expr) => {
        static $name: Field = Field(LazyLock::new(|| memmem::Finder::new($needle)));
    };
}

impl Field {
    fn after<'a>(&self, hay: &'a [u8]) -> Option<&'a [u8]> {
        self.0.find(hay).map(|i| &hay[i + self.0.needle().len()..])
    }
}

field!(JSON_TYPE_EVENT, br#""type":"event""#);
field!(JSON_SEQ, br#""seq":"#);
field!(JSON_CASE, br#""case_id":""#);
field!(JSON_TEXT, br#""text":""#);
field!(MP_TYPE_EVENT, b"\xa4type\xa5event");
field!(MP_SEQ, b"\xa3seq");
field!(MP_CASE, b"\xa7case_id");
field!(MP_TEXT, b"\xa4text");

/// An Articula JSON `event` frame, read by field name.
fn scan_json_event(b: &[u8]) -> Option<Incoming> {
    JSON_TYPE_EVENT.after(&b[..b.len().min(32)])?;
    let (seq, _) = digits(JSON_SEQ.after(b)?)?;
    let case = JSON_CASE
        .after(b)
        .and_then(|r| r.get(..36))
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse().ok());
    let sent_ns = JSON_TEXT.after(b).and_then(parse_stamp);
    Some(Incoming::Event { case: Some(case?), seq, sent_ns })
}

/// An Articula MessagePack `event` frame (maps with field names), read by field name.
fn scan_msgpack_event(b: &[u8]) -> Option<Incoming> {
    MP_TYPE_EVENT.after(&b[..b.len().min(24)])?;
    let seq = read_uint(MP_SEQ.after(b)?)?;
    let case = MP_CASE.after(b).and_then(|r| match r {
        // Ids are 36-character strings (str 8); servers before that rule sent 16 bytes (bin 8).
        [0xc4, 16, rest @ ..] => rest.get(..16).and_then(|u| uuid::Uuid::from_slice(u).ok()).map(CaseId),
        [0xd9, 36, rest @ ..] | [0xa0..=0xbf, rest @ ..] => {
            rest.get(..36).and_then(|s| std::str::from_utf8(s).ok()).and_then(|s| s.parse().ok())
        }
        _ => None,
    });
    let sent_ns = MP_TEXT.after(b).and_then(|r| match r {
        [0xa0..=0xbf, rest @ ..] | [0xd9, _, rest @ ..] => parse_stamp(rest),
        _ => None,
    });
    Some(Incoming::Event { case: Some(case?), seq, sent_ns })
}

fn read_uint(b: &[u8]) -> Option<u64> {
    match b {
        [x @ 0x00..=0x7f, ..] => Some(u64::from(*x)),
        [0xcc, x, ..] => Some(u64::from(*x)),
        [0xcd, a, c, ..] => Some(u64::from(u16::from_be_bytes([*a, *c]))),
        [0xce, rest @ ..] => rest.get(..4).map(|s| u64::from(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))),
        [0xcf, rest @ ..] => rest.get(..8).and_then(|s| s.try_into().ok()).map(u64::from_be_bytes),
        _ => None,
    }
}

/// Socket.IO: `2` ping, `42["event",{…}]`, `43<id>[{…}]` acks, `44{…}` connect errors.
fn interpret_sio(b: &[u8]) -> Result<Incoming> {
    if b == b"2" {
        return Ok(Incoming::EioPing);
    }
    if let Some(rest) = b.strip_prefix(br#"42["event","#) {
        let seq = JSON_SEQ.after(rest).and_then(digits).map(|(v, _)| v);
        let Some(seq) = seq else { bail!("Socket.IO event without seq") };
        let sent_ns = JSON_TEXT.after(rest).and_then(parse_stamp);
        return Ok(Incoming::Event { case: None, seq, sent_ns });
    }
    if let Some(rest) = b.strip_prefix(b"43") {
        let Some((_, n)) = digits(rest) else { bail!("Socket.IO ack without id") };
        let id = String::from_utf8_lossy(&rest[..n]).into_owned();
        let args: serde_json::Value = serde_json::from_slice(&rest[n..])?;
        let first = &args[0];
        if let Some(e) = first.get("error") {
            return Ok(Incoming::Error { id: Some(id), what: e.to_string() });
        }
        return Ok(Incoming::Ack { id, seq: first.get("seq").and_then(|s| s.as_u64()) });
    }
    if b.starts_with(b"44") || b.starts_with(b"1") {
        return Ok(Incoming::Closed(None));
    }
    Ok(Incoming::Other)
}

/// The frame for `subscribe {case_id, since}`.
pub fn subscribe_frame(wire: Wire, id: u64, case_id: CaseId, since: u64) -> Result<Message> {
    match wire {
        Wire::Articula(codec) => {
            let body = ClientBody::Subscribe(Subscribe { case_id, since: Some(since) });
            encode(codec, &ClientMessage::new(format!("s{id}"), body))
        }
        Wire::SocketIo => {
            Ok(Message::text(format!(r#"42{id}["subscribe",{{"case_id":"{case_id}","since":{since}}}]"#)))
        }
    }
}

/// The frame for `post_message {case_id, text}`; the text carries the send time.
pub fn post_frame(wire: Wire, id: &str, case_id: CaseId) -> Result<Message> {
    let text = format!("t={}", now_ns());
    match wire {
        Wire::Articula(codec) => {
            let body = ClientBody::PostMessage(PostMessage {
                case_id,
                text,
                attachments: Vec::new(),
                reply_to: None,
                mentions: vec![],
            });
            encode(codec, &ClientMessage::new(id, body))
        }
        Wire::SocketIo => {
            Ok(Message::text(format!(r#"42{id}["post_message",{{"case_id":"{case_id}","text":"{text}"}}]"#)))
        }
    }
}

fn encode(codec: Codec, msg: &ClientMessage) -> Result<Message> {
    let bytes = codec.encode_client(msg)?;
    Ok(if codec.is_binary() {
        Message::Binary(bytes.into())
    } else {
        Message::Text(Utf8Bytes::try_from(bytes)?)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use articula_protocol::{Event, ServerMessage, UserId};

    fn event_frame(codec: Codec, seq: u64) -> (CaseId, Vec<u8>) {
        let case_id = CaseId::new();
        let data = EventData::MessagePosted {
            message_id: articula_protocol::MessageId::new(),
            text: "t=1790000000123456789".into(),
            attachments: Vec::new(),
            reply_to: None,
            mentions: vec![],
        };
        let msg =
            ServerMessage::from(ServerBody::Event(Event { case_id, seq, at: 1, actor: UserId::new(), data }));
        (case_id, codec.encode_server(&msg).unwrap())
    }

    #[test]
    fn scanners_read_what_the_protocol_writes() {
        for seq in [1, 127, 128, 255, 256, 65_535, 65_536, 1 << 33] {
            let (case_id, json) = event_frame(Codec::Json, seq);
            let Some(Incoming::Event { case, seq: s, sent_ns }) = scan_json_event(&json) else {
                panic!("json")
            };
            assert_eq!((case, s, sent_ns), (Some(case_id), seq, Some(1_790_000_000_123_456_789)));
            let (case_id, mp) = event_frame(Codec::MsgPack, seq);
            let Some(Incoming::Event { case, seq: s, sent_ns }) = scan_msgpack_event(&mp) else {
                panic!("mp")
            };
            assert_eq!((case, s, sent_ns), (Some(case_id), seq, Some(1_790_000_000_123_456_789)));
        }
    }

    #[test]
    fn socket_io_frames() {
        let ev = interpret_sio(br#"42["event",{"case_id":"x","seq":42,"text":"t=17"}]"#).unwrap();
        assert!(matches!(ev, Incoming::Event { seq: 42, sent_ns: Some(17), .. }));
        let ack = interpret_sio(br#"437[{"seq":3}]"#).unwrap();
        assert!(matches!(ack, Incoming::Ack { ref id, seq: Some(3) } if id == "7"));
        assert!(matches!(interpret_sio(b"2").unwrap(), Incoming::EioPing));
    }
}
