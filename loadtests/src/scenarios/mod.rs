//! The scenarios S1–S4, each run against the baseline and the Articula server (and S2 against
//! the Socket.IO peer) in the same invocation, so every figure is also a ratio to the baseline.

pub mod s1;
pub mod s2;
pub mod s3;
pub mod s4;
pub mod s5;
pub mod s6;
pub mod u1;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::client::now_ns;
use crate::procstat::{self, Sample};
use crate::report::{Percentiles, Report};
use crate::run::{PubOutcome, Shared, SubOutcome};
use crate::target::{Kind, Launcher, Target};

/// Everything a scenario needs to know about this invocation.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// How to start targets.
    pub launcher: Launcher,
    /// Small, quick, strict (the `make test` smoke run): correctness only.
    pub smoke: bool,
    /// Also run on PostgreSQL where the scenario asks for it.
    pub postgres: bool,
    /// Also run the Socket.IO peer where the scenario asks for it.
    pub peer: bool,
    /// Also run the baseline.
    pub baseline: bool,
    /// Only these targets (by short name), when set.
    pub only: Option<Vec<String>>,
    /// Handshakes in parallel while connecting.
    pub connect_concurrency: usize,
}

impl Ctx {
    /// The targets to run, baseline first.
    pub fn targets(&self, with_peer: bool, with_pg: bool) -> Vec<Kind> {
        let mut v = Vec::new();
        if self.baseline && !self.smoke {
            v.push(Kind::Baseline);
        }
        v.push(Kind::Sqlite);
        if with_pg && self.postgres && !self.smoke {
            v.push(Kind::Postgres);
        }
        if with_peer && self.peer && !self.smoke {
            v.push(Kind::SocketIo);
        }
        if let Some(only) = &self.only {
            v.retain(|k| only.iter().any(|o| o == k.short()));
        }
        v
    }

    /// Starts a target.
    pub async fn start(&self, kind: Kind) -> anyhow::Result<Target> {
        self.launcher.start(kind).await
    }

    /// The client's view of a target.
    pub fn shared(&self, t: &Target, cases: Vec<articula_protocol::CaseId>) -> anyhow::Result<Arc<Shared>> {
        Shared::new(t.endpoint(self.launcher.codec, self.launcher.full_decode), cases)
    }
}

/// Samples a process's RSS in the background, keeping the highest value.
pub struct Monitor {
    peak_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Monitor {
    /// Starts sampling `pid` every 100 ms.
    pub fn start(pid: u32) -> Self {
        let peak_kib = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak_kib.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            while !s.load(Relaxed) {
                tick.tick().await;
                if let Ok(x) = procstat::sample(pid) {
                    p.fetch_max(x.rss_kib, Relaxed);
                }
            }
        });
        Self { peak_kib, stop }
    }

    /// Stops and returns the peak, MiB.
    pub fn stop(self) -> f64 {
        self.stop.store(true, Relaxed);
        self.peak_kib.load(Relaxed) as f64 / 1024.0
    }
}

/// Adds what subscribers and publishers saw to a report.
pub fn tally(r: &mut Report, subs: &[SubOutcome], pubs: &[PubOutcome]) {
    for s in subs {
        r.add_faults(s.faults);
        r.resyncs += s.resyncs;
        r.errors += s.errors.len() as u64;
        for e in &s.errors {
            if r.error_samples.len() < 5 {
                r.error_samples.push(e.clone());
            }
        }
    }
    for p in pubs {
        r.published += p.acked;
        r.errors += p.errors.len() as u64;
        for e in &p.errors {
            if r.error_samples.len() < 5 {
                r.error_samples.push(format!("publisher: {e}"));
            }
        }
    }
}

/// The target's and the harness's own memory and CPU at one moment.
pub struct Snapshot {
    /// The target.
    pub server: Sample,
    /// This process (the load client).
    pub client: Sample,
}

impl Snapshot {
    /// Reads both now.
    pub fn take(t: &Target) -> anyhow::Result<Self> {
        Ok(Self { server: t.sample()?, client: procstat::sample(std::process::id())? })
    }
}

/// When something failed, adds the server's own warnings and errors to the report.
pub fn server_log(r: &mut Report, t: &Target) {
    if r.errors == 0 {
        return;
    }
    let lines = t.log_lines();
    let errors = lines.iter().filter(|l| l.contains("ERROR"));
    let warnings =
        lines.iter().filter(|l| l.contains("WARN") && !l.contains("master key") && !l.contains("TLS is off"));
    let warnings: Vec<&String> = errors.chain(warnings).take(3).collect();
    for w in warnings {
        r.error_samples.push(format!("server log: {w:.300}"));
    }
}

/// Fills deliveries, rate, latency, RSS and CPU (the target's, and the client's own so that a
/// reader can tell which side was the limit).
pub fn measure(
    r: &mut Report,
    sh: &Shared,
    started_ns: u64,
    before: &Snapshot,
    after: &Snapshot,
    peak_mib: f64,
) {
    r.set("client_cpu_cores", (after.client.cores_since(&before.client) * 100.0).round() / 100.0);
    let (before, after) = (&before.server, &after.server);
    r.deliveries = sh.delivered();
    let last = sh.last_delivery_ns.load(Relaxed).max(started_ns);
    let secs = (last - started_ns) as f64 / 1e9;
    r.deliveries_per_sec = if secs > 0.0 { r.deliveries as f64 / secs } else { 0.0 };
    r.latency = Percentiles::of(sh.lat.merged().as_ref());
    r.rss_mib = after.rss_kib as f64 / 1024.0;
    r.rss_peak_mib = peak_mib.max(r.rss_mib);
    r.cpu_cores = after.cores_since(before);
}

/// A report for `target` in `scenario`.
pub fn report(scenario: &str, t: &Target, connections: usize) -> Report {
    Report {
        scenario: scenario.into(),
        target: t.kind.name().into(),
        connections: connections as u64,
        ..Report::default()
    }
}

/// Now, for delivery-rate windows.
pub fn start_clock() -> u64 {
    now_ns()
}

/// A report that says the run could not happen.
pub fn failed(scenario: &str, kind: Kind, e: &anyhow::Error) -> Report {
    Report {
        scenario: scenario.into(),
        target: kind.name().into(),
        errors: 1,
        error_samples: vec![format!("{e:#}")],
        ..Report::default()
    }
}
