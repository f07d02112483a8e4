//! Group commit: the events of all cases go to the store in batches, one transaction each.
//!
//! A batch starts as soon as the previous one has finished and at least `interval` has passed
//! since it started (or as soon as `max_batch` items wait). Under light load an event is
//! committed at once; under heavy load commits happen at most every `interval`, each carrying
//! everything that arrived meanwhile — bounded database commits per second whatever the number
//! of cases. Replies go out only after the transaction commits.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;
use tracing::warn;

use crate::ports::{CaseStore, PersistItem, StoreError};

/// Group-commit settings.
#[derive(Clone, Copy, Debug)]
pub struct PersistenceConfig {
    /// Most items in one transaction.
    pub max_batch: usize,
    /// Least time between the starts of two commits.
    pub interval: Duration,
    /// Mailbox size (senders wait when it is full).
    pub mailbox: usize,
}

impl Default for PersistenceConfig {
    fn default() -> Self {
        Self { max_batch: 2048, interval: Duration::from_millis(5), mailbox: 4096 }
    }
}

/// Make these items durable; answers after the commit.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct Commit {
    /// The items, in order.
    pub items: Vec<PersistItem>,
}

/// Answers once every commit sent before it has finished (committed or failed).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Barrier;

enum Queued {
    Commit(Vec<PersistItem>, oneshot::Sender<Result<(), StoreError>>),
    Barrier(oneshot::Sender<()>),
}

/// The group-commit actor.
pub struct PersistenceActor {
    store: Arc<dyn CaseStore>,
    config: PersistenceConfig,
    queue: VecDeque<Queued>,
    queued_items: usize,
    in_flight: bool,
    last_start: Option<Instant>,
    timer: Option<SpawnHandle>,
}

impl PersistenceActor {
    /// A persistence actor over `store`.
    pub fn new(store: Arc<dyn CaseStore>, config: PersistenceConfig) -> Self {
        Self {
            store,
            config,
            queue: VecDeque::new(),
            queued_items: 0,
            in_flight: false,
            last_start: None,
            timer: None,
        }
    }

    fn schedule(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight || self.queue.is_empty() {
            return;
        }
        let now = Instant::now();
        let due = self.last_start.map_or(now, |s| s + self.config.interval);
        if now >= due || self.queued_items >= self.config.max_batch {
            if let Some(t) = self.timer.take() {
                ctx.cancel_future(t);
            }
            self.run_batch(ctx);
        } else if self.timer.is_none() {
            self.timer = Some(ctx.run_later(due - now, |act, ctx| {
                act.timer = None;
                act.schedule(ctx);
            }));
        }
    }

    fn run_batch(&mut self, ctx: &mut Context<Self>) {
        let mut items = Vec::new();
        let mut replies = Vec::new();
        let mut barriers = Vec::new();
        while let Some(front) = self.queue.front() {
            if let Queued::Commit(batch, _) = front
                && !items.is_empty()
                && items.len() + batch.len() > self.config.max_batch
            {
                break;
            }
            match self.queue.pop_front() {
                Some(Queued::Commit(batch, reply)) => {
                    self.queued_items -= batch.len();
                    items.extend(batch);
                    replies.push(reply);
                }
                Some(Queued::Barrier(b)) => barriers.push(b),
                None => break,
            }
        }
        if items.is_empty() {
            for b in barriers {
                let _ = b.send(());
            }
            return;
        }
        self.in_flight = true;
        self.last_start = Some(Instant::now());
        let count = items.len();
        let started = Instant::now();
        let fut = self.store.commit(items);
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            metrics::counter!("articula_db_commits_total").increment(1);
            metrics::counter!("articula_db_committed_items_total").increment(count as u64);
            metrics::histogram!("articula_db_commit_seconds").record(started.elapsed().as_secs_f64());
            if let Err(e) = &res {
                warn!(error = %e, items = count, "group commit failed");
                metrics::counter!("articula_db_commit_failures_total").increment(1);
            }
            for r in replies {
                let _ = r.send(res.clone());
            }
            for b in barriers {
                let _ = b.send(());
            }
            match act.store.between_commits() {
                Some(chore) => {
                    ctx.spawn(chore.into_actor(act).map(|(), act, ctx| {
                        act.in_flight = false;
                        act.schedule(ctx);
                    }));
                }
                None => {
                    act.in_flight = false;
                    act.schedule(ctx);
                }
            }
        }));
    }
}

impl Actor for PersistenceActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.config.mailbox);
    }
}

impl Handler<Commit> for PersistenceActor {
    type Result = ResponseFuture<Result<(), StoreError>>;

    fn handle(&mut self, msg: Commit, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.queued_items += msg.items.len();
        self.queue.push_back(Queued::Commit(msg.items, tx));
        self.schedule(ctx);
        Box::pin(async move { rx.await.unwrap_or_else(|_| Err(StoreError("persistence stopped".into()))) })
    }
}

impl Handler<Barrier> for PersistenceActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Barrier, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        if self.queue.is_empty() && !self.in_flight {
            let _ = tx.send(());
        } else {
            self.queue.push_back(Queued::Barrier(tx));
            self.schedule(ctx);
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}
