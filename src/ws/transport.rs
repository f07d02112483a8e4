//! The WebSocket transport: the HTTP/1.1 upgrade of `GET /api/v1/ws`, and the socket's bytes.
//!
//! actix-http hands every `Upgrade: websocket` request, with its connection, to this service
//! instead of keeping it in its HTTP/1 dispatcher. The dispatcher holds an 8 KiB read and an
//! 8 KiB write buffer for the life of a connection and copies every outgoing chunk into the
//! latter: for a socket that mostly idles, or receives the same event as a thousand others, that
//! was most of its memory (load test S1) and one more copy per delivery (S2). Here a socket owns
//! no buffer of its own: it reads into the stack, and writes the frames queued in its [`Outbox`]
//! — mostly the shared bytes of broadcast events, already WebSocket frames — straight from where
//! they are, with vectored writes.
//!
//! The session is still an actix-web-actors actor: its `WebsocketContext` runs over the byte
//! stream read here, decodes client frames, and encodes ping, pong and close frames.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_codec::{AsyncRead, AsyncWrite, Framed, ReadBuf};
use actix_http::body::BodySize;
use actix_http::header::{CONNECTION, CONTENT_TYPE, HeaderValue, SEC_WEBSOCKET_PROTOCOL};
use actix_http::{ConnectionType, Method, Request, Response, StatusCode, h1, ws};
use actix_service::{ServiceFactory, fn_service};
use actix_web::web;
use actix_web_actors::ws::WebsocketContext;
use articula_protocol::ErrorCode;
use bytes::{Buf, Bytes};
use futures_util::future::LocalBoxFuture;
use futures_util::{SinkExt, Stream};

use super::{WsSession, accept};
use crate::config::MAX_WS_FRAME;
use crate::error::ApiError;
use crate::http::headers::SECURITY_HEADERS;
use crate::state::AppState;

/// The only path that upgrades.
pub const WS_PATH: &str = "/api/v1/ws";
/// Bytes read from the socket at once (on the stack).
const READ_CHUNK: usize = 8 * 1024;
/// Most bytes read in one wake-up before the decoder runs: the WebSocket decoder reads its
/// input until it would block, so without this a fast sender would grow its buffer unbounded.
const READ_BUDGET: usize = 64 * 1024;
/// Most frames handed to one vectored write.
const MAX_SLICES: usize = 64;
/// Rounds of "run the session, write what it produced" in one poll before yielding to the
/// other connections of the worker.
const MAX_ROUNDS: usize = 32;

/// The frames waiting to be written to one socket, in order. Only the socket's own task touches
/// it (the session pushes while the transport polls it), so it needs no lock.
#[derive(Default)]
pub struct Outbox {
    queue: VecDeque<Bytes>,
}

/// The outbox of a socket, shared by its session and its transport.
pub type SharedOutbox = Rc<RefCell<Outbox>>;

/// Whether the transport may read the socket: the session closes it while too many frames
/// wait to be handled or answered (a client pipelining faster than its commands complete is
/// slowed down by TCP, not by server memory).
#[derive(Default)]
pub struct ReadGate {
    paused: std::cell::Cell<bool>,
    waker: RefCell<Option<std::task::Waker>>,
}

impl ReadGate {
    /// Stops or resumes reading.
    pub fn set_paused(&self, paused: bool) {
        let was = self.paused.replace(paused);
        if was
            && !paused
            && let Some(w) = self.waker.borrow_mut().take()
        {
            w.wake();
        }
    }

    fn paused(&self, cx: &Context<'_>) -> bool {
        if self.paused.get() {
            *self.waker.borrow_mut() = Some(cx.waker().clone());
            return true;
        }
        false
    }
}

impl Outbox {
    /// Queues a complete WebSocket frame.
    pub fn push(&mut self, frame: Bytes) {
        if !frame.is_empty() {
            self.queue.push_back(frame);
        }
    }

    fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Drops the first `n` bytes, which were written.
    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.queue.front_mut() else { return };
            if front.len() > n {
                front.advance(n);
                return;
            }
            n -= front.len();
            self.queue.pop_front();
        }
    }
}

/// The upgrade service: every WebSocket upgrade of the server goes through it.
pub fn upgrade<T>(
    app: web::Data<AppState>,
) -> impl ServiceFactory<
    (Request, Framed<T, h1::Codec>),
    Config = (),
    Response = (),
    Error = actix_web::Error,
    InitError = (),
>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    fn_service(move |(req, framed): (Request, Framed<T, h1::Codec>)| {
        let app = app.clone();
        // Boxed: the connection's task holds this future for the socket's whole life, and the
        // dispatcher's state is as large as its largest variant.
        Box::pin(async move {
            if let Some(pump) = start(app, req, framed).await {
                pump.await;
            }
            Ok::<_, actix_web::Error>(())
        }) as LocalBoxFuture<'static, _>
    })
}

/// Answers the handshake, and on success returns what drives the socket. The request and the
/// dispatcher's buffers are dropped here: header values share the dispatcher's read buffer,
/// which a request kept alive would keep for the life of the socket.
async fn start<T>(app: web::Data<AppState>, req: Request, mut framed: Framed<T, h1::Codec>) -> Option<Pump<T>>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    // Boxed: authentication runs database queries whose futures are large.
    let accepted = match Box::pin(handshake(&app, &req)).await {
        Ok(a) => a,
        Err(e) => {
            let _ = Box::pin(refuse(&mut framed, &e)).await;
            return None;
        }
    };
    let ip = crate::http::upgrade_ip(&req, app.settings.trust_proxy);
    drop(req);
    framed.send((accepted.response, BodySize::None).into()).await.ok()?;
    // Only what the client already sent after its handshake is kept, copied out of the
    // dispatcher's read buffer.
    let actix_codec::FramedParts { io, read_buf, .. } = framed.into_parts();
    let early = Bytes::copy_from_slice(&read_buf);
    drop(read_buf);
    let io = Rc::new(RefCell::new(io));
    let outbox = SharedOutbox::default();
    let gate = Rc::new(ReadGate::default());
    let session =
        WsSession::new(app.into_inner(), accepted.codec, accepted.caller, outbox.clone(), gate.clone(), ip);
    let input = Input { io: io.clone(), early: Some(early), gate, budget: READ_BUDGET };
    let output =
        WebsocketContext::with_codec(session, input, actix_http::ws::Codec::new().max_size(MAX_WS_FRAME));
    Some(Pump { io, outbox, output: Box::pin(output), finished: false })
}

/// An accepted handshake.
struct Accepted {
    response: Response<()>,
    codec: articula_protocol::Codec,
    caller: Option<crate::auth::Caller>,
}

async fn handshake(app: &AppState, req: &Request) -> Result<Accepted, ApiError> {
    if req.path() != WS_PATH {
        return Err(ApiError::not_found("route"));
    }
    if req.method() != Method::GET {
        return Err(ApiError::new(ErrorCode::MethodNotAllowed, "a WebSocket handshake is a GET"));
    }
    let mut res = ws::handshake(req.head())
        .map_err(|e| ApiError::invalid(format!("not a WebSocket handshake: {e}")))?;
    let (codec, offered) = accept::codec_of(&req.head().headers);
    let caller = accept::caller(app, &req.head().headers).await?;
    if offered {
        res.insert_header((SEC_WEBSOCKET_PROTOCOL, codec.subprotocol()));
    }
    for (name, value) in SECURITY_HEADERS {
        res.insert_header((name, value));
    }
    let response = res.message_body(()).map_err(ApiError::internal)?;
    Ok(Accepted { response, codec, caller })
}

/// Answers a refused handshake with the REST error body and closes the connection.
async fn refuse<T>(framed: &mut Framed<T, h1::Codec>, e: &ApiError) -> std::io::Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let body = serde_json::to_vec(&e.body()).unwrap_or_default();
    let mut res = Response::with_body(crate::error::status_for(e.code), ());
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CONNECTION, HeaderValue::from_static("close"));
    for (name, value) in SECURITY_HEADERS {
        if let (Ok(n), Ok(v)) = (actix_http::header::HeaderName::try_from(name), HeaderValue::from_str(value))
        {
            h.insert(n, v);
        }
    }
    res.head_mut().set_connection_type(ConnectionType::Close);
    if res.status() == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!("websocket handshake failed: {e}");
    }
    // One write: clients that stop reading at the end of the head still get the body.
    framed.feed((res, BodySize::Sized(body.len() as u64)).into()).await?;
    framed.feed(h1::Message::Chunk(Some(Bytes::from(body)))).await?;
    framed.send(h1::Message::Chunk(None)).await?;
    Ok(())
}

/// The bytes the client sends, as the session's input stream.
struct Input<T> {
    io: Rc<RefCell<T>>,
    /// Bytes that arrived with the handshake.
    early: Option<Bytes>,
    /// Closed by the session while it has enough to do.
    gate: Rc<ReadGate>,
    /// Bytes this wake-up may still read.
    budget: usize,
}

impl<T: AsyncRead + Unpin> Stream for Input<T> {
    type Item = Result<Bytes, actix_http::error::PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(early) = self.early.take().filter(|b| !b.is_empty()) {
            return Poll::Ready(Some(Ok(early)));
        }
        if self.gate.paused(cx) {
            return Poll::Pending;
        }
        if self.budget == 0 {
            // Let the decoder and the session work through what was read; read on right after.
            self.budget = READ_BUDGET;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        // Not zeroed: this runs at every wake-up of the socket, mostly to find nothing to read.
        let mut buf = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut rb = ReadBuf::uninit(&mut buf);
        let mut io = self.io.borrow_mut();
        match Pin::new(&mut *io).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) if rb.filled().is_empty() => Poll::Ready(None),
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                drop(io);
                self.budget = self.budget.saturating_sub(n);
                Poll::Ready(Some(Ok(Bytes::copy_from_slice(rb.filled()))))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e.into()))),
            Poll::Pending => {
                drop(io);
                self.budget = READ_BUDGET;
                Poll::Pending
            }
        }
    }
}

type Output = Pin<Box<dyn Stream<Item = Result<Bytes, actix_web::Error>>>>;

/// Drives one socket: runs the session (by polling its context's output), then writes what it
/// queued. The session runs again only once the kernel took everything: a reader that stops
/// reading stops its session, whose case channels then overflow into `resync` — backpressure
/// never reaches the case actor.
struct Pump<T> {
    io: Rc<RefCell<T>>,
    outbox: SharedOutbox,
    output: Output,
    finished: bool,
}

impl<T: AsyncWrite + Unpin> Pump<T> {
    /// Writes the outbox; `Ready(false)` when the connection is gone.
    fn write(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let mut io = self.io.borrow_mut();
        let mut outbox = self.outbox.borrow_mut();
        while !outbox.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut count = 0;
            for (slot, frame) in slices.iter_mut().zip(outbox.queue.iter()) {
                *slot = IoSlice::new(frame);
                count += 1;
            }
            match Pin::new(&mut *io).poll_write_vectored(cx, &slices[..count]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(false),
                Poll::Ready(Ok(n)) => outbox.advance(n),
                Poll::Pending => return Poll::Pending,
            }
        }
        match Pin::new(&mut *io).poll_flush(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(true),
            Poll::Ready(Err(_)) => Poll::Ready(false),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> Future for Pump<T> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        for _ in 0..MAX_ROUNDS {
            match this.write(cx) {
                Poll::Ready(true) => {}
                Poll::Ready(false) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
            if this.finished {
                let mut io = this.io.borrow_mut();
                return Pin::new(&mut *io).poll_shutdown(cx).map(|_| ());
            }
            // The session pushes its frames into the outbox while it runs; what its context
            // encodes itself (ping, pong, close) comes after them.
            match this.output.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => this.outbox.borrow_mut().push(chunk),
                Poll::Ready(Some(Err(_))) => return Poll::Ready(()),
                Poll::Ready(None) => this.finished = true,
                Poll::Pending if this.outbox.borrow().is_empty() => return Poll::Pending,
                Poll::Pending => {}
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_write_resumes_mid_frame_and_keeps_the_order() {
        let mut out = Outbox::default();
        for f in [&b"abc"[..], b"", b"defg", b"h"] {
            out.push(Bytes::copy_from_slice(f));
        }
        out.advance(2);
        assert_eq!(
            out.queue.iter().map(|b| b.to_vec()).collect::<Vec<_>>(),
            [b"c".to_vec(), b"defg".to_vec(), b"h".to_vec()]
        );
        out.advance(3);
        assert_eq!(out.queue.iter().map(|b| b.to_vec()).collect::<Vec<_>>(), [b"fg".to_vec(), b"h".to_vec()]);
        out.advance(3);
        assert!(out.is_empty());
    }
}
