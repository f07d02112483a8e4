//! A broadcast channel read in batches: when a socket wakes up, every frame already queued for
//! it is handed over at once, so the session runs once and the transport writes once per wake-up
//! rather than per frame (a commit of many events, or a busy case, reaches each socket as one
//! batch).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use articula_actors::Frame;
use futures_util::Stream;
use tokio::sync::broadcast::{self, Receiver, error::RecvError, error::TryRecvError};
use tokio_util::sync::ReusableBoxFuture;

/// Most frames in one batch (a socket far behind gets several).
const MAX_BATCH: usize = 256;

/// How a channel ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The socket fell further behind than the channel holds: it must resync.
    Lagged,
    /// The sender is gone (its case actor or hub stopped).
    Closed,
}

/// Frames in channel order, possibly followed by the end of the channel.
pub struct Batch {
    /// The frames.
    pub frames: Vec<Arc<Frame>>,
    /// Set when the channel ended after these frames; the stream yields nothing more.
    pub end: Option<End>,
}

type Recv = (Result<Arc<Frame>, RecvError>, Receiver<Arc<Frame>>);

async fn recv(mut rx: Receiver<Arc<Frame>>) -> Recv {
    (rx.recv().await, rx)
}

/// The stream of batches of one receiver.
pub struct Batches {
    next: ReusableBoxFuture<'static, Recv>,
    ended: bool,
}

impl Batches {
    /// Reads `rx` in batches.
    pub fn new(rx: broadcast::Receiver<Arc<Frame>>) -> Self {
        Self { next: ReusableBoxFuture::new(recv(rx)), ended: false }
    }
}

impl Stream for Batches {
    type Item = Batch;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Batch>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let (first, mut rx) = match self.next.poll(cx) {
            Poll::Ready(r) => r,
            Poll::Pending => return Poll::Pending,
        };
        let mut batch = Batch { frames: Vec::new(), end: None };
        match first {
            Ok(f) => batch.frames.push(f),
            Err(RecvError::Lagged(_)) => batch.end = Some(End::Lagged),
            Err(RecvError::Closed) => batch.end = Some(End::Closed),
        }
        while batch.end.is_none() && batch.frames.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(f) => batch.frames.push(f),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Lagged(_)) => batch.end = Some(End::Lagged),
                Err(TryRecvError::Closed) => batch.end = Some(End::Closed),
            }
        }
        if batch.end.is_some() {
            self.ended = true;
        } else {
            self.next.set(recv(rx));
        }
        Poll::Ready(Some(batch))
    }
}

#[cfg(test)]
mod tests {
    use articula_actors::FrameKind;
    use articula_protocol::{Pong, ServerBody};
    use futures_util::StreamExt;

    use super::*;

    fn frame() -> Arc<Frame> {
        Arc::new(Frame::encode(FrameKind::Ephemeral, ServerBody::Pong(Pong { id: None })).expect("frame"))
    }

    #[tokio::test]
    async fn queued_frames_come_as_one_batch_then_the_end() {
        let (tx, rx) = broadcast::channel(4);
        let mut b = Batches::new(rx);
        for _ in 0..3 {
            tx.send(frame()).expect("send");
        }
        let batch = b.next().await.expect("batch");
        assert_eq!((batch.frames.len(), batch.end), (3, None));
        tx.send(frame()).expect("send");
        drop(tx);
        let batch = b.next().await.expect("batch");
        assert_eq!((batch.frames.len(), batch.end), (1, Some(End::Closed)));
        assert!(b.next().await.is_none());
    }

    #[tokio::test]
    async fn a_reader_further_behind_than_the_bound_is_told_it_lagged() {
        let (tx, rx) = broadcast::channel(2);
        let mut b = Batches::new(rx);
        for _ in 0..5 {
            tx.send(frame()).expect("send");
        }
        let batch = b.next().await.expect("batch");
        assert_eq!(batch.end, Some(End::Lagged));
        assert!(b.next().await.is_none());
    }
}
