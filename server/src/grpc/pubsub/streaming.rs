//! Pub/Sub's StreamingPull frames and Ferry's: what the client sends on
//! its stream (acks, deadline changes in pairs, flow control in the first
//! frame, an empty frame as a keep-alive) and what it receives.

use std::collections::BTreeMap;
use std::sync::Arc;

use ferry_proto::pubsub as ps;
use ferry_proto::v1 as api;
use futures::{Stream, StreamExt};
use tokio::sync::watch;
use tonic::Status;

use super::subscriber::received;
use crate::grpc::streaming_pull::{OUTSTANDING_BYTES_MAX, OUTSTANDING_MESSAGES_MAX};
use crate::grpc::ApiError;

/// The most a response frame holds: the client, on an emulator channel,
/// takes at most 4 MiB a message.
const FRAME_BYTES_MAX: usize = 3 * 1024 * 1024 + 512 * 1024;
/// What a received message costs in a frame besides its data and attributes.
const MESSAGE_OVERHEAD_BYTES: usize = 96;

/// A later frame: its acks and deadline changes (keep-alives are empty).
pub fn frame_to_ferry(frame: ps::StreamingPullRequest) -> Result<api::StreamingPullRequest, ApiError> {
    if frame.modify_deadline_seconds.len() != frame.modify_deadline_ack_ids.len() {
        return Err(ApiError::invalid(
            "modify_deadline_seconds",
            format!(
                "{} deadlines for {} ack ids: they go in pairs",
                frame.modify_deadline_seconds.len(),
                frame.modify_deadline_ack_ids.len()
            ),
        ));
    }
    let mut changes: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for (seconds, ack_id) in frame.modify_deadline_seconds.into_iter().zip(frame.modify_deadline_ack_ids) {
        let seconds =
            u32::try_from(seconds).map_err(|_| ApiError::invalid("modify_deadline_seconds", "must not be negative"))?;
        changes.entry(seconds).or_default().push(ack_id);
    }
    let deadline_changes =
        changes.into_iter().map(|(seconds, ack_ids)| api::DeadlineChange { ack_ids, seconds }).collect();
    Ok(api::StreamingPullRequest { ack_ids: frame.ack_ids, deadline_changes, ..Default::default() })
}

/// The first of the client's later frames that does not convert to Ferry's
/// request, kept for the client. Ferry's stream ends quietly when its
/// request stream breaks (the client went, so nobody is left to tell), and
/// on a subscription in data groups only once every group's sub-stream has
/// stopped: so the Pub/Sub side ends the client's stream itself, at once,
/// with the refusal.
#[derive(Debug)]
pub struct Refusal(Arc<watch::Sender<Option<Status>>>);

impl Default for Refusal {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(None)))
    }
}

impl Refusal {
    /// The client's later frames as Ferry's requests, up to the first one
    /// that does not convert: its error is the last item, and kept.
    pub fn frames_to_ferry(
        &self,
        frames: impl Stream<Item = Result<ps::StreamingPullRequest, Status>>,
    ) -> impl Stream<Item = Result<api::StreamingPullRequest, Status>> {
        let kept = Arc::clone(&self.0);
        frames
            .map(move |frame| {
                frame_to_ferry(frame?).map_err(|refused| {
                    let status = Status::from(refused);
                    // The frames end after it (below), so there is one.
                    kept.send_replace(Some(status.clone()));
                    status
                })
            })
            .scan(false, |refused, request| {
                let ended = std::mem::replace(refused, request.is_err());
                futures::future::ready((!ended).then_some(request))
            })
    }

    /// The client's stream: `responses` until a frame is refused, then the
    /// refusal.
    pub fn end_on_refusal(
        self,
        responses: impl Stream<Item = Result<ps::StreamingPullResponse, Status>>,
    ) -> impl Stream<Item = Result<ps::StreamingPullResponse, Status>> {
        let mut refused = self.0.subscribe();
        let kept = Arc::clone(&self.0);
        // Dropping Ferry's stream at the refusal ends its tasks (they stop
        // when their client's side is gone).
        let refusal = async move {
            if refused.wait_for(Option::is_some).await.is_err() {
                // Cannot happen while `last` holds the sender; never end
                // the client's stream for it.
                std::future::pending::<()>().await;
            }
        };
        let last =
            futures::stream::once(async move { kept.send_replace(None).map(Err) }).filter_map(std::future::ready);
        responses.take_until(refusal).chain(last)
    }
}

/// The first frame, for Ferry's subscription `subscription`: flow control
/// at most Ferry's limits (the client passes its own settings on, however
/// large; none or negative means the server's default).
pub fn first_to_ferry(
    subscription: String,
    first: ps::StreamingPullRequest,
) -> Result<api::StreamingPullRequest, ApiError> {
    let (messages, bytes) = (first.max_outstanding_messages, first.max_outstanding_bytes);
    let mut request = frame_to_ferry(first)?;
    request.subscription = subscription;
    request.max_outstanding_messages = u32::try_from(messages.max(0)).unwrap_or(u32::MAX).min(OUTSTANDING_MESSAGES_MAX);
    request.max_outstanding_bytes = (bytes.max(0) as u64).min(OUTSTANDING_BYTES_MAX);
    Ok(request)
}

/// The client's frames for one of Ferry's: its messages, split so no frame
/// passes the client's size limit; none for a frame without messages.
pub fn responses_from_ferry(
    response: api::StreamingPullResponse,
    counts_attempts: bool,
) -> Vec<ps::StreamingPullResponse> {
    let properties = ps::streaming_pull_response::SubscriptionProperties {
        exactly_once_delivery_enabled: false,
        // Ferry keeps each key's messages in order, always.
        message_ordering_enabled: true,
    };
    let mut frames = Vec::new();
    let (mut frame, mut bytes) = (Vec::new(), 0);
    for message in response.messages {
        let size = message
            .message
            .as_ref()
            .map_or(0, |m| m.data.len() + m.attributes.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>())
            + message.ack_id.len()
            + MESSAGE_OVERHEAD_BYTES;
        if !frame.is_empty() && bytes + size > FRAME_BYTES_MAX {
            frames.push(std::mem::take(&mut frame));
            bytes = 0;
        }
        frame.push(received(message, counts_attempts));
        bytes += size;
    }
    if !frame.is_empty() {
        frames.push(frame);
    }
    frames
        .into_iter()
        .map(|received_messages| ps::StreamingPullResponse {
            received_messages,
            subscription_properties: Some(properties),
            ..Default::default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_changes_go_in_pairs_grouped_by_seconds() {
        let frame = ps::StreamingPullRequest {
            ack_ids: vec!["a".into()],
            modify_deadline_seconds: vec![0, 30, 0],
            modify_deadline_ack_ids: vec!["b".into(), "c".into(), "d".into()],
            ..Default::default()
        };
        let ferry = frame_to_ferry(frame).expect("valid");
        assert_eq!(ferry.ack_ids, ["a"]);
        let changes: Vec<(u32, Vec<String>)> =
            ferry.deadline_changes.into_iter().map(|c| (c.seconds, c.ack_ids)).collect();
        assert_eq!(changes, [(0, vec!["b".to_owned(), "d".to_owned()]), (30, vec!["c".to_owned()])]);
        let unpaired = ps::StreamingPullRequest { modify_deadline_seconds: vec![1], ..Default::default() };
        assert!(frame_to_ferry(unpaired).expect_err("unpaired").to_string().contains("pairs"));
        assert_eq!(frame_to_ferry(ps::StreamingPullRequest::default()).expect("a keep-alive"), Default::default());
    }

    #[test]
    fn flow_control_is_clamped_to_ferrys_limits() {
        let first = |messages, bytes| ps::StreamingPullRequest {
            max_outstanding_messages: messages,
            max_outstanding_bytes: bytes,
            ..Default::default()
        };
        let ferry = first_to_ferry("p.s".into(), first(50_000, 1 << 40)).expect("valid");
        assert_eq!((ferry.subscription.as_str(), ferry.max_outstanding_messages), ("p.s", OUTSTANDING_MESSAGES_MAX));
        assert_eq!(ferry.max_outstanding_bytes, OUTSTANDING_BYTES_MAX);
        let defaults = first_to_ferry("p.s".into(), first(-1, 0)).expect("valid");
        assert_eq!((defaults.max_outstanding_messages, defaults.max_outstanding_bytes), (0, 0));
    }

    #[test]
    fn big_deliveries_are_split_under_the_clients_limit_and_empty_ones_dropped() {
        let message = |i: u64| api::ReceivedMessage {
            ack_id: format!("ack-{i}"),
            offset: i,
            message: Some(api::Message { data: vec![0u8; 1024 * 1024].into(), ..Default::default() }),
            ..Default::default()
        };
        let frames = responses_from_ferry(
            api::StreamingPullResponse { messages: (0..7).map(message).collect(), ..Default::default() },
            false,
        );
        assert_eq!(frames.iter().map(|f| f.received_messages.len()).collect::<Vec<_>>(), [3, 3, 1]);
        assert!(frames.iter().all(|f| f.subscription_properties.is_some_and(|p| p.message_ordering_enabled)));
        assert!(responses_from_ferry(api::StreamingPullResponse::default(), false).is_empty());
    }
}
