//! What every request handler and socket shares.

use std::num::NonZeroU32;
use std::sync::Arc;

use articula_actors::CaseRegistry;
use articula_protocol::UserId;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::Auth;
use crate::config::Settings;
use crate::revocation::Revocations;
use crate::store::Db;

/// The application's shared state.
pub struct AppState {
    /// Settings.
    pub settings: Arc<Settings>,
    /// Database.
    pub db: Db,
    /// Sign-in and sessions.
    pub auth: Auth,
    /// Live case actors.
    pub registry: Arc<CaseRegistry>,
    /// Live sockets, for revocation.
    pub revocations: Arc<Revocations>,
    /// Commands per user on sockets.
    pub ws_limiter: DefaultKeyedRateLimiter<UserId>,
    /// Prometheus text output.
    pub metrics: PrometheusHandle,
    /// Uploads, stored files, keys.
    pub files: Arc<crate::uploads::Files>,
}

impl AppState {
    /// The per-user command limiter of sockets.
    pub fn command_limiter(settings: &Settings) -> DefaultKeyedRateLimiter<UserId> {
        let per_sec = NonZeroU32::new(settings.ws_commands_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(settings.ws_command_burst).unwrap_or(NonZeroU32::MIN);
        RateLimiter::keyed(Quota::per_second(per_sec).allow_burst(burst))
    }
}
