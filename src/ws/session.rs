//! One WebSocket: decode → order → route to the case actor, and deliver what the case actors
//! and hubs broadcast.
//!
//! **A socket is ordered** (DESIGN §1, invariant 9). Frames are handled in the order they
//! arrive: a frame that the ones after it may depend on (`auth`, `subscribe`) holds the
//! pipeline until it is done, and commands go to their case actor in the order they were read
//! (the registry queues them with `try_send`, never waiting, so nothing can overtake). The case
//! actors answer on one channel per socket, in the order they decide: the acks of one case come
//! in the order of their seqs, and a refusal (a full queue, a bad value) comes at once, ahead of
//! earlier commands still waiting for their commit. Both queues are bounded: while more than
//! [`MAX_INBOUND`] frames wait or [`MAX_REPLIES`] commands are unanswered, the transport stops
//! reading the socket.
//!
//! Outbound frames arrive through bounded broadcast channels (one per subscribed case, board or
//! inbox), read in batches; each frame is encoded once, as a WebSocket frame, for all sockets,
//! and the session only queues its shared bytes in the socket's outbox. A socket that falls
//! further behind than the channel's bound gets `resync` and is closed — its slowness never
//! reaches the case actor or grows memory.
//!
//! **Catch-up is paged.** A resume older than the case's in-memory ring reads the log in pages
//! of [`PAGE`] events, the next page only once the socket took the previous one (the session
//! runs only when its outbox is empty), then asks the case for the live stream again from where
//! it got — so a socket resuming a case of a million events costs a page of memory.
//!
//! **Access follows the case.** Every event frame carries who may see the case after it; a
//! socket whose user no longer may loses the case at that frame and never receives it (also
//! while catching up from the log, where the same rule is applied event by event).

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web_actors::ws::{self, CloseCode, CloseReason};
use articula_actors::case::{Backlog, Subscription, Typing};
use articula_actors::clock::{now_ms, today_utc};
use articula_actors::{
    Answer, CaseAccess, CaseCommand, Command, CommandError, Frame, FrameKind, PresenceGuard, Principal,
    Reply, Subscribe, Visibility,
};
use articula_protocol::{
    Ack, Board, CaseId, ClientBody, ClientMessage, Codec, DecodeError, ErrorCode, ErrorFrame, Event, OrgId,
    Pong, Presence, Receipt, Resync, Role, ServerBody, ServerMessage, UserId, Welcome,
};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{broadcast, mpsc};

use super::batches::{Batch, Batches, End};
use super::transport::{ReadGate, SharedOutbox};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::cases::board_scope;
use crate::revocation::SocketControl;
use crate::state::AppState;
use crate::store::cases::BoardScope;

/// A socket that has not authenticated by then is closed.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Close code telling the client to reconnect and resume with `since`.
const CLOSE_RESYNC: u16 = 4000;
/// Close code for a revoked session or user.
const CLOSE_REVOKED: u16 = 4001;
/// How often a socket checks that its session is still alive (expiry, inactivity) and records
/// its user's activity on the session.
const SESSION_CHECK: Duration = Duration::from_secs(60);
/// Frames read but not yet handled, beyond which the socket is not read.
pub const MAX_INBOUND: usize = 256;
/// Answers not yet written (commands in flight), beyond which the socket is not read.
pub const MAX_REPLIES: usize = 1024;
/// Events per page when catching up from the log.
pub const PAGE: i64 = 128;

/// Frames (and maybe the end) of a case's channel.
struct CaseItem(CaseId, u64, Batch);
/// Frames (and maybe the end) of the board channel.
struct BoardItem(Batch);
/// Frames (and maybe the end) of an organisation's activity channel.
struct InboxItem(InboxFilter, Batch);

/// Which activity of an organisation a user's inbox shows.
#[derive(Clone, Copy)]
enum InboxFilter {
    /// Everything (clinic admins, lab members).
    All,
    /// The user's own cases (doctors).
    Doctor(UserId),
}

/// Where a subscription's delivery is.
enum Delivery {
    /// Reading the log (a page is being read).
    CatchingUp,
    /// Asking the case for the live stream again.
    Attaching,
    /// Receiving the live stream.
    Live { stream: SpawnHandle },
}

struct CaseSub {
    /// Tells this subscription's completions from those of an earlier one of the same case.
    generation: u64,
    access: CaseAccess,
    visibility: Visibility,
    last_seq: u64,
    delivery: Delivery,
    _presence: Option<PresenceGuard>,
}

struct BoardSub {
    scope: BoardScope,
    seen: HashMap<CaseId, u64>,
    stream: SpawnHandle,
}

/// A frame read from the socket, waiting for its turn.
enum Inbound {
    Message(ClientMessage),
    Bad(DecodeError),
    TooLarge,
}

/// The answers of case actors to this socket's commands.
struct AnswerItem(Answer);

/// The session actor of one socket.
pub struct WsSession {
    app: Arc<AppState>,
    codec: Codec,
    /// Where frames to this socket go (written by the transport in order).
    out: SharedOutbox,
    /// Whether the transport may read the socket.
    gate: Rc<ReadGate>,
    /// The client's address (for the audit log).
    ip: Arc<str>,
    caller: Option<Caller>,
    /// The caller with their memberships, once loaded.
    who: Option<Principal>,
    control: Option<Arc<SocketControl>>,
    last_seen: Instant,
    subs: HashMap<CaseId, CaseSub>,
    next_sub: u64,
    board: Option<BoardSub>,
    inbox: Vec<SpawnHandle>,
    /// Frames read, not yet handled.
    inbound: VecDeque<Inbound>,
    /// An `auth` or `subscribe` is being done: the frames after it wait.
    blocked: bool,
    /// Where case actors answer this socket's commands (in the order they decide).
    answers: mpsc::UnboundedSender<Answer>,
    answers_rx: Option<mpsc::UnboundedReceiver<Answer>>,
    /// Commands waiting for their answer: token → command id.
    unanswered: HashMap<u64, String>,
    next_token: u64,
    /// The user sent a command since the last session check (socket use is session use).
    active: bool,
}

fn channel<T: 'static>(
    rx: broadcast::Receiver<Arc<Frame>>,
    wrap: impl Fn(Batch) -> T + 'static,
) -> impl Stream<Item = T> {
    Batches::new(rx).map(wrap)
}

type Ctx = ws::WebsocketContext<WsSession>;

impl WsSession {
    /// A session, pre-authenticated when the upgrade carried credentials.
    pub fn new(
        app: Arc<AppState>,
        codec: Codec,
        caller: Option<Caller>,
        out: SharedOutbox,
        gate: Rc<ReadGate>,
        ip: String,
    ) -> Self {
        let (answers, answers_rx) = mpsc::unbounded_channel();
        Self {
            ip: ip.into(),
            app,
            codec,
            out,
            gate,
            caller,
            who: None,
            control: None,
            last_seen: Instant::now(),
            subs: HashMap::new(),
            next_sub: 0,
            board: None,
            inbox: Vec::new(),
            inbound: VecDeque::new(),
            blocked: false,
            answers,
            answers_rx: Some(answers_rx),
            unanswered: HashMap::new(),
            next_token: 0,
            active: false,
        }
    }

    fn user(&self) -> Option<UserId> {
        self.caller.as_ref().map(|c| c.user_id)
    }

    fn encode(&self, body: ServerBody) -> Option<Bytes> {
        match self.codec.encode_server_frame(&ServerMessage::from(body)) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                tracing::error!(error = %e, "encoding a frame failed");
                None
            }
        }
    }

    /// Writes a frame that answers nothing (events, presence, resync…).
    fn send(&self, body: ServerBody) {
        if let Some(b) = self.encode(body) {
            self.out.borrow_mut().push(b);
        }
    }

    fn send_frame(&self, frame: &Frame) {
        self.out.borrow_mut().push(frame.wire(self.codec).clone());
    }

    fn ack_body(id: String, seq: Option<u64>) -> ServerBody {
        ServerBody::Ack(Ack { id, seq })
    }

    fn error_body(
        id: Option<String>,
        code: ErrorCode,
        message: impl Into<String>,
        details: Option<serde_json::Value>,
    ) -> ServerBody {
        ServerBody::Error(ErrorFrame { id, code, message: message.into(), details })
    }

    // --- answers ---

    fn answer(&mut self, body: ServerBody, _ctx: &mut Ctx) {
        self.send(body);
    }

    fn answer_ack(&mut self, id: Option<String>, seq: Option<u64>, ctx: &mut Ctx) {
        if let Some(id) = id {
            self.answer(Self::ack_body(id, seq), ctx);
        }
    }

    fn answer_error(
        &mut self,
        id: Option<String>,
        code: ErrorCode,
        message: impl Into<String>,
        ctx: &mut Ctx,
    ) {
        self.answer(Self::error_body(id, code, message, None), ctx);
    }

    fn answer_api_error(&mut self, id: Option<String>, e: ApiError, ctx: &mut Ctx) {
        self.answer(Self::error_body(id, e.code, e.message, e.details), ctx);
    }

    /// A reply for a command the case actor answers on this socket's channel.
    fn reply_for(&mut self, id: String) -> Reply {
        let token = self.next_token;
        self.next_token += 1;
        self.unanswered.insert(token, id);
        Reply::socket(self.answers.clone(), token)
    }

    /// Stops or resumes reading the socket, by how much waits.
    fn update_gate(&self) {
        let full = self.inbound.len() >= MAX_INBOUND || self.unanswered.len() >= MAX_REPLIES;
        self.gate.set_paused(full);
    }

    fn close(&mut self, ctx: &mut Ctx, code: CloseCode, why: &str) {
        ctx.close(Some(CloseReason { code, description: Some(why.to_owned()) }));
        ctx.stop();
    }

    // --- authentication ---

    /// The socket is authenticated (at the upgrade, or by an `auth` frame): register it for
    /// revocation, load the user's memberships, and let the frames after it through.
    fn authenticated(&mut self, auth_reply: Option<Option<String>>, ctx: &mut Ctx) {
        let Some(caller) = self.caller.clone() else { return };
        let control = self.app.revocations.register(caller.user_id, caller.session_id);
        let watch = control.clone();
        ctx.spawn(
            async move { watch.revoked().await }
                .into_actor(self)
                .map(|_, act, ctx| act.close(ctx, CloseCode::Other(CLOSE_REVOKED), "session revoked")),
        );
        self.watch_memberships(control.clone(), ctx);
        self.control = Some(control);
        // The first check comes at a random point of the interval: sockets that connected
        // together (a reconnect storm, a restart) must not all query the database together.
        let first = SESSION_CHECK.mul_f64(rand::random::<f64>());
        ctx.run_later(first, |act, ctx| {
            act.check_session(ctx);
            ctx.run_interval(SESSION_CHECK, |act, ctx| act.check_session(ctx));
        });
        metrics::counter!("articula_ws_authenticated_total").increment(1);
        self.blocked = true;
        let app = self.app.clone();
        let user = caller.user_id;
        let ip = self.ip.clone();
        ctx.spawn(
            async move { crate::http::cases::principal(&app, user).await.map(|p| p.from_ip(ip)) }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    let welcome = ServerBody::Welcome(Welcome {
                        user_id: user,
                        heartbeat_secs: act.app.settings.ws_heartbeat_secs,
                        max_frame_bytes: act.app.settings.ws_max_frame_bytes as u64,
                    });
                    match res {
                        Ok(who) => {
                            act.who = Some(who);
                            if let Some(id) = auth_reply.flatten() {
                                act.answer_ack(Some(id), None, ctx);
                            }
                            act.send(welcome);
                            act.blocked = false;
                            act.pump(ctx);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "loading a socket's memberships failed");
                            if let Some(id) = auth_reply {
                                act.answer(Self::error_body(id, e.code, e.message, None), ctx);
                            }
                            act.close(ctx, CloseCode::Again, "try again");
                        }
                    }
                }),
        );
    }

    /// Reloads the user's memberships whenever they change, and re-evaluates what the socket
    /// receives: cases it may no longer see are lost, the inbox follows the new organisations,
    /// and a board the user no longer has is closed (`resync`, reason `board_restarted`).
    fn watch_memberships(&mut self, control: Arc<SocketControl>, ctx: &mut Ctx) {
        let app = self.app.clone();
        let Some(user) = self.user() else { return };
        let ip = self.ip.clone();
        let fut = async move {
            control.memberships_changed().await;
            (crate::http::cases::principal(&app, user).await.map(|p| p.from_ip(ip)), control)
        };
        ctx.spawn(fut.into_actor(self).map(|(res, control), act, ctx| {
            match res {
                Ok(who) => act.memberships_reloaded(who, ctx),
                Err(e) => {
                    // Without knowing what the user may see now, the socket cannot go on.
                    tracing::warn!(error = %e, "reloading a socket's memberships failed");
                    return act.close(ctx, CloseCode::Again, "access changed; reconnect");
                }
            }
            act.watch_memberships(control, ctx);
        }));
    }

    fn memberships_reloaded(&mut self, who: Principal, ctx: &mut Ctx) {
        let lost: Vec<(CaseId, u64)> = self
            .subs
            .iter_mut()
            .filter_map(|(case, sub)| {
                sub.access = CaseAccess::of(&who, &sub.visibility);
                (!sub.access.any()).then_some((*case, sub.last_seq))
            })
            .collect();
        for (case, last) in lost {
            if let Some(CaseSub { delivery: Delivery::Live { stream }, .. }) = self.subs.get(&case) {
                ctx.cancel_future(*stream);
            }
            self.lose(case, last);
        }
        self.who = Some(who);
        if !self.inbox.is_empty() {
            self.subscribe_inbox(None, ctx);
        }
        if let Some(board) = self.board.take() {
            ctx.cancel_future(board.stream);
            self.resync(None, "board_restarted", None);
        }
    }

    fn authenticate(&mut self, id: Option<String>, token: String, ctx: &mut Ctx) {
        // The frames after it wait: a subscribe pipelined right behind must find the socket
        // authenticated.
        self.blocked = true;
        let app = self.app.clone();
        ctx.spawn(async move { app.auth.authenticate(&token, false).await }.into_actor(self).map(
            move |res, act, ctx| match res {
                Ok(caller) => {
                    act.caller = Some(caller);
                    act.authenticated(Some(id), ctx);
                }
                Err(e) => {
                    act.answer_api_error(id, e, ctx);
                    act.blocked = false;
                    act.pump(ctx);
                }
            },
        ));
    }

    /// Closes the socket when its session ended (expiry, inactivity); records activity.
    fn check_session(&mut self, ctx: &mut Ctx) {
        let Some(caller) = self.caller.clone() else { return };
        let active = std::mem::take(&mut self.active);
        let app = self.app.clone();
        let fut = async move {
            let now = now_ms();
            if active {
                let every = crate::store::sessions::touch_every_ms(app.auth.idle_ms());
                app.db.touch_session(caller.session_id, now, every).await?;
            }
            app.db.session_alive(caller.session_id, now, app.auth.idle_ms()).await
        };
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| match res {
            Ok(true) => {}
            Ok(false) => act.close(ctx, CloseCode::Other(CLOSE_REVOKED), "session ended"),
            Err(e) => tracing::warn!(error = %e, "session check failed"),
        }));
    }

    fn revoked(&self) -> bool {
        self.control.as_ref().is_some_and(|c| c.is_revoked())
    }

    // --- the inbound pipeline ---

    fn on_frame(&mut self, bytes: &[u8], ctx: &mut Ctx) {
        let item = if bytes.len() > self.app.settings.ws_max_frame_bytes {
            Inbound::TooLarge
        } else {
            match self.codec.decode_client(bytes) {
                Ok(msg) => Inbound::Message(msg),
                Err(e) => Inbound::Bad(e),
            }
        };
        self.inbound.push_back(item);
        self.pump(ctx);
    }

    /// Handles waiting frames in order until one must be waited for.
    fn pump(&mut self, ctx: &mut Ctx) {
        while !self.blocked {
            let Some(item) = self.inbound.pop_front() else { break };
            match item {
                Inbound::Message(msg) => self.dispatch(msg, ctx),
                Inbound::Bad(DecodeError { id, code, message }) => self.answer_error(id, code, message, ctx),
                Inbound::TooLarge => {
                    let max = self.app.settings.ws_max_frame_bytes;
                    self.answer_error(
                        None,
                        ErrorCode::FrameTooLarge,
                        format!("frames may have at most {max} bytes"),
                        ctx,
                    )
                }
            }
        }
        self.update_gate();
    }

    fn dispatch(&mut self, msg: ClientMessage, ctx: &mut Ctx) {
        let ClientMessage { id, body, .. } = msg;
        if let ClientBody::Ping(_) = body {
            return self.answer(ServerBody::Pong(Pong { id }), ctx);
        }
        let Some(user) = self.user() else {
            return match body {
                ClientBody::Auth(a) => self.authenticate(id, a.token, ctx),
                _ => self.answer_error(
                    id,
                    ErrorCode::Unauthorized,
                    "authenticate first (cookie, Authorization header or an `auth` frame)",
                    ctx,
                ),
            };
        };
        if self.revoked() {
            return self.close(ctx, CloseCode::Other(CLOSE_REVOKED), "session revoked");
        }
        let Some(who) = self.who.clone() else {
            // Not reachable: frames wait while the memberships load.
            return self.answer_error(id, ErrorCode::Unavailable, "the socket is still starting", ctx);
        };
        self.active = true;
        if self.app.ws_limiter.check_key(&user).is_err() {
            metrics::counter!("articula_ws_rate_limited_total").increment(1);
            return self.answer_error(id, ErrorCode::RateLimited, "too many commands; slow down", ctx);
        }
        let case_id = body.case_id();
        let cmd = match body {
            ClientBody::Auth(_) => {
                return self.answer_error(
                    id,
                    ErrorCode::Conflict,
                    "the socket is already authenticated",
                    ctx,
                );
            }
            ClientBody::Ping(_) => return,
            ClientBody::Subscribe(s) => return self.subscribe(id, who, s.case_id, s.since.unwrap_or(0), ctx),
            ClientBody::Unsubscribe(c) => {
                self.drop_sub(c.case_id, ctx);
                return self.answer_ack(id, None, ctx);
            }
            ClientBody::Typing(c) => {
                if self.subs.contains_key(&c.case_id) {
                    self.app.registry.typing(c.case_id, Typing { user_id: user });
                    return self.answer_ack(id, None, ctx);
                }
                return self.answer_error(id, ErrorCode::NotSubscribed, "subscribe to the case first", ctx);
            }
            ClientBody::MarkRead(m) => {
                // Without an id the mark is still made; its answer is dropped.
                let reply = match id {
                    Some(id) => self.reply_for(id),
                    None => Reply::socket(self.answers.clone(), u64::MAX),
                };
                return self.app.registry.mark_read(m.case_id, who, m.seq, reply);
            }
            ClientBody::SubscribeBoard(b) => return self.subscribe_board(id, b.org_id, ctx),
            ClientBody::UnsubscribeBoard(_) => {
                if let Some(b) = self.board.take() {
                    ctx.cancel_future(b.stream);
                }
                return self.answer_ack(id, None, ctx);
            }
            ClientBody::SubscribeInbox(_) => return self.subscribe_inbox(id, ctx),
            ClientBody::PostMessage(m) => CaseCommand::PostMessage(m),
            ClientBody::EditMessage(m) => CaseCommand::EditMessage(m),
            ClientBody::DeleteMessage(m) => CaseCommand::DeleteMessage(m),
            ClientBody::EditRx(m) => CaseCommand::EditRx(m),
            ClientBody::SignRx(m) => CaseCommand::SignRx(m),
            ClientBody::ProposeRx(m) => CaseCommand::ProposeRx(m),
            ClientBody::DecideRxProposal(m) => CaseCommand::DecideRxProposal(m),
            ClientBody::RequestApproval(m) => CaseCommand::RequestApproval(m),
            ClientBody::DecideApproval(m) => CaseCommand::DecideApproval(m),
            ClientBody::SetStatus(m) => CaseCommand::SetStatus(m),
            ClientBody::UpdateCase(m) => CaseCommand::UpdateCase(m),
        };
        let (Some(id), Some(case_id)) = (id, case_id) else {
            return self.answer_error(
                None,
                ErrorCode::ValidationFailed,
                "commands that change a case need an `id`",
                ctx,
            );
        };
        // Queued on the case now, in the order the socket read it.
        let reply = self.reply_for(id.clone());
        self.app.registry.submit(case_id, Command { who, client_id: Some(id), body: cmd }, reply);
    }

    // --- subscriptions ---

    fn subscribe(&mut self, id: Option<String>, who: Principal, case_id: CaseId, since: u64, ctx: &mut Ctx) {
        // Subscribing again (e.g. to resume from an older seq) replaces the subscription.
        self.drop_sub(case_id, ctx);
        let rx = match self.app.registry.subscribe(case_id, Subscribe { who, since, presence: true }) {
            Ok(rx) => rx,
            Err(e) => return self.answer_api_error(id, ApiError::from(e), ctx),
        };
        // The frames after a subscribe wait for it: a command right after it must find the
        // subscription (and its events come after the subscription's backlog).
        self.blocked = true;
        ctx.spawn(
            async move { rx.await.unwrap_or_else(|_| Err(CommandError::unavailable())) }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    act.blocked = false;
                    match res {
                        Ok(sub) => act.subscribed(id, case_id, since, sub, ctx),
                        Err(e) => act.answer_api_error(id, ApiError::from(e), ctx),
                    }
                    act.pump(ctx);
                }),
        );
    }

    fn subscribed(
        &mut self,
        id: Option<String>,
        case_id: CaseId,
        since: u64,
        sub: Subscription,
        ctx: &mut Ctx,
    ) {
        let Subscription { head, backlog, live, reads, visibility, access, present, presence } = sub;
        let generation = self.next_sub;
        self.next_sub += 1;
        self.subs.insert(
            case_id,
            CaseSub {
                generation,
                access,
                visibility,
                last_seq: since,
                delivery: Delivery::Attaching,
                _presence: presence,
            },
        );
        self.answer_ack(id, Some(head), ctx);
        self.send(ServerBody::Presence(Presence { case_id, users: present }));
        for (user_id, seq) in reads {
            self.send(ServerBody::Receipt(Receipt { case_id, user_id, seq }));
        }
        self.deliver_backlog(case_id, backlog, live, ctx);
    }

    fn deliver_backlog(
        &mut self,
        case_id: CaseId,
        backlog: Backlog,
        live: broadcast::Receiver<Arc<Frame>>,
        ctx: &mut Ctx,
    ) {
        match backlog {
            Backlog::Frames(frames) => {
                for frame in &frames {
                    match self.deliver_event(case_id, frame) {
                        Step::Delivered | Step::Skipped => {}
                        Step::Gap => {
                            // The ring is contiguous, so this would be a bug: read the log.
                            tracing::error!(case = %case_id, "resume ring not contiguous");
                            let upto = frames.last().map_or(frame.seq, |f| f.seq);
                            return self.catch_up(case_id, upto, ctx);
                        }
                        Step::Lost => return,
                    }
                }
                let Some(sub) = self.subs.get(&case_id) else { return };
                let generation = sub.generation;
                let stream = ctx.add_stream(channel(live, move |item| CaseItem(case_id, generation, item)));
                if let Some(sub) = self.subs.get_mut(&case_id) {
                    sub.delivery = Delivery::Live { stream };
                }
            }
            Backlog::Store { upto, .. } => {
                // The live stream is asked for again once the log is read up to `upto`.
                drop(live);
                self.catch_up(case_id, upto, ctx);
            }
        }
    }

    /// Delivers one live or ring event to the socket, checking order and access.
    fn deliver_event(&mut self, case_id: CaseId, frame: &Frame) -> Step {
        let Some(sub) = self.subs.get_mut(&case_id) else { return Step::Lost };
        if frame.seq <= sub.last_seq {
            return Step::Skipped;
        }
        if frame.seq != sub.last_seq + 1 {
            return Step::Gap;
        }
        if let Some(vis) = &frame.visibility
            && *vis != sub.visibility
        {
            sub.visibility = vis.clone();
            if let Some(who) = &self.who {
                sub.access = CaseAccess::of(who, vis);
            }
            if !sub.access.any() {
                let last = sub.last_seq;
                self.lose(case_id, last);
                return Step::Lost;
            }
        }
        sub.last_seq = frame.seq;
        self.out.borrow_mut().push(frame.wire(self.codec).clone());
        Step::Delivered
    }

    /// The user may no longer see the case: it leaves the socket, which is told why.
    fn lose(&mut self, case_id: CaseId, last: u64) {
        self.subs.remove(&case_id);
        self.resync(Some(case_id), "access_changed", Some(last));
    }

    /// Reads the log from the subscription's last seq up to `upto`, a page at a time.
    fn catch_up(&mut self, case_id: CaseId, upto: u64, ctx: &mut Ctx) {
        let Some(sub) = self.subs.get_mut(&case_id) else { return };
        if let Delivery::Live { stream } = std::mem::replace(&mut sub.delivery, Delivery::CatchingUp) {
            ctx.cancel_future(stream);
        }
        let (after, generation) = (sub.last_seq, sub.generation);
        if after >= upto {
            return self.reattach(case_id, ctx);
        }
        let app = self.app.clone();
        let fut = async move { app.db.events_page(case_id, after, upto, PAGE).await };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            if act.subs.get(&case_id).is_none_or(|s| s.generation != generation) {
                return;
            }
            let page = match res {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(case = %case_id, error = %e, "reading a catch-up page failed");
                    let last = act.subs.remove(&case_id).map(|s| s.last_seq);
                    return act.resync(Some(case_id), "restarted", last);
                }
            };
            if page.is_empty() || page.first().is_some_and(|e| e.seq != after + 1) {
                // The log is gapless, so this would be a bug: never deliver a gap.
                tracing::error!(case = %case_id, after, upto, "the log has a gap");
                act.resync(Some(case_id), "gap", Some(after));
                return act.close(ctx, CloseCode::Other(CLOSE_RESYNC), "resubscribe with since");
            }
            let Some(who) = act.who.clone() else { return };
            let codec = act.codec;
            let mut lost = None;
            if let Some(sub) = act.subs.get_mut(&case_id) {
                let mut out = act.out.borrow_mut();
                for ev in page {
                    if ev.seq != sub.last_seq + 1 {
                        break;
                    }
                    // Who may see it after this event: the case actor's rule, replayed.
                    sub.visibility = sub.visibility.clone().after(&ev.data);
                    sub.access = CaseAccess::of(&who, &sub.visibility);
                    if !sub.access.any() {
                        lost = Some(sub.last_seq);
                        break;
                    }
                    let body = ServerBody::Event(Event {
                        case_id,
                        seq: ev.seq,
                        at: ev.at,
                        actor: ev.actor,
                        data: ev.data,
                    });
                    match codec.encode_server_frame(&ServerMessage::from(body)) {
                        Ok(b) => out.push(b),
                        Err(e) => {
                            tracing::error!(error = %e, "encoding an event failed");
                            break;
                        }
                    }
                    sub.last_seq = ev.seq;
                }
            }
            metrics::counter!("articula_ws_catchup_pages_total").increment(1);
            if let Some(last) = lost {
                return act.lose(case_id, last);
            }
            // The next page is read when the session runs again: once the socket took this one.
            act.catch_up(case_id, upto, ctx);
        }));
    }

    /// Asks the case for its live stream again, from the subscription's last seq.
    fn reattach(&mut self, case_id: CaseId, ctx: &mut Ctx) {
        let (Some(sub), Some(who)) = (self.subs.get_mut(&case_id), self.who.clone()) else { return };
        sub.delivery = Delivery::Attaching;
        let (since, generation) = (sub.last_seq, sub.generation);
        let rx = match self.app.registry.subscribe(case_id, Subscribe { who, since, presence: false }) {
            Ok(rx) => rx,
            Err(_) => {
                self.subs.remove(&case_id);
                return self.resync(Some(case_id), "restarted", Some(since));
            }
        };
        let fut = async move { rx.await.unwrap_or_else(|_| Err(CommandError::unavailable())) };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            if act.subs.get(&case_id).is_none_or(|s| s.generation != generation) {
                return;
            }
            match res {
                Ok(sub) => {
                    if let Some(s) = act.subs.get_mut(&case_id) {
                        s.visibility = sub.visibility;
                        s.access = sub.access;
                    }
                    // Presence and read receipts are not in the log: those broadcast while the
                    // socket read pages were not on its live stream. Who is here and the read
                    // marks as they are now make up for them.
                    act.send(ServerBody::Presence(Presence { case_id, users: sub.present }));
                    for (user_id, seq) in sub.reads {
                        act.send(ServerBody::Receipt(Receipt { case_id, user_id, seq }));
                    }
                    act.deliver_backlog(case_id, sub.backlog, sub.live, ctx);
                }
                Err(e) if e.code == ErrorCode::NotFound => act.lose(case_id, since),
                Err(_) => {
                    act.subs.remove(&case_id);
                    act.resync(Some(case_id), "restarted", Some(since));
                }
            }
        }));
    }

    fn drop_sub(&mut self, case_id: CaseId, ctx: &mut Ctx) {
        if let Some(sub) = self.subs.remove(&case_id)
            && let Delivery::Live { stream } = sub.delivery
        {
            ctx.cancel_future(stream);
        }
    }

    fn resync(&self, case_id: Option<CaseId>, reason: &str, last_seq: Option<u64>) {
        metrics::counter!("articula_ws_resyncs_total", "reason" => reason.to_owned()).increment(1);
        self.send(ServerBody::Resync(Resync { case_id, reason: reason.to_owned(), last_seq }));
    }

    fn subscribe_board(&mut self, id: Option<String>, org: Option<OrgId>, ctx: &mut Ctx) {
        let app = self.app.clone();
        let Some(user) = self.user() else { return };
        let fut = async move {
            let scope = board_scope(&app, user, org).await?;
            // Subscribe before reading the snapshot: nothing committed in between is missed;
            // changes older than the snapshot are recognised by their seq and skipped.
            let rx = app.registry.hubs().subscribe_board(scope.org());
            let cases = app.db.board(scope, now_ms(), today_utc()).await?;
            Ok::<_, ApiError>((scope, rx, cases))
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| match res {
            Ok((scope, rx, cases)) => {
                if let Some(b) = act.board.take() {
                    ctx.cancel_future(b.stream);
                }
                let seen = cases.iter().map(|c| (c.case_id, c.seq)).collect();
                act.answer_ack(id, None, ctx);
                act.send(ServerBody::Board(Board {
                    org_id: scope.org(),
                    snapshot: true,
                    cases,
                    removed: Vec::new(),
                }));
                let stream = ctx.add_stream(channel(rx, BoardItem));
                act.board = Some(BoardSub { scope, seen, stream });
            }
            Err(e) => act.answer_api_error(id, e, ctx),
        }));
    }

    fn subscribe_inbox(&mut self, id: Option<String>, ctx: &mut Ctx) {
        let app = self.app.clone();
        let Some(user) = self.user() else { return };
        let fut = async move { app.db.memberships(user).await };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            let memberships = match res {
                Ok(m) => m,
                Err(e) => return act.answer_api_error(id, ApiError::from(e), ctx),
            };
            let mut orgs: HashMap<OrgId, InboxFilter> = HashMap::new();
            for m in memberships {
                let filter = match m.role {
                    Role::ClinicAdmin | Role::LabTech | Role::LabAdmin => InboxFilter::All,
                    Role::Doctor => InboxFilter::Doctor(user),
                    Role::Owner | Role::Auditor => continue,
                };
                let e = orgs.entry(m.org_id).or_insert(filter);
                if matches!(filter, InboxFilter::All) {
                    *e = InboxFilter::All;
                }
            }
            for h in act.inbox.drain(..) {
                ctx.cancel_future(h);
            }
            for (org, filter) in orgs {
                let rx = act.app.registry.hubs().subscribe_activity(org);
                act.inbox.push(ctx.add_stream(channel(rx, move |item| InboxItem(filter, item))));
            }
            act.answer_ack(id, None, ctx);
        }));
    }
}

impl StreamHandler<AnswerItem> for WsSession {
    fn handle(&mut self, AnswerItem(answer): AnswerItem, ctx: &mut Self::Context) {
        let Some(id) = self.unanswered.remove(&answer.token) else { return };
        match answer.result {
            Ok(reply) => self.answer_ack(Some(id), reply.seq, ctx),
            Err(e) => self.answer_api_error(Some(id), ApiError::from(e), ctx),
        }
        self.update_gate();
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {}
}

/// What delivering one event did.
enum Step {
    Delivered,
    /// Already delivered.
    Skipped,
    /// Not the next seq.
    Gap,
    /// The user lost the case at this event.
    Lost,
}

impl Actor for WsSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        metrics::gauge!("articula_ws_open").increment(1.0);
        let every = Duration::from_secs(self.app.settings.ws_heartbeat_secs);
        ctx.run_interval(every, move |act, ctx| {
            if act.last_seen.elapsed() > every * 3 {
                act.close(ctx, CloseCode::Away, "heartbeat timeout");
            } else {
                ctx.ping(b"");
            }
        });
        if let Some(rx) = self.answers_rx.take() {
            ctx.add_stream(tokio_stream::wrappers::UnboundedReceiverStream::new(rx).map(AnswerItem));
        }
        if self.caller.is_some() {
            self.authenticated(None, ctx);
        } else {
            ctx.run_later(AUTH_TIMEOUT, |act, ctx| {
                if act.caller.is_none() {
                    act.close(ctx, CloseCode::Policy, "not authenticated");
                }
            });
        }
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        metrics::gauge!("articula_ws_open").decrement(1.0);
        if let Some(c) = &self.control {
            self.app.revocations.unregister(c);
        }
        // Their presence guards leave the cases.
        self.subs.clear();
        self.gate.set_paused(false);
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsSession {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_seen = Instant::now();
        match msg {
            Ok(ws::Message::Ping(b)) => ctx.pong(&b),
            Ok(ws::Message::Pong(_)) | Ok(ws::Message::Nop) => {}
            Ok(ws::Message::Text(t)) if self.codec == Codec::Json => self.on_frame(t.as_bytes(), ctx),
            Ok(ws::Message::Binary(b)) if self.codec == Codec::MsgPack => self.on_frame(&b, ctx),
            Ok(ws::Message::Text(_)) | Ok(ws::Message::Binary(_)) => {
                let message = format!(
                    "{} uses {} frames",
                    self.codec.subprotocol(),
                    if self.codec.is_binary() { "binary" } else { "text" }
                );
                self.inbound.push_back(Inbound::Bad(DecodeError {
                    id: None,
                    code: ErrorCode::MalformedFrame,
                    message,
                }));
                self.pump(ctx);
            }
            Ok(ws::Message::Continuation(_)) => {
                let message = "fragmented frames are not supported".to_owned();
                self.inbound.push_back(Inbound::Bad(DecodeError {
                    id: None,
                    code: ErrorCode::MalformedFrame,
                    message,
                }));
                self.pump(ctx);
            }
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Err(ws::ProtocolError::Overflow) => self.close(ctx, CloseCode::Size, "frame too large"),
            Err(e) => {
                tracing::debug!(error = %e, "websocket protocol error");
                self.close(ctx, CloseCode::Protocol, "protocol error");
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl StreamHandler<CaseItem> for WsSession {
    fn handle(&mut self, CaseItem(case_id, generation, batch): CaseItem, ctx: &mut Self::Context) {
        if self.revoked() {
            return self.close(ctx, CloseCode::Other(CLOSE_REVOKED), "session revoked");
        }
        if self.subs.get(&case_id).is_none_or(|s| s.generation != generation) {
            return;
        }
        let me = self.user();
        for frame in &batch.frames {
            match frame.kind {
                FrameKind::Event => match self.deliver_event(case_id, frame) {
                    Step::Delivered | Step::Skipped => {}
                    // Missed events (a restarted case's last commit): read them from the log,
                    // then attach again.
                    Step::Gap => return self.catch_up(case_id, frame.seq - 1, ctx),
                    Step::Lost => return,
                },
                FrameKind::Head => {
                    if self.subs.get(&case_id).is_some_and(|s| frame.seq > s.last_seq) {
                        return self.catch_up(case_id, frame.seq, ctx);
                    }
                }
                FrameKind::Ephemeral => {
                    if frame.actor.is_none() || frame.actor != me {
                        self.send_frame(frame);
                    }
                }
                FrameKind::Board | FrameKind::Inbox => {}
            }
        }
        let last = self.subs.get(&case_id).map(|s| s.last_seq);
        match batch.end {
            None => {}
            Some(End::Lagged) => {
                self.resync(Some(case_id), "lagged", last);
                self.close(ctx, CloseCode::Other(CLOSE_RESYNC), "fell behind; resubscribe with since");
            }
            Some(End::Closed) => {
                // The case's channel closed (its actor stopped for good): the client resubscribes.
                self.subs.remove(&case_id);
                self.resync(Some(case_id), "restarted", last);
            }
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {}
}

impl StreamHandler<BoardItem> for WsSession {
    fn handle(&mut self, BoardItem(batch): BoardItem, ctx: &mut Self::Context) {
        if self.revoked() {
            return self.close(ctx, CloseCode::Other(CLOSE_REVOKED), "session revoked");
        }
        let Some(board) = self.board.as_mut() else { return };
        let mut out = Vec::new();
        for frame in batch.frames {
            if let BoardScope::Doctor(_, me) = board.scope
                && frame.doctor_id != Some(me)
            {
                continue;
            }
            if let Some(case) = frame.case_id {
                let seen = board.seen.entry(case).or_insert(0);
                if frame.seq != 0 && frame.seq <= *seen {
                    continue;
                }
                *seen = frame.seq.max(*seen);
            }
            out.push(frame);
        }
        for frame in &out {
            self.send_frame(frame);
        }
        match batch.end {
            None => {}
            Some(End::Lagged) => {
                self.resync(None, "board_lagged", None);
                self.close(ctx, CloseCode::Other(CLOSE_RESYNC), "fell behind; subscribe to the board again");
            }
            Some(End::Closed) => {
                self.board = None;
                self.resync(None, "board_restarted", None);
            }
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {}
}

impl StreamHandler<InboxItem> for WsSession {
    fn handle(&mut self, InboxItem(filter, batch): InboxItem, ctx: &mut Self::Context) {
        if self.revoked() {
            return self.close(ctx, CloseCode::Other(CLOSE_REVOKED), "session revoked");
        }
        let me = self.user();
        for frame in &batch.frames {
            if frame.actor == me {
                continue;
            }
            if let InboxFilter::Doctor(d) = filter
                && frame.doctor_id != Some(d)
            {
                continue;
            }
            self.send_frame(frame);
        }
        if batch.end == Some(End::Lagged) {
            self.resync(None, "inbox_lagged", None);
            self.close(ctx, CloseCode::Other(CLOSE_RESYNC), "fell behind; subscribe to the inbox again");
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {}
}
