//! S4 reconnect storm: while cases keep getting events, every socket drops (at a random moment
//! within a few seconds), waits a random backoff, reconnects and resumes with `since` = the last
//! seq it saw. Nothing may be lost or duplicated; measured: time until 99% have resumed, and the
//! share of resumes the server served from memory rather than from the database.

use std::time::Duration;

use anyhow::Result;
use rand::Rng;

use super::{Ctx, Monitor, Snapshot, failed, measure, report, server_log, start_clock, tally};
use crate::report::{Compare, Report, print};
use crate::run::{Pace, PubSpec, SubSpec, publish_all, subscribe_all};
use crate::target::Kind;

/// Sizes.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Cases.
    pub cases: usize,
    /// Subscribers per case.
    pub subs_per_case: usize,
    /// Events per second per case (all the time, storm or not).
    pub rate_per_case: f64,
    /// Publishing before the storm.
    pub warmup: Duration,
    /// Sockets drop uniformly within this window.
    pub drop_window: Duration,
    /// Each waits up to this long before reconnecting.
    pub backoff: Duration,
    /// Publishing after the storm started.
    pub after: Duration,
}

impl Params {
    /// The full run.
    pub fn full() -> Self {
        Self {
            cases: 500,
            subs_per_case: 10,
            rate_per_case: 1.0,
            warmup: Duration::from_secs(3),
            drop_window: Duration::from_secs(3),
            backoff: Duration::from_secs(2),
            after: Duration::from_secs(12),
        }
    }

    /// The smoke run.
    pub fn smoke() -> Self {
        Self {
            cases: 4,
            subs_per_case: 8,
            rate_per_case: 20.0,
            warmup: Duration::from_millis(300),
            drop_window: Duration::from_millis(500),
            backoff: Duration::from_millis(200),
            after: Duration::from_secs(2),
        }
    }
}

/// Runs S4 and prints the table.
pub async fn run(ctx: &Ctx, p: Params) -> Vec<Report> {
    let n = p.cases * p.subs_per_case;
    let title = format!(
        "S4 reconnect storm: {n} sockets over {} cases drop within {:.1} s, backoff up to {:.1} s, {} event/s per case",
        p.cases,
        p.drop_window.as_secs_f64(),
        p.backoff.as_secs_f64(),
        p.rate_per_case
    );
    let name = format!("S4 {n} sockets");
    let mut reports = Vec::new();
    for kind in ctx.targets(false, false) {
        let r = one(ctx, p, kind, &name).await;
        reports.push(r.unwrap_or_else(|e| failed(&name, kind, &e)));
    }
    print(&title, &reports, Compare::Extra("secs_to_99pct_resumed"));
    reports
}

async fn one(ctx: &Ctx, p: Params, kind: Kind, name: &str) -> Result<Report> {
    let t = ctx.start(kind).await?;
    let cases = t.create_cases(p.cases).await?;
    let sh = ctx.shared(&t, cases)?;
    let n = p.cases * p.subs_per_case;
    let mut rng = rand::rng();
    let specs = (0..n)
        .map(|i| {
            let at = p.drop_window.mul_f64(rng.random::<f64>());
            let backoff = p.backoff.mul_f64(rng.random::<f64>());
            SubSpec { case: i % p.cases, storm: Some((at, backoff)), ..SubSpec::default() }
        })
        .collect();
    let subscribers = subscribe_all(&sh, specs, ctx.connect_concurrency).await;
    let connected = sh.ready_count();
    let publishers = (p.cases / 100).clamp(1, 10);
    let pubs: Vec<PubSpec> = (0..publishers)
        .map(|k| {
            let mine: Vec<usize> = (k..p.cases).step_by(publishers).collect();
            let rate = mine.len() as f64 * p.rate_per_case;
            PubSpec {
                cases: mine,
                pace: Pace::Rate(rate),
                duration: p.warmup + p.after,
                max_messages: u64::MAX,
            }
        })
        .collect();
    let before = Snapshot::take(&t)?;
    let mon = Monitor::start(t.pid());
    let started = start_clock();
    let publishing = {
        let sh = sh.clone();
        tokio::spawn(async move { publish_all(&sh, pubs).await })
    };
    tokio::time::sleep(p.warmup).await;
    let m0 = t.metrics().await?;
    let t0 = sh.start_storm();
    let all_back = tokio::time::timeout(
        p.after + Duration::from_secs(60),
        sh.wait_until(|s| s.resumed_count() >= connected),
    )
    .await
    .is_ok();
    let storm_secs = t0.elapsed().as_secs_f64();
    let m1 = t.metrics().await?;
    let pub_out = publishing.await?;
    let after = Snapshot::take(&t)?;
    sh.finish_publishing();
    let outcomes = subscribers.join().await;
    let mut r = report(name, &t, connected + publishers);
    measure(&mut r, &sh, started, &before, &after, mon.stop());
    tally(&mut r, &outcomes, &pub_out);
    server_log(&mut r, &t);
    let mut times: Vec<f64> =
        sh.resumed.lock().map(|v| v.iter().map(|d| d.as_secs_f64()).collect()).unwrap_or_default();
    times.sort_by(f64::total_cmp);
    let at = |q: f64| -> f64 {
        let need = ((connected as f64) * q).ceil() as usize;
        times.get(need.saturating_sub(1)).copied().unwrap_or(f64::NAN)
    };
    r.set("resumed", times.len() as u64);
    r.set("secs_to_99pct_resumed", (at(0.99) * 1000.0).round() / 1000.0);
    r.set("secs_to_all_resumed", (at(1.0) * 1000.0).round() / 1000.0);
    if !all_back {
        r.errors += 1;
        r.error_samples.push(format!("only {} of {connected} resumed after {storm_secs:.1} s", times.len()));
    }
    if matches!(kind, Kind::Sqlite | Kind::Postgres) {
        let memory = m1.get(r#"articula_resumes_total{source="memory"}"#)
            - m0.get(r#"articula_resumes_total{source="memory"}"#);
        let store = m1.get(r#"articula_resumes_total{source="store"}"#)
            - m0.get(r#"articula_resumes_total{source="store"}"#);
        r.set("resumes_from_memory", memory);
        r.set("resumes_from_store", store);
        if memory + store > 0.0 {
            r.set("store_share_pct", (store / (memory + store) * 1000.0).round() / 10.0);
        }
    }
    Ok(r)
}
