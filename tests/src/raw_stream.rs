//! A StreamingPull on the wire, without the client's subscriber in between:
//! a test sends exactly the requests it means to and sees every response.

use std::time::Duration;

use ferry_proto::v1 as api;
use ferry_proto::v1::subscriber_client::SubscriberClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// How long a test waits for a response it expects.
const EXPECTED_WITHIN: Duration = Duration::from_secs(20);
/// How long without a response counts as "nothing more is coming".
const QUIET: Duration = Duration::from_millis(500);

pub struct RawStream {
    requests: mpsc::Sender<api::StreamingPullRequest>,
    responses: tonic::Streaming<api::StreamingPullResponse>,
}

impl RawStream {
    /// Opens a stream to the node at `addr` with `first` as its first request.
    pub async fn open(addr: &str, first: api::StreamingPullRequest) -> RawStream {
        let mut client = SubscriberClient::connect(format!("http://{addr}")).await.expect("connect");
        let (requests, outgoing) = mpsc::channel(4);
        requests.send(first).await.expect("first request");
        let stream = client.streaming_pull(ReceiverStream::new(outgoing)).await.expect("stream");
        RawStream { requests, responses: stream.into_inner() }
    }

    /// Sends a later request on the stream.
    pub async fn send(&self, request: api::StreamingPullRequest) {
        self.requests.send(request).await.expect("the stream takes requests");
    }

    /// The next response; panics unless one comes within 20 s, or if the
    /// stream ends or breaks.
    pub async fn next(&mut self) -> api::StreamingPullResponse {
        let next = tokio::time::timeout(EXPECTED_WITHIN, self.responses.message()).await;
        next.expect("a response within 20 s").expect("response").expect("stream open")
    }

    /// Reads until `delivered` holds `count` ack ids in all.
    pub async fn receive_until(&mut self, delivered: &mut Vec<String>, count: usize) {
        while delivered.len() < count {
            delivered.extend(self.next().await.messages.into_iter().map(|m| m.ack_id));
        }
    }

    /// Reads responses until none comes for half a second, adding the ack
    /// ids of their messages to `delivered`; returns how many were added.
    pub async fn receive_quiet(&mut self, delivered: &mut Vec<String>) -> usize {
        let before = delivered.len();
        while let Ok(next) = tokio::time::timeout(QUIET, self.responses.message()).await {
            let response = next.expect("response").expect("stream open");
            delivered.extend(response.messages.into_iter().map(|m| m.ack_id));
        }
        delivered.len() - before
    }

    /// Reads on until the stream ends with an error, and returns it; panics
    /// if it ends without one, or if 20 s pass without an answer.
    pub async fn error(&mut self) -> tonic::Status {
        loop {
            let next = tokio::time::timeout(EXPECTED_WITHIN, self.responses.message()).await;
            match next.expect("an answer within 20 s") {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the stream ended without an error"),
                Err(status) => return status,
            }
        }
    }
}
