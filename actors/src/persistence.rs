//! Group commit: the events of all cases go to the store in batches, one transaction each.
//!
//! A batch starts as soon as the previous one has finished and at least `interval` has passed
//! since it started (or as soon as `max_batch` items wait). Under light load an event is
//! committed at once; under heavy load commits happen at most every `interval`, each carrying
//! everything that arrived meanwhile — bounded database commits per second whatever the number
//! of cases. Replies go out only after the transaction commits.
//!
//! A batch is shared by many cases, so one bad item must not fail the others (DESIGN §1,
//! invariant 8). When a batch fails for a reason that is the data's (a constraint, an
//! encoding — not a lost connection), it is committed again one case at a time, and a case
//! whose commit still fails one change at a time: every change before the failing one is
//! durable and acknowledged, the failing one is told that a retry cannot help, and nothing of
//! any other case is touched. A transient failure (database down, disk full) fails the batch
//! as a whole: every case retries.
//!
//! Bounded: the items waiting here are counted in a shared [`QueueDepth`]; case actors refuse
//! new commands with a retryable error while it is above the limit, instead of letting this
//! queue grow while commits are slow.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;
use tracing::warn;

use crate::ports::{CaseStore, PersistItem, StoreError, StoreErrorKind};

/// Group-commit settings.
#[derive(Clone, Copy, Debug)]
pub struct PersistenceConfig {
    /// Most items in one transaction.
    pub max_batch: usize,
    /// Least time between the starts of two commits.
    pub interval: Duration,
    /// Mailbox size (senders wait when it is full).
    pub mailbox: usize,
    /// Most items waiting for a commit before case actors refuse new commands.
    pub max_queued: usize,
}

impl Default for PersistenceConfig {
    fn default() -> Self {
        Self { max_batch: 2048, interval: Duration::from_millis(5), mailbox: 4096, max_queued: 32_768 }
    }
}

/// Items waiting for a commit (shared with the case actors, which read it before accepting).
#[derive(Debug, Default)]
pub struct QueueDepth {
    items: AtomicUsize,
    limit: AtomicUsize,
    running: std::sync::atomic::AtomicBool,
}

impl QueueDepth {
    /// A depth gauge with this limit.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            items: AtomicUsize::new(0),
            limit: AtomicUsize::new(limit),
            running: Default::default(),
        })
    }

    /// Whether the queue is over its limit.
    pub fn full(&self) -> bool {
        self.items.load(Ordering::Relaxed) >= self.limit.load(Ordering::Relaxed)
    }

    /// Items waiting now.
    pub fn get(&self) -> usize {
        self.items.load(Ordering::Relaxed)
    }

    /// Whether a commit is running now (when it stays so, the database holds it back).
    pub fn commit_running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    fn add(&self, n: usize) {
        let now = self.items.fetch_add(n, Ordering::Relaxed) + n;
        metrics::gauge!("articula_commit_queue_items").set(now as f64);
    }

    fn sub(&self, n: usize) {
        let now = self.items.fetch_sub(n, Ordering::Relaxed).saturating_sub(n);
        metrics::gauge!("articula_commit_queue_items").set(now as f64);
    }
}

/// Make these groups of items durable, in order. A group is one change of one case (an event
/// with its snapshot, or a read mark): it is committed whole or not at all. Every group of one
/// `Commit` belongs to the same case.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), CommitFailure>")]
pub struct Commit {
    /// The groups, in order.
    pub groups: Vec<Vec<PersistItem>>,
}

/// A commit that did not make every group durable.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{error} (after {durable} durable changes)")]
pub struct CommitFailure {
    /// How many groups, from the first, are durable.
    pub durable: usize,
    /// Why the next one failed.
    pub error: StoreError,
}

/// Answers once every commit sent before it has finished (committed or failed).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Barrier;

type Reply = oneshot::Sender<Result<(), CommitFailure>>;

enum Queued {
    Commit(Vec<Vec<PersistItem>>, usize, Reply),
    Barrier(oneshot::Sender<()>),
}

/// The group-commit actor.
pub struct PersistenceActor {
    store: Arc<dyn CaseStore>,
    config: PersistenceConfig,
    queue: VecDeque<Queued>,
    depth: Arc<QueueDepth>,
    in_flight: bool,
    last_start: Option<Instant>,
    timer: Option<SpawnHandle>,
}

impl PersistenceActor {
    /// A persistence actor over `store`, counting what waits in `depth`.
    pub fn new(store: Arc<dyn CaseStore>, config: PersistenceConfig, depth: Arc<QueueDepth>) -> Self {
        Self { store, config, queue: VecDeque::new(), depth, in_flight: false, last_start: None, timer: None }
    }

    fn schedule(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight || self.queue.is_empty() {
            return;
        }
        let now = Instant::now();
        let due = self.last_start.map_or(now, |s| s + self.config.interval);
        if now >= due || self.depth.get() >= self.config.max_batch {
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
        let mut commits = Vec::new();
        let mut barriers = Vec::new();
        let mut count = 0;
        while let Some(front) = self.queue.front() {
            if let Queued::Commit(_, n, _) = front
                && count > 0
                && count + n > self.config.max_batch
            {
                break;
            }
            match self.queue.pop_front() {
                Some(Queued::Commit(groups, n, reply)) => {
                    self.depth.sub(n);
                    count += n;
                    commits.push((groups, reply));
                }
                Some(Queued::Barrier(b)) => barriers.push(b),
                None => break,
            }
        }
        if commits.is_empty() {
            for b in barriers {
                let _ = b.send(());
            }
            return;
        }
        self.in_flight = true;
        // A positive signal for tests and operators that a commit is running (and, when it
        // stays at 1, that the database holds it back).
        metrics::gauge!("articula_db_commit_running").set(1.0);
        self.depth.running.store(true, Ordering::Relaxed);
        self.last_start = Some(Instant::now());
        let started = Instant::now();
        let store = self.store.clone();
        let (groups, replies): (Vec<_>, Vec<_>) = commits.into_iter().unzip();
        let fut = async move { (commit_isolating(store.as_ref(), groups).await, replies) };
        ctx.spawn(fut.into_actor(self).map(move |(results, replies), act, ctx| {
            metrics::counter!("articula_db_commits_total").increment(1);
            metrics::counter!("articula_db_committed_items_total").increment(count as u64);
            metrics::histogram!("articula_db_commit_seconds").record(started.elapsed().as_secs_f64());
            metrics::gauge!("articula_db_commit_running").set(0.0);
            act.depth.running.store(false, Ordering::Relaxed);
            for (reply, res) in replies.into_iter().zip(results) {
                let _ = reply.send(res);
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

/// Commits the cases' groups in one transaction; when that fails for a reason of the data,
/// commits case by case, and a failing case change by change, so that only what fails fails.
/// Answers one result per case, in order.
async fn commit_isolating(
    store: &dyn CaseStore,
    cases: Vec<Vec<Vec<PersistItem>>>,
) -> Vec<Result<(), CommitFailure>> {
    let all: Vec<PersistItem> = cases.iter().flatten().flatten().cloned().collect();
    let items = all.len();
    let err = match store.commit(all).await {
        Ok(()) => return cases.iter().map(|_| Ok(())).collect(),
        Err(e) => e,
    };
    metrics::counter!("articula_db_commit_failures_total").increment(1);
    if err.kind == StoreErrorKind::Transient {
        warn!(error = %err, items, "group commit failed; every case in it retries");
        return cases.iter().map(|_| Err(CommitFailure { durable: 0, error: err.clone() })).collect();
    }
    warn!(error = %err, items, cases = cases.len(), "group commit refused; committing its cases one by one");
    metrics::counter!("articula_db_commit_isolations_total").increment(1);
    let mut out = Vec::with_capacity(cases.len());
    for groups in cases {
        let res = if out.is_empty() && cases_len_is_one(&groups, items) {
            // The batch was this one case: no need to try it whole again.
            Err(err.clone())
        } else {
            store.commit(groups.iter().flatten().cloned().collect()).await
        };
        match res {
            Ok(()) => out.push(Ok(())),
            Err(e) if e.kind == StoreErrorKind::Transient => {
                out.push(Err(CommitFailure { durable: 0, error: e }))
            }
            Err(_) => out.push(commit_one_by_one(store, groups).await),
        }
    }
    out
}

fn cases_len_is_one(groups: &[Vec<PersistItem>], items: usize) -> bool {
    groups.iter().map(Vec::len).sum::<usize>() == items
}

/// Commits one case's groups one at a time until one fails.
async fn commit_one_by_one(
    store: &dyn CaseStore,
    groups: Vec<Vec<PersistItem>>,
) -> Result<(), CommitFailure> {
    for (durable, group) in groups.into_iter().enumerate() {
        if let Err(error) = store.commit(group).await {
            if error.kind != StoreErrorKind::Transient {
                warn!(error = %error, "a change was refused by the store; it is answered as not retryable");
            }
            return Err(CommitFailure { durable, error });
        }
    }
    Ok(())
}

impl Actor for PersistenceActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.config.mailbox);
    }
}

impl Handler<Commit> for PersistenceActor {
    type Result = ResponseFuture<Result<(), CommitFailure>>;

    fn handle(&mut self, msg: Commit, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let n = msg.groups.iter().map(Vec::len).sum();
        self.depth.add(n);
        self.queue.push_back(Queued::Commit(msg.groups, n, tx));
        self.schedule(ctx);
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(CommitFailure { durable: 0, error: StoreError::transient("persistence stopped") })
            })
        })
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use articula_protocol::{CaseId, UserId};
    use futures_util::FutureExt;
    use futures_util::future::BoxFuture;

    use super::*;
    use crate::ports::{LoadedCase, StoredMessage};

    /// Refuses any transaction holding a read mark of seq 666 (a "bad item"); records what it
    /// committed.
    #[derive(Default)]
    struct Picky {
        committed: Mutex<Vec<(CaseId, u64)>>,
        transactions: Mutex<usize>,
    }

    impl CaseStore for Picky {
        fn load(&self, _: CaseId, _: u32) -> BoxFuture<'static, Result<Option<LoadedCase>, StoreError>> {
            async { Ok(None) }.boxed()
        }
        fn commit(&self, items: Vec<PersistItem>) -> BoxFuture<'static, Result<(), StoreError>> {
            if let Ok(mut t) = self.transactions.lock() {
                *t += 1;
            }
            let bad = items.iter().any(|i| matches!(i, PersistItem::ReadMark { seq: 666, .. }));
            if !bad && let Ok(mut c) = self.committed.lock() {
                c.extend(items.iter().filter_map(|i| match i {
                    PersistItem::ReadMark { case_id, seq, .. } => Some((*case_id, *seq)),
                    _ => None,
                }));
            }
            async move { if bad { Err(StoreError::permanent("refused")) } else { Ok(()) } }.boxed()
        }
        fn message(
            &self,
            _: CaseId,
            _: articula_protocol::MessageId,
        ) -> BoxFuture<'static, Result<Option<StoredMessage>, StoreError>> {
            async { Ok(None) }.boxed()
        }
        fn find_command(
            &self,
            _: CaseId,
            _: UserId,
            _: String,
        ) -> BoxFuture<'static, crate::ports::FoundCommand> {
            async { Ok(None) }.boxed()
        }
    }

    fn mark(case: CaseId, seq: u64) -> Vec<PersistItem> {
        vec![PersistItem::ReadMark { case_id: case, user_id: UserId::new(), seq, at: 0 }]
    }

    #[actix_rt::test]
    async fn a_bad_item_fails_only_itself_and_what_follows_it_in_its_own_case() {
        let (a, b, c) = (CaseId::new(), CaseId::new(), CaseId::new());
        let store = Picky::default();
        let cases =
            vec![vec![mark(a, 1), mark(a, 2)], vec![mark(b, 1), mark(b, 666), mark(b, 3)], vec![mark(c, 1)]];
        let res = commit_isolating(&store, cases).await;
        assert!(res[0].is_ok() && res[2].is_ok());
        let failure = res[1].as_ref().err().map(|f| (f.durable, f.error.kind));
        assert_eq!(failure, Some((1, StoreErrorKind::Permanent)));
        let mut committed = store.committed.lock().map(|c| c.clone()).unwrap_or_default();
        committed.sort();
        let mut want = vec![(a, 1), (a, 2), (b, 1), (c, 1)];
        want.sort();
        assert_eq!(committed, want);
    }

    #[actix_rt::test]
    async fn a_batch_that_commits_takes_one_transaction() {
        let store = Picky::default();
        let res =
            commit_isolating(&store, vec![vec![mark(CaseId::new(), 1)], vec![mark(CaseId::new(), 2)]]).await;
        assert!(res.iter().all(Result::is_ok));
        assert_eq!(store.transactions.lock().map(|t| *t).unwrap_or(0), 1);
    }
}
