//! What every request handler and socket shares.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

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
    /// `/.well-known/security.txt`, made at start-up (none without a security contact).
    pub security_txt: Option<String>,
    /// The names of `label_name_list` (lower case), read at start-up.
    pub label_names: Arc<[String]>,
}

/// How often the rate limiters forget their stale keys.
const LIMITER_PRUNE_EVERY: Duration = Duration::from_secs(10);

impl AppState {
    /// Forgets the keys of the rate limiters (sign-in per client address, socket commands per
    /// user) whose state is again that of a key never seen: with nothing spent, a key's entry
    /// says nothing. Staleness thus follows each quota (an address that made one sign-in attempt
    /// under 20 a minute is forgotten after 6 s, one that spent its whole minute after about a
    /// minute) — without pruning, the maps keep every address ever seen. Then gives the memory
    /// back.
    pub fn prune_limiters(&self) {
        self.auth.prune_login_limiter();
        self.ws_limiter.retain_recent();
        self.ws_limiter.shrink_to_fit();
    }

    /// Prunes the rate limiters every [`LIMITER_PRUNE_EVERY`] while the application lives.
    pub fn spawn_limiter_pruning(state: &Arc<AppState>) {
        let state = Arc::downgrade(state);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(LIMITER_PRUNE_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let Some(state) = state.upgrade() else { return };
                state.prune_limiters();
            }
        });
    }

    /// Gauges read from this application's state when `/metrics` is scraped, in the Prometheus
    /// text format. They are not kept in the process-wide recorder, which every application of
    /// a process shares (the tests run many).
    pub fn state_gauges(&self) -> String {
        let gauges = [
            (
                "articula_login_limiter_keys",
                "Client addresses held by the sign-in rate limiter.",
                self.auth.login_limiter_keys(),
            ),
            (
                "articula_ws_limiter_keys",
                "Users held by the socket command rate limiter.",
                self.ws_limiter.len(),
            ),
        ];
        gauges
            .iter()
            .map(|(name, help, value)| format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"))
            .collect()
    }

    /// The per-user command limiter of sockets.
    pub fn command_limiter(settings: &Settings) -> DefaultKeyedRateLimiter<UserId> {
        let per_sec = NonZeroU32::new(settings.ws_commands_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(settings.ws_command_burst).unwrap_or(NonZeroU32::MIN);
        RateLimiter::keyed(Quota::per_second(per_sec).allow_burst(burst))
    }
}
