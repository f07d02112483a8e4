//! Articula: a realtime collaboration server for dental clinics and labs.
//!
//! The composition root (`startup`) wires the database (`store`), sign-in (`auth`), the case
//! actors (crate `articula-actors`), the REST API (`http`) and the WebSocket sessions (`ws`).

pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod demo;
pub mod error;
pub mod files;
pub mod http;
pub mod objects;
pub mod revocation;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod uploads;
pub mod ws;
