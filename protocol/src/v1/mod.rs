//! Version 1 of the protocol: ids, domain enums, frames and error codes.

mod client;
mod domain;
mod error;
mod event;
mod ids;
mod server;

pub use client::*;
pub use domain::*;
pub use error::ErrorCode;
pub use event::*;
pub use ids::*;
pub use server::*;
