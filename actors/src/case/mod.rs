//! The case actor: the only writer of its case.
//!
//! A command is checked against the caller's relation to the case *as it is now* (computed
//! from the caller's memberships and the case's current clinic, doctor, lab and status) and the
//! case state ([`decide`]), gets the next `seq`, is applied to the in-memory state and queued
//! for the [`PersistenceActor`]. Only when the commit succeeds is the event broadcast to
//! subscribers and the command acked — so a subscriber never sees an event that is not durable.
//! One commit per case is in flight at a time; commands arriving meanwhile are queued (up to a
//! bound) and go out together in the next commit, which keeps the per-case order trivially
//! right and makes a failed commit easy to undo: the actor answers what is durable, fails the
//! rest and restarts from the durable log.
//!
//! Messages reach the actor only through the [`CaseRegistry`](crate::CaseRegistry), with
//! `try_send`: in the order they were sent, never waiting, and refused at once with a
//! retryable error when the mailbox is full.

mod decide;
pub mod state;

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use articula_protocol::{
    CaseId, ErrorCode, EventData, FileId, FileKind, Inbox, MessageId, OrgId, Presence, Receipt, ServerBody,
    TypingFrame, UserId,
};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{error, warn};

pub use decide::{
    MAX_ATTACHMENTS, MAX_COMMENT_CHARS, MAX_LABEL_CHARS, MAX_MESSAGE_CHARS, MAX_TRANSCRIPT_CHARS,
};
use state::{CaseState, MessageRef, SNAPSHOT_VERSION};

use crate::clock::{now_ms, today_utc};
use crate::error::CommandError;
use crate::frame::{Frame, FrameKind};
use crate::persistence::{Barrier, Commit, CommitFailure};
use crate::policy::{CaseAccess, Principal, Visibility};
use crate::ports::{LoadedCase, PersistItem, StoreErrorKind, StoredEvent};
use crate::registry::CaseDeps;

/// A file that finished uploading, to become a `file_added` event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NewFile {
    /// The file.
    pub file_id: FileId,
    /// Display name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Detected media type.
    pub content_type: String,
    /// SHA-256, hex.
    pub sha256: String,
    /// What it is for.
    pub kind: FileKind,
}

/// Everything that changes a case.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum CaseCommand {
    /// Post a chat message.
    PostMessage(articula_protocol::PostMessage),
    /// Edit one's message.
    EditMessage(articula_protocol::EditMessage),
    /// Delete one's message.
    DeleteMessage(articula_protocol::MessageRef),
    /// Edit Rx fields.
    EditRx(articula_protocol::EditRx),
    /// Sign the Rx.
    SignRx(articula_protocol::SignRx),
    /// Propose Rx changes.
    ProposeRx(articula_protocol::ProposeRx),
    /// Decide a proposal.
    DecideRxProposal(articula_protocol::DecideRxProposal),
    /// Request an approval.
    RequestApproval(articula_protocol::RequestApproval),
    /// Decide an approval.
    DecideApproval(articula_protocol::DecideApproval),
    /// Change status.
    SetStatus(articula_protocol::SetStatus),
    /// Change label, due date or lab.
    UpdateCase(articula_protocol::UpdateCase),
    /// Add an uploaded file (from the upload path, not from clients directly).
    AddFile(NewFile),
    /// Add a voice note's transcript (from the transcription worker).
    AddTranscript {
        /// The voice note.
        file_id: FileId,
        /// The transcript.
        text: String,
    },
    /// Give a user capabilities on the case (replacing their grant, if any).
    GiveGrant {
        /// To whom.
        user_id: UserId,
        /// What.
        capabilities: Vec<articula_protocol::Capability>,
        /// Until when (ms).
        until: Option<i64>,
        /// Read access for a support account.
        support: bool,
        /// The organisations the grantee belongs to (looked up by the server: grants go to
        /// members of the case's clinic or lab, support grants to anyone).
        grantee_orgs: Vec<OrgId>,
    },
    /// Take a user's grant back.
    RevokeGrant {
        /// Whose.
        user_id: UserId,
    },
}

/// A digest of a command (64-bit FNV-1a of its JSON), stored with the event it created: a
/// retry carries the same command, another command reusing the id does not.
pub fn command_digest(cmd: &CaseCommand) -> u64 {
    let bytes = serde_json::to_vec(cmd).unwrap_or_default();
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// A command from a user (or from the server on a user's behalf).
#[derive(Clone, Debug)]
pub struct Command {
    /// Who.
    pub who: Principal,
    /// The client's command id, for exactly-once retries.
    pub client_id: Option<String>,
    /// What.
    pub body: CaseCommand,
}

/// A command's success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandReply {
    /// The seq of the event it created (none for read marks).
    pub seq: Option<u64>,
    /// True when this was a retry of a command already done: nothing new was created.
    pub duplicate: bool,
}

/// A command's answer, on a socket's answer channel.
#[derive(Debug)]
pub struct Answer {
    /// Which command (the socket's own token).
    pub token: u64,
    /// The answer.
    pub result: Result<CommandReply, CommandError>,
}

enum ReplyTo {
    Once(oneshot::Sender<Result<CommandReply, CommandError>>),
    Socket(mpsc::UnboundedSender<Answer>, u64),
}

/// Where a command's answer goes: a one-off channel (REST, uploads), or the answer channel of
/// the socket that sent it — one channel per socket, written in the order the case actor
/// decides, so that a socket's acks of one case arrive in the order of their seqs and a refusal
/// arrives at once. Bounded by the socket, which stops reading while too many of its commands
/// are unanswered. A reply dropped unanswered (a panic) answers `unavailable`.
pub struct Reply(Option<ReplyTo>);

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reply")
    }
}

impl Reply {
    /// A one-off reply and its receiver.
    pub fn once() -> (Self, oneshot::Receiver<Result<CommandReply, CommandError>>) {
        let (tx, rx) = oneshot::channel();
        (Self(Some(ReplyTo::Once(tx))), rx)
    }

    /// A reply on a socket's answer channel, for the command of `token`.
    pub fn socket(tx: mpsc::UnboundedSender<Answer>, token: u64) -> Self {
        Self(Some(ReplyTo::Socket(tx, token)))
    }

    /// Answers.
    pub fn send(mut self, result: Result<CommandReply, CommandError>) {
        if let Some(to) = self.0.take() {
            Self::deliver(to, result);
        }
    }

    fn deliver(to: ReplyTo, result: Result<CommandReply, CommandError>) {
        match to {
            ReplyTo::Once(tx) => {
                let _ = tx.send(result);
            }
            ReplyTo::Socket(tx, token) => {
                let _ = tx.send(Answer { token, result });
            }
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if let Some(to) = self.0.take() {
            Self::deliver(to, Err(CommandError::unavailable()));
        }
    }
}

/// A command, delivered by the registry.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Submit {
    pub(crate) cmd: Command,
    pub(crate) reply: Option<Reply>,
}

/// Marks the case read up to `seq` (delivered by the registry).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct MarkRead {
    pub(crate) who: Principal,
    pub(crate) seq: u64,
    pub(crate) reply: Option<Reply>,
}

/// Subscribes a socket to the case.
#[derive(Debug)]
pub struct Subscribe {
    /// Who.
    pub who: Principal,
    /// The last seq the client has.
    pub since: u64,
    /// Counts the subscriber in the case's presence (false when a socket re-attaches after
    /// catching up from the log: it is already counted).
    pub presence: bool,
}

/// A subscription request, delivered by the registry.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Join {
    pub(crate) req: Subscribe,
    pub(crate) reply: oneshot::Sender<Result<Subscription, CommandError>>,
}

/// Events the subscriber missed.
#[derive(Debug)]
pub enum Backlog {
    /// Served from memory.
    Frames(Vec<Arc<Frame>>),
    /// Older than the in-memory ring: read `(after, upto]` from the store, page by page, then
    /// subscribe again from `upto`.
    Store {
        /// Exclusive lower bound.
        after: u64,
        /// Inclusive upper bound.
        upto: u64,
    },
}

/// A live subscription: the backlog up to `head`, then everything from `live`.
#[derive(Debug)]
pub struct Subscription {
    /// The latest committed seq when subscribing.
    pub head: u64,
    /// Missed events up to `head`.
    pub backlog: Backlog,
    /// Events after `head`, and ephemeral frames.
    pub live: broadcast::Receiver<Arc<Frame>>,
    /// Read marks: user → seq.
    pub reads: Vec<(UserId, u64)>,
    /// Who may see the case now.
    pub visibility: Visibility,
    /// The subscriber's relation to the case now.
    pub access: CaseAccess,
    /// Users subscribed right now (including this one).
    pub present: Vec<UserId>,
    /// Holds the subscriber's place in the case's presence; dropping it leaves.
    pub presence: Option<PresenceGuard>,
}

/// A subscriber is typing (ephemeral, never persisted).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Typing {
    /// Who.
    pub user_id: UserId,
}

/// A presence guard was dropped: broadcast who is here now.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct PresenceChanged;

/// Where an injected fault strikes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PanicPoint {
    /// At once, in the injection's own handler.
    Now,
    /// In the next command's handler.
    Command,
    /// In the next subscription's handler.
    Subscribe,
    /// In the next read mark's handler.
    MarkRead,
    /// In the next typing signal's handler.
    Typing,
    /// In the next presence change's handler (a subscriber leaving).
    PresenceChanged,
}

/// Fault injection for tests: makes the actor panic inside a handler, to prove that its
/// supervisor restarts it from durable state and nothing acknowledged is lost.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct InjectPanic(pub PanicPoint);

/// Panics when a fault was injected at `point` (test hook; see [`InjectPanic`]).
fn strike(armed: &mut Option<PanicPoint>, point: PanicPoint) {
    if *armed == Some(point) {
        *armed = None;
        // Deliberate: this is the fault-injection hook.
        #[allow(clippy::panic)]
        {
            panic!("injected panic")
        }
    }
}

/// Who is subscribed to a case: counts per user, shared with the subscribers' guards so that a
/// subscriber leaving needs no message that could be lost or grow a queue.
#[derive(Debug, Default)]
struct PresenceBook {
    users: Mutex<HashMap<UserId, u32>>,
}

impl PresenceBook {
    /// Counts a subscriber; true when the user was not present.
    fn join(&self, user: UserId) -> bool {
        let Ok(mut users) = self.users.lock() else { return false };
        let n = users.entry(user).or_insert(0);
        *n += 1;
        *n == 1
    }

    /// Uncounts a subscriber; true when the user is no longer present.
    fn leave(&self, user: UserId) -> bool {
        let Ok(mut users) = self.users.lock() else { return false };
        match users.get_mut(&user) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                users.remove(&user);
                true
            }
            None => false,
        }
    }

    fn users(&self) -> Vec<UserId> {
        let mut v: Vec<_> = self.users.lock().map(|u| u.keys().copied().collect()).unwrap_or_default();
        v.sort();
        v
    }

    fn contains(&self, user: UserId) -> bool {
        self.users.lock().is_ok_and(|u| u.contains_key(&user))
    }

    fn is_empty(&self) -> bool {
        self.users.lock().map_or(true, |u| u.is_empty())
    }
}

/// A subscriber's place in its case's presence; dropping it leaves.
pub struct PresenceGuard {
    book: Arc<PresenceBook>,
    user: UserId,
    addr: Addr<CaseActor>,
}

impl std::fmt::Debug for PresenceGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresenceGuard").field("user", &self.user).finish()
    }
}

impl Drop for PresenceGuard {
    fn drop(&mut self) {
        if self.book.leave(self.user) {
            // Lossy on purpose: when the mailbox is full, the next presence broadcast (any
            // join or leave) carries the change.
            let _ = self.addr.try_send(PresenceChanged);
        }
    }
}

/// Where the actor is in its life.
enum Phase {
    /// Reading the log (the mailbox waits meanwhile).
    Loading,
    /// Serving.
    Ready(Box<CaseState>),
    /// The log could not be read; commands get `unavailable` until a reload succeeds.
    Failed,
    /// No such case.
    Gone,
    /// Idle and removed from the registry: it stops.
    Retired,
}

/// Who an event is from, and the command that made it.
struct Origin {
    actor: UserId,
    client_id: Option<String>,
    digest: Option<u64>,
    ip: Option<String>,
}

/// A validated change waiting to be durable.
struct Pending {
    /// Committed together or not at all (an event and its snapshot, or a read mark).
    items: Vec<PersistItem>,
    seq: Option<u64>,
    /// The command id and digest, for retries that arrive while it is pending.
    command: Option<(UserId, String, u64)>,
    /// A read mark: user and seq.
    read_mark: Option<(UserId, u64)>,
    frame: Option<Arc<Frame>>,
    waiters: Vec<Reply>,
    /// Board and inbox effects to publish once committed.
    effects: Option<Effects>,
    /// When the change was accepted (for the time-to-durable histogram).
    accepted: Instant,
}

struct Effects {
    summary: articula_protocol::CaseSummary,
    inbox: Arc<Frame>,
    lab_visible: bool,
    /// A lab that could see the case before this event and no longer can.
    lab_lost: Option<OrgId>,
    /// A chat message deleted by this event (its text leaves the resume ring).
    deleted: Option<MessageId>,
}

/// One live case.
pub struct CaseActor {
    id: CaseId,
    generation: u64,
    deps: Arc<CaseDeps>,
    phase: Phase,
    /// Committed events and ephemeral frames to subscribers. Bounded: a subscriber that falls
    /// more than its capacity behind is told to resync.
    tx: broadcast::Sender<Arc<Frame>>,
    /// The latest committed events, to serve resumes from memory (filled as events commit).
    ring: VecDeque<Arc<Frame>>,
    committed_seq: u64,
    in_flight: Vec<Pending>,
    queued: Vec<Pending>,
    presence: Arc<PresenceBook>,
    reads: HashMap<UserId, u64>,
    typing_at: HashMap<UserId, Instant>,
    last_touch: Instant,
    loaded_once: bool,
    /// Messages received through the registry (compared with what it sent before retiring).
    handled: u64,
    /// An injected fault waiting for its handler (tests).
    armed: Option<PanicPoint>,
    /// The timer of the next grant's end.
    expiry: Option<(i64, SpawnHandle)>,
}

/// Fewest milliseconds between two `typing` frames of one user.
const TYPING_INTERVAL: Duration = Duration::from_millis(1500);

impl CaseActor {
    pub(crate) fn new(id: CaseId, generation: u64, deps: Arc<CaseDeps>) -> Self {
        let (tx, _) = broadcast::channel(deps.config.subscriber_queue.max(16));
        deps.alive.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("articula_case_actors").increment(1.0);
        Self {
            id,
            generation,
            deps,
            phase: Phase::Loading,
            tx,
            ring: VecDeque::new(),
            committed_seq: 0,
            in_flight: Vec::new(),
            queued: Vec::new(),
            presence: Arc::default(),
            reads: HashMap::new(),
            typing_at: HashMap::new(),
            last_touch: Instant::now(),
            loaded_once: false,
            handled: 0,
            armed: None,
            expiry: None,
        }
    }

    /// Runs a handler body; a panic restarts the actor from durable state instead of taking the
    /// arbiter thread down.
    fn guarded<R>(
        &mut self,
        ctx: &mut Context<Self>,
        f: impl FnOnce(&mut Self, &mut Context<Self>) -> R,
    ) -> Option<R> {
        match std::panic::catch_unwind(AssertUnwindSafe(|| f(self, ctx))) {
            Ok(r) => Some(r),
            Err(_) => {
                error!(case = %self.id, "case actor panicked; restarting it from the durable log");
                metrics::counter!("articula_case_actor_restarts_total").increment(1);
                self.crash(ctx);
                None
            }
        }
    }

    /// Fails everything pending and restarts from the durable log. Pending commands may have
    /// been committed; their senders retry with the same id and get the original ack.
    fn crash(&mut self, ctx: &mut Context<Self>) {
        for p in self.in_flight.drain(..).chain(self.queued.drain(..)) {
            for w in p.waiters {
                w.send(Err(CommandError::unavailable()));
            }
        }
        ctx.stop();
    }

    fn ready(&mut self) -> Result<&mut CaseState, CommandError> {
        match &mut self.phase {
            Phase::Ready(s) => Ok(s),
            Phase::Retired => Err(CommandError::retired()),
            Phase::Gone => Err(CommandError::not_found("case")),
            Phase::Loading | Phase::Failed => Err(CommandError::unavailable()),
        }
    }

    fn load(&mut self, ctx: &mut Context<Self>) {
        self.phase = Phase::Loading;
        // Wait until every commit handed to persistence before now has finished, so the log we
        // read includes whatever a previous incarnation of this actor had in flight.
        let barrier = self.deps.persistence.send(Barrier);
        let store = self.deps.store.clone();
        let id = self.id;
        let fut = async move {
            let _ = barrier.await;
            store.load(id, SNAPSHOT_VERSION).await
        };
        let started = Instant::now();
        ctx.wait(fut.into_actor(self).map(move |res, act, ctx| {
            match res {
                Ok(Some(loaded)) => act.install(loaded, ctx),
                Ok(None) => {
                    act.phase = Phase::Gone;
                    // Nothing to keep: probes of ids that do not exist must not pile up actors.
                    act.try_retire(ctx);
                }
                Err(e) => {
                    error!(case = %act.id, error = %e, "loading the case failed; retrying");
                    act.phase = Phase::Failed;
                    ctx.run_later(Duration::from_secs(1), |act, ctx| act.load(ctx));
                }
            }
            metrics::histogram!("articula_case_load_seconds").record(started.elapsed().as_secs_f64());
        }));
    }

    fn install(&mut self, loaded: LoadedCase, ctx: &mut Context<Self>) {
        let events = &loaded.events;
        let head_len = events.len().min(1);
        let (state, tail) = match &loaded.snapshot {
            Some(snap) => {
                (CaseState::from_snapshot(&snap.data).ok().filter(|s| s.seq == snap.seq), &events[..])
            }
            None => (CaseState::from_log(&events[..head_len]), &events[head_len..]),
        };
        let gapless = |s: &CaseState| tail.iter().enumerate().all(|(i, e)| e.seq == s.seq + 1 + i as u64);
        let Some(mut state) = state.filter(gapless) else {
            error!(case = %self.id, "the case's snapshot or event log is inconsistent");
            self.phase = Phase::Failed;
            return;
        };
        for ev in tail {
            state.apply(ev, ev.digest);
        }
        metrics::histogram!("articula_case_load_events").record(events.len() as f64);
        self.deps.loads.fetch_add(1, Ordering::Relaxed);
        self.deps.loaded_events.fetch_add(events.len() as u64, Ordering::Relaxed);
        if self.loaded_once && state.seq > self.committed_seq {
            // A restart: events up to the durable head may never have been broadcast.
            // Subscribers fetch what they miss from the log.
            let _ = self.tx.send(Frame::head(self.id, state.seq));
        }
        self.committed_seq = state.seq;
        self.ring.clear();
        self.reads = loaded.reads.into_iter().collect();
        // Folded a long log (no snapshot yet, or one of an older format): store one now, so
        // that the next start is short.
        let rebuild = events.len() > 2 * self.deps.config.snapshot_every.max(1);
        if rebuild && let Ok(data) = state.snapshot() {
            self.queued.push(Pending {
                items: vec![PersistItem::Snapshot {
                    case_id: self.id,
                    seq: state.seq,
                    version: SNAPSHOT_VERSION,
                    data,
                }],
                seq: None,
                command: None,
                read_mark: None,
                frame: None,
                waiters: Vec::new(),
                effects: None,
                accepted: Instant::now(),
            });
        }
        self.phase = Phase::Ready(Box::new(state));
        self.loaded_once = true;
        self.expiry = None;
        self.schedule_expiry(ctx);
        self.flush(ctx);
    }

    /// Arms a timer for the next grant's end (grants stop granting at their `until` anyway;
    /// the event records it and takes the case from live sockets at that moment).
    fn schedule_expiry(&mut self, ctx: &mut Context<Self>) {
        let Phase::Ready(state) = &self.phase else { return };
        let now = now_ms();
        let next = state.grants.iter().filter_map(|g| g.until).min();
        match (next, &self.expiry) {
            (Some(at), Some((armed, _))) if *armed == at => {}
            (Some(at), _) => {
                if let Some((_, h)) = self.expiry.take() {
                    ctx.cancel_future(h);
                }
                let wait = Duration::from_millis((at - now).max(0) as u64 + 1);
                let h = ctx.run_later(wait, |act, ctx| {
                    act.expiry = None;
                    act.guarded(ctx, |act, ctx| act.expire_grants(ctx));
                });
                self.expiry = Some((at, h));
            }
            (None, _) => {
                if let Some((_, h)) = self.expiry.take() {
                    ctx.cancel_future(h);
                }
            }
        }
    }

    /// Records the end of every grant whose time has come.
    fn expire_grants(&mut self, ctx: &mut Context<Self>) {
        let Phase::Ready(state) = &self.phase else { return };
        let now = now_ms();
        let ended: Vec<UserId> = state.grants.iter().filter(|g| !g.live(now)).map(|g| g.user_id).collect();
        for user_id in ended {
            let origin = Origin { actor: user_id, client_id: None, digest: None, ip: None };
            self.append(EventData::GrantExpired { user_id }, origin, None, ctx);
        }
        self.schedule_expiry(ctx);
    }

    /// A command: checked against the caller's relation to the case now, the command window
    /// (exactly once), the queue bounds, then decided and queued for the next commit.
    fn on_submit(&mut self, cmd: Command, reply: Reply, looked_up: bool, ctx: &mut Context<Self>) {
        let committed = self.committed_seq;
        let busy = self.queued.len() >= self.deps.config.max_queued || self.deps.commit_queue.full();
        let state = match self.ready() {
            Ok(s) => s,
            Err(e) => {
                reply.send(Err(e));
                return;
            }
        };
        let digest = command_digest(&cmd.body);
        if let Some(id) = &cmd.client_id
            && let Some(mark) = state.commands.get(cmd.who.user_id, id)
        {
            if mark.digest.is_some_and(|d| d != digest) {
                reply.send(Err(CommandError::id_reused()));
            } else if mark.seq <= committed {
                reply.send(Ok(CommandReply { seq: Some(mark.seq), duplicate: true }));
            } else if let Some(p) =
                self.in_flight.iter_mut().chain(self.queued.iter_mut()).find(|p| p.seq == Some(mark.seq))
            {
                p.waiters.push(reply);
            } else {
                reply.send(Err(CommandError::unavailable()));
            }
            return;
        }
        let access = CaseAccess::of(&cmd.who, &state.visibility());
        // An owner of the clinic manages grants on cases whose content they do not see.
        let owner_managing = access.clinic_owner
            && matches!(cmd.body, CaseCommand::GiveGrant { .. } | CaseCommand::RevokeGrant { .. });
        if !access.any() && !cmd.who.system && !owner_managing {
            reply.send(Err(CommandError::not_found("case")));
            return;
        }
        if busy {
            metrics::counter!("articula_case_busy_total").increment(1);
            reply.send(Err(CommandError::busy()));
            return;
        }
        if !looked_up && let Some(message) = decide::message_to_look_up(state, &cmd.body) {
            return self.look_up_then(message, cmd, reply, ctx);
        }
        self.accept(cmd, access, digest, reply, ctx);
    }

    /// Looks up a message the state no longer remembers, then handles the command. The mailbox
    /// waits meanwhile (`ctx.wait`), so the order of commands is kept.
    fn look_up_then(&mut self, message: MessageId, cmd: Command, reply: Reply, ctx: &mut Context<Self>) {
        let fut = self.deps.store.message(self.id, message);
        ctx.wait(fut.into_actor(self).map(move |res, act, ctx| match res {
            Ok(found) => {
                let touch = act.committed_seq;
                if let (Some(m), Phase::Ready(state)) = (found, &mut act.phase)
                    && state.messages.get(&message).is_none()
                {
                    state.messages.put(
                        message,
                        MessageRef { author: m.author, deleted: m.deleted, seq: m.seq },
                        touch,
                    );
                }
                act.guarded(ctx, |act, ctx| act.on_submit(cmd, reply, true, ctx));
            }
            Err(e) => {
                warn!(case = %act.id, error = %e, "looking up a message failed");
                reply.send(Err(CommandError::unavailable()));
            }
        }));
    }

    fn accept(
        &mut self,
        cmd: Command,
        access: CaseAccess,
        digest: u64,
        reply: Reply,
        ctx: &mut Context<Self>,
    ) {
        let Phase::Ready(state) = &mut self.phase else {
            reply.send(Err(CommandError::unavailable()));
            return;
        };
        let data = match decide::decide(state, &access, &cmd.body) {
            Ok(d) => d,
            Err(e) => {
                reply.send(Err(e));
                return;
            }
        };
        let origin = Origin {
            actor: cmd.who.user_id,
            digest: cmd.client_id.as_ref().map(|_| digest),
            ip: cmd.who.ip.as_deref().map(str::to_owned),
            client_id: cmd.client_id,
        };
        self.append(data, origin, Some(reply), ctx);
    }

    /// Appends an event (decided by a command, or by the actor itself: a grant's end) and
    /// queues it for the next commit.
    fn append(&mut self, data: EventData, origin: Origin, reply: Option<Reply>, ctx: &mut Context<Self>) {
        let case_id = self.id;
        let snapshot_every = self.deps.config.snapshot_every.max(1) as u64;
        let Phase::Ready(state) = &mut self.phase else {
            if let Some(r) = reply {
                r.send(Err(CommandError::unavailable()));
            }
            return;
        };
        let at = now_ms().max(state.last_activity);
        let deleted = match &data {
            EventData::MessageDeleted { message_id } => Some(*message_id),
            _ => None,
        };
        let event = StoredEvent {
            case_id,
            seq: state.seq + 1,
            at,
            actor: origin.actor,
            digest: origin.digest,
            ip: origin.ip,
            client_id: origin.client_id,
            data,
        };
        let before = state.visibility();
        state.apply(&event, event.digest);
        let after = state.visibility();
        let lab_lost = before
            .lab_id
            .filter(|_| before.lab_visible() && (!after.lab_visible() || after.lab_id != before.lab_id));
        let summary = state.summary(today_utc());
        let inbox = Frame::encode(
            FrameKind::Inbox,
            ServerBody::Inbox(Inbox {
                case_id,
                label: state.label.clone(),
                seq: event.seq,
                kind: event.data.kind().to_owned(),
                actor: event.actor,
                at,
                mentions: match &event.data {
                    EventData::MessagePosted { mentions, .. } => mentions.clone(),
                    _ => Vec::new(),
                },
            }),
        )
        .map(|mut f| {
            f.case_id = Some(case_id);
            f.seq = event.seq;
            f.doctor_id = Some(state.doctor_id);
            f.actor = Some(event.actor);
            Arc::new(f)
        });
        let after_lab_visible = after.lab_visible();
        let (frame, inbox) = match (Frame::event(&event, after), inbox) {
            (Ok(f), Ok(i)) => (f, i),
            _ => {
                // Only a bug in the protocol types gets here; the state already holds the event.
                error!(case = %case_id, "encoding an event failed");
                if let Some(r) = reply {
                    r.send(Err(CommandError::new(ErrorCode::Internal, "internal error")));
                }
                return self.crash(ctx);
            }
        };
        let seq = event.seq;
        let command = event.client_id.clone().zip(event.digest).map(|(id, digest)| (event.actor, id, digest));
        let mut items = vec![PersistItem::Event { event, row: state.row() }];
        if seq.is_multiple_of(snapshot_every) {
            match state.snapshot() {
                Ok(data) => {
                    items.push(PersistItem::Snapshot { case_id, seq, version: SNAPSHOT_VERSION, data })
                }
                Err(e) => warn!(case = %case_id, error = %e, "serialising a snapshot failed"),
            }
        }
        let grants_changed = matches!(
            items.first(),
            Some(PersistItem::Event { event, .. })
                if matches!(event.data, EventData::GrantGiven { .. } | EventData::GrantRevoked { .. } | EventData::GrantExpired { .. })
        );
        self.queued.push(Pending {
            items,
            seq: Some(seq),
            command,
            read_mark: None,
            frame: Some(frame),
            waiters: reply.into_iter().collect(),
            effects: Some(Effects { summary, inbox, lab_visible: after_lab_visible, lab_lost, deleted }),
            accepted: Instant::now(),
        });
        if grants_changed {
            self.schedule_expiry(ctx);
        }
        self.flush(ctx);
    }

    /// Hands the queued changes to persistence, unless a commit is already in flight.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if !self.in_flight.is_empty() || self.queued.is_empty() {
            return;
        }
        // A commit's events are broadcast together; keeping a commit well under the
        // subscribers' queue bound leaves readers that keep up room to drain between commits.
        let take = self.queued.len().min(self.deps.config.max_commit_events());
        self.in_flight = self.queued.drain(..take).collect();
        let groups = self.in_flight.iter_mut().map(|p| std::mem::take(&mut p.items)).collect();
        let fut = self.deps.persistence.send(Commit { groups });
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| {
            act.guarded(ctx, |act, ctx| match res {
                Ok(Ok(())) => {
                    act.committed(act.in_flight.len());
                    act.flush(ctx);
                }
                Ok(Err(failure)) => act.commit_failed(failure, ctx),
                Err(e) => {
                    warn!(case = %act.id, error = %e, "persistence unreachable; restarting the case");
                    act.crash(ctx);
                }
            });
        }));
    }

    /// The first `n` changes of the in-flight commit are durable: now, and only now,
    /// subscribers see them and their senders get their acks.
    fn committed(&mut self, n: usize) {
        let batch: Vec<Pending> = self.in_flight.drain(..n.min(self.in_flight.len())).collect();
        let mut last_effects = None;
        if let Some(first) = batch.first() {
            // From the oldest change of the commit being accepted to its being durable.
            metrics::histogram!("articula_case_time_to_durable_seconds")
                .record(first.accepted.elapsed().as_secs_f64());
        }
        for p in batch {
            if let Some(frame) = p.frame {
                let _ = self.tx.send(frame.clone());
                if let Some(seq) = p.seq {
                    self.committed_seq = seq;
                    self.ring.push_back(frame);
                    if self.ring.len() > self.deps.config.resume_ring {
                        self.ring.pop_front();
                    }
                }
            }
            if let Some((user, seq)) = p.read_mark {
                // Read marks never go backwards, whatever order two of them committed in.
                let mark = self.reads.entry(user).or_insert(0);
                *mark = (*mark).max(seq);
            }
            for w in p.waiters {
                w.send(Ok(CommandReply { seq: p.seq, duplicate: false }));
            }
            if let Some(fx) = p.effects {
                if let Some(message) = fx.deleted {
                    self.withdraw_from_ring(message);
                }
                self.deps.hubs.publish_activity(fx.summary.clinic_id, fx.inbox.clone());
                if fx.lab_visible
                    && let Some(lab) = fx.summary.lab_id
                {
                    self.deps.hubs.publish_activity(lab, fx.inbox.clone());
                }
                if let Some(lab) = fx.lab_lost {
                    self.deps.hubs.publish_board_removal(lab, self.id);
                }
                last_effects = Some(fx);
            }
        }
        // One board update per commit and case, with the latest committed summary.
        if let Some(fx) = last_effects {
            self.deps.hubs.publish_board(fx.summary.clinic_id, &fx.summary);
            if fx.lab_visible
                && let Some(lab) = fx.summary.lab_id
            {
                self.deps.hubs.publish_board(lab, &fx.summary);
            }
        }
    }

    /// A commit made only its first `durable` changes durable: those are answered, the failing
    /// one is told whether a retry can help, and the case restarts from its log (the state
    /// already holds the changes that failed).
    fn commit_failed(&mut self, failure: CommitFailure, ctx: &mut Context<Self>) {
        self.committed(failure.durable);
        let kind = failure.error.kind;
        warn!(case = %self.id, error = %failure.error, durable = failure.durable, "commit failed; restarting the case from its log");
        if !self.in_flight.is_empty() {
            let failing = self.in_flight.remove(0);
            match kind {
                StoreErrorKind::Transient => {
                    for w in failing.waiters {
                        w.send(Err(CommandError::unavailable()));
                    }
                }
                StoreErrorKind::Permanent => {
                    metrics::counter!("articula_commands_not_storable_total").increment(1);
                    for w in failing.waiters {
                        w.send(Err(CommandError::not_storable()));
                    }
                }
                StoreErrorKind::Duplicate => self.answer_duplicate(failing),
            }
        }
        self.crash(ctx);
    }

    /// A command id older than the in-memory window was reused: the database refused the second
    /// event. The original answers a true retry; another command under the same id is refused.
    fn answer_duplicate(&self, failing: Pending) {
        let Some((user, id, digest)) = failing.command else {
            for w in failing.waiters {
                w.send(Err(CommandError::not_storable()));
            }
            return;
        };
        let lookup = self.deps.store.find_command(self.id, user, id);
        actix::spawn(async move {
            let answer = match lookup.await {
                Ok(Some((seq, stored))) if stored.is_none_or(|d| d == digest) => {
                    Ok(CommandReply { seq: Some(seq), duplicate: true })
                }
                Ok(Some(_)) => Err(CommandError::id_reused()),
                Ok(None) | Err(_) => Err(CommandError::unavailable()),
            };
            for w in failing.waiters {
                w.send(answer.clone());
            }
        });
    }

    /// A deleted message's text must not be served again: its frames leave the resume ring
    /// (resumes from before them read the log, which serves deleted messages without text).
    fn withdraw_from_ring(&mut self, message: MessageId) {
        if let Some(last) = self.ring.iter().rposition(|f| f.message_id == Some(message)) {
            self.ring.drain(..=last);
        }
    }

    fn broadcast_presence(&self) {
        let users = self.presence.users();
        if let Ok(f) = Frame::ephemeral(self.id, ServerBody::Presence(Presence { case_id: self.id, users })) {
            let _ = self.tx.send(f);
        }
    }

    fn idle_check(&mut self, ctx: &mut Context<Self>) {
        let idle = self.tx.receiver_count() == 0
            && self.presence.is_empty()
            && self.in_flight.is_empty()
            && self.queued.is_empty()
            && self.last_touch.elapsed() >= self.deps.config.idle_after;
        // A case whose log could not be read (database down) retires too when nobody needs
        // it: it retries its load every second, and ids probed meanwhile must not pile up.
        if idle && matches!(self.phase, Phase::Ready(_) | Phase::Gone | Phase::Failed) {
            self.try_retire(ctx);
        }
    }

    /// Leaves the registry and stops, if nothing was sent to this actor that it has not handled
    /// yet (so that no message is left behind in a mailbox nobody reads).
    fn try_retire(&mut self, ctx: &mut Context<Self>) {
        let Some(registry) = self.deps.registry.upgrade() else { return };
        if registry.retire(self.id, self.generation, self.handled) {
            self.phase = Phase::Retired;
            self.ring.clear();
            ctx.stop();
        }
    }

    /// After each message: an actor of a case that does not exist goes at once.
    fn after_message(&mut self, ctx: &mut Context<Self>) {
        self.handled += 1;
        if matches!(self.phase, Phase::Gone) {
            self.try_retire(ctx);
        }
    }

    fn on_mark_read(&mut self, who: Principal, seq: u64, reply: Reply, ctx: &mut Context<Self>) {
        let committed = self.committed_seq;
        let busy = self.queued.len() >= self.deps.config.max_queued || self.deps.commit_queue.full();
        let state = match self.ready() {
            Ok(s) => s,
            Err(e) => {
                reply.send(Err(e));
                return;
            }
        };
        if !CaseAccess::of(&who, &state.visibility()).any() {
            reply.send(Err(CommandError::not_found("case")));
            return;
        }
        if seq > committed {
            reply.send(Err(CommandError::invalid(format!(
                "seq {seq} is beyond the case's latest {committed}"
            ))));
            return;
        }
        let user_id = who.user_id;
        let pending_mark = self.queued.iter().chain(self.in_flight.iter()).filter_map(|p| p.read_mark);
        let highest = pending_mark.filter(|(u, _)| *u == user_id).map(|(_, s)| s).max();
        if self.reads.get(&user_id).copied().max(highest).is_some_and(|s| s >= seq) {
            reply.send(Ok(CommandReply { seq: None, duplicate: true }));
            return;
        }
        if busy {
            reply.send(Err(CommandError::busy()));
            return;
        }
        let frame = match Frame::ephemeral(
            self.id,
            ServerBody::Receipt(Receipt { case_id: self.id, user_id, seq }),
        ) {
            Ok(f) => f,
            Err(_) => {
                reply.send(Err(CommandError::new(ErrorCode::Internal, "internal error")));
                return;
            }
        };
        self.queued.push(Pending {
            items: vec![PersistItem::ReadMark { case_id: self.id, user_id, seq, at: now_ms() }],
            seq: None,
            command: None,
            read_mark: Some((user_id, seq)),
            frame: Some(frame),
            waiters: vec![reply],
            effects: None,
            accepted: Instant::now(),
        });
        self.flush(ctx);
    }

    fn on_join(&mut self, req: Subscribe, ctx: &mut Context<Self>) -> Result<Subscription, CommandError> {
        let head = self.committed_seq;
        let state = self.ready()?;
        let visibility = state.visibility();
        let access = CaseAccess::of(&req.who, &visibility);
        if !access.any() {
            return Err(CommandError::not_found("case"));
        }
        if req.since > head {
            return Err(CommandError::invalid(format!(
                "since {} is ahead of the case's latest seq {head}",
                req.since
            )));
        }
        let live = self.tx.subscribe();
        let backlog = if req.since == head {
            Backlog::Frames(Vec::new())
        } else if self.ring.front().is_some_and(|f| f.seq <= req.since + 1) {
            Backlog::Frames(self.ring.iter().filter(|f| f.seq > req.since).cloned().collect())
        } else {
            Backlog::Store { after: req.since, upto: head }
        };
        let source = if matches!(backlog, Backlog::Store { .. }) { "store" } else { "memory" };
        metrics::counter!("articula_resumes_total", "source" => source).increment(1);
        let user = req.who.user_id;
        let presence = if req.presence {
            if self.presence.join(user) {
                self.broadcast_presence();
            }
            Some(PresenceGuard { book: self.presence.clone(), user, addr: ctx.address() })
        } else {
            None
        };
        Ok(Subscription {
            head,
            backlog,
            live,
            reads: self.reads.iter().map(|(u, s)| (*u, *s)).collect(),
            visibility,
            access,
            present: self.presence.users(),
            presence,
        })
    }
}

impl Drop for CaseActor {
    fn drop(&mut self) {
        self.deps.alive.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!("articula_case_actors").decrement(1.0);
    }
}

impl Actor for CaseActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if matches!(self.phase, Phase::Retired) {
            // Restarted by its supervisor only because a stale address still exists: stay
            // stopped-in-spirit (no load, no timers) until that address goes.
            return;
        }
        ctx.set_mailbox_capacity(self.deps.config.mailbox);
        self.load(ctx);
        let every =
            (self.deps.config.idle_after / 4).clamp(Duration::from_millis(50), Duration::from_secs(15));
        ctx.run_interval(every, |act, ctx| act.idle_check(ctx));
    }
}

impl Supervised for CaseActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        if matches!(self.phase, Phase::Retired) {
            return;
        }
        self.deps.restarts.fetch_add(1, Ordering::Relaxed);
        // Keep the broadcast sender (subscribers keep their receivers), `committed_seq` (what
        // subscribers have seen), presence and the message count; the rest comes from the log.
        self.phase = Phase::Loading;
        self.in_flight.clear();
        self.queued.clear();
        self.ring.clear();
    }
}

impl Handler<Submit> for CaseActor {
    type Result = ();

    fn handle(&mut self, msg: Submit, ctx: &mut Context<Self>) {
        self.last_touch = Instant::now();
        let Submit { cmd, reply } = msg;
        let Some(reply) = reply else { return };
        self.guarded(ctx, |act, ctx| {
            strike(&mut act.armed, PanicPoint::Command);
            act.on_submit(cmd, reply, false, ctx)
        });
        self.after_message(ctx);
    }
}

impl Handler<MarkRead> for CaseActor {
    type Result = ();

    fn handle(&mut self, msg: MarkRead, ctx: &mut Context<Self>) {
        self.last_touch = Instant::now();
        let MarkRead { who, seq, reply } = msg;
        let Some(reply) = reply else { return };
        self.guarded(ctx, |act, ctx| {
            strike(&mut act.armed, PanicPoint::MarkRead);
            act.on_mark_read(who, seq, reply, ctx)
        });
        self.after_message(ctx);
    }
}

impl Handler<Join> for CaseActor {
    type Result = ();

    fn handle(&mut self, msg: Join, ctx: &mut Context<Self>) {
        self.last_touch = Instant::now();
        let Join { req, reply } = msg;
        if let Some(res) = self.guarded(ctx, |act, ctx| {
            strike(&mut act.armed, PanicPoint::Subscribe);
            act.on_join(req, ctx)
        }) {
            let _ = reply.send(res);
        }
        self.after_message(ctx);
    }
}

impl Handler<PresenceChanged> for CaseActor {
    type Result = ();

    fn handle(&mut self, _: PresenceChanged, ctx: &mut Context<Self>) {
        self.guarded(ctx, |act, _| {
            strike(&mut act.armed, PanicPoint::PresenceChanged);
            let present = act.presence.users();
            act.typing_at.retain(|u, _| present.contains(u));
            act.broadcast_presence();
        });
    }
}

impl Handler<Typing> for CaseActor {
    type Result = ();

    fn handle(&mut self, msg: Typing, ctx: &mut Context<Self>) {
        self.guarded(ctx, |act, _| {
            strike(&mut act.armed, PanicPoint::Typing);
            if !act.presence.contains(msg.user_id) {
                return;
            }
            let now = Instant::now();
            if act.typing_at.get(&msg.user_id).is_some_and(|t| now.duration_since(*t) < TYPING_INTERVAL) {
                return;
            }
            act.typing_at.insert(msg.user_id, now);
            let body = ServerBody::Typing(TypingFrame { case_id: act.id, user_id: msg.user_id });
            if let Ok(mut f) = Frame::encode(FrameKind::Ephemeral, body) {
                f.case_id = Some(act.id);
                f.actor = Some(msg.user_id);
                let _ = act.tx.send(Arc::new(f));
            }
        });
        self.after_message(ctx);
    }
}

impl Handler<InjectPanic> for CaseActor {
    type Result = ();

    fn handle(&mut self, InjectPanic(point): InjectPanic, ctx: &mut Context<Self>) {
        self.handled += 1;
        self.armed = Some(point);
        self.guarded(ctx, |act, _| strike(&mut act.armed, PanicPoint::Now));
    }
}
