//! StreamingPull: one bidirectional stream per consumer.
//!
//! A task per stream sends messages while the consumer holds fewer than its
//! flow-control limits (messages and bytes), and applies the acks and
//! deadline changes that arrive on the stream. Acks enter the Raft log in
//! the order they arrive and commit in the background (at most
//! `ACK_COMMITS_IN_FLIGHT` per stream); they are confirmed on the stream
//! once committed, the last ones too when the client closes its side (the
//! stream ends after them). Requests that have come are taken before more
//! is leased, so a consumer closing after its last acks is not leased a
//! window it would only give back. Streams of one subscription take
//! turns at its leases, which spreads messages over consumers.
//!
//! A stream runs on the leader of one group: group 0 for a topic not placed
//! in data groups, a data group for its share of a placed one (whose client
//! stream `stream_fan_in.rs` keeps). It ends with UNAVAILABLE when this node
//! stops leading the group (its leases are gone; the client reconnects to
//! the new leader) and NOT_FOUND when the subscription is deleted.

use std::pin::Pin;
use std::time::Duration;

use ferry_proto::v1 as api;
use futures::{FutureExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tonic::{Status, Streaming};

use super::acks;
use super::convert;
use super::dead_letter;
use super::group_delivery::GroupDelivery;
use super::status::ApiError;
use crate::delivery::{ConsumerId, Holding, Lessee};
use crate::domain::limits::{PULL_BYTES_MAX, PULL_MESSAGES_MAX};
use crate::domain::{validate, InvalidArgument};

/// Flow-control defaults and bounds for one stream.
pub const OUTSTANDING_MESSAGES_DEFAULT: u32 = 1000;
pub const OUTSTANDING_MESSAGES_MAX: u32 = 10_000;
pub const OUTSTANDING_BYTES_DEFAULT: u64 = 100 * 1024 * 1024;
pub const OUTSTANDING_BYTES_MAX: u64 = 1024 * 1024 * 1024;
/// Responses queued for the client, at most.
pub const RESPONSES_QUEUED_MAX: usize = 16;
/// Ack commits of one stream running at once, at most.
const ACK_COMMITS_IN_FLIGHT: usize = 8;

pub type Responses = mpsc::Receiver<Result<api::StreamingPullResponse, Status>>;

/// What a stream's consumer holds, as the stream last saw it; `None` until
/// it first looks (and, on the fan-in's side, from a group that does not
/// report).
pub type HoldingReport = watch::Sender<Option<Holding>>;

/// A stream's requests after the first.
pub type Requests = Pin<Box<dyn futures::Stream<Item = Result<api::StreamingPullRequest, Status>> + Send>>;

/// The first request of a stream, which names its subscription.
pub async fn first_request(
    requests: &mut Streaming<api::StreamingPullRequest>,
) -> Result<api::StreamingPullRequest, ApiError> {
    let first = requests
        .message()
        .await
        .map_err(|e| ApiError::invalid("stream", e.message().to_owned()))?
        .ok_or_else(|| ApiError::invalid("stream", "ended before its first request"))?;
    validate::name("subscription", &first.subscription)?;
    Ok(first)
}

/// A stream's flow-control limits: what its consumer holds at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub messages: u32,
    pub bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { messages: OUTSTANDING_MESSAGES_DEFAULT, bytes: OUTSTANDING_BYTES_DEFAULT }
    }
}

impl Limits {
    /// These limits as `request` changes them, checked: a limit it leaves 0
    /// stays as it is (so the first request's zeros are the defaults).
    pub fn changed_by(self, request: &api::StreamingPullRequest) -> Result<Self, InvalidArgument> {
        let (messages, bytes) = (request.max_outstanding_messages, request.max_outstanding_bytes);
        if messages > OUTSTANDING_MESSAGES_MAX {
            let problem = format!("{messages} is over the limit of {OUTSTANDING_MESSAGES_MAX}");
            return Err(InvalidArgument::new("max_outstanding_messages", problem));
        }
        if bytes > OUTSTANDING_BYTES_MAX {
            let problem = format!("{bytes} is over the limit of {OUTSTANDING_BYTES_MAX}");
            return Err(InvalidArgument::new("max_outstanding_bytes", problem));
        }
        Ok(Self {
            messages: if messages == 0 { self.messages } else { messages },
            bytes: if bytes == 0 { self.bytes } else { bytes },
        })
    }

    /// Sets these limits on `request`, to change them on the stream it goes to.
    pub fn set_on(self, request: &mut api::StreamingPullRequest) {
        request.max_outstanding_messages = self.messages;
        request.max_outstanding_bytes = self.bytes;
    }
}

/// Checks the first request and starts the stream's task, on the leader of
/// the group `delivery` belongs to.
///
/// `report`, for a group's share of a placed stream, is kept up to date with
/// what the consumer holds (the fan-in splits the client's window by it).
pub async fn start(
    delivery: GroupDelivery,
    first: api::StreamingPullRequest,
    requests: Requests,
    report: Option<HoldingReport>,
) -> Result<Responses, ApiError> {
    validate::name("subscription", &first.subscription)?;
    let limits = Limits::default().changed_by(&first)?;
    let term = delivery.proposer().leader_term()?;
    delivery.dispatcher().subscription(&first.subscription)?;
    let (responses, receiver) = mpsc::channel(RESPONSES_QUEUED_MAX);
    let stream = Stream {
        consumer: delivery.dispatcher().new_consumer(),
        delivery,
        name: first.subscription.clone(),
        term,
        limits,
        confirm_ack_ids: first.confirm_ack_ids,
        report,
        responses,
    };
    tokio::spawn(stream.run(first, requests));
    Ok(receiver)
}

/// A request of the stream, or `None` once there are no more: the client
/// closed its side (`closed_by_client` is set) or the connection broke.
fn take(
    item: Option<Result<api::StreamingPullRequest, Status>>,
    closed_by_client: &mut bool,
) -> Option<api::StreamingPullRequest> {
    *closed_by_client = item.is_none();
    item?.ok()
}

struct Stream {
    /// The group's leases and proposals.
    delivery: GroupDelivery,
    consumer: ConsumerId,
    name: String,
    term: u64,
    /// Set by the first request, changed by any later one that names them.
    limits: Limits,
    /// List committed ack ids in confirmations, not only count them.
    confirm_ack_ids: bool,
    report: Option<HoldingReport>,
    responses: mpsc::Sender<Result<api::StreamingPullResponse, Status>>,
}

impl Stream {
    async fn run(mut self, first: api::StreamingPullRequest, mut requests: Requests) {
        let (confirmations, mut confirmed) = mpsc::channel::<api::AckConfirmation>(ACK_COMMITS_IN_FLIGHT);
        let mut pending = Some(first);
        // Whether the client closed its side (rather than went away).
        let mut closed_by_client = false;
        loop {
            if let Some(request) = pending.take() {
                let handled = match self.limits.changed_by(&request) {
                    Ok(limits) => {
                        self.limits = limits;
                        self.handle(request, &confirmations, &mut confirmed).await
                    }
                    Err(problem) => Err(ApiError::from(problem).into()),
                };
                if let Err(status) = handled {
                    let _ = self.responses.send(Err(status)).await;
                    break;
                }
            }
            // Requests that have come go before more is leased: after a
            // consumer's last acks comes the end of its side, and a window
            // leased into the room they freed would only be given back, each
            // message a delivery attempt further on.
            if let Some(item) = requests.next().now_or_never() {
                match take(item, &mut closed_by_client) {
                    Some(request) => {
                        pending = Some(request);
                        continue;
                    }
                    None => break,
                }
            }
            let mut wakeups = match self.delivery.dispatcher().subscription(&self.name) {
                Ok(subscription) => self.delivery.dispatcher().watch(self.term, &subscription),
                Err(e) => {
                    let _ = self.responses.send(Err(ApiError::from(e).into())).await;
                    break;
                }
            };
            match self.deliver().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(status) => {
                    let _ = self.responses.send(Err(status)).await;
                    break;
                }
            }
            let far = Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                request = requests.next() => match take(request, &mut closed_by_client) {
                    Some(request) => pending = Some(request),
                    None => break,
                },
                Some(confirmation) = confirmed.recv() => {
                    if self.confirm(confirmation).await.is_err() {
                        break;
                    }
                }
                () = self.delivery.dispatcher().wait(self.term, &self.name, &mut wakeups, far) => {}
                () = self.responses.closed() => break,
            }
        }
        // What the consumer holds goes to the others; an ack of it that fails
        // later makes its message ready too (`finish_ack`: its consumer is gone).
        if let Ok(subscription) = self.delivery.dispatcher().subscription(&self.name) {
            self.delivery.dispatcher().drop_consumer(self.term, &subscription, self.consumer);
        }
        if closed_by_client {
            // Its last acks are confirmed as they commit (each commit ends,
            // committed or not, within the commit timeout), for a client
            // that reads on until the stream ends (one that stops reading
            // holds this up as it would a delivery, until it goes).
            drop(confirmations);
            while let Some(confirmation) = confirmed.recv().await {
                if self.confirm(confirmation).await.is_err() {
                    break;
                }
            }
        }
    }

    /// Sends what the consumer has room for; `Ok(true)` if it sent anything.
    async fn deliver(&self) -> Result<bool, Status> {
        // Confirmed with a quorum every so often, so a leader cut off by a
        // partition stops delivering from its stale state.
        let term = self.delivery.proposer().recently_confirmed_leader_term().await?;
        if term != self.term {
            return Err(Status::unavailable("leadership changed; the leases of this stream are gone, reconnect"));
        }
        let subscription = self.delivery.dispatcher().subscription(&self.name).map_err(ApiError::from)?;
        let holding = self.delivery.dispatcher().holding(term, &subscription, self.consumer);
        self.report_holding(holding);
        let (max_messages, max_bytes) = (self.limits.messages as usize, self.limits.bytes as usize);
        if holding.messages >= max_messages || (holding.bytes >= max_bytes && holding.messages > 0) {
            return Ok(false);
        }
        let lessee = Lessee {
            consumer: self.consumer,
            count_max: (max_messages - holding.messages).min(PULL_MESSAGES_MAX as usize),
            bytes_max: max_bytes.saturating_sub(holding.bytes).clamp(1, PULL_BYTES_MAX),
        };
        let leased = self.delivery.dispatcher().lease(term, &self.name, lessee).map_err(ApiError::from)?;
        dead_letter::spawn(&self.delivery, term, &subscription, leased.exhausted);
        if self.report.is_some() {
            // After every lease call, not only one that delivered: it also
            // expires leases that ran out, which the count read above held.
            self.report_holding(self.delivery.dispatcher().holding(term, &subscription, self.consumer));
        }
        if leased.deliveries.is_empty() {
            return Ok(false);
        }
        let messages = leased.deliveries.into_iter().map(convert::received).collect();
        let response = api::StreamingPullResponse { messages, ack_confirmation: None };
        self.responses.send(Ok(response)).await.map_err(|_| Status::cancelled("the client went away"))?;
        Ok(true)
    }

    /// Reports what the consumer holds, if asked to and it changed. Changes
    /// pass through here: the stream looks again (`deliver`) after each
    /// request, ack commit and wake-up; an ack committed through another
    /// call wakes it, and so does a lease that runs out while it has no room
    /// (with room, the lease call expires it). Leases a retention trim drops
    /// wake nobody: they show at the next wake-up.
    fn report_holding(&self, holding: Holding) {
        if let Some(report) = &self.report {
            report.send_if_modified(|reported| {
                let changed = *reported != Some(holding);
                *reported = Some(holding);
                changed
            });
        }
    }

    /// Tells the consumer which acks were committed.
    async fn confirm(&self, confirmation: api::AckConfirmation) -> Result<(), Status> {
        let response = api::StreamingPullResponse { messages: Vec::new(), ack_confirmation: Some(confirmation) };
        self.responses.send(Ok(response)).await.map_err(|_| Status::cancelled("the client went away"))
    }

    /// Applies a request's deadline changes at once and starts committing its acks.
    async fn handle(
        &self,
        request: api::StreamingPullRequest,
        confirmations: &mpsc::Sender<api::AckConfirmation>,
        confirmed: &mut mpsc::Receiver<api::AckConfirmation>,
    ) -> Result<(), Status> {
        if request.ack_ids.is_empty() && request.deadline_changes.is_empty() {
            return Ok(());
        }
        let subscription = self.delivery.dispatcher().subscription(&self.name).map_err(ApiError::from)?;
        for change in &request.deadline_changes {
            validate::ack_deadline_change(change.seconds).map_err(ApiError::from)?;
            let ids: Vec<_> =
                acks::decode(self.delivery.proposer(), &subscription, &change.ack_ids).into_iter().flatten().collect();
            self.delivery.dispatcher().modify_deadline(self.term, &subscription, &ids, change.seconds);
        }
        if request.ack_ids.is_empty() {
            return Ok(());
        }
        let decoded = acks::decode(self.delivery.proposer(), &subscription, &request.ack_ids);
        let mut rejected = Vec::new();
        let mut ids = Vec::new();
        for (text, id) in request.ack_ids.into_iter().zip(decoded) {
            match id {
                Ok(id) => ids.push(id),
                Err(_) => rejected.push(text),
            }
        }
        // Waiting for a slot bounds the commits in flight. Slots free up only
        // as confirmations go out, so keep sending them while waiting: a
        // stream that waited without doing so would wedge once
        // `ACK_COMMITS_IN_FLIGHT` confirmations were queued.
        let slot = loop {
            tokio::select! {
                slot = confirmations.clone().reserve_owned() => match slot {
                    Ok(slot) => break slot,
                    Err(_) => return Ok(()),
                },
                Some(confirmation) = confirmed.recv() => self.confirm(confirmation).await?,
            }
        };
        // Submitted here, in the order the consumer sent them; only the
        // wait for the commit runs on its own.
        let (proposer, dispatcher) = (self.delivery.proposer(), self.delivery.dispatcher());
        let submitting = acks::submit(proposer, dispatcher, self.term, &subscription, ids.clone()).await;
        let list_acked = self.confirm_ack_ids;
        tokio::spawn(async move {
            let confirmation = match submitting.committed().await {
                Ok(committed) => {
                    rejected.extend(committed.stale.iter().map(|id| id.encode()));
                    let listed =
                        if list_acked { committed.acked.iter().map(|id| id.encode()).collect() } else { Vec::new() };
                    api::AckConfirmation {
                        ack_ids: listed,
                        rejected_ack_ids: rejected,
                        acked_count: committed.acked.len() as u32,
                    }
                }
                // Not committed: the consumer may ack again; unacked, they are redelivered.
                Err(e) => {
                    tracing::warn!(error = %e, "committing streamed acks failed");
                    rejected.extend(ids.iter().map(|id| id.encode()));
                    api::AckConfirmation { ack_ids: Vec::new(), rejected_ack_ids: rejected, acked_count: 0 }
                }
            };
            slot.send(confirmation);
        });
        Ok(())
    }
}
