//! A server process's memory and CPU, from `/proc/<pid>`.

use std::sync::OnceLock;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};

/// One reading.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Resident set, KiB (`VmRSS`).
    pub rss_kib: u64,
    /// CPU time used so far, user + system, seconds.
    pub cpu_secs: f64,
    /// When.
    pub at: Instant,
}

impl Sample {
    /// CPU used between two readings, in cores (1.0 = one core busy).
    pub fn cores_since(&self, earlier: &Sample) -> f64 {
        let wall = self.at.duration_since(earlier.at).as_secs_f64();
        if wall <= 0.0 { 0.0 } else { (self.cpu_secs - earlier.cpu_secs) / wall }
    }
}

fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Reads `pid`'s RSS and CPU time now.
pub fn sample(pid: u32) -> Result<Sample> {
    let at = Instant::now();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc status")?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS for {pid}"))?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).context("reading /proc stat")?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or_else(|| anyhow!("odd /proc stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    let tick = |i: usize| fields.get(i - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let cpu_secs = (tick(14) + tick(15)) as f64 / clock_ticks();
    Ok(Sample { rss_kib, cpu_secs, at })
}
