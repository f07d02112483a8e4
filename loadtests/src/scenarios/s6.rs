//! S6 bounded memory on the paths that used to grow:
//! (a) paged resume: a case of 200,000 events, 20 sockets resuming with `since: 0` at once
//!     while the case goes on — every socket gets exactly 1..n in order, and the server's RSS
//!     grows by less than 64 MiB (catch-up is read in pages, the next once the socket took the
//!     last);
//! (b) flood: one socket writes frames as fast as it can and reads nothing — the server stops
//!     reading it (its answers wait unread), so its RSS stays flat, and a subscriber of another
//!     case meanwhile still gets its events quickly.
//! Articula only (the baseline keeps no log to resume from).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use articula_protocol::CaseId;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::s5::{fill, one_command};
use super::{Ctx, Monitor, failed, report};
use crate::check::SeqCheck;
use crate::client::{self, Endpoint, Incoming, Wire, source_ip};
use crate::report::{Compare, Report, print};
use crate::target::Kind;

/// Sizes.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Events of the case resumed from 0.
    pub events: u64,
    /// Sockets resuming at once.
    pub sockets: usize,
    /// Events posted while they catch up.
    pub live_events: u64,
    /// Bytes the flooding socket tries to write.
    pub flood_bytes: u64,
}

impl Params {
    /// The full run.
    pub fn full() -> Self {
        Self { events: 200_000, sockets: 20, live_events: 200, flood_bytes: 200 << 20 }
    }

    /// The smoke run.
    pub fn smoke() -> Self {
        Self { events: 2_000, sockets: 4, live_events: 20, flood_bytes: 8 << 20 }
    }
}

/// Runs S6 and prints the table.
pub async fn run(ctx: &Ctx, p: Params) -> Vec<Report> {
    let title = format!(
        "S6 bounded memory: {} sockets resume a case of {} events from 0; one socket floods {} MiB",
        p.sockets,
        p.events,
        p.flood_bytes >> 20
    );
    let mut reports = Vec::new();
    let mut kinds = vec![Kind::Sqlite];
    if ctx.postgres && !ctx.smoke {
        kinds.push(Kind::Postgres);
    }
    if let Some(only) = &ctx.only {
        kinds.retain(|k| only.iter().any(|o| o == k.short()));
    }
    for kind in kinds {
        let name = format!("S6a resume {} x {}", p.sockets, p.events);
        reports.push(resume(ctx, p, kind, &name).await.unwrap_or_else(|e| failed(&name, kind, &e)));
        let name = format!("S6b flood {} MiB", p.flood_bytes >> 20);
        reports.push(flood(ctx, p, kind, &name).await.unwrap_or_else(|e| failed(&name, kind, &e)));
    }
    print(&title, &reports, Compare::Extra("rss_growth_mib"));
    reports
}

fn limits(ctx: &Ctx) -> crate::target::Launcher {
    let mut l = ctx.launcher.clone();
    l.server_env.extend([
        ("ARTICULA_WS_COMMANDS_PER_SECOND".into(), "1000000".into()),
        ("ARTICULA_WS_COMMAND_BURST".into(), "1000000".into()),
    ]);
    l
}

async fn resume(ctx: &Ctx, p: Params, kind: Kind, name: &str) -> Result<Report> {
    let t = limits(ctx).start(kind).await?;
    let case = t.create_cases(1).await?[0];
    let ep = t.endpoint(ctx.launcher.codec, ctx.launcher.full_decode);
    let head = fill(&ep, case, p.events, 256).await?;
    let before = t.sample()?.rss_kib;
    let mon = Monitor::start(t.pid());
    let started = Instant::now();
    let mut readers = Vec::new();
    for i in 0..p.sockets {
        let ep = ep.clone();
        readers.push(tokio::spawn(async move { read_all(&ep, i, case).await }));
    }
    // The case goes on while they catch up.
    let mut poster = client::connect(&ep, source_ip(0, 1), None).await?;
    for i in 0..p.live_events {
        one_command(&mut poster, &ep, case, &format!("live-{i}")).await?;
    }
    let last = head + p.live_events;
    let mut r = report(name, &t, p.sockets + 1);
    let mut slowest = 0.0f64;
    for h in readers {
        let (check, secs) = h.await??;
        r.add_faults(check.finish(last));
        slowest = slowest.max(secs);
    }
    let peak = mon.stop();
    r.deliveries = (p.sockets as u64) * last;
    r.deliveries_per_sec = r.deliveries as f64 / started.elapsed().as_secs_f64();
    r.rss_mib = t.sample()?.rss_kib as f64 / 1024.0;
    r.rss_peak_mib = peak.max(r.rss_mib);
    r.set("events", last);
    r.set("secs_slowest_socket", (slowest * 100.0).round() / 100.0);
    r.set("rss_growth_mib", ((peak - before as f64 / 1024.0) * 10.0).round() / 10.0);
    Ok(r)
}

/// Subscribes from 0 and reads until the case's last event (`head` + live ones arrive as the
/// poster finishes: the reader stops once it has seen a live event numbered past the poster's
/// end, or the poster's last).
async fn read_all(ep: &Endpoint, i: usize, case: CaseId) -> Result<(SeqCheck, f64)> {
    let t0 = Instant::now();
    let mut ws = client::connect(ep, source_ip(i + 1, 64), None).await?;
    ws.send(client::subscribe_frame(ep.wire, i as u64, case, 0)?).await?;
    let mut check = SeqCheck::new(0);
    let mut idle_deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let msg = tokio::time::timeout_at(idle_deadline.into(), ws.next()).await;
        let Ok(msg) = msg else { break };
        let inc = match msg {
            Some(Ok(m)) => client::interpret(&m, ep)?,
            Some(Err(e)) => return Err(e.into()),
            None => bail!("reader {i}: closed"),
        };
        match inc {
            Incoming::Event { seq, .. } => {
                check.observe(seq);
                // Once caught up, wait only briefly for more.
                idle_deadline = Instant::now() + Duration::from_secs(3);
            }
            Incoming::Resync { reason, .. } => bail!("reader {i}: resync ({reason})"),
            Incoming::Closed(code) => bail!("reader {i}: closed ({code:?})"),
            Incoming::Error { what, .. } => bail!("reader {i}: {what}"),
            _ => {}
        }
    }
    Ok((check, t0.elapsed().as_secs_f64() - 3.0))
}

async fn flood(ctx: &Ctx, p: Params, kind: Kind, name: &str) -> Result<Report> {
    let t = limits(ctx).start(kind).await?;
    let cases = t.create_cases(2).await?;
    let ep = t.endpoint(ctx.launcher.codec, ctx.launcher.full_decode);
    // Someone else, on another case, goes on meanwhile.
    let mut other = client::connect(&ep, source_ip(0, 1), None).await?;
    fill(&ep, cases[1], 1, 1).await?;
    let before = t.sample()?.rss_kib;
    let mon = Monitor::start(t.pid());
    let Wire::Articula(codec) = ep.wire else { bail!("Articula only") };
    let frame = codec.encode_client(&articula_protocol::ClientMessage::new(
        "flood",
        articula_protocol::ClientBody::Ping(articula_protocol::Empty {}),
    ))?;
    let msg = if codec.is_binary() {
        Message::Binary(frame.clone().into())
    } else {
        Message::Text(String::from_utf8(frame.clone())?.into())
    };
    let flooder_ep = ep.clone();
    let total = p.flood_bytes;
    let flooder = tokio::spawn(async move {
        let mut ws = client::connect(&flooder_ep, source_ip(1, 2), None).await?;
        let mut written = 0u64;
        let stop = Instant::now() + Duration::from_secs(15);
        while written < total && Instant::now() < stop {
            // The server stops reading a socket whose answers wait: then this blocks.
            match tokio::time::timeout(Duration::from_millis(500), ws.send(msg.clone())).await {
                Ok(r) => r?,
                Err(_) => break,
            }
            written += frame.len() as u64;
        }
        Ok::<u64, anyhow::Error>(written)
    });
    let mut worst = Duration::ZERO;
    for i in 0..50 {
        worst = worst.max(one_command(&mut other, &ep, cases[1], &format!("meanwhile-{i}")).await?);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let written = flooder.await??;
    let peak = mon.stop();
    let mut r = report(name, &t, 2);
    r.rss_mib = t.sample()?.rss_kib as f64 / 1024.0;
    r.rss_peak_mib = peak.max(r.rss_mib);
    r.set("flood_mib_written_before_blocked", (written as f64 / 1048576.0 * 10.0).round() / 10.0);
    r.set("rss_growth_mib", ((peak - before as f64 / 1024.0) * 10.0).round() / 10.0);
    r.set("other_command_worst_ms", (worst.as_secs_f64() * 10000.0).round() / 10.0);
    Ok(r)
}
