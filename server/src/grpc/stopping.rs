//! The node's shutdown as the services see it. A node told to stop first
//! hands its groups' leadership over (`node/shutdown.rs`); meanwhile it
//! takes no new consumer streams and no leaderships, and the streams it
//! serves end with UNAVAILABLE, so their consumers reconnect to a node that
//! stays, rather than holding the server open until it is cut off.

use std::pin::Pin;

use futures::Stream;
use tokio::sync::{mpsc, watch};
use tonic::Status;

/// Whether the node is shutting down; cheap to clone, shared by every service.
#[derive(Debug, Clone)]
pub struct Stopping {
    sender: watch::Sender<bool>,
}

/// A streaming RPC's responses, ended early by the node's shutdown.
pub type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

impl Default for Stopping {
    fn default() -> Self {
        Self { sender: watch::Sender::new(false) }
    }
}

impl Stopping {
    /// From now on the node is shutting down (it never stops shutting down).
    pub fn begin(&self) {
        self.sender.send_replace(true);
    }

    pub fn is_stopping(&self) -> bool {
        *self.sender.borrow()
    }

    /// UNAVAILABLE when the node is shutting down: a new stream or
    /// leadership goes to another node.
    pub fn refuse_if_stopping(&self, what: &str) -> Result<(), Status> {
        if self.is_stopping() {
            return Err(unavailable(what));
        }
        Ok(())
    }

    /// `responses` until the node begins shutting down, then one
    /// UNAVAILABLE status and the end. Dropping the receiver tells the task
    /// that fills it that the consumer is gone, as a hang-up does.
    pub fn until_stopping<T: Send + 'static>(&self, responses: mpsc::Receiver<Result<T, Status>>) -> ResponseStream<T> {
        let stopping = self.sender.subscribe();
        Box::pin(futures::stream::unfold(Some((responses, stopping)), |state| async move {
            let (mut responses, mut stopping) = state?;
            tokio::select! {
                next = responses.recv() => next.map(|item| (item, Some((responses, stopping)))),
                () = begun(&mut stopping) => Some((Err(unavailable("this stream")), None)),
            }
        }))
    }
}

/// Resolves once shutdown begins (never, if the node's `Stopping` is gone,
/// since then nothing can begin it).
async fn begun(stopping: &mut watch::Receiver<bool>) {
    if stopping.wait_for(|stopping| *stopping).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn unavailable(what: &str) -> Status {
    Status::unavailable(format!("this node is shutting down; {what} goes to another node"))
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    #[tokio::test]
    async fn a_stream_passes_responses_until_shutdown_then_ends_unavailable() {
        let stopping = Stopping::default();
        let (sender, receiver) = mpsc::channel(4);
        let mut stream = stopping.until_stopping(receiver);
        sender.send(Ok(1u32)).await.expect("send");
        assert_eq!(stream.next().await.expect("an item").expect("a response"), 1);
        assert!(stopping.refuse_if_stopping("a stream").is_ok());
        stopping.begin();
        let ended = stream.next().await.expect("an item").expect_err("the status");
        assert_eq!(ended.code(), tonic::Code::Unavailable);
        assert!(stream.next().await.is_none(), "nothing follows the status");
        assert!(sender.is_closed(), "the filling task learns the consumer is gone");
        assert_eq!(stopping.refuse_if_stopping("a stream").expect_err("refused").code(), tonic::Code::Unavailable);
    }

    #[tokio::test]
    async fn a_stream_that_ends_first_just_ends() {
        let stopping = Stopping::default();
        let (sender, receiver) = mpsc::channel::<Result<u32, Status>>(1);
        let mut stream = stopping.until_stopping(receiver);
        drop(sender);
        assert!(stream.next().await.is_none());
    }
}
