//! The baseline: the least a WebSocket broadcast server on tokio-tungstenite can do, speaking
//! enough of Articula's protocol v1 that the same load client drives it.
//!
//! One task per socket; one bounded tokio `broadcast` channel per case (the same bound as the
//! server's default `ARTICULA_SUBSCRIBER_QUEUE`); every event is encoded once per codec and the
//! bytes are shared; a socket task feeds every frame already queued for it and flushes once;
//! read buffers are 4 KiB. Seq per case, a small in-memory ring for resumes, no persistence, no
//! authorisation (any bearer token is accepted). Every figure of the Articula server is reported
//! as a ratio to this.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use articula_protocol::{
    Ack, CaseId, ClientBody, ClientMessage, Codec, ErrorCode, ErrorFrame, Event, EventData, MessageId, Pong,
    Presence, Resync, ServerBody, ServerMessage, UserId, Welcome,
};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{WebSocketStream, accept_hdr_async_with_config};

/// Frames a socket may lag behind its case (the server's default subscriber queue).
pub const QUEUE: usize = 1024;
/// Events kept per case to serve `subscribe {since}` (the server's default ring is 512; the
/// baseline has no store behind it, so runs that resume from further back ask for more).
pub const RING: usize = 512;
const HEARTBEAT: Duration = Duration::from_secs(15);
const READ_BUFFER: usize = 4 * 1024;
/// Frames fed are written out once this much is buffered (and on flush): batched writes, but
/// a blocked socket holds little beyond its queue.
const WRITE_BUFFER: usize = 16 * 1024;
const CLOSE_RESYNC: u16 = 4000;
/// How long a lagged socket may take to read its `resync` before it is simply dropped.
const LAGGED_GRACE: Duration = Duration::from_secs(120);

/// One event, encoded once per codec.
struct Encoded {
    seq: u64,
    json: Utf8Bytes,
    msgpack: Bytes,
}

impl Encoded {
    fn message(&self, codec: Codec) -> Message {
        match codec {
            Codec::Json => Message::Text(self.json.clone()),
            Codec::MsgPack => Message::Binary(self.msgpack.clone()),
        }
    }
}

struct RoomLog {
    seq: u64,
    ring: VecDeque<Arc<Encoded>>,
}

struct Room {
    tx: broadcast::Sender<Arc<Encoded>>,
    log: Mutex<RoomLog>,
}

#[derive(Default)]
struct Rooms(Mutex<HashMap<CaseId, Arc<Room>>>);

impl Rooms {
    fn get(&self, id: CaseId) -> Result<Arc<Room>> {
        let mut map = self.0.lock().map_err(|_| anyhow::anyhow!("rooms lock poisoned"))?;
        Ok(map
            .entry(id)
            .or_insert_with(|| {
                Arc::new(Room {
                    tx: broadcast::channel(QUEUE).0,
                    log: Mutex::new(RoomLog { seq: 0, ring: VecDeque::new() }),
                })
            })
            .clone())
    }
}

/// Runs the baseline on `bind` until killed; prints `listening <port>` once it accepts.
pub async fn run(bind: &str, ring: usize) -> Result<()> {
    let listener = TcpListener::bind(bind).await.with_context(|| format!("binding {bind}"))?;
    println!("listening {}", listener.local_addr()?.port());
    let rooms = Arc::new(Rooms::default());
    let user = UserId::new();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            // Out of descriptors or similar: keep serving the sockets we have.
            Err(_) => continue,
        };
        let rooms = rooms.clone();
        tokio::spawn(async move {
            let _ = serve(stream, rooms, user, ring).await;
        });
    }
}

fn encode(codec: Codec, body: ServerBody) -> Result<Message> {
    let bytes = codec.encode_server(&ServerMessage::from(body))?;
    Ok(match codec {
        Codec::Json => Message::Text(Utf8Bytes::try_from(bytes)?),
        Codec::MsgPack => Message::Binary(bytes.into()),
    })
}

type Ws = WebSocketStream<TcpStream>;

// tungstenite's callback signature fixes the error type.
#[allow(clippy::result_large_err)]
async fn handshake(stream: TcpStream) -> Result<(Ws, Codec, bool)> {
    stream.set_nodelay(true)?;
    let mut codec = Codec::Json;
    let mut bearer = false;
    let callback = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        bearer = req.headers().get("authorization").is_some();
        let offered = req
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find_map(|p| Codec::from_subprotocol(p.trim()));
        if let Some(c) = offered {
            codec = c;
            resp.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static(c.subprotocol()));
        }
        Ok(resp)
    };
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER).write_buffer_size(WRITE_BUFFER);
    let ws = accept_hdr_async_with_config(stream, callback, Some(config)).await?;
    Ok((ws, codec, bearer))
}

struct Sub {
    case_id: CaseId,
    rx: broadcast::Receiver<Arc<Encoded>>,
    last_seq: u64,
}

async fn serve(stream: TcpStream, rooms: Arc<Rooms>, user: UserId, ring: usize) -> Result<()> {
    let (mut ws, codec, mut authed) = handshake(stream).await?;
    let welcome = |codec| {
        encode(
            codec,
            ServerBody::Welcome(Welcome { user_id: user, heartbeat_secs: 15, max_frame_bytes: 65536 }),
        )
    };
    if authed {
        ws.send(welcome(codec)?).await?;
    }
    let mut sub: Option<Sub> = None;
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    loop {
        tokio::select! {
            r = recv(&mut sub) => {
                let Some(s) = sub.as_mut() else { continue };
                match r {
                    Ok(frame) => {
                        s.last_seq = frame.seq;
                        ws.feed(frame.message(codec)).await?;
                        // Everything already queued goes out with one flush.
                        loop {
                            match s.rx.try_recv() {
                                Ok(f) => {
                                    s.last_seq = f.seq;
                                    ws.feed(f.message(codec)).await?;
                                }
                                Err(TryRecvError::Empty) => break,
                                Err(TryRecvError::Lagged(_)) => return lagged(&mut ws, codec, s).await,
                                Err(TryRecvError::Closed) => return Ok(()),
                            }
                        }
                        ws.flush().await?;
                    }
                    Err(RecvError::Lagged(_)) => return lagged(&mut ws, codec, s).await,
                    Err(RecvError::Closed) => return Ok(()),
                }
            }
            m = ws.next() => {
                let bytes = match m {
                    Some(Ok(Message::Text(t))) => Bytes::from(t),
                    Some(Ok(Message::Binary(b))) => b,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok(()),
                    Some(Ok(_)) => continue,
                };
                let msg = match codec.decode_client(&bytes) {
                    Ok(m) => m,
                    Err(e) => {
                        let err = ErrorFrame { id: e.id, code: e.code, message: e.message, details: None };
                        ws.send(encode(codec, ServerBody::Error(err))?).await?;
                        continue;
                    }
                };
                let ClientMessage { id, body, .. } = msg;
                if !authed {
                    if let ClientBody::Auth(_) = body {
                        authed = true;
                        ws.feed(encode(codec, ServerBody::Ack(Ack { id: id.unwrap_or_default(), seq: None }))?).await?;
                        ws.send(welcome(codec)?).await?;
                    } else {
                        let err = ErrorFrame { id, code: ErrorCode::Unauthorized, message: "authenticate first".into(), details: None };
                        ws.send(encode(codec, ServerBody::Error(err))?).await?;
                    }
                    continue;
                }
                match body {
                    ClientBody::Subscribe(s) => {
                        let room = rooms.get(s.case_id)?;
                        let since = s.since.unwrap_or(0);
                        let (rx, head, backlog) = {
                            let log = room.log.lock().map_err(|_| anyhow::anyhow!("room lock poisoned"))?;
                            let backlog: Vec<_> = log.ring.iter().filter(|f| f.seq > since).cloned().collect();
                            (room.tx.subscribe(), log.seq, backlog)
                        };
                        let complete = since >= head || backlog.first().is_some_and(|f| f.seq == since + 1);
                        ws.feed(encode(codec, ServerBody::Ack(Ack { id: id.unwrap_or_default(), seq: Some(head) }))?).await?;
                        if !complete {
                            // Older than the ring and nothing is stored: the client must resync.
                            let body = Resync { case_id: Some(s.case_id), reason: "gap".into(), last_seq: Some(since) };
                            ws.send(encode(codec, ServerBody::Resync(body))?).await?;
                            continue;
                        }
                        for f in &backlog {
                            ws.feed(f.message(codec)).await?;
                        }
                        let presence = Presence { case_id: s.case_id, users: vec![user] };
                        ws.send(encode(codec, ServerBody::Presence(presence))?).await?;
                        sub = Some(Sub { case_id: s.case_id, rx, last_seq: head.max(since) });
                    }
                    ClientBody::PostMessage(p) => {
                        let room = rooms.get(p.case_id)?;
                        let seq = publish(&room, p.case_id, user, p.text, ring)?;
                        ws.send(encode(codec, ServerBody::Ack(Ack { id: id.unwrap_or_default(), seq: Some(seq) }))?).await?;
                    }
                    ClientBody::Ping(_) => ws.send(encode(codec, ServerBody::Pong(Pong { id }))?).await?,
                    ClientBody::Unsubscribe(_) => {
                        sub = None;
                        ws.send(encode(codec, ServerBody::Ack(Ack { id: id.unwrap_or_default(), seq: None }))?).await?;
                    }
                    _ => {
                        let err = ErrorFrame { id, code: ErrorCode::UnknownType, message: "not in the baseline".into(), details: None };
                        ws.send(encode(codec, ServerBody::Error(err))?).await?;
                    }
                }
            }
            _ = heartbeat.tick() => ws.send(Message::Ping(Bytes::new())).await?,
        }
    }
}

/// The next frame of the subscription; never ready without one.
async fn recv(sub: &mut Option<Sub>) -> Result<Arc<Encoded>, RecvError> {
    match sub {
        Some(s) => s.rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn lagged(ws: &mut Ws, codec: Codec, s: &Sub) -> Result<()> {
    let body = Resync { case_id: Some(s.case_id), reason: "lagged".into(), last_seq: Some(s.last_seq) };
    let close = CloseFrame {
        code: CloseCode::from(CLOSE_RESYNC),
        reason: "fell behind; resubscribe with since".into(),
    };
    // The reader may have stopped reading: it sees this when it resumes, unless it never does.
    let _ = tokio::time::timeout(LAGGED_GRACE, async {
        ws.feed(encode(codec, ServerBody::Resync(body))?).await?;
        ws.send(Message::Close(Some(close))).await?;
        // Wait for the client's close reply: closing with unread input would send a reset,
        // and a reset makes the client's kernel drop what it has not read yet (the resync).
        while let Some(Ok(_)) = ws.next().await {}
        anyhow::Ok(())
    })
    .await;
    Ok(())
}

/// Assigns the next seq, encodes once per codec, keeps it for resumes and broadcasts it — under
/// the room's lock, so seq order and broadcast order are the same.
fn publish(room: &Room, case_id: CaseId, actor: UserId, text: String, ring: usize) -> Result<u64> {
    let mut log = room.log.lock().map_err(|_| anyhow::anyhow!("room lock poisoned"))?;
    let seq = log.seq + 1;
    let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    let data = EventData::MessagePosted {
        message_id: MessageId::new(),
        text,
        attachments: Vec::new(),
        reply_to: None,
        mentions: vec![],
    };
    let msg = ServerMessage::from(ServerBody::Event(Event { case_id, seq, at, actor, data }));
    let json = Utf8Bytes::try_from(Codec::Json.encode_server(&msg)?)?;
    let msgpack = Bytes::from(Codec::MsgPack.encode_server(&msg)?);
    let frame = Arc::new(Encoded { seq, json, msgpack });
    log.seq = seq;
    log.ring.push_back(frame.clone());
    if log.ring.len() > ring {
        log.ring.pop_front();
    }
    let _ = room.tx.send(frame);
    Ok(seq)
}
