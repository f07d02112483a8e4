//! S1 idle hold: N authenticated sockets, each subscribed to a case, idle but for heartbeats.
//! Measures the server's RSS per socket and its CPU at rest.

use std::time::Duration;

use anyhow::Result;

use super::{Ctx, Monitor, failed, report, tally};
use crate::report::{Compare, Report, print};
use crate::run::{SubSpec, subscribe_all};
use crate::target::Kind;

/// Sizes.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Sockets.
    pub sockets: usize,
    /// Cases they are spread over.
    pub cases: usize,
    /// Idle time measured (longer than one heartbeat interval of 15 s).
    pub idle: Duration,
}

impl Params {
    /// The full run.
    pub fn full() -> Self {
        Self { sockets: 10_000, cases: 1_000, idle: Duration::from_secs(20) }
    }

    /// The smoke run.
    pub fn smoke() -> Self {
        Self { sockets: 40, cases: 4, idle: Duration::from_millis(300) }
    }
}

/// Runs S1 on every target and prints the table.
pub async fn run(ctx: &Ctx, p: Params) -> Vec<Report> {
    let title =
        format!("S1 idle hold: {} sockets over {} cases, {} s idle", p.sockets, p.cases, p.idle.as_secs());
    let mut reports = Vec::new();
    for kind in ctx.targets(false, false) {
        let r = match one(ctx, p, kind).await {
            Ok(r) => r,
            Err(e) => failed("S1", kind, &e),
        };
        reports.push(r);
    }
    print(&title, &reports, Compare::Extra("rss_kib_per_socket"));
    reports
}

async fn one(ctx: &Ctx, p: Params, kind: Kind) -> Result<Report> {
    let t = ctx.start(kind).await?;
    let cases = t.create_cases(p.cases).await?;
    let sh = ctx.shared(&t, cases)?;
    let empty = t.sample()?;
    let mon = Monitor::start(t.pid());
    let specs = (0..p.sockets).map(|i| SubSpec { case: i % p.cases, ..SubSpec::default() }).collect();
    let subs = subscribe_all(&sh, specs, ctx.connect_concurrency).await;
    let connected = t.sample()?;
    // At rest: nothing happens but heartbeats (the server pings every 15 s; clients pong).
    tokio::time::sleep(p.idle).await;
    let idle = t.sample()?;
    sh.finish_publishing();
    let outcomes = subs.join().await;
    let mut r = report("S1", &t, sh.ready_count());
    tally(&mut r, &outcomes, &[]);
    let held = outcomes.iter().filter(|o| o.connected).count();
    r.rss_mib = idle.rss_kib as f64 / 1024.0;
    r.rss_peak_mib = mon.stop().max(r.rss_mib);
    r.cpu_cores = idle.cores_since(&connected);
    let per_socket = idle.rss_kib.saturating_sub(empty.rss_kib) as f64 / p.sockets.max(1) as f64;
    r.set("rss_kib_per_socket", (per_socket * 100.0).round() / 100.0);
    r.set("rss_empty_mib", (empty.rss_kib as f64 / 1024.0 * 10.0).round() / 10.0);
    r.set("connect_secs", (connected.at.duration_since(empty.at).as_secs_f64() * 100.0).round() / 100.0);
    r.set("held_through_idle", held as u64);
    Ok(r)
}
