//! `articula-loadtests`: drives the real Articula server over WebSocket, next to a bare
//! tokio-tungstenite baseline and a Socket.IO peer, and reports every figure as a ratio to the
//! baseline. See `loadtests/README.md` and `BENCHMARKS.md`.

mod baseline;
mod check;
mod client;
mod procstat;
mod report;
mod run;
mod scenarios;
mod target;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use articula_protocol::Codec;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::report::Report;
use crate::scenarios::{Ctx, s1, s2, s3, s4, s5, s6, u1};
use crate::target::Launcher;

/// Load tests of the Articula server against a baseline and a Socket.IO peer.
#[derive(Parser, Debug)]
#[command(name = "articula-loadtests")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// S1 idle hold.
    S1(Common),
    /// S2 hot case (throughput, latency, stalled readers).
    S2(Common),
    /// S3 many cases (SQLite and PostgreSQL).
    S3(Common),
    /// S4 reconnect storm.
    S4(Common),
    /// U1 upload: a 1 GiB tus upload against a raw loopback copy.
    U1(Common),
    /// S5 long-lived case: cold start of a case of 200,000 events vs one of 10.
    S5(Common),
    /// S6 bounded memory: 20 sockets resuming 200,000 events from 0; a socket flooding frames.
    S6(Common),
    /// Every scenario, full size (`make bench`).
    All(Common),
    /// Every scenario, small and strict, against the server on SQLite (`make test`): fails on
    /// any lost, duplicated or out-of-order event and on any error; never on timing.
    Smoke(Common),
    /// Internal: run the baseline server (the harness starts it as a child process).
    Baseline {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        bind: String,
        /// Events kept per case for resumes.
        #[arg(long, default_value_t = baseline::RING)]
        ring: usize,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum CodecArg {
    Json,
    Msgpack,
}

#[derive(Args, Debug)]
struct Common {
    /// The `articula` binary to test.
    #[arg(long, env = "ARTICULA_LT_SERVER")]
    server: PathBuf,
    /// The Socket.IO peer's directory (server.js, package.json).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/peer"))]
    peer_dir: PathBuf,
    /// PostgreSQL URL allowed to create and drop databases (S3 on PostgreSQL).
    #[arg(long, env = "ARTICULA_TEST_PG_URL", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pg_url: String,
    /// Wire codec towards Articula and the baseline.
    #[arg(long, value_enum, default_value = "json")]
    codec: CodecArg,
    /// Skip PostgreSQL.
    #[arg(long)]
    no_postgres: bool,
    /// Skip the Socket.IO peer.
    #[arg(long)]
    no_peer: bool,
    /// Skip the baseline.
    #[arg(long)]
    no_baseline: bool,
    /// Run only these targets: baseline, sqlite, postgres, socketio (comma separated).
    #[arg(long, value_delimiter = ',')]
    only: Option<Vec<String>>,
    /// Extra server settings, `NAME=value` (e.g. ARTICULA_SUBSCRIBER_QUEUE=256).
    #[arg(long = "server-env", value_parser = parse_env)]
    server_env: Vec<(String, String)>,
    /// S1: sockets.
    #[arg(long)]
    s1_sockets: Option<usize>,
    /// S2a: subscriber counts, comma separated.
    #[arg(long, value_delimiter = ',')]
    s2_subs: Option<Vec<usize>>,
    /// S2a: interleaved runs per target (the median counts; 3 in the full run).
    #[arg(long)]
    s2_repeats: Option<usize>,
    /// S2: which parts to run (any of `abc`).
    #[arg(long, default_value = "abc")]
    s2_parts: String,
    /// S3: cases (×10 subscribers).
    #[arg(long)]
    s3_cases: Option<usize>,
    /// S4: cases (×10 subscribers).
    #[arg(long)]
    s4_cases: Option<usize>,
    /// U1: file size, MiB.
    #[arg(long)]
    u1_mib: Option<u64>,
    /// Handshakes in parallel while connecting.
    #[arg(long, default_value_t = 128)]
    connect_concurrency: usize,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected NAME=value: {s}"))
}

fn ctx(c: &Common, smoke: bool) -> Ctx {
    let mut server_env = c.server_env.clone();
    if smoke && !server_env.iter().any(|(k, _)| k == "ARTICULA_SUBSCRIBER_QUEUE") {
        // Small queues make the stalled readers of S2c lag out within the smoke's few seconds.
        server_env.push(("ARTICULA_SUBSCRIBER_QUEUE".into(), "64".into()));
    }
    Ctx {
        launcher: Launcher {
            server: c.server.clone(),
            peer_dir: c.peer_dir.clone(),
            pg_admin_url: c.pg_url.clone(),
            codec: match c.codec {
                CodecArg::Json => Codec::Json,
                CodecArg::Msgpack => Codec::MsgPack,
            },
            full_decode: smoke,
            server_env,
            baseline_ring: baseline::RING,
        },
        smoke,
        postgres: !c.no_postgres,
        peer: !c.no_peer,
        baseline: !c.no_baseline,
        only: c.only.clone(),
        connect_concurrency: c.connect_concurrency,
    }
}

fn s1_params(c: &Common, smoke: bool) -> s1::Params {
    let mut p = if smoke { s1::Params::smoke() } else { s1::Params::full() };
    if let Some(n) = c.s1_sockets {
        p.sockets = n;
        p.cases = (n / 10).max(1);
    }
    p
}

fn s2_params(c: &Common, smoke: bool) -> s2::Params {
    let mut p = if smoke { s2::Params::smoke() } else { s2::Params::full() };
    if let Some(v) = &c.s2_subs {
        p.throughput_subs = v.clone();
    }
    p.parts = c.s2_parts.clone();
    if let Some(n) = c.s2_repeats {
        p.repeats = n;
    }
    p
}

fn s3_params(c: &Common, smoke: bool) -> s3::Params {
    let mut p = if smoke { s3::Params::smoke() } else { s3::Params::full() };
    if let Some(n) = c.s3_cases {
        p.cases = n;
        p.publishers = (n / 150).clamp(1, 10);
    }
    p
}

fn s4_params(c: &Common, smoke: bool) -> s4::Params {
    let mut p = if smoke { s4::Params::smoke() } else { s4::Params::full() };
    if let Some(n) = c.s4_cases {
        p.cases = n;
    }
    p
}

fn u1_params(c: &Common, smoke: bool) -> u1::Params {
    let mut p = if smoke { u1::Params::smoke() } else { u1::Params::full() };
    if let Some(mib) = c.u1_mib {
        p.triangles = (mib << 20).div_ceil(50);
    }
    p
}

async fn scenarios(c: &Common, which: &[u8], smoke: bool) -> Vec<Report> {
    let ctx = ctx(c, smoke);
    let mut all = Vec::new();
    for s in which {
        let reports = match s {
            1 => s1::run(&ctx, s1_params(c, smoke)).await,
            2 => s2::run(&ctx, &s2_params(c, smoke)).await,
            3 => s3::run(&ctx, s3_params(c, smoke)).await,
            4 => s4::run(&ctx, s4_params(c, smoke)).await,
            6 => s5::run(&ctx, if smoke { s5::Params::smoke() } else { s5::Params::full() }).await,
            7 => s6::run(&ctx, if smoke { s6::Params::smoke() } else { s6::Params::full() }).await,
            _ => u1::run(&ctx, u1_params(c, smoke)).await,
        };
        all.extend(reports);
    }
    all
}

/// The verdict: a smoke run fails on anything unclean; a measuring run fails only when a
/// target could not be run at all or lost, duplicated or reordered events.
fn verdict(reports: &[Report], strict: bool) -> ExitCode {
    let bad: Vec<&Report> = reports
        .iter()
        .filter(|r| if strict { !r.clean() } else { r.lost + r.duplicated + r.out_of_order > 0 })
        .collect();
    println!();
    if bad.is_empty() {
        println!("{} passed, 0 failed", reports.len());
        return ExitCode::SUCCESS;
    }
    for r in &bad {
        println!(
            "FAILED {} on {}: errors {} lost {} duplicated {} out-of-order {} {:?}",
            r.scenario, r.target, r.errors, r.lost, r.duplicated, r.out_of_order, r.error_samples
        );
    }
    println!("{} passed, {} failed", reports.len() - bad.len(), bad.len());
    ExitCode::FAILURE
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // reqwest is built without a default TLS provider (the workspace picks aws-lc-rs once).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let (common, which, smoke): (&Common, &[u8], bool) = match &cli.command {
        Cmd::Baseline { bind, ring } => {
            return match baseline::run(bind, *ring).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("baseline: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
        Cmd::S1(c) => (c, &[1], false),
        Cmd::S2(c) => (c, &[2], false),
        Cmd::S3(c) => (c, &[3], false),
        Cmd::S4(c) => (c, &[4], false),
        Cmd::U1(c) => (c, &[5], false),
        Cmd::S5(c) => (c, &[6], false),
        Cmd::S6(c) => (c, &[7], false),
        Cmd::All(c) => (c, &[1, 2, 3, 4, 6, 7, 5], false),
        Cmd::Smoke(c) => (c, &[1, 2, 3, 4, 6, 7, 5], true),
    };
    let reports = scenarios(common, which, smoke).await;
    verdict(&reports, smoke)
}
