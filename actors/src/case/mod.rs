//! The case actor: the only writer of its case.
//!
//! A command is validated against the caller's role and the case state ([`decide`]), gets the
//! next `seq`, is applied to the in-memory state and queued for the [`PersistenceActor`]. Only
//! when the commit succeeds is the event broadcast to subscribers and the command acked — so a
//! subscriber never sees an event that is not durable. One commit per case is in flight at a
//! time; commands arriving meanwhile are queued and go out together in the next commit, which
//! keeps the per-case order trivially right and makes a failed commit easy to undo: the actor
//! fails every pending command and restarts from the durable log.

mod decide;
pub mod state;

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use articula_protocol::{
    CaseId, ErrorCode, FileId, FileKind, Inbox, OrgId, Presence, Receipt, ServerBody, TypingFrame, UserId,
};
use tokio::sync::{broadcast, oneshot};
use tracing::{error, warn};

pub use decide::{MAX_ATTACHMENTS, MAX_COMMENT_CHARS, MAX_LABEL_CHARS, MAX_MESSAGE_CHARS};
use state::CaseState;

use crate::clock::{now_ms, today_utc};
use crate::error::CommandError;
use crate::frame::{Frame, FrameKind};
use crate::persistence::{Barrier, Commit};
use crate::policy::CaseAccess;
use crate::ports::{LoadedCase, PersistItem, StoredEvent};
use crate::registry::CaseDeps;

/// A file that finished uploading, to become a `file_added` event.
#[derive(Clone, Debug, PartialEq, Eq)]
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
#[derive(Clone, Debug, PartialEq)]
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
}

/// A command from a user (or from the server on a user's behalf).
#[derive(Clone, Debug)]
pub struct Command {
    /// Who, and their relation to the case (computed by the server from memberships).
    pub access: CaseAccess,
    /// The client's command id, for exactly-once retries.
    pub client_id: Option<String>,
    /// What.
    pub body: CaseCommand,
}

impl Message for Command {
    type Result = Result<CommandReply, CommandError>;
}

/// A command's success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandReply {
    /// The seq of the event it created (none for read marks).
    pub seq: Option<u64>,
    /// True when this was a retry of a command already done: nothing new was created.
    pub duplicate: bool,
}

/// Marks the case read up to `seq`.
#[derive(Debug, Message)]
#[rtype(result = "Result<CommandReply, CommandError>")]
pub struct MarkRead {
    /// Who.
    pub access: CaseAccess,
    /// Up to which seq.
    pub seq: u64,
}

/// Subscribes a socket to the case.
#[derive(Debug, Message)]
#[rtype(result = "Result<Subscription, CommandError>")]
pub struct Subscribe {
    /// Who.
    pub access: CaseAccess,
    /// The last seq the client has.
    pub since: u64,
}

/// Events the subscriber missed.
#[derive(Debug)]
pub enum Backlog {
    /// Served from memory.
    Frames(Vec<Arc<Frame>>),
    /// Older than the in-memory ring: read `(after, upto]` from the store.
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
    /// The case's doctor.
    pub doctor_id: UserId,
    /// The lab the case is routed to now.
    pub lab_id: Option<OrgId>,
    /// Users subscribed right now (including this one).
    pub present: Vec<UserId>,
}

/// A subscriber left.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    /// Who.
    pub user_id: UserId,
}

/// A subscriber is typing (ephemeral, never persisted).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Typing {
    /// Who.
    pub user_id: UserId,
}

/// Fault injection for tests: makes the actor panic inside a handler, to prove that its
/// supervisor restarts it from durable state and nothing acknowledged is lost.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct InjectPanic;

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
    /// Idle and removed from the registry; bounces late messages so they find the new actor.
    Retired,
}

type Waiter = oneshot::Sender<Result<CommandReply, CommandError>>;

/// A validated change waiting to be durable.
struct Pending {
    item: PersistItem,
    seq: Option<u64>,
    frame: Arc<Frame>,
    waiters: Vec<Waiter>,
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
    /// The latest committed events, to serve resumes from memory.
    ring: VecDeque<Arc<Frame>>,
    committed_seq: u64,
    in_flight: Vec<Pending>,
    queued: Vec<Pending>,
    present: HashMap<UserId, u32>,
    reads: HashMap<UserId, u64>,
    typing_at: HashMap<UserId, Instant>,
    last_touch: Instant,
    loaded_once: bool,
}

/// Fewest milliseconds between two `typing` frames of one user.
const TYPING_INTERVAL: Duration = Duration::from_millis(1500);

impl CaseActor {
    pub(crate) fn new(id: CaseId, generation: u64, deps: Arc<CaseDeps>) -> Self {
        let (tx, _) = broadcast::channel(deps.config.subscriber_queue.max(16));
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
            present: HashMap::new(),
            reads: HashMap::new(),
            typing_at: HashMap::new(),
            last_touch: Instant::now(),
            loaded_once: false,
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
                let _ = w.send(Err(CommandError::unavailable()));
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
            store.load(id).await
        };
        ctx.wait(fut.into_actor(self).map(|res, act, ctx| match res {
            Ok(Some(loaded)) => act.install(loaded, ctx),
            Ok(None) => act.phase = Phase::Gone,
            Err(e) => {
                error!(case = %act.id, error = %e, "loading the case failed; retrying");
                act.phase = Phase::Failed;
                ctx.run_later(Duration::from_secs(1), |act, ctx| act.load(ctx));
            }
        }));
    }

    fn install(&mut self, loaded: LoadedCase, _ctx: &mut Context<Self>) {
        let gapless = loaded.events.iter().enumerate().all(|(i, e)| e.seq == i as u64 + 1);
        let state = match CaseState::from_log(&loaded.events) {
            Some(s) if gapless => s,
            _ => {
                error!(case = %self.id, "the case's event log is not gapless from case_created");
                self.phase = Phase::Failed;
                return;
            }
        };
        let ring_len = self.deps.config.resume_ring;
        let first_ring = loaded.events.len().saturating_sub(ring_len);
        let catch_up_from = if self.loaded_once { self.committed_seq } else { state.seq };
        self.ring.clear();
        for ev in &loaded.events[first_ring.min(catch_up_from as usize)..] {
            let Ok(frame) = Frame::event(ev) else { continue };
            if ev.seq > catch_up_from {
                // A restart: these were committed by the previous incarnation but never
                // broadcast. Subscribers get them now, in order, so they see no gap.
                let _ = self.tx.send(frame.clone());
            }
            if ev.seq as usize > first_ring {
                self.ring.push_back(frame);
            }
        }
        self.committed_seq = state.seq;
        self.reads = loaded.reads.into_iter().collect();
        self.phase = Phase::Ready(Box::new(state));
        self.loaded_once = true;
    }

    fn on_command(
        &mut self,
        cmd: Command,
        ctx: &mut Context<Self>,
    ) -> Result<oneshot::Receiver<Result<CommandReply, CommandError>>, CommandError> {
        let committed = self.committed_seq;
        let case_id = self.id;
        let state = self.ready()?;
        let (tx, rx) = oneshot::channel();

        if let Some(id) = &cmd.client_id
            && let Some(&seq) = state.commands.get(&(cmd.access.user_id, id.clone()))
        {
            if seq <= committed {
                let _ = tx.send(Ok(CommandReply { seq: Some(seq), duplicate: true }));
            } else if let Some(p) =
                self.in_flight.iter_mut().chain(self.queued.iter_mut()).find(|p| p.seq == Some(seq))
            {
                p.waiters.push(tx);
            }
            return Ok(rx);
        }

        let data = decide::decide(state, &cmd.access, &cmd.body)?;
        let at = now_ms().max(state.last_activity);
        let event = StoredEvent {
            case_id,
            seq: state.seq + 1,
            at,
            actor: cmd.access.user_id,
            client_id: cmd.client_id,
            data,
        };
        let frame = Frame::event(&event).map_err(|e| {
            error!(case = %case_id, error = %e, "encoding an event failed");
            CommandError::new(ErrorCode::Internal, "internal error")
        })?;
        let (lab_before, visible_before) = (state.lab_id, state.lab_visible());
        state.apply(&event);
        let lab_visible = state.lab_visible();
        let lab_lost = lab_before.filter(|l| visible_before && (!lab_visible || state.lab_id != Some(*l)));
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
            }),
        )
        .map(|mut f| {
            f.case_id = Some(case_id);
            f.seq = event.seq;
            f.doctor_id = Some(state.doctor_id);
            f.actor = Some(event.actor);
            Arc::new(f)
        })
        .map_err(|_| CommandError::new(ErrorCode::Internal, "internal error"))?;
        let row = state.row();
        let seq = event.seq;
        self.queued.push(Pending {
            item: PersistItem::Event { event, row },
            seq: Some(seq),
            frame,
            waiters: vec![tx],
            effects: Some(Effects { summary, inbox, lab_visible, lab_lost }),
            accepted: Instant::now(),
        });
        self.flush(ctx);
        Ok(rx)
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
        let items = self.in_flight.iter().map(|p| p.item.clone()).collect();
        let fut = self.deps.persistence.send(Commit { items });
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| {
            act.guarded(ctx, |act, ctx| match res {
                Ok(Ok(())) => act.committed(ctx),
                Ok(Err(e)) => {
                    warn!(case = %act.id, error = %e, "commit failed; restarting the case from its log");
                    act.crash(ctx);
                }
                Err(e) => {
                    warn!(case = %act.id, error = %e, "persistence unreachable; restarting the case");
                    act.crash(ctx);
                }
            });
        }));
    }

    /// The in-flight commit is durable: now, and only now, subscribers see it.
    fn committed(&mut self, ctx: &mut Context<Self>) {
        let batch = std::mem::take(&mut self.in_flight);
        let mut last_effects = None;
        if let Some(first) = batch.first() {
            // From the oldest change of the commit being accepted to its being durable.
            metrics::histogram!("articula_case_time_to_durable_seconds")
                .record(first.accepted.elapsed().as_secs_f64());
        }
        for p in batch {
            let _ = self.tx.send(p.frame.clone());
            if let Some(seq) = p.seq {
                self.committed_seq = seq;
                self.ring.push_back(p.frame);
                if self.ring.len() > self.deps.config.resume_ring {
                    self.ring.pop_front();
                }
            }
            if let PersistItem::ReadMark { user_id, seq, .. } = p.item {
                self.reads.insert(user_id, seq);
            }
            for w in p.waiters {
                let _ = w.send(Ok(CommandReply { seq: p.seq, duplicate: false }));
            }
            if let Some(fx) = p.effects {
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
        self.flush(ctx);
    }

    fn broadcast_presence(&self) {
        let mut users: Vec<_> = self.present.keys().copied().collect();
        users.sort();
        if let Ok(f) = Frame::ephemeral(self.id, ServerBody::Presence(Presence { case_id: self.id, users })) {
            let _ = self.tx.send(f);
        }
    }

    fn idle_check(&mut self, _ctx: &mut Context<Self>) {
        let idle = self.tx.receiver_count() == 0
            && self.in_flight.is_empty()
            && self.queued.is_empty()
            && self.last_touch.elapsed() >= self.deps.config.idle_after;
        if !idle || matches!(self.phase, Phase::Retired | Phase::Loading) {
            return;
        }
        if let Some(registry) = self.deps.registry.upgrade() {
            registry.retire(self.id, self.generation);
        }
        // Late messages from holders of the old address are bounced to the new actor; the
        // actor itself stops when the last address is dropped.
        self.phase = Phase::Retired;
        self.ring.clear();
    }
}

impl Actor for CaseActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.deps.config.mailbox);
        self.load(ctx);
        let every = (self.deps.config.idle_after / 4).max(Duration::from_millis(50));
        ctx.run_interval(every, |act, ctx| act.idle_check(ctx));
    }
}

impl Supervised for CaseActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.deps.restarts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Keep the broadcast sender (subscribers keep their receivers), `committed_seq` (what
        // subscribers have seen) and presence; everything else is rebuilt from the log.
        self.phase = Phase::Loading;
        self.in_flight.clear();
        self.queued.clear();
        self.ring.clear();
    }
}

impl Handler<Command> for CaseActor {
    type Result = ResponseFuture<Result<CommandReply, CommandError>>;

    fn handle(&mut self, cmd: Command, ctx: &mut Context<Self>) -> Self::Result {
        self.last_touch = Instant::now();
        let res = self.guarded(ctx, |act, ctx| act.on_command(cmd, ctx));
        Box::pin(async move {
            match res {
                Some(Ok(rx)) => rx.await.unwrap_or_else(|_| Err(CommandError::unavailable())),
                Some(Err(e)) => Err(e),
                None => Err(CommandError::unavailable()),
            }
        })
    }
}

impl Handler<MarkRead> for CaseActor {
    type Result = ResponseFuture<Result<CommandReply, CommandError>>;

    fn handle(&mut self, msg: MarkRead, ctx: &mut Context<Self>) -> Self::Result {
        self.last_touch = Instant::now();
        let res = (|| {
            let committed = self.committed_seq;
            self.ready()?;
            if msg.seq > committed {
                return Err(CommandError::invalid(format!(
                    "seq {} is beyond the case's latest {committed}",
                    msg.seq
                )));
            }
            let (tx, rx) = oneshot::channel();
            let user_id = msg.access.user_id;
            if self.reads.get(&user_id).is_some_and(|s| *s >= msg.seq) {
                let _ = tx.send(Ok(CommandReply { seq: None, duplicate: true }));
                return Ok(rx);
            }
            let frame = Frame::ephemeral(
                self.id,
                ServerBody::Receipt(Receipt { case_id: self.id, user_id, seq: msg.seq }),
            )
            .map_err(|_| CommandError::new(ErrorCode::Internal, "internal error"))?;
            self.queued.push(Pending {
                item: PersistItem::ReadMark { case_id: self.id, user_id, seq: msg.seq, at: now_ms() },
                seq: None,
                frame,
                waiters: vec![tx],
                effects: None,
                accepted: Instant::now(),
            });
            self.flush(ctx);
            Ok(rx)
        })();
        Box::pin(async move {
            match res {
                Ok(rx) => rx.await.unwrap_or_else(|_| Err(CommandError::unavailable())),
                Err(e) => Err(e),
            }
        })
    }
}

impl Handler<Subscribe> for CaseActor {
    type Result = Result<Subscription, CommandError>;

    fn handle(&mut self, msg: Subscribe, _ctx: &mut Context<Self>) -> Self::Result {
        self.last_touch = Instant::now();
        let head = self.committed_seq;
        let state = self.ready()?;
        let (doctor_id, lab_id) = (state.doctor_id, state.lab_id);
        if msg.since > head {
            return Err(CommandError::invalid(format!(
                "since {} is ahead of the case's latest seq {head}",
                msg.since
            )));
        }
        let live = self.tx.subscribe();
        let backlog = if msg.since == head {
            Backlog::Frames(Vec::new())
        } else if self.ring.front().is_some_and(|f| f.seq <= msg.since + 1) {
            Backlog::Frames(self.ring.iter().filter(|f| f.seq > msg.since).cloned().collect())
        } else {
            Backlog::Store { after: msg.since, upto: head }
        };
        let source = if matches!(backlog, Backlog::Store { .. }) { "store" } else { "memory" };
        metrics::counter!("articula_resumes_total", "source" => source).increment(1);
        let count = self.present.entry(msg.access.user_id).or_insert(0);
        *count += 1;
        if *count == 1 {
            self.broadcast_presence();
        }
        Ok(Subscription {
            head,
            backlog,
            live,
            reads: self.reads.iter().map(|(u, s)| (*u, *s)).collect(),
            doctor_id,
            lab_id,
            present: self.present.keys().copied().collect(),
        })
    }
}

impl Handler<Unsubscribe> for CaseActor {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, _ctx: &mut Context<Self>) {
        if let Some(count) = self.present.get_mut(&msg.user_id) {
            *count -= 1;
            if *count == 0 {
                self.present.remove(&msg.user_id);
                self.typing_at.remove(&msg.user_id);
                self.broadcast_presence();
            }
        }
    }
}

impl Handler<Typing> for CaseActor {
    type Result = ();

    fn handle(&mut self, msg: Typing, _ctx: &mut Context<Self>) {
        if !self.present.contains_key(&msg.user_id) {
            return;
        }
        let now = Instant::now();
        if self.typing_at.get(&msg.user_id).is_some_and(|t| now.duration_since(*t) < TYPING_INTERVAL) {
            return;
        }
        self.typing_at.insert(msg.user_id, now);
        let body = ServerBody::Typing(TypingFrame { case_id: self.id, user_id: msg.user_id });
        if let Ok(mut f) = Frame::encode(FrameKind::Ephemeral, body) {
            f.case_id = Some(self.id);
            f.actor = Some(msg.user_id);
            let _ = self.tx.send(Arc::new(f));
        }
    }
}

impl Handler<InjectPanic> for CaseActor {
    type Result = ();

    fn handle(&mut self, _: InjectPanic, ctx: &mut Context<Self>) {
        self.guarded(ctx, |_, _| {
            // Deliberate: this is the fault-injection hook.
            #[allow(clippy::panic)]
            {
                panic!("injected panic")
            }
        });
    }
}
