//! Results: latency histograms shared by thousands of socket tasks, one report per target and
//! run, printed as a human table and as one JSON line each, with ratios to the baseline.

use std::sync::Mutex;

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::json;

use crate::check::Faults;

const SHARDS: usize = 16;

/// Latencies in microseconds, sharded so that socket tasks rarely contend.
pub struct Latencies(Vec<Mutex<Histogram<u64>>>);

impl Latencies {
    /// Empty histograms (1 µs to 1 h, 3 significant digits).
    pub fn new() -> anyhow::Result<Self> {
        let shards = (0..SHARDS)
            .map(|_| Histogram::new_with_bounds(1, 3_600_000_000, 3).map(Mutex::new))
            .collect::<Result<_, _>>()?;
        Ok(Self(shards))
    }

    /// Records a batch of samples from socket `idx`.
    pub fn record(&self, idx: usize, samples: &mut Vec<u64>) {
        if samples.is_empty() {
            return;
        }
        if let Ok(mut h) = self.0[idx % SHARDS].lock() {
            for s in samples.iter() {
                h.saturating_record((*s).max(1));
            }
        }
        samples.clear();
    }

    /// All shards merged.
    pub fn merged(&self) -> Option<Histogram<u64>> {
        let mut all = self.0.first()?.lock().ok()?.clone();
        for h in &self.0[1..] {
            let h = h.lock().ok()?;
            all.add(&*h).ok()?;
        }
        Some(all)
    }
}

/// Latency percentiles, milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 95th.
    pub p95_ms: f64,
    /// 99th.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Percentiles {
    /// From a histogram of microseconds.
    pub fn of(h: Option<&Histogram<u64>>) -> Self {
        let Some(h) = h.filter(|h| !h.is_empty()) else { return Self::default() };
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

/// One run of one scenario against one target.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Scenario and variant, e.g. `S2a 1000 subs`.
    pub scenario: String,
    /// Target name.
    pub target: String,
    /// Sockets held open.
    pub connections: u64,
    /// Events delivered to subscribers.
    pub deliveries: u64,
    /// Deliveries per second over the measured phase.
    pub deliveries_per_sec: f64,
    /// Messages published.
    pub published: u64,
    /// End-to-end latency.
    pub latency: Percentiles,
    /// Server RSS at the end, MiB.
    pub rss_mib: f64,
    /// Highest server RSS seen during the phase, MiB.
    pub rss_peak_mib: f64,
    /// Server CPU over the measured phase, cores.
    pub cpu_cores: f64,
    /// Errors (failed connects, error frames, unexpected closes).
    pub errors: u64,
    /// Lost, duplicated and out-of-order events.
    pub lost: u64,
    /// Duplicated events.
    pub duplicated: u64,
    /// Out-of-order events.
    pub out_of_order: u64,
    /// Sockets told to resync.
    pub resyncs: u64,
    /// Scenario-specific figures (RSS per socket, commits/s, time to resume…).
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// A few error messages, for the reader.
    pub error_samples: Vec<String>,
}

impl Report {
    /// Adds the sequence faults.
    pub fn add_faults(&mut self, f: Faults) {
        self.lost += f.lost;
        self.duplicated += f.duplicated;
        self.out_of_order += f.out_of_order;
    }

    /// Whether anything was lost, duplicated, reordered or failed.
    pub fn clean(&self) -> bool {
        self.errors == 0 && self.lost == 0 && self.duplicated == 0 && self.out_of_order == 0
    }

    /// A scenario-specific figure.
    pub fn set(&mut self, key: &str, v: impl Into<serde_json::Value>) {
        self.extra.insert(key.to_owned(), v.into());
    }

    fn extra_f64(&self, key: &str) -> Option<f64> {
        self.extra.get(key).and_then(|v| v.as_f64())
    }
}

/// Which figure a scenario compares with the baseline, and whether higher is better.
#[derive(Clone, Copy, Debug)]
pub enum Compare {
    /// Deliveries per second (higher is better).
    Throughput,
    /// p99 latency (lower is better).
    P99,
    /// A figure in `extra` (lower is better), e.g. RSS per socket.
    Extra(&'static str),
}

impl Compare {
    fn value(self, r: &Report) -> Option<f64> {
        match self {
            Compare::Throughput => Some(r.deliveries_per_sec),
            Compare::P99 => Some(r.latency.p99_ms),
            Compare::Extra(k) => r.extra_f64(k),
        }
    }

    fn label(self) -> String {
        match self {
            Compare::Throughput => "deliveries/s".into(),
            Compare::P99 => "p99".into(),
            Compare::Extra(k) => k.into(),
        }
    }
}

/// The ratio of a report's figure to the baseline's.
pub fn ratio(r: &Report, base: Option<&Report>, cmp: Compare) -> Option<f64> {
    let b = cmp.value(base?)?;
    let v = cmp.value(r)?;
    (b > 0.0).then(|| v / b)
}

fn num(v: f64) -> String {
    if v >= 100_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Prints one scenario's reports as a table, then one JSON line per report.
pub fn print(title: &str, reports: &[Report], cmp: Compare) {
    let base = reports.iter().find(|r| r.target == "baseline");
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    println!("\n== {title} ==  (load average now: {})", load.join(" "));
    println!(
        "{:<18} {:>6} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>5} {:>4} {:>4} {:>4} {:>4} {:>4} {:>11}",
        "target",
        "conns",
        "deliv/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "RSS MiB",
        "CPU",
        "err",
        "lost",
        "dup",
        "ooo",
        "rsyn",
        "",
        "vs baseline"
    );
    for r in reports {
        let ratio = ratio(r, base, cmp).map(|x| format!("{x:.2}x {}", cmp.label())).unwrap_or_default();
        println!(
            "{:<18} {:>6} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8.1} {:>7.2} {:>5} {:>4} {:>4} {:>4} {:>4} {:>4} {}",
            r.target,
            r.connections,
            num(r.deliveries_per_sec),
            num(r.latency.p50_ms),
            num(r.latency.p95_ms),
            num(r.latency.p99_ms),
            num(r.latency.max_ms),
            r.rss_mib,
            r.cpu_cores,
            r.errors,
            r.lost,
            r.duplicated,
            r.out_of_order,
            r.resyncs,
            "",
            ratio
        );
        if !r.extra.is_empty() {
            let extras: Vec<String> = r
                .extra
                .iter()
                .map(|(k, v)| match v.as_f64() {
                    Some(f) => format!("{k}={}", num(f)),
                    None => format!("{k}={v}"),
                })
                .collect();
            println!("{:<18} {}", "", extras.join("  "));
        }
        for e in r.error_samples.iter().take(8) {
            println!("{:<18} error: {e}", "");
        }
    }
    for r in reports {
        let mut v = serde_json::to_value(r).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            obj.remove("error_samples");
            obj.insert(
                "ratio_to_baseline".into(),
                json!({ "figure": cmp.label(), "value": ratio(r, base, cmp) }),
            );
        }
        println!("JSON {v}");
    }
}
