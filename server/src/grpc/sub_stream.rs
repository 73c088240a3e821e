//! A group's share of a placed consumer's stream (`stream_fan_in.rs`), on
//! both ends: the fan-in opening it on the group's leader, here or over
//! `Groups.StreamingPull`, and the leader serving the call. Besides messages
//! and ack confirmations, the group reports what the consumer holds in it
//! (`streaming_pull::HoldingReport`), by which the fan-in splits the
//! client's window.

use std::pin::Pin;

use ferry_proto::internal as pb;
use ferry_proto::v1 as api;
use futures::{Stream, StreamExt};
use tokio::sync::watch;
use tokio_stream::wrappers::ReceiverStream;

use super::stopping::ResponseStream;
use super::streaming_pull::{HoldingReport, Requests, Responses};
use crate::delivery::Holding;
use crate::raft::GroupId;

/// A group's messages and ack confirmations for the client.
pub type SubStream = Pin<Box<dyn Stream<Item = Result<api::StreamingPullResponse, tonic::Status>> + Send>>;

/// A group's share of a consumer's stream, opened.
pub struct OpenedSubStream {
    pub responses: SubStream,
    /// What the consumer holds in the group, as it last said (`None` until
    /// it does, or for good from a leader of an earlier version).
    pub holding: watch::Receiver<Option<Holding>>,
}

/// The share opened on this node, which leads the group: `start` runs
/// `streaming_pull::start` with the report it is given.
pub async fn here<F>(start: impl FnOnce(HoldingReport) -> F) -> Result<OpenedSubStream, tonic::Status>
where
    F: std::future::Future<Output = Result<Responses, tonic::Status>>,
{
    let report = HoldingReport::new(None);
    let holding = report.subscribe();
    let responses = start(report).await?;
    Ok(OpenedSubStream { responses: Box::pin(ReceiverStream::new(responses)), holding })
}

/// The share as `Groups.StreamingPull` on the group's leader answers it:
/// reports are taken out of its responses, and responses that carried only
/// a report go no further.
pub fn from_leader(responses: tonic::Streaming<pb::GroupStreamingPullResponse>) -> OpenedSubStream {
    let report = HoldingReport::new(None);
    let holding = report.subscribe();
    let responses = responses.filter_map(move |response| {
        let response = match response {
            Ok(response) => {
                if let Some(reported) = response.holding.map(holding_of) {
                    // Most responses repeat the last report: only a change
                    // moves the shares.
                    report.send_if_modified(|holding| holding.replace(reported) != Some(reported));
                }
                let pb::GroupStreamingPullResponse { messages, ack_confirmation, .. } = response;
                (!messages.is_empty() || ack_confirmation.is_some())
                    .then_some(Ok(api::StreamingPullResponse { messages, ack_confirmation }))
            }
            Err(status) => Some(Err(status)),
        };
        std::future::ready(response)
    });
    OpenedSubStream { responses: Box::pin(responses), holding }
}

/// A stream's requests as `Groups.StreamingPull` sends them: each names the
/// group, and the first asks for reports of what the consumer holds. They
/// are relayed by a task of their own (a request stream of combinators makes
/// tonic's call future not provably `Send`), and stop at the first error of
/// `requests`.
pub fn addressed(
    group: GroupId,
    first: api::StreamingPullRequest,
    mut requests: Requests,
) -> ReceiverStream<pb::GroupStreamingPull> {
    let (sender, receiver) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        let first = pb::GroupStreamingPull { group_id: group, request: Some(first), report_holding: true };
        let mut next = Some(first);
        while let Some(request) = next {
            if sender.send(request).await.is_err() {
                return;
            }
            let following = requests.next().await.and_then(Result::ok);
            next = following.map(|request| pb::GroupStreamingPull {
                group_id: group,
                request: Some(request),
                ..Default::default()
            });
        }
    });
    ReceiverStream::new(receiver)
}

/// The leader's side of `Groups.StreamingPull`: `responses` as the fan-in
/// reads them, each with what the consumer holds once it is sent, and a
/// response with only that whenever it changes in between; without
/// `holding` (a fan-in of an earlier version did not ask), as they are.
pub fn to_fan_in(
    responses: ResponseStream<api::StreamingPullResponse>,
    holding: Option<watch::Receiver<Option<Holding>>>,
) -> ResponseStream<pb::GroupStreamingPullResponse> {
    let Some(holding) = holding else {
        return Box::pin(responses.map(|response| response.map(|response| with_holding(response, None))));
    };
    Box::pin(futures::stream::unfold((responses, holding), |(mut responses, mut holding)| async move {
        let next = tokio::select! {
            // A response carries the report, so report alone only between them.
            biased;
            response = responses.next() => match response? {
                Ok(response) => Ok(with_holding(response, *holding.borrow_and_update())),
                Err(status) => Err(status),
            },
            Ok(()) = holding.changed() => {
                let reported = (*holding.borrow_and_update()).map(holding_record);
                Ok(pb::GroupStreamingPullResponse { holding: reported, ..Default::default() })
            }
        };
        Some((next, (responses, holding)))
    }))
}

fn with_holding(response: api::StreamingPullResponse, holding: Option<Holding>) -> pb::GroupStreamingPullResponse {
    let api::StreamingPullResponse { messages, ack_confirmation } = response;
    pb::GroupStreamingPullResponse { messages, ack_confirmation, holding: holding.map(holding_record) }
}

fn holding_record(holding: Holding) -> pb::Holding {
    pb::Holding { messages: holding.messages as u32, bytes: holding.bytes as u64 }
}

fn holding_of(record: pb::Holding) -> Holding {
    Holding { messages: record.messages as usize, bytes: record.bytes as usize }
}
