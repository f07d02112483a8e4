//! The moving parts every scenario is made of: subscriber sockets (one task each) that check
//! every delivery against its expected seq and record latencies, and publishers that either keep
//! a window of messages in flight or offer a fixed rate.
//!
//! Coordination is by events (watch channels, counters with a `Notify`), never by sleeping; the
//! only sleeps model client behaviour (a reconnect backoff) and the only timeouts bound how long
//! a run may take before what is missing counts as lost.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use articula_protocol::CaseId;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::check::{Faults, SeqCheck};
use crate::client::{self, Endpoint, Incoming, Wire, Ws, now_ns, source_ip};
use crate::report::Latencies;

/// How long subscribers may take, once publishing is over, to receive everything.
const DRAIN: Duration = Duration::from_secs(90);
/// How long a publisher waits for its last acks.
const ACK_DRAIN: Duration = Duration::from_secs(60);
/// Errors after which a socket stops trying.
const MAX_ERRORS: usize = 20;
/// Source addresses to spread client sockets over (127.0.0.1 …).
pub const SPREAD: usize = 8;

const DELIVERY_SHARDS: usize = 32;

/// A counter alone on its cache line.
#[derive(Default)]
#[repr(align(128))]
struct Padded(AtomicU64);

/// Latency samples a socket keeps before adding them to the shared histograms.
const LATENCY_BATCH: usize = 64;

/// One subscriber socket.
#[derive(Clone, Debug, Default)]
pub struct SubSpec {
    /// Index of its case.
    pub case: usize,
    /// Stops reading when the run says so, until publishing is over (a stalled reader).
    pub stalls: bool,
    /// `SO_RCVBUF`, for stalled readers (so the server, not the kernel, holds the backlog).
    pub recv_buffer: Option<u32>,
    /// In a reconnect storm: drop this long after the storm starts, wait `backoff`, resume.
    pub storm: Option<(Duration, Duration)>,
}

/// State shared by every task of one run.
pub struct Shared {
    /// Target.
    pub ep: Endpoint,
    /// Cases by index.
    pub cases: Vec<CaseId>,
    /// Live deliveries (seq after the subscribe's head) so far, sharded so that socket tasks on
    /// different cores do not fight over one cache line.
    delivered: Vec<Padded>,
    /// When the last delivery arrived, ns since the Unix epoch.
    pub last_delivery_ns: AtomicU64,
    /// End-to-end latencies of live deliveries.
    pub lat: Latencies,
    /// The last seq published per case, set before `done`.
    pub finals: Vec<AtomicU64>,
    done: watch::Sender<bool>,
    stall: watch::Sender<bool>,
    storm: watch::Sender<Option<Instant>>,
    ready: AtomicUsize,
    failed: AtomicUsize,
    ready_changed: Notify,
    pub_waiting: AtomicBool,
    pub_wakeup: Notify,
    /// Per resumed socket: time from the storm's start to its resubscribe ack.
    pub resumed: Mutex<Vec<Duration>>,
}

impl Shared {
    /// Shared state for a run against `ep` over `cases`.
    pub fn new(ep: Endpoint, cases: Vec<CaseId>) -> Result<Arc<Self>> {
        let finals = cases.iter().map(|_| AtomicU64::new(0)).collect();
        Ok(Arc::new(Self {
            ep,
            cases,
            delivered: (0..DELIVERY_SHARDS).map(|_| Padded::default()).collect(),
            last_delivery_ns: AtomicU64::new(0),
            lat: Latencies::new()?,
            finals,
            done: watch::channel(false).0,
            stall: watch::channel(false).0,
            storm: watch::channel(None).0,
            ready: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            ready_changed: Notify::new(),
            pub_waiting: AtomicBool::new(false),
            pub_wakeup: Notify::new(),
            resumed: Mutex::new(Vec::new()),
        }))
    }

    /// Publishing is over: subscribers finish once they have everything up to `finals`.
    pub fn finish_publishing(&self) {
        self.done.send_replace(true);
    }

    /// Stalling subscribers stop reading now.
    pub fn start_stall(&self) {
        self.stall.send_replace(true);
    }

    /// Sockets subscribed so far.
    pub fn ready_count(&self) -> usize {
        self.ready.load(SeqCst)
    }

    /// Sockets resumed since the storm started.
    pub fn resumed_count(&self) -> usize {
        self.resumed.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// Waits until `cond` holds; it is re-checked whenever a socket subscribes or resumes.
    pub async fn wait_until(&self, cond: impl Fn(&Self) -> bool) {
        loop {
            let changed = self.ready_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if cond(self) {
                return;
            }
            changed.await;
        }
    }

    /// The reconnect storm starts now.
    pub fn start_storm(&self) -> Instant {
        let t0 = Instant::now();
        self.storm.send_replace(Some(t0));
        t0
    }

    fn mark(&self, ok: bool) {
        if ok { &self.ready } else { &self.failed }.fetch_add(1, SeqCst);
        self.ready_changed.notify_waiters();
    }

    fn add_delivered(&self, idx: usize, n: u64) {
        if n == 0 {
            return;
        }
        self.delivered[idx % DELIVERY_SHARDS].0.fetch_add(n, SeqCst);
        if self.pub_waiting.load(SeqCst) && self.pub_waiting.swap(false, SeqCst) {
            self.pub_wakeup.notify_waiters();
        }
    }

    /// Live deliveries so far.
    pub fn delivered(&self) -> u64 {
        self.delivered.iter().map(|c| c.0.load(SeqCst)).sum()
    }
}

/// What one subscriber saw.
#[derive(Debug, Default)]
pub struct SubOutcome {
    /// Sequence faults.
    pub faults: Faults,
    /// Events received (backlog and live).
    pub events: u64,
    /// `resync` frames received.
    pub resyncs: u64,
    /// Reconnects that resumed with `since`.
    pub resumes: u64,
    /// Connections of a reader that stalled which ended without a `resync` it could read (the
    /// server's kernel resets a peer that acknowledged nothing for `TCP_USER_TIMEOUT`, and the
    /// reset drops what the reader had not read yet): expected, and resumed like any other.
    pub resets: u64,
    /// Errors, with a description.
    pub errors: Vec<String>,
    /// Whether the socket stayed connected and subscribed (for hold scenarios).
    pub connected: bool,
}

/// Subscribers of one run.
pub struct Subscribers {
    handles: Vec<JoinHandle<SubOutcome>>,
}

/// Connects and subscribes every socket (`concurrency` handshakes at a time) and returns once
/// each is subscribed or has failed.
pub async fn subscribe_all(sh: &Arc<Shared>, specs: Vec<SubSpec>, concurrency: usize) -> Subscribers {
    let n = specs.len();
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let handles = specs
        .into_iter()
        .enumerate()
        .map(|(idx, spec)| tokio::spawn(subscriber(sh.clone(), idx, spec, sem.clone())))
        .collect();
    loop {
        let changed = sh.ready_changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if sh.ready.load(SeqCst) + sh.failed.load(SeqCst) >= n {
            break;
        }
        changed.await;
    }
    Subscribers { handles }
}

impl Subscribers {
    /// Waits for every subscriber to finish (after `finish_publishing`).
    pub async fn join(self) -> Vec<SubOutcome> {
        let mut out = Vec::with_capacity(self.handles.len());
        for h in self.handles {
            out.push(h.await.unwrap_or_else(|e| SubOutcome {
                errors: vec![format!("subscriber task failed: {e}")],
                ..SubOutcome::default()
            }));
        }
        out
    }
}

/// Connects, subscribes with `since`, and reads up to the subscribe ack. Returns the head.
async fn open(ep: &Endpoint, idx: usize, spec: &SubSpec, case_id: CaseId, since: u64) -> Result<(Ws, u64)> {
    let mut ws = client::connect(ep, source_ip(idx, SPREAD), spec.recv_buffer).await?;
    ws.send(client::subscribe_frame(ep.wire, idx as u64, case_id, since)?).await?;
    loop {
        match client::next(&mut ws, ep).await? {
            Incoming::Ack { seq, .. } => return Ok((ws, seq.unwrap_or(0))),
            Incoming::Error { what, .. } => bail!("subscribe refused: {what}"),
            Incoming::Closed(code) => bail!("closed while subscribing ({code:?})"),
            Incoming::EioPing => ws.send(Message::text("3")).await?,
            Incoming::Event { .. } => bail!("an event before the subscribe ack"),
            _ => continue,
        }
    }
}

struct SubState {
    case_id: CaseId,
    check: SeqCheck,
    /// Live deliveries start after this seq (the latest subscribe's head).
    head: u64,
    out: SubOutcome,
    lat: Vec<u64>,
    live: u64,
    /// Must resubscribe (after `resync`).
    must_resume: bool,
    closed: bool,
    record_latency: bool,
    last_live_ns: u64,
    /// Each (re)subscription: `since→head`, and why the previous socket ended.
    opens: Vec<String>,
    /// This reader stalls (stops reading for a while).
    stalls: bool,
}

impl SubState {
    fn on(&mut self, inc: Incoming) -> Option<Message> {
        match inc {
            Incoming::Event { case, seq, sent_ns } => {
                if case.is_some_and(|c| c != self.case_id) {
                    self.out.errors.push(format!("event of another case {case:?}"));
                }
                self.check.observe(seq);
                self.out.events += 1;
                if seq > self.head {
                    self.live += 1;
                    let now = now_ns();
                    self.last_live_ns = now;
                    if let Some(sent) = sent_ns.filter(|_| self.record_latency) {
                        self.lat.push(now.saturating_sub(sent) / 1000);
                    }
                }
            }
            Incoming::Resync { reason, last_seq } => {
                self.out.resyncs += 1;
                self.opens.push(format!("[resync {reason} @{}]", self.check.last()));
                if last_seq != Some(self.check.last()) {
                    self.out.errors.push(format!(
                        "resync ({reason}) says last_seq {last_seq:?}, the socket has {}",
                        self.check.last()
                    ));
                }
                self.must_resume = true;
            }
            Incoming::Closed(code) => {
                self.opens.push(format!("[closed {code:?} @{}]", self.check.last()));
                if !self.must_resume {
                    // Not after a resync: an error, but the client still resumes (as a real
                    // one would), so that what it missed is checked too.
                    if self.stalls {
                        self.out.resets += 1;
                    } else {
                        self.out.errors.push(format!("closed by the server without resync ({code:?})"));
                    }
                    self.must_resume = true;
                }
                self.closed = true;
            }
            Incoming::Error { id, what } => self.out.errors.push(format!("error frame {id:?}: {what}")),
            Incoming::EioPing => return Some(Message::text("3")),
            Incoming::Ack { .. } | Incoming::Other => {}
        }
        None
    }

    /// Handles one read result and everything else already readable.
    async fn read_burst(&mut self, ws: &mut Ws, first: Option<Result<Message, WsError>>, ep: &Endpoint) {
        let mut m = first;
        for _ in 0..256 {
            let inc = match m {
                Some(Ok(msg)) => client::interpret(&msg, ep),
                Some(Err(e)) => Err(e.into()),
                None => Ok(Incoming::Closed(None)),
            };
            match inc {
                Ok(inc) => {
                    if let Some(reply) = self.on(inc)
                        && let Err(e) = ws.send(reply).await
                    {
                        self.out.errors.push(format!("send: {e}"));
                        self.closed = true;
                    }
                }
                Err(e) => {
                    self.opens.push(format!("[read error @{}]", self.check.last()));
                    if !self.must_resume {
                        if self.stalls {
                            self.out.resets += 1;
                        } else {
                            self.out.errors.push(format!("read: {e:#}"));
                        }
                        self.must_resume = true;
                    }
                    self.closed = true;
                }
            }
            if self.closed {
                return;
            }
            match ws.next().now_or_never() {
                Some(next) => m = next,
                None => return,
            }
        }
    }
}

async fn next_of(ws: &mut Option<Ws>) -> Option<Result<Message, WsError>> {
    match ws.as_mut() {
        Some(w) => w.next().await,
        None => std::future::pending().await,
    }
}

async fn subscriber(sh: Arc<Shared>, idx: usize, spec: SubSpec, sem: Arc<Semaphore>) -> SubOutcome {
    let case_id = sh.cases[spec.case];
    let mut st = SubState {
        case_id,
        check: SeqCheck::new(0),
        head: 0,
        out: SubOutcome::default(),
        lat: Vec::with_capacity(LATENCY_BATCH),
        live: 0,
        must_resume: false,
        closed: false,
        // A stalled reader's latency is its own doing; the run measures everyone else's.
        record_latency: !spec.stalls,
        last_live_ns: 0,
        opens: Vec::new(),
        stalls: spec.stalls,
    };
    let opened = {
        let _permit = sem.acquire().await;
        open(&sh.ep, idx, &spec, case_id, 0).await
    };
    let mut ws = match opened {
        Ok((ws, head)) => {
            st.head = head;
            sh.mark(true);
            Some(ws)
        }
        Err(e) => {
            sh.mark(false);
            st.out.errors.push(format!("connect/subscribe: {e:#}"));
            return st.out;
        }
    };
    let mut need = st.head;
    let mut done_rx = sh.done.subscribe();
    let mut stall_rx = sh.stall.subscribe();
    let mut storm_rx = sh.storm.subscribe();
    let mut done = false;
    let mut stalled = !spec.stalls;
    let mut storm_t0: Option<Instant> = None;
    let mut dropping = false;
    let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
    let drop_timer = tokio::time::sleep_until(far);
    let deadline = tokio::time::sleep_until(far);
    tokio::pin!(drop_timer, deadline);
    loop {
        let mut finished_publishing = false;
        tokio::select! {
            biased;
            m = next_of(&mut ws), if !st.closed => {
                if let Some(w) = ws.as_mut() {
                    st.read_burst(w, m, &sh.ep).await;
                }
                if st.lat.len() >= LATENCY_BATCH {
                    sh.lat.record(idx, &mut st.lat);
                }
                sh.add_delivered(idx, std::mem::take(&mut st.live));
            }
            _ = done_rx.changed(), if !done => finished_publishing = true,
            _ = stall_rx.changed(), if !stalled => {
                stalled = true;
                // A reader that stops reading until publishing is over.
                let _ = done_rx.wait_for(|d| *d).await;
                finished_publishing = !done;
            }
            _ = storm_rx.changed(), if spec.storm.is_some() && storm_t0.is_none() => {
                if let (Some(t0), Some((after, _))) = (*storm_rx.borrow(), spec.storm) {
                    storm_t0 = Some(t0);
                    dropping = true;
                    drop_timer.as_mut().reset(t0 + after);
                }
            }
            _ = &mut drop_timer, if dropping => {
                dropping = false;
                // Drop the connection (FIN, no close frame), like a phone losing its network.
                ws = None;
                st.closed = true;
                st.must_resume = true;
                if let Some((_, backoff)) = spec.storm {
                    tokio::time::sleep(backoff).await;
                }
            }
            _ = &mut deadline, if done => {
                st.out.errors.push(format!(
                    "gave up waiting: has seq {} of {need} (contiguous: {}; missing {}; stalls: {}, resyncs {}, opens {})",
                    st.check.last(),
                    st.check.contiguous(),
                    st.check.missing_ranges(8),
                    spec.stalls,
                    st.out.resyncs,
                    st.opens.join(" "),
                ));
                break;
            }
        }
        if finished_publishing {
            done = true;
            need = need.max(sh.finals[spec.case].load(SeqCst));
            deadline.as_mut().reset(Instant::now() + DRAIN);
        }
        if st.out.errors.len() > MAX_ERRORS {
            st.out.errors.push("too many errors; this socket gives up".into());
            break;
        }
        if st.closed && st.must_resume {
            st.closed = false;
            st.must_resume = false;
            // The old socket (closed by the server, or dropped) goes before the new one opens.
            drop(ws.take());
            let since = st.check.last();
            match open(&sh.ep, idx, &spec, case_id, since).await {
                Ok((new_ws, head)) => {
                    st.opens.push(format!("{since}->{head}"));
                    ws = Some(new_ws);
                    st.head = head;
                    need = need.max(head);
                    st.out.resumes += 1;
                    if let (Some(t0), Ok(mut v)) = (storm_t0, sh.resumed.lock()) {
                        v.push(t0.elapsed());
                    }
                    sh.ready_changed.notify_waiters();
                }
                Err(e) => {
                    st.out.errors.push(format!("resume: {e:#}"));
                    break;
                }
            }
        } else if st.closed {
            break;
        }
        if done && !dropping && st.check.last() >= need && st.check.contiguous() {
            st.out.connected = true;
            break;
        }
    }
    sh.lat.record(idx, &mut st.lat);
    sh.add_delivered(idx, std::mem::take(&mut st.live));
    sh.last_delivery_ns.fetch_max(st.last_live_ns, SeqCst);
    st.out.faults = st.check.finish(need);
    st.out
}

/// How a publisher paces itself.
#[derive(Clone, Copy, Debug)]
pub enum Pace {
    /// At most `window` messages in flight: sent but neither acked nor delivered to every
    /// subscriber (on average over `subscribers`).
    Window {
        /// Messages.
        window: u64,
        /// Subscribers of the published case(s).
        subscribers: u64,
        /// Count only acks (in flight = sent − acked), as an independent client does: the
        /// publisher may run ahead of the deliveries.
        acks_only: bool,
    },
    /// A fixed offered rate over all its cases (open loop: it does not wait for acks).
    Rate(f64),
}

/// One publisher socket.
#[derive(Clone, Debug)]
pub struct PubSpec {
    /// Case indexes it posts to, round robin.
    pub cases: Vec<usize>,
    /// Pacing.
    pub pace: Pace,
    /// Publishing time.
    pub duration: Duration,
    /// Or at most this many messages.
    pub max_messages: u64,
}

/// What one publisher did.
#[derive(Debug, Default)]
pub struct PubOutcome {
    /// Messages sent.
    pub sent: u64,
    /// Acked.
    pub acked: u64,
    /// Errors.
    pub errors: Vec<String>,
}

/// Runs publishers to completion and records the last seq of each case in `finals`.
pub async fn publish_all(sh: &Arc<Shared>, specs: Vec<PubSpec>) -> Vec<PubOutcome> {
    let handles: Vec<_> = specs
        .into_iter()
        .enumerate()
        .map(|(i, spec)| {
            let sh = sh.clone();
            tokio::spawn(async move {
                publisher(&sh, i, spec).await.unwrap_or_else(|e| PubOutcome {
                    errors: vec![format!("publisher: {e:#}")],
                    ..PubOutcome::default()
                })
            })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap_or_else(|e| PubOutcome {
            errors: vec![format!("publisher task: {e}")],
            ..PubOutcome::default()
        }));
    }
    out
}

async fn publisher(sh: &Shared, pidx: usize, spec: PubSpec) -> Result<PubOutcome> {
    let ep = &sh.ep;
    let ws = client::connect(ep, source_ip(SPREAD - 1 - pidx % SPREAD, SPREAD), None).await?;
    let (mut sink, mut stream) = ws.split();
    let mut out = PubOutcome::default();
    let mut pending: HashMap<String, usize> = HashMap::new();
    let mut heads: HashMap<usize, u64> = HashMap::new();
    let start = Instant::now();
    let stop_at = start + spec.duration;
    let mut next_case = 0usize;
    let mut tick = match spec.pace {
        Pace::Rate(r) => {
            let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / r.max(0.001)));
            t.set_missed_tick_behavior(MissedTickBehavior::Burst);
            t
        }
        Pace::Window { .. } => {
            // A safety net only: wake-ups come from acks and deliveries.
            let mut t = tokio::time::interval(Duration::from_millis(50));
            t.set_missed_tick_behavior(MissedTickBehavior::Skip);
            t
        }
    };
    let mut sending = true;
    let mut ack_deadline = None;
    loop {
        let now = Instant::now();
        if sending && (now >= stop_at || out.sent >= spec.max_messages) {
            sending = false;
            ack_deadline = Some(now + ACK_DRAIN);
        }
        if !sending && out.acked >= out.sent {
            break;
        }
        if let Pace::Window { window, subscribers, acks_only } = spec.pace
            && sending
        {
            let mut fed = false;
            loop {
                let delivered = sh.delivered() / subscribers.max(1);
                let in_flight = if acks_only {
                    out.sent - out.acked
                } else {
                    (out.sent - out.acked).max(out.sent.saturating_sub(delivered))
                };
                if in_flight >= window || out.sent >= spec.max_messages {
                    break;
                }
                let case = spec.cases[next_case % spec.cases.len()];
                next_case += 1;
                let id = post_id(ep.wire, pidx, out.sent);
                sink.feed(client::post_frame(ep.wire, &id, sh.cases[case])?).await?;
                pending.insert(id, case);
                out.sent += 1;
                fed = true;
            }
            if fed {
                sink.flush().await?;
            }
        }
        let wakeup = sh.pub_wakeup.notified();
        tokio::pin!(wakeup);
        wakeup.as_mut().enable();
        sh.pub_waiting.store(true, SeqCst);
        tokio::select! {
            m = stream.next() => {
                let mut m = m;
                loop {
                    let inc = match m {
                        Some(Ok(msg)) => client::interpret(&msg, ep)?,
                        Some(Err(e)) => return Err(e.into()),
                        None => Incoming::Closed(None),
                    };
                    match inc {
                        Incoming::Ack { id, seq } => {
                            if let Some(case) = pending.remove(&id) {
                                out.acked += 1;
                                let h = heads.entry(case).or_insert(0);
                                *h = (*h).max(seq.unwrap_or(0));
                            }
                        }
                        Incoming::Error { id, what } => {
                            if id.is_some_and(|id| pending.remove(&id).is_some()) {
                                out.acked += 1;
                            }
                            out.errors.push(what);
                        }
                        Incoming::EioPing => sink.send(Message::text("3")).await?,
                        Incoming::Closed(code) => bail!("publisher socket closed ({code:?})"),
                        _ => {}
                    }
                    match stream.next().now_or_never() {
                        Some(next) => m = next,
                        None => break,
                    }
                }
            }
            _ = &mut wakeup => {}
            _ = tick.tick() => {
                if let Pace::Rate(_) = spec.pace && sending {
                    let case = spec.cases[next_case % spec.cases.len()];
                    next_case += 1;
                    let id = post_id(ep.wire, pidx, out.sent);
                    sink.send(client::post_frame(ep.wire, &id, sh.cases[case])?).await?;
                    pending.insert(id, case);
                    out.sent += 1;
                }
            }
            _ = tokio::time::sleep_until(stop_at), if sending => {}
            _ = tokio::time::sleep_until(ack_deadline.unwrap_or(stop_at)), if ack_deadline.is_some() => {
                out.errors.push(format!("{} messages never acked", out.sent - out.acked));
                break;
            }
        }
    }
    for (case, head) in heads {
        sh.finals[case].fetch_max(head, SeqCst);
    }
    if out.errors.is_empty() && out.acked < out.sent {
        return Err(anyhow!("{} of {} messages unacked", out.sent - out.acked, out.sent));
    }
    Ok(out)
}

fn post_id(wire: Wire, pidx: usize, n: u64) -> String {
    match wire {
        Wire::SocketIo => n.to_string(),
        Wire::Articula(_) => format!("p{pidx}-{n}-{}", std::process::id()),
    }
}
