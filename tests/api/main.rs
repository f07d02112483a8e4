//! Black-box tests of the server through HTTPS, WebSocket and the CLI. Every test runs against a
//! fresh server on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is the assertion

#[path = "../support/clamd.rs"]
mod clamd;
mod helpers;
mod s3;

mod audit;
mod audit_read;
mod auth;
mod cases;
mod files;
mod grants;
mod hardening;
mod org;
mod realtime;
mod search;
mod security;
mod sockets;
mod underneath;
mod unread;
