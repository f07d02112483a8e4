//! S3 many cases: thousands of cases × ~10 subscribers, ~1 event per second per case, with
//! persistence on (SQLite in WAL mode, and PostgreSQL): deliveries/s, p99, and database commits
//! per second (group commit should keep them far below the event rate).

use std::time::Duration;

use anyhow::Result;

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
    /// Publisher sockets (each posts to its share of the cases).
    pub publishers: usize,
    /// Events per second per case.
    pub rate_per_case: f64,
    /// Publishing time.
    pub time: Duration,
}

impl Params {
    /// The full run: 15,000 subscriber sockets (the server must stay under ~19k descriptors).
    pub fn full() -> Self {
        Self {
            cases: 1_500,
            subs_per_case: 10,
            publishers: 10,
            rate_per_case: 1.0,
            time: Duration::from_secs(30),
        }
    }

    /// The smoke run.
    pub fn smoke() -> Self {
        Self { cases: 20, subs_per_case: 3, publishers: 2, rate_per_case: 5.0, time: Duration::from_secs(2) }
    }
}

/// Runs S3 and prints the table.
pub async fn run(ctx: &Ctx, p: Params) -> Vec<Report> {
    let title = format!(
        "S3 many cases: {} cases x {} subscribers, {} event/s per case, {} s",
        p.cases,
        p.subs_per_case,
        p.rate_per_case,
        p.time.as_secs()
    );
    let name = format!("S3 {} cases x {}", p.cases, p.subs_per_case);
    let mut reports = Vec::new();
    for kind in ctx.targets(false, true) {
        let r = one(ctx, p, kind, &name).await;
        reports.push(r.unwrap_or_else(|e| failed(&name, kind, &e)));
    }
    print(&title, &reports, Compare::P99);
    reports
}

async fn one(ctx: &Ctx, p: Params, kind: Kind, name: &str) -> Result<Report> {
    let t = ctx.start(kind).await?;
    let cases = t.create_cases(p.cases).await?;
    let sh = ctx.shared(&t, cases)?;
    let specs =
        (0..p.cases * p.subs_per_case).map(|i| SubSpec { case: i % p.cases, ..SubSpec::default() }).collect();
    let subscribers = subscribe_all(&sh, specs, ctx.connect_concurrency).await;
    let pubs: Vec<PubSpec> = (0..p.publishers)
        .map(|k| {
            let mine: Vec<usize> = (k..p.cases).step_by(p.publishers).collect();
            let rate = mine.len() as f64 * p.rate_per_case;
            PubSpec { cases: mine, pace: Pace::Rate(rate), duration: p.time, max_messages: u64::MAX }
        })
        .collect();
    let m0 = t.metrics().await?;
    let before = Snapshot::take(&t)?;
    let mon = Monitor::start(t.pid());
    let started = start_clock();
    let pub_out = publish_all(&sh, pubs).await;
    let after = Snapshot::take(&t)?;
    let m1 = t.metrics().await?;
    sh.finish_publishing();
    let outcomes = subscribers.join().await;
    let mut r = report(name, &t, sh.ready_count() + p.publishers);
    measure(&mut r, &sh, started, &before, &after, mon.stop());
    tally(&mut r, &outcomes, &pub_out);
    server_log(&mut r, &t);
    if matches!(kind, Kind::Sqlite | Kind::Postgres) {
        let secs = after.server.at.duration_since(before.server.at).as_secs_f64();
        let commits = m1.get("articula_db_commits_total") - m0.get("articula_db_commits_total");
        let items = m1.get("articula_db_committed_items_total") - m0.get("articula_db_committed_items_total");
        r.set("db_commits_per_sec", (commits / secs * 10.0).round() / 10.0);
        r.set("events_per_sec", (r.published as f64 / secs * 10.0).round() / 10.0);
        if commits > 0.0 {
            r.set("items_per_commit", (items / commits * 10.0).round() / 10.0);
        }
        // Where the time goes, as the server sees it (its summaries cover the last minute or so):
        // from command to durable in the case actor, and one database commit.
        for (figure, metric) in
            [("durable", "articula_case_time_to_durable_seconds"), ("commit", "articula_db_commit_seconds")]
        {
            for q in ["0.5", "0.99"] {
                let ms = m1.get(&format!("{metric}{{quantile=\"{q}\"}}")) * 1000.0;
                let pct = if q == "0.5" { "p50" } else { "p99" };
                r.set(&format!("server_{figure}_{pct}_ms"), (ms * 10.0).round() / 10.0);
            }
        }
    }
    Ok(r)
}
