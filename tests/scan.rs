//! The malware scanner against a real clamd (started per test with a test signature database):
//! what is refused, what passes, and that a missing or refusing clamd never passes a file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is the assertion

#[path = "support/clamd.rs"]
mod clamd;

use articula::files::scan::{EICAR, EICAR_SIGNATURE, ScanError, Scanner, Verdict};
use clamd::{Clamd, ClamdBuilder, reported};
use rand::RngCore;

const BLOB_SIGNATURE: &str = "Articula-Test-Blob";

async fn start(builder: ClamdBuilder) -> Clamd {
    tokio::task::spawn_blocking(move || builder.start()).await.unwrap()
}

async fn stop(mut clamd: Clamd) {
    tokio::task::spawn_blocking(move || clamd.stop()).await.unwrap();
}

/// Scans `bytes` fed in pieces of `chunk` bytes, as an upload would arrive.
async fn scan(scanner: &Scanner, bytes: &[u8], chunk: usize) -> Result<Verdict, ScanError> {
    let mut session = scanner.start().await?;
    for piece in bytes.chunks(chunk) {
        session.feed(piece).await?;
    }
    session.finish().await
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

#[tokio::test]
async fn eicar_is_refused_without_clamd() {
    let verdict = scan(&Scanner::new(None), EICAR, 68).await;
    assert_eq!(verdict, Ok(Verdict::Infected(EICAR_SIGNATURE.to_owned())));
}

#[tokio::test]
async fn eicar_is_refused_by_clamd() {
    let clamd = start(Clamd::builder()).await;
    let scanner = Scanner::new(Some(clamd.addr()));
    // clamd's own name wins over the local check's: clamd saw the streamed bytes.
    let verdict = scan(&scanner, EICAR, 10).await;
    assert_eq!(verdict, Ok(Verdict::Infected(reported("Eicar-Test"))), "{}", clamd.log());
}

#[tokio::test]
async fn a_signature_only_clamd_knows_is_found_in_the_streamed_bytes() {
    let blob = random_bytes(1024);
    let clamd = start(Clamd::builder().signature(&blob, BLOB_SIGNATURE)).await;
    assert_eq!(scan(&Scanner::new(None), &blob, 1024).await, Ok(Verdict::Clean), "no clamd, no hit");
    let scanner = Scanner::new(Some(clamd.addr()));
    for chunk in [1024, 7, 1] {
        let verdict = scan(&scanner, &blob, chunk).await;
        assert_eq!(verdict, Ok(Verdict::Infected(reported(BLOB_SIGNATURE))), "chunks of {chunk}");
    }
    let mut changed = blob.clone();
    changed[512] ^= 1;
    assert_eq!(scan(&scanner, &changed, 100).await, Ok(Verdict::Clean), "one bit differs");
}

#[tokio::test]
async fn a_clean_30_mb_stream_is_clean() {
    let clamd = start(Clamd::builder()).await;
    let scanner = Scanner::new(Some(clamd.addr()));
    let block = random_bytes(1024 * 1024);
    let mut session = scanner.start().await.unwrap();
    for _ in 0..30 {
        // 1 MiB feeds, sent to clamd as 64 KiB chunks.
        session.feed(&block).await.unwrap();
    }
    // Clean only comes from clamd's `stream: OK`, sent once it read the terminating chunk.
    assert_eq!(session.finish().await, Ok(Verdict::Clean), "{}", clamd.log());
}

#[tokio::test]
async fn a_stopped_clamd_is_unavailable_never_clean() {
    let clamd = start(Clamd::builder()).await;
    let scanner = Scanner::new(Some(clamd.addr()));
    scanner.ping().await.unwrap();
    stop(clamd).await;
    assert!(matches!(scanner.ping().await, Err(ScanError::Unavailable(_))));
    let verdict = scan(&scanner, b"solid part\nendsolid part\n", 1024).await;
    assert!(
        matches!(&verdict, Err(ScanError::Unavailable(m)) if m.contains("cannot connect")),
        "{verdict:?}"
    );
    // Nothing is scanned, so nothing is committed: not even EICAR passes as clean.
    assert!(matches!(scan(&scanner, EICAR, 68).await, Err(ScanError::Unavailable(_))));
}

#[tokio::test]
async fn clamd_dying_mid_stream_fails_the_scan() {
    let clamd = start(Clamd::builder()).await;
    let scanner = Scanner::new(Some(clamd.addr()));
    let block = random_bytes(256 * 1024);
    let mut session = scanner.start().await.unwrap();
    session.feed(&block).await.unwrap();
    stop(clamd).await;
    let mut fed = Ok(());
    for _ in 0..16 {
        fed = session.feed(&block).await;
        if fed.is_err() {
            break;
        }
    }
    let verdict = session.finish().await;
    assert!(matches!(verdict, Err(ScanError::Unavailable(_))), "{verdict:?} (last feed: {fed:?})");
}

#[tokio::test]
async fn a_stream_over_clamds_limit_is_unavailable() {
    let clamd = start(Clamd::builder().stream_max_length("1M")).await;
    let scanner = Scanner::new(Some(clamd.addr()));
    let verdict = scan(&scanner, &random_bytes(4 * 1024 * 1024), 256 * 1024).await;
    match verdict {
        Err(ScanError::Unavailable(message)) => {
            assert!(message.contains("INSTREAM size limit exceeded"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}
