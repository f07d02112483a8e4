//! Finds the live actor of a case, or starts one: never two for one case.
//!
//! Every message to a case actor goes through [`CaseRegistry`] with `try_send`: in the order it
//! was sent (a socket's commands reach their case in the order the socket read them), never
//! waiting, and answered at once with a retryable error when the actor's mailbox is full. The
//! registry counts what it sent to each actor; an idle actor leaves only when it has handled
//! every one of them (checked under the map's lock, so nothing is sent to it after), and then
//! stops — no message is ever left in the mailbox of an actor on its way out.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use actix::dev::SendError;
use actix::prelude::*;
use articula_protocol::CaseId;
use dashmap::DashMap;
use tokio::sync::oneshot;

use crate::case::{
    CaseActor, Command, CommandReply, InjectPanic, Join, MarkRead, PanicPoint, Reply, Submit, Subscribe,
    Subscription, Typing,
};
use crate::error::CommandError;
use crate::hubs::OrgHubs;
use crate::persistence::{PersistenceActor, QueueDepth};
use crate::policy::Principal;
use crate::ports::CaseStore;

/// Settings of case actors.
#[derive(Clone, Copy, Debug)]
pub struct CaseConfig {
    /// Frames a subscriber may fall behind before it must resync.
    pub subscriber_queue: usize,
    /// Committed events kept in memory per case to serve resumes.
    pub resume_ring: usize,
    /// A case with no subscriber and no activity for this long stops.
    pub idle_after: Duration,
    /// Mailbox size of a case actor (a message beyond it is refused at once).
    pub mailbox: usize,
    /// Most accepted changes of one case waiting for the commit after the one in flight.
    pub max_queued: usize,
    /// A snapshot of the case state is stored with every this many events.
    pub snapshot_every: usize,
}

impl CaseConfig {
    /// Most events of one case in one commit: a quarter of the subscriber queue.
    pub fn max_commit_events(&self) -> usize {
        (self.subscriber_queue / 4).max(1)
    }
}

impl Default for CaseConfig {
    fn default() -> Self {
        Self {
            subscriber_queue: 1024,
            resume_ring: 512,
            idle_after: Duration::from_secs(600),
            mailbox: 1024,
            max_queued: 1024,
            snapshot_every: 256,
        }
    }
}

/// What every case actor shares.
pub struct CaseDeps {
    pub(crate) store: Arc<dyn CaseStore>,
    pub(crate) persistence: Addr<PersistenceActor>,
    pub(crate) commit_queue: Arc<QueueDepth>,
    pub(crate) hubs: Arc<OrgHubs>,
    pub(crate) config: CaseConfig,
    pub(crate) registry: Weak<CaseRegistry>,
    /// Supervised restarts of this registry's case actors.
    pub(crate) restarts: AtomicU64,
    /// Case actors in memory (started and not yet dropped).
    pub(crate) alive: AtomicUsize,
    /// Case loads, and the events they read (after the snapshot).
    pub(crate) loads: AtomicU64,
    pub(crate) loaded_events: AtomicU64,
}

struct Entry {
    addr: Addr<CaseActor>,
    generation: u64,
    /// Messages sent to this actor through the registry.
    sent: AtomicU64,
}

/// The live case actors, by case.
pub struct CaseRegistry {
    actors: DashMap<CaseId, Entry>,
    next_generation: AtomicU64,
    deps: Arc<CaseDeps>,
}

impl CaseRegistry {
    /// A registry whose actors use these ports.
    pub fn new(
        store: Arc<dyn CaseStore>,
        persistence: Addr<PersistenceActor>,
        commit_queue: Arc<QueueDepth>,
        hubs: Arc<OrgHubs>,
        config: CaseConfig,
    ) -> Arc<Self> {
        Arc::new_cyclic(|weak| Self {
            actors: DashMap::new(),
            next_generation: AtomicU64::new(1),
            deps: Arc::new(CaseDeps {
                store,
                persistence,
                commit_queue,
                hubs,
                config,
                registry: weak.clone(),
                restarts: AtomicU64::new(0),
                alive: AtomicUsize::new(0),
                loads: AtomicU64::new(0),
                loaded_events: AtomicU64::new(0),
            }),
        })
    }

    /// The hubs case actors publish to.
    pub fn hubs(&self) -> &Arc<OrgHubs> {
        &self.deps.hubs
    }

    /// Sends a message to the case's actor, starting one (under a supervisor, on the current
    /// arbiter) if none is live. Must be called from an actix arbiter.
    fn deliver<M>(&self, case: CaseId, mut msg: M) -> Result<(), (CommandError, M)>
    where
        M: Message<Result = ()> + Send + 'static,
        CaseActor: Handler<M>,
    {
        for _ in 0..3 {
            let generation = {
                let entry = match self.actors.get(&case) {
                    Some(e) => e,
                    None => {
                        self.actors.entry(case).or_insert_with(|| self.start(case));
                        continue;
                    }
                };
                // Counted before it is queued, under the map's read lock: an actor retiring
                // (which takes the write lock) sees every message sent to it.
                entry.sent.fetch_add(1, Ordering::SeqCst);
                match entry.addr.try_send(msg) {
                    Ok(()) => return Ok(()),
                    Err(SendError::Full(m)) => {
                        entry.sent.fetch_sub(1, Ordering::SeqCst);
                        metrics::counter!("articula_case_mailbox_full_total").increment(1);
                        return Err((CommandError::busy(), m));
                    }
                    Err(SendError::Closed(m)) => {
                        entry.sent.fetch_sub(1, Ordering::SeqCst);
                        msg = m;
                        entry.generation
                    }
                }
            };
            self.actors.remove_if(&case, |_, e| e.generation == generation);
        }
        Err((CommandError::unavailable(), msg))
    }

    fn start(&self, case: CaseId) -> Entry {
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let deps = self.deps.clone();
        let addr = Supervisor::start(move |_| CaseActor::new(case, generation, deps));
        Entry { addr, generation, sent: AtomicU64::new(0) }
    }

    /// How many times a case actor of this registry was restarted by its supervisor.
    pub fn restarts(&self) -> u64 {
        self.deps.restarts.load(Ordering::Relaxed)
    }

    /// Case actor loads so far, and how many events they read from the log (beyond snapshots).
    pub fn load_stats(&self) -> (u64, u64) {
        (self.deps.loads.load(Ordering::Relaxed), self.deps.loaded_events.load(Ordering::Relaxed))
    }

    /// Items waiting for the group commit, and whether a commit is running.
    pub fn commit_queue(&self) -> &Arc<QueueDepth> {
        &self.deps.commit_queue
    }

    /// Whether the case has a live actor.
    pub fn is_live(&self, case: CaseId) -> bool {
        self.actors.contains_key(&case)
    }

    /// How many case actors the registry knows (live and reachable).
    pub fn live_count(&self) -> usize {
        self.actors.len()
    }

    /// How many case actors are in memory, including any on their way out.
    pub fn alive(&self) -> usize {
        self.deps.alive.load(Ordering::Relaxed)
    }

    /// Removes an actor that wants to retire, unless a newer one replaced it or something was
    /// sent to it that it has not handled yet. True when it may stop.
    pub(crate) fn retire(&self, case: CaseId, generation: u64, handled: u64) -> bool {
        let removed = self
            .actors
            .remove_if(&case, |_, e| e.generation == generation && e.sent.load(Ordering::SeqCst) == handled);
        removed.is_some() || self.actors.get(&case).is_none_or(|e| e.generation != generation)
    }

    /// Queues a command on its case; `reply` gets its answer — at once (retryable) when the
    /// case's mailbox is full.
    pub fn submit(&self, case: CaseId, cmd: Command, reply: Reply) {
        if let Err((e, Submit { reply: Some(reply), .. })) =
            self.deliver(case, Submit { cmd, reply: Some(reply) })
        {
            reply.send(Err(e));
        }
    }

    /// Runs a command on a case and waits for its answer.
    pub async fn command(&self, case: CaseId, cmd: Command) -> Result<CommandReply, CommandError> {
        let (reply, rx) = Reply::once();
        self.submit(case, cmd, reply);
        rx.await.unwrap_or_else(|_| Err(CommandError::unavailable()))
    }

    /// Queues a read mark; `reply` gets its answer.
    pub fn mark_read(&self, case: CaseId, who: Principal, seq: u64, reply: Reply) {
        if let Err((e, MarkRead { reply: Some(reply), .. })) =
            self.deliver(case, MarkRead { who, seq, reply: Some(reply) })
        {
            reply.send(Err(e));
        }
    }

    /// Queues a subscription.
    pub fn subscribe(
        &self,
        case: CaseId,
        req: Subscribe,
    ) -> Result<oneshot::Receiver<Result<Subscription, CommandError>>, CommandError> {
        let (reply, rx) = oneshot::channel();
        self.deliver(case, Join { req, reply }).map_err(|(e, _)| e)?;
        Ok(rx)
    }

    /// Tells a live case that someone types; dropped when the case is busy.
    pub fn typing(&self, case: CaseId, msg: Typing) {
        if self.actors.contains_key(&case) {
            let _ = self.deliver(case, msg);
        }
    }

    /// Fault injection for tests: makes the case's actor panic now, or in the next handler of
    /// a kind.
    pub fn inject_panic(&self, case: CaseId, at: PanicPoint) {
        if self.actors.contains_key(&case) {
            let _ = self.deliver(case, InjectPanic(at));
        }
    }
}
