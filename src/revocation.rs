//! Revocation reaches live sockets at once. Each authenticated socket registers a
//! [`SocketControl`]; revoking a session or a user flags and wakes the matching sockets, which
//! close. Revocations made by other processes (the CLI, other nodes) are written to the
//! `revocations` table, which every server tails.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use articula_protocol::UserId;
use dashmap::DashMap;
use tokio::sync::Notify;

use crate::store::Db;
use crate::store::sessions::SessionId;

/// The revocation handle of one socket.
#[derive(Debug)]
pub struct SocketControl {
    /// The socket's user.
    pub user_id: UserId,
    /// The session it authenticated with.
    pub session_id: SessionId,
    revoked: AtomicBool,
    notify: Notify,
    /// The user's memberships changed: reload them.
    memberships: Notify,
}

impl SocketControl {
    /// Whether the socket must close.
    pub fn is_revoked(&self) -> bool {
        self.revoked.load(Ordering::Acquire)
    }

    /// Resolves when the socket must close.
    pub async fn revoked(&self) {
        while !self.is_revoked() {
            self.notify.notified().await;
        }
    }

    fn revoke(&self) {
        self.revoked.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// Resolves when the user's memberships changed (since the last time it resolved).
    pub async fn memberships_changed(&self) {
        self.memberships.notified().await;
    }
}

/// Every live socket, by user.
#[derive(Default)]
pub struct Revocations {
    sockets: DashMap<UserId, Vec<Arc<SocketControl>>>,
}

impl Revocations {
    /// Registers a socket.
    pub fn register(&self, user_id: UserId, session_id: SessionId) -> Arc<SocketControl> {
        let ctl = Arc::new(SocketControl {
            user_id,
            session_id,
            revoked: AtomicBool::new(false),
            notify: Notify::new(),
            memberships: Notify::new(),
        });
        self.sockets.entry(user_id).or_default().push(ctl.clone());
        ctl
    }

    /// Forgets a closed socket.
    pub fn unregister(&self, ctl: &Arc<SocketControl>) {
        self.sockets.remove_if_mut(&ctl.user_id, |_, v| {
            v.retain(|c| !Arc::ptr_eq(c, ctl));
            v.is_empty()
        });
    }

    /// Closes the sockets of one session.
    pub fn revoke_session(&self, user: UserId, session: SessionId) {
        if let Some(v) = self.sockets.get(&user) {
            v.iter().filter(|c| c.session_id == session).for_each(|c| c.revoke());
        }
    }

    /// Closes every socket of a user.
    pub fn revoke_user(&self, user: UserId) {
        if let Some(v) = self.sockets.get(&user) {
            v.iter().for_each(|c| c.revoke());
        }
    }

    /// Tells every socket of a user to reload their memberships.
    pub fn memberships_changed(&self, user: UserId) {
        if let Some(v) = self.sockets.get(&user) {
            // notify_one keeps a permit: a change while the socket is reloading is not lost.
            v.iter().for_each(|c| c.memberships.notify_one());
        }
    }

    /// Live sockets (for metrics).
    pub fn socket_count(&self) -> usize {
        self.sockets.iter().map(|e| e.value().len()).sum()
    }

    /// Tails the `revocations` table every `every`, applying what other processes revoked.
    pub fn spawn_watcher(self: &Arc<Self>, db: Db, every: Duration) {
        let this = Arc::clone(self);
        actix_rt::spawn(async move {
            let mut last = match db.last_revocation_id().await {
                Ok(id) => id,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the revocation log; cross-process revocation is off");
                    return;
                }
            };
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                match db.revocations_after(last).await {
                    Ok(rows) => {
                        for (id, user, session, reason) in rows {
                            last = id;
                            match session {
                                Some(s) => this.revoke_session(user, s),
                                None if reason == crate::store::users::MEMBERSHIPS_CHANGED => {
                                    this.memberships_changed(user)
                                }
                                None => this.revoke_user(user),
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "reading the revocation log failed"),
                }
            }
        });
    }
}
