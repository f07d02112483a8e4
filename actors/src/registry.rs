//! Finds the live actor of a case, or starts one: never two for one case.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use actix::prelude::*;
use articula_protocol::CaseId;
use dashmap::DashMap;

use crate::case::{
    CaseActor, Command, CommandReply, InjectPanic, MarkRead, Subscribe, Subscription, Typing, Unsubscribe,
};
use crate::error::CommandError;
use crate::hubs::OrgHubs;
use crate::persistence::PersistenceActor;
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
    /// Mailbox size of a case actor.
    pub mailbox: usize,
}

impl CaseConfig {
    /// Most events of one case in one commit: a quarter of the subscriber queue.
    pub fn max_commit_events(&self) -> usize {
        (self.subscriber_queue / 4).max(1)
    }
}

impl Default for CaseConfig {
    fn default() -> Self {
        Self { subscriber_queue: 1024, resume_ring: 512, idle_after: Duration::from_secs(600), mailbox: 1024 }
    }
}

/// What every case actor shares.
pub struct CaseDeps {
    pub(crate) store: Arc<dyn CaseStore>,
    pub(crate) persistence: Addr<PersistenceActor>,
    pub(crate) hubs: Arc<OrgHubs>,
    pub(crate) config: CaseConfig,
    pub(crate) registry: Weak<CaseRegistry>,
    /// Supervised restarts of this registry's case actors.
    pub(crate) restarts: AtomicU64,
}

/// The live case actors, by case.
pub struct CaseRegistry {
    actors: DashMap<CaseId, (Addr<CaseActor>, u64)>,
    next_generation: AtomicU64,
    deps: Arc<CaseDeps>,
}

impl CaseRegistry {
    /// A registry whose actors use these ports.
    pub fn new(
        store: Arc<dyn CaseStore>,
        persistence: Addr<PersistenceActor>,
        hubs: Arc<OrgHubs>,
        config: CaseConfig,
    ) -> Arc<Self> {
        Arc::new_cyclic(|weak| Self {
            actors: DashMap::new(),
            next_generation: AtomicU64::new(1),
            deps: Arc::new(CaseDeps {
                store,
                persistence,
                hubs,
                config,
                registry: weak.clone(),
                restarts: AtomicU64::new(0),
            }),
        })
    }

    /// The hubs case actors publish to.
    pub fn hubs(&self) -> &Arc<OrgHubs> {
        &self.deps.hubs
    }

    /// The actor of `case`, started (under a supervisor, on the current arbiter) if none is live.
    /// Must be called from an actix arbiter.
    pub fn addr(&self, case: CaseId) -> (Addr<CaseActor>, u64) {
        if let Some(e) = self.actors.get(&case) {
            return e.value().clone();
        }
        self.actors
            .entry(case)
            .or_insert_with(|| {
                let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
                let deps = self.deps.clone();
                let addr = Supervisor::start(move |_| CaseActor::new(case, generation, deps));
                (addr, generation)
            })
            .value()
            .clone()
    }

    /// The actor of `case` if one is live.
    pub fn live(&self, case: CaseId) -> Option<Addr<CaseActor>> {
        self.actors.get(&case).map(|e| e.value().0.clone())
    }

    /// How many times a case actor of this registry was restarted by its supervisor.
    pub fn restarts(&self) -> u64 {
        self.deps.restarts.load(Ordering::Relaxed)
    }

    /// How many case actors are live.
    pub fn live_count(&self) -> usize {
        self.actors.len()
    }

    /// Removes a retiring actor, unless a newer one already replaced it.
    pub(crate) fn retire(&self, case: CaseId, generation: u64) {
        self.actors.remove_if(&case, |_, (_, g)| *g == generation);
    }

    /// Sends a message to the case's actor; when the actor answering has just retired (or
    /// stopped), sends it once more to its successor.
    async fn ask<M, T>(&self, case: CaseId, msg: impl Fn() -> M) -> Result<T, CommandError>
    where
        M: Message<Result = Result<T, CommandError>> + Send + 'static,
        M::Result: Send,
        CaseActor: Handler<M>,
    {
        for _ in 0..3 {
            let (addr, generation) = self.addr(case);
            match addr.send(msg()).await {
                Ok(Err(e)) if e.retired => self.retire(case, generation),
                Ok(res) => return res,
                Err(_) => self.retire(case, generation),
            }
        }
        Err(CommandError::unavailable())
    }

    /// Runs a command on a case.
    pub async fn command(&self, case: CaseId, cmd: Command) -> Result<CommandReply, CommandError> {
        self.ask(case, || cmd.clone()).await
    }

    /// Marks a case read.
    pub async fn mark_read(&self, case: CaseId, msg: MarkRead) -> Result<CommandReply, CommandError> {
        let MarkRead { access, seq } = msg;
        self.ask(case, || MarkRead { access, seq }).await
    }

    /// Subscribes to a case.
    pub async fn subscribe(&self, case: CaseId, msg: Subscribe) -> Result<Subscription, CommandError> {
        let Subscribe { access, since } = msg;
        self.ask(case, || Subscribe { access, since }).await
    }

    /// Tells a live case that a subscriber left (bounded by the number of sockets: one each).
    pub fn unsubscribe(&self, case: CaseId, msg: Unsubscribe) {
        if let Some(addr) = self.live(case) {
            addr.do_send(msg);
        }
    }

    /// Tells a live case that someone types; dropped when the case is busy.
    pub fn typing(&self, case: CaseId, msg: Typing) {
        if let Some(addr) = self.live(case) {
            let _ = addr.try_send(msg);
        }
    }

    /// Fault injection for tests: makes the case's actor panic.
    pub fn inject_panic(&self, case: CaseId) {
        if let Some(addr) = self.live(case) {
            let _ = addr.try_send(InjectPanic);
        }
    }
}
