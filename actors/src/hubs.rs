//! Per-organisation channels for the status board and the inbox. Case actors publish after a
//! commit; sockets subscribed to a board or inbox receive and filter (a doctor keeps only their
//! own cases). Channels are bounded broadcast rings: a socket that falls behind is told to resync.

use std::sync::Arc;

use articula_protocol::{Board, CaseId, CaseSummary, OrgId, ServerBody};
use dashmap::DashMap;
use tokio::sync::broadcast;

use crate::frame::{Frame, FrameKind};

/// The board and activity channels of every organisation with a live subscriber.
pub struct OrgHubs {
    boards: DashMap<OrgId, broadcast::Sender<Arc<Frame>>>,
    activity: DashMap<OrgId, broadcast::Sender<Arc<Frame>>>,
    capacity: usize,
}

impl OrgHubs {
    /// Hubs whose channels hold `capacity` frames.
    pub fn new(capacity: usize) -> Self {
        Self { boards: DashMap::new(), activity: DashMap::new(), capacity: capacity.max(16) }
    }

    /// Subscribes to an organisation's board changes.
    pub fn subscribe_board(&self, org: OrgId) -> broadcast::Receiver<Arc<Frame>> {
        self.boards.entry(org).or_insert_with(|| broadcast::channel(self.capacity).0).subscribe()
    }

    /// Subscribes to an organisation's case activity (the inbox).
    pub fn subscribe_activity(&self, org: OrgId) -> broadcast::Receiver<Arc<Frame>> {
        self.activity.entry(org).or_insert_with(|| broadcast::channel(self.capacity).0).subscribe()
    }

    fn send(map: &DashMap<OrgId, broadcast::Sender<Arc<Frame>>>, org: OrgId, frame: Arc<Frame>) {
        let unheard = match map.get(&org) {
            Some(tx) => tx.send(frame).is_err(),
            None => return,
        };
        if unheard {
            // Nobody listens any more: drop the channel (unless someone subscribed meanwhile).
            map.remove_if(&org, |_, tx| tx.receiver_count() == 0);
        }
    }

    /// Publishes a case's new summary on an organisation's board.
    pub fn publish_board(&self, org: OrgId, summary: &CaseSummary) {
        if !self.boards.contains_key(&org) {
            return;
        }
        let body = ServerBody::Board(Board {
            org_id: org,
            snapshot: false,
            cases: vec![summary.clone()],
            removed: Vec::new(),
        });
        if let Ok(mut f) = Frame::encode(FrameKind::Board, body) {
            f.case_id = Some(summary.case_id);
            f.seq = summary.seq;
            f.doctor_id = Some(summary.doctor_id);
            Self::send(&self.boards, org, Arc::new(f));
        }
    }

    /// Removes a case from an organisation's board (e.g. re-routed to another lab).
    pub fn publish_board_removal(&self, org: OrgId, case_id: CaseId) {
        if !self.boards.contains_key(&org) {
            return;
        }
        let body = ServerBody::Board(Board {
            org_id: org,
            snapshot: false,
            cases: Vec::new(),
            removed: vec![case_id],
        });
        if let Ok(mut f) = Frame::encode(FrameKind::Board, body) {
            f.case_id = Some(case_id);
            Self::send(&self.boards, org, Arc::new(f));
        }
    }

    /// Publishes an inbox item to an organisation.
    pub fn publish_activity(&self, org: OrgId, frame: Arc<Frame>) {
        Self::send(&self.activity, org, frame);
    }
}
