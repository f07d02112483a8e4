//! One WebSocket: decode → authorize → route to the case actor, and deliver what the case
//! actors and hubs broadcast.
//!
//! Outbound frames arrive through bounded broadcast channels (one per subscribed case, board or
//! inbox), read in batches; each frame is encoded once, as a WebSocket frame, for all sockets,
//! and the session only queues its shared bytes in the socket's outbox. A socket that falls
//! further behind than the channel's bound gets `resync` and is closed — its slowness never
//! reaches the case actor or grows memory. Heartbeats detect dead peers; a revoked session or
//! user closes the socket at once.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web_actors::ws::{self, CloseCode, CloseReason};
use articula_actors::case::{Backlog, MarkRead, Subscription, Typing, Unsubscribe};
use articula_actors::clock::{now_ms, today_utc};
use articula_actors::{CaseAccess, CaseCommand, Command, Frame, FrameKind};
use articula_protocol::{
    Ack, Board, CaseId, ClientBody, ClientMessage, Codec, DecodeError, ErrorCode, ErrorFrame, OrgId, Pong,
    Presence, Receipt, Resync, Role, ServerBody, ServerMessage, UserId, Welcome,
};
use futures_util::StreamExt;

use super::batches::{Batch, Batches, End};
use super::transport::SharedOutbox;

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
/// How long a looked-up access to a case the socket is not subscribed to is reused.
const RECENT_ACCESS: Duration = Duration::from_secs(10);
/// At most this many such cases are remembered per socket.
const RECENT_ACCESS_CASES: usize = 4096;

/// Frames (and maybe the end) of a case's channel.
struct CaseItem(CaseId, Batch);
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

struct CaseSub {
    access: CaseAccess,
    last_seq: u64,
    lab_id: Option<OrgId>,
    stream: SpawnHandle,
}

struct BoardSub {
    scope: BoardScope,
    seen: HashMap<CaseId, u64>,
    stream: SpawnHandle,
}

/// The session actor of one socket.
pub struct WsSession {
    app: Arc<AppState>,
    codec: Codec,
    /// Where frames to this socket go (written by the transport in order).
    out: SharedOutbox,
    caller: Option<Caller>,
    control: Option<Arc<SocketControl>>,
    last_seen: Instant,
    subs: HashMap<CaseId, CaseSub>,
    /// Access to cases this socket sends commands to without being subscribed, for
    /// [`RECENT_ACCESS`]: a client posting to many cases must not cost a database query per
    /// command (under load those queries queue for the pool and starve everything else).
    recent_access: Rc<RefCell<HashMap<CaseId, (CaseAccess, Instant)>>>,
    pending_subs: HashSet<CaseId>,
    board: Option<BoardSub>,
    inbox: Vec<SpawnHandle>,
    authenticating: bool,
    /// The user sent a command since the last session check (socket use is session use).
    active: bool,
}

fn channel<T: 'static>(
    rx: tokio::sync::broadcast::Receiver<Arc<Frame>>,
    wrap: impl Fn(Batch) -> T + 'static,
) -> impl Stream<Item = T> {
    Batches::new(rx).map(wrap)
}

impl WsSession {
    /// A session, pre-authenticated when the upgrade carried credentials.
    pub fn new(app: Arc<AppState>, codec: Codec, caller: Option<Caller>, out: SharedOutbox) -> Self {
        Self {
            app,
            codec,
            out,
            caller,
            control: None,
            last_seen: Instant::now(),
            subs: HashMap::new(),
            recent_access: Rc::default(),
            pending_subs: HashSet::new(),
            board: None,
            inbox: Vec::new(),
            authenticating: false,
            active: false,
        }
    }

    fn user(&self) -> Option<UserId> {
        self.caller.as_ref().map(|c| c.user_id)
    }

    fn send(&self, _ctx: &mut ws::WebsocketContext<Self>, body: ServerBody) {
        match self.codec.encode_server_frame(&ServerMessage::from(body)) {
            Ok(bytes) => self.out.borrow_mut().push(bytes),
            Err(e) => tracing::error!(error = %e, "encoding a frame failed"),
        }
    }

    fn send_frame(&self, _ctx: &mut ws::WebsocketContext<Self>, frame: &Frame) {
        self.out.borrow_mut().push(frame.wire(self.codec).clone());
    }

    fn ack(&self, ctx: &mut ws::WebsocketContext<Self>, id: Option<String>, seq: Option<u64>) {
        if let Some(id) = id {
            self.send(ctx, ServerBody::Ack(Ack { id, seq }));
        }
    }

    fn error(
        &self,
        ctx: &mut ws::WebsocketContext<Self>,
        id: Option<String>,
        code: ErrorCode,
        message: impl Into<String>,
        details: Option<serde_json::Value>,
    ) {
        self.send(ctx, ServerBody::Error(ErrorFrame { id, code, message: message.into(), details }));
    }

    fn api_error(&self, ctx: &mut ws::WebsocketContext<Self>, id: Option<String>, e: ApiError) {
        self.error(ctx, id, e.code, e.message, e.details);
    }

    fn close(&mut self, ctx: &mut ws::WebsocketContext<Self>, code: CloseCode, why: &str) {
        ctx.close(Some(CloseReason { code, description: Some(why.to_owned()) }));
        ctx.stop();
    }

    fn authenticated(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        let Some(caller) = &self.caller else { return };
        let control = self.app.revocations.register(caller.user_id, caller.session_id);
        let watch = control.clone();
        ctx.spawn(
            async move { watch.revoked().await }
                .into_actor(self)
                .map(|_, act, ctx| act.close(ctx, CloseCode::Other(CLOSE_REVOKED), "session revoked")),
        );
        self.control = Some(control);
        // The first check comes at a random point of the interval: sockets that connected
        // together (a reconnect storm, a restart) must not all query the database together.
        let first = SESSION_CHECK.mul_f64(rand::random::<f64>());
        ctx.run_later(first, |act, ctx| {
            act.check_session(ctx);
            ctx.run_interval(SESSION_CHECK, |act, ctx| act.check_session(ctx));
        });
        metrics::counter!("articula_ws_authenticated_total").increment(1);
        self.send(
            ctx,
            ServerBody::Welcome(Welcome {
                user_id: caller.user_id,
                heartbeat_secs: self.app.settings.ws_heartbeat_secs,
                max_frame_bytes: self.app.settings.ws_max_frame_bytes as u64,
            }),
        );
    }

    /// Closes the socket when its session ended (expiry, inactivity); records activity.
    fn check_session(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
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

    fn on_frame(&mut self, bytes: &[u8], ctx: &mut ws::WebsocketContext<Self>) {
        if bytes.len() > self.app.settings.ws_max_frame_bytes {
            self.error(
                ctx,
                None,
                ErrorCode::FrameTooLarge,
                format!("frames may have at most {} bytes", self.app.settings.ws_max_frame_bytes),
                None,
            );
            return;
        }
        match self.codec.decode_client(bytes) {
            Ok(msg) => self.dispatch(msg, ctx),
            Err(DecodeError { id, code, message }) => self.error(ctx, id, code, message, None),
        }
    }

    fn dispatch(&mut self, msg: ClientMessage, ctx: &mut ws::WebsocketContext<Self>) {
        let ClientMessage { id, body, .. } = msg;
        if let ClientBody::Ping(_) = body {
            self.send(ctx, ServerBody::Pong(Pong { id }));
            return;
        }
        let Some(user) = self.user() else {
            return match body {
                ClientBody::Auth(a) => self.authenticate(id, a.token, ctx),
                _ => self.error(
                    ctx,
                    id,
                    ErrorCode::Unauthorized,
                    "authenticate first (cookie, Authorization header or an `auth` frame)",
                    None,
                ),
            };
        };
        if self.revoked() {
            return self.close(ctx, CloseCode::Other(CLOSE_REVOKED), "session revoked");
        }
        self.active = true;
        if self.app.ws_limiter.check_key(&user).is_err() {
            metrics::counter!("articula_ws_rate_limited_total").increment(1);
            return self.error(ctx, id, ErrorCode::RateLimited, "too many commands; slow down", None);
        }
        let case_id = body.case_id();
        let cmd = match body {
            ClientBody::Auth(_) => {
                return self.error(ctx, id, ErrorCode::Conflict, "the socket is already authenticated", None);
            }
            ClientBody::Ping(_) => return,
            ClientBody::Subscribe(s) => return self.subscribe(id, s.case_id, s.since.unwrap_or(0), ctx),
            ClientBody::Unsubscribe(c) => {
                self.drop_sub(c.case_id, ctx);
                return self.ack(ctx, id, None);
            }
            ClientBody::Typing(c) => {
                if self.subs.contains_key(&c.case_id) {
                    self.app.registry.typing(c.case_id, Typing { user_id: user });
                    return self.ack(ctx, id, None);
                }
                return self.error(ctx, id, ErrorCode::NotSubscribed, "subscribe to the case first", None);
            }
            ClientBody::MarkRead(m) => return self.mark_read(id, m.case_id, m.seq, ctx),
            ClientBody::SubscribeBoard(b) => return self.subscribe_board(id, b.org_id, ctx),
            ClientBody::UnsubscribeBoard(_) => {
                if let Some(b) = self.board.take() {
                    ctx.cancel_future(b.stream);
                }
                return self.ack(ctx, id, None);
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
            return self.error(
                ctx,
                None,
                ErrorCode::ValidationFailed,
                "commands that change a case need an `id`",
                None,
            );
        };
        self.case_command(id, case_id, cmd, ctx);
    }

    fn authenticate(&mut self, id: Option<String>, token: String, ctx: &mut ws::WebsocketContext<Self>) {
        if self.authenticating {
            return self.error(ctx, id, ErrorCode::Conflict, "authentication already in progress", None);
        }
        self.authenticating = true;
        let app = self.app.clone();
        ctx.spawn(async move { app.auth.authenticate(&token, false).await }.into_actor(self).map(
            move |res, act, ctx| {
                act.authenticating = false;
                match res {
                    Ok(caller) => {
                        act.caller = Some(caller);
                        act.ack(ctx, id, None);
                        act.authenticated(ctx);
                    }
                    Err(e) => act.api_error(ctx, id, e),
                }
            },
        ));
    }

    /// The caller's access to a case: from the live subscription, else from the database.
    /// (A subscription keeps the access it was granted for its whole life; a recent lookup is
    /// kept for [`RECENT_ACCESS`] only. A revoked session or user closes the socket, and
    /// everything cached with it.)
    fn access_future(&self, case_id: CaseId) -> impl Future<Output = Result<CaseAccess, ApiError>> + 'static {
        let cached = self.subs.get(&case_id).map(|s| s.access).or_else(|| {
            let recent = self.recent_access.borrow();
            recent.get(&case_id).filter(|(_, at)| at.elapsed() < RECENT_ACCESS).map(|(a, _)| *a)
        });
        let app = self.app.clone();
        let user = self.user();
        let recent = self.recent_access.clone();
        async move {
            if let Some(a) = cached {
                return Ok(a);
            }
            let user =
                user.ok_or_else(|| ApiError::unauthorized(ErrorCode::Unauthorized, "authenticate first"))?;
            let access = crate::http::cases::require_access(&app, user, case_id).await?;
            let mut recent = recent.borrow_mut();
            if recent.len() >= RECENT_ACCESS_CASES {
                recent.retain(|_, (_, at)| at.elapsed() < RECENT_ACCESS);
            }
            if recent.len() < RECENT_ACCESS_CASES {
                recent.insert(case_id, (access, Instant::now()));
            }
            Ok(access)
        }
    }

    fn case_command(
        &mut self,
        id: String,
        case_id: CaseId,
        body: CaseCommand,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let app = self.app.clone();
        let access = self.access_future(case_id);
        let client_id = Some(id.clone());
        let fut = async move {
            let access = access.await?;
            app.registry.command(case_id, Command { access, client_id, body }).await.map_err(ApiError::from)
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| match res {
            Ok(reply) => act.ack(ctx, Some(id), reply.seq),
            Err(e) => act.api_error(ctx, Some(id), e),
        }));
    }

    fn mark_read(
        &mut self,
        id: Option<String>,
        case_id: CaseId,
        seq: u64,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let app = self.app.clone();
        let access = self.access_future(case_id);
        let fut = async move {
            let access = access.await?;
            app.registry.mark_read(case_id, MarkRead { access, seq }).await.map_err(ApiError::from)
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| match res {
            Ok(_) => act.ack(ctx, id, None),
            Err(e) => act.api_error(ctx, id, e),
        }));
    }

    fn subscribe(
        &mut self,
        id: Option<String>,
        case_id: CaseId,
        since: u64,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        if !self.pending_subs.insert(case_id) {
            return self.error(
                ctx,
                id,
                ErrorCode::Conflict,
                "a subscription to this case is already being set up",
                None,
            );
        }
        // Subscribing again (e.g. to resume from an older seq) replaces the subscription.
        self.drop_sub(case_id, ctx);
        let app = self.app.clone();
        let user = self.user();
        let fut = async move {
            let user =
                user.ok_or_else(|| ApiError::unauthorized(ErrorCode::Unauthorized, "authenticate first"))?;
            let access = crate::http::cases::require_access(&app, user, case_id).await?;
            let sub = app
                .registry
                .subscribe(case_id, articula_actors::Subscribe { access, since })
                .await
                .map_err(ApiError::from)?;
            let backlog = match &sub.backlog {
                Backlog::Frames(frames) => frames.clone(),
                Backlog::Store { after, upto } => app
                    .db
                    .events_between(case_id, *after, *upto, i64::MAX)
                    .await?
                    .iter()
                    .map(Frame::event)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(ApiError::internal)?,
            };
            Ok::<_, ApiError>((access, sub, backlog))
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.pending_subs.remove(&case_id);
            match res {
                Ok((access, sub, backlog)) => act.subscribed(id, case_id, since, access, sub, backlog, ctx),
                Err(e) => act.api_error(ctx, id, e),
            }
        }));
    }

    #[allow(clippy::too_many_arguments)]
    fn subscribed(
        &mut self,
        id: Option<String>,
        case_id: CaseId,
        since: u64,
        access: CaseAccess,
        sub: Subscription,
        backlog: Vec<Arc<Frame>>,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        self.ack(ctx, id, Some(sub.head));
        let mut last_seq = since;
        for frame in &backlog {
            if frame.seq != last_seq + 1 {
                break;
            }
            self.send_frame(ctx, frame);
            last_seq = frame.seq;
        }
        if last_seq != sub.head {
            // The log is gapless, so this would be a bug: never deliver a gap, make the client resync.
            tracing::error!(case = %case_id, last_seq, head = sub.head, "backlog incomplete");
            self.app.registry.unsubscribe(case_id, Unsubscribe { user_id: access.user_id });
            return self.resync(ctx, Some(case_id), "gap", Some(last_seq));
        }
        let mut present = sub.present.clone();
        present.sort();
        self.send(ctx, ServerBody::Presence(Presence { case_id, users: present }));
        for (user_id, seq) in &sub.reads {
            self.send(ctx, ServerBody::Receipt(Receipt { case_id, user_id: *user_id, seq: *seq }));
        }
        let stream = ctx.add_stream(channel(sub.live, move |item| CaseItem(case_id, item)));
        self.subs.insert(case_id, CaseSub { access, last_seq, lab_id: sub.lab_id, stream });
    }

    fn drop_sub(&mut self, case_id: CaseId, ctx: &mut ws::WebsocketContext<Self>) {
        if let Some(sub) = self.subs.remove(&case_id) {
            ctx.cancel_future(sub.stream);
            if let Some(user) = self.user() {
                self.app.registry.unsubscribe(case_id, Unsubscribe { user_id: user });
            }
        }
    }

    fn resync(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        case_id: Option<CaseId>,
        reason: &str,
        last_seq: Option<u64>,
    ) {
        metrics::counter!("articula_ws_resyncs_total", "reason" => reason.to_owned()).increment(1);
        self.send(ctx, ServerBody::Resync(Resync { case_id, reason: reason.to_owned(), last_seq }));
    }

    fn subscribe_board(
        &mut self,
        id: Option<String>,
        org: Option<OrgId>,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let app = self.app.clone();
        let user = self.user();
        let fut = async move {
            let user =
                user.ok_or_else(|| ApiError::unauthorized(ErrorCode::Unauthorized, "authenticate first"))?;
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
                act.ack(ctx, id, None);
                let seen = cases.iter().map(|c| (c.case_id, c.seq)).collect();
                act.send(
                    ctx,
                    ServerBody::Board(Board {
                        org_id: scope.org(),
                        snapshot: true,
                        cases,
                        removed: Vec::new(),
                    }),
                );
                let stream = ctx.add_stream(channel(rx, BoardItem));
                act.board = Some(BoardSub { scope, seen, stream });
            }
            Err(e) => act.api_error(ctx, id, e),
        }));
    }

    fn subscribe_inbox(&mut self, id: Option<String>, ctx: &mut ws::WebsocketContext<Self>) {
        let app = self.app.clone();
        let Some(user) = self.user() else { return };
        let fut = async move { app.db.memberships(user).await };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            let memberships = match res {
                Ok(m) => m,
                Err(e) => return act.api_error(ctx, id, ApiError::from(e)),
            };
            for h in act.inbox.drain(..) {
                ctx.cancel_future(h);
            }
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
            for (org, filter) in orgs {
                let rx = act.app.registry.hubs().subscribe_activity(org);
                act.inbox.push(ctx.add_stream(channel(rx, move |item| InboxItem(filter, item))));
            }
            act.ack(ctx, id, None);
        }));
    }
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
        if self.caller.is_some() {
            self.authenticated(ctx);
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
        if let Some(user) = self.user() {
            for case_id in self.subs.keys() {
                self.app.registry.unsubscribe(*case_id, Unsubscribe { user_id: user });
            }
        }
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
            Ok(ws::Message::Text(_)) | Ok(ws::Message::Binary(_)) => self.error(
                ctx,
                None,
                ErrorCode::MalformedFrame,
                format!(
                    "{} uses {} frames",
                    self.codec.subprotocol(),
                    if self.codec.is_binary() { "binary" } else { "text" }
                ),
                None,
            ),
            Ok(ws::Message::Continuation(_)) => {
                self.error(ctx, None, ErrorCode::MalformedFrame, "fragmented frames are not supported", None)
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

/// Why a case's batch stopped being delivered.
enum Stop {
    /// A seq is missing (a bug: never deliver a gap).
    Gap { last: u64, seq: u64 },
    /// The case left this user's lab.
    LabLost { last: u64 },
}

impl StreamHandler<CaseItem> for WsSession {
    fn handle(&mut self, CaseItem(case_id, batch): CaseItem, ctx: &mut Self::Context) {
        if self.revoked() {
            return self.close(ctx, CloseCode::Other(CLOSE_REVOKED), "session revoked");
        }
        let me = self.user();
        let codec = self.codec;
        let Some(sub) = self.subs.get_mut(&case_id) else { return };
        let mut out = self.out.borrow_mut();
        let mut stop = None;
        for frame in &batch.frames {
            match frame.kind {
                FrameKind::Event => {
                    if frame.seq <= sub.last_seq {
                        continue;
                    }
                    if frame.seq != sub.last_seq + 1 {
                        stop = Some(Stop::Gap { last: sub.last_seq, seq: frame.seq });
                        break;
                    }
                    if let Some(new_lab) = frame.lab_change
                        && new_lab != sub.lab_id
                    {
                        if !sub.access.clinic_side() {
                            // The case left this user's lab: no further frame of it reaches them.
                            stop = Some(Stop::LabLost { last: sub.last_seq });
                            break;
                        }
                        sub.lab_id = new_lab;
                    }
                    sub.last_seq = frame.seq;
                    out.push(frame.wire(codec).clone());
                }
                FrameKind::Ephemeral => {
                    if frame.actor.is_none() || frame.actor != me {
                        out.push(frame.wire(codec).clone());
                    }
                }
                FrameKind::Board | FrameKind::Inbox => {}
            }
        }
        let last = sub.last_seq;
        drop(out);
        match stop {
            Some(Stop::Gap { last, seq }) => {
                tracing::error!(case = %case_id, seq, last, "gap in a case channel");
                self.resync(ctx, Some(case_id), "gap", Some(last));
                return self.close(ctx, CloseCode::Other(CLOSE_RESYNC), "resubscribe with since");
            }
            Some(Stop::LabLost { last }) => {
                self.drop_sub(case_id, ctx);
                return self.resync(ctx, Some(case_id), "access_changed", Some(last));
            }
            None => {}
        }
        match batch.end {
            None => {}
            Some(End::Lagged) => {
                self.resync(ctx, Some(case_id), "lagged", Some(last));
                self.close(ctx, CloseCode::Other(CLOSE_RESYNC), "fell behind; resubscribe with since");
            }
            Some(End::Closed) => {
                // The case's channel closed (its actor stopped for good): the client resubscribes.
                self.subs.remove(&case_id);
                self.resync(ctx, Some(case_id), "restarted", Some(last));
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
            self.send_frame(ctx, frame);
        }
        match batch.end {
            None => {}
            Some(End::Lagged) => {
                self.resync(ctx, None, "board_lagged", None);
                self.close(ctx, CloseCode::Other(CLOSE_RESYNC), "fell behind; subscribe to the board again");
            }
            Some(End::Closed) => {
                self.board = None;
                self.resync(ctx, None, "board_restarted", None);
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
            self.send_frame(ctx, frame);
        }
        if batch.end == Some(End::Lagged) {
            self.resync(ctx, None, "inbox_lagged", None);
            self.close(ctx, CloseCode::Other(CLOSE_RESYNC), "fell behind; subscribe to the inbox again");
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {}
}
