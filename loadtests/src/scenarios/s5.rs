//! S5 long-lived case: a case with 200,000 events starts (cold) about as fast and as small as a
//! case of 10 events — its actor reads the latest snapshot and the events after it, not its
//! history (issue: "a case that has lived for three years must be as cheap as a new one").
//!
//! Both cases are filled through the server (so it writes its snapshots as in real life), their
//! actors are let go idle (`ARTICULA_CASE_IDLE_SECS`), and then each is woken by one command,
//! alternately, several times: the time of that command (load + commit), the server's own load
//! time and events read (`articula_case_load_seconds`, `articula_case_load_events`) and the RSS
//! the load added. Articula only: the baseline keeps no history.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use articula_protocol::CaseId;
use futures_util::SinkExt;

use super::{Ctx, failed, report};
use crate::client::{self, Endpoint, Incoming, Ws, source_ip};
use crate::report::{Compare, Report, print};
use crate::target::{Kind, Target};

/// Sizes.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Events of the long case.
    pub long_events: u64,
    /// Events of the short case.
    pub short_events: u64,
    /// Cold starts of each case (alternating); the median counts.
    pub rounds: usize,
    /// Seconds of quiet after which a case actor stops (the server's setting for this run).
    pub idle_secs: u64,
}

impl Params {
    /// The full run.
    pub fn full() -> Self {
        Self { long_events: 200_000, short_events: 10, rounds: 5, idle_secs: 2 }
    }

    /// The smoke run.
    pub fn smoke() -> Self {
        Self { long_events: 2_000, short_events: 10, rounds: 1, idle_secs: 1 }
    }
}

/// Posts `n` messages to `case` on one socket, keeping `window` unacknowledged; answers the
/// last seq.
pub async fn fill(ep: &Endpoint, case: CaseId, n: u64, window: u64) -> Result<u64> {
    let mut ws = client::connect(ep, source_ip(0, 1), None).await?;
    let (mut sent, mut acked, mut last) = (0u64, 0u64, 0u64);
    while acked < n {
        let mut fed = false;
        while sent < n && sent - acked < window {
            let id = format!("f{case}-{sent}");
            ws.feed(client::post_frame(ep.wire, &id, case)?).await?;
            sent += 1;
            fed = true;
        }
        if fed {
            ws.flush().await?;
        }
        match client::next(&mut ws, ep).await? {
            Incoming::Ack { seq, .. } => {
                acked += 1;
                last = last.max(seq.unwrap_or(0));
            }
            Incoming::Error { what, .. } => {
                if what.contains("unavailable") || what.contains("rate_limited") {
                    bail!("filling the case was refused: {what} (raise the server's limits for this run)");
                }
                bail!("filling the case failed: {what}");
            }
            Incoming::Closed(code) => bail!("closed while filling ({code:?})"),
            _ => {}
        }
    }
    Ok(last)
}

/// Sends one command and waits for its ack; answers how long it took.
pub async fn one_command(ws: &mut Ws, ep: &Endpoint, case: CaseId, id: &str) -> Result<Duration> {
    let t0 = Instant::now();
    ws.send(client::post_frame(ep.wire, id, case)?).await?;
    loop {
        match client::next(ws, ep).await? {
            Incoming::Ack { id: got, .. } if got == id => return Ok(t0.elapsed()),
            Incoming::Error { what, .. } => bail!("the command failed: {what}"),
            Incoming::Closed(code) => bail!("closed ({code:?})"),
            _ => {}
        }
    }
}

/// Waits until the server holds no case actor.
async fn all_cold(t: &Target) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if t.metrics().await?.get("articula_case_actors") < 0.5 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("case actors never went idle");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs S5 and prints the table.
pub async fn run(ctx: &Ctx, p: Params) -> Vec<Report> {
    let title = format!(
        "S5 long-lived case: cold start of a case of {} events vs one of {} ({} rounds)",
        p.long_events, p.short_events, p.rounds
    );
    let name = format!("S5 {} vs {} events", p.long_events, p.short_events);
    let mut reports = Vec::new();
    let mut kinds = vec![Kind::Sqlite];
    if ctx.postgres && !ctx.smoke {
        kinds.push(Kind::Postgres);
    }
    if let Some(only) = &ctx.only {
        kinds.retain(|k| only.iter().any(|o| o == k.short()));
    }
    for kind in kinds {
        let r = one(ctx, p, kind, &name).await;
        reports.push(r.unwrap_or_else(|e| failed(&name, kind, &e)));
    }
    print(&title, &reports, Compare::Extra("cold_start_ratio"));
    reports
}

async fn one(ctx: &Ctx, p: Params, kind: Kind, name: &str) -> Result<Report> {
    let mut launcher = ctx.launcher.clone();
    launcher.server_env.extend([
        ("ARTICULA_CASE_IDLE_SECS".into(), p.idle_secs.to_string()),
        ("ARTICULA_WS_COMMANDS_PER_SECOND".into(), "1000000".into()),
        ("ARTICULA_WS_COMMAND_BURST".into(), "1000000".into()),
    ]);
    let t = launcher.start(kind).await?;
    let cases = t.create_cases(2).await?;
    let (long, short) = (cases[0], cases[1]);
    let ep = t.endpoint(ctx.launcher.codec, ctx.launcher.full_decode);
    let filled = Instant::now();
    let long_head = fill(&ep, long, p.long_events, 256).await?;
    let fill_secs = filled.elapsed().as_secs_f64();
    fill(&ep, short, p.short_events, 16).await?;
    let mut r = report(name, &t, 1);
    let (mut ms_long, mut ms_short, mut kib_long, mut kib_short) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut load_long, mut load_short, mut read_long, mut read_short) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..p.rounds {
        for (case, ms, kib, load, read) in [
            (long, &mut ms_long, &mut kib_long, &mut load_long, &mut read_long),
            (short, &mut ms_short, &mut kib_short, &mut load_short, &mut read_short),
        ] {
            all_cold(&t).await?;
            // A socket of its own, opened before: the measure is the case's start only.
            let mut ws = client::connect(&ep, source_ip(0, 1), None).await?;
            let m0 = t.metrics().await?;
            let before = t.sample()?.rss_kib;
            let took = one_command(&mut ws, &ep, case, &format!("cold-{round}-{case}")).await?;
            let after = t.sample()?.rss_kib;
            let m1 = t.metrics().await?;
            ms.push(took.as_secs_f64() * 1000.0);
            kib.push(after.saturating_sub(before) as f64);
            let loads =
                m1.get("articula_case_load_seconds_count") - m0.get("articula_case_load_seconds_count");
            if loads > 0.0 {
                let secs =
                    m1.get("articula_case_load_seconds_sum") - m0.get("articula_case_load_seconds_sum");
                load.push(secs / loads * 1000.0);
                let events =
                    m1.get("articula_case_load_events_sum") - m0.get("articula_case_load_events_sum");
                read.push(events / loads);
            }
        }
    }
    let round2 = |x: f64| (x * 100.0).round() / 100.0;
    let (long_ms, short_ms) = (median(&mut ms_long), median(&mut ms_short));
    r.set("events_long_case", long_head);
    r.set("fill_events_per_sec", (p.long_events as f64 / fill_secs).round());
    r.set("cold_command_ms_long", round2(long_ms));
    r.set("cold_command_ms_short", round2(short_ms));
    r.set("cold_start_ratio", round2(long_ms / short_ms));
    r.set("load_ms_long", round2(median(&mut load_long)));
    r.set("load_ms_short", round2(median(&mut load_short)));
    r.set("events_read_at_start_long", median(&mut read_long));
    r.set("events_read_at_start_short", median(&mut read_short));
    r.set("rss_added_kib_long", median(&mut kib_long));
    r.set("rss_added_kib_short", median(&mut kib_short));
    r.rss_mib = t.sample()?.rss_kib as f64 / 1024.0;
    Ok(r)
}
