//! `google.pubsub.v1.Subscriber` over Ferry's own Subscriber service, as
//! the Publisher is over Ferry's Publisher (`publisher.rs`); StreamingPull
//! opens Ferry's own stream (`streaming.rs` converts its frames).
//! Snapshots are Ferry bookmarks (`snapshots.rs`).

use std::sync::Arc;

use ferry_proto::pubsub as ps;
use ferry_proto::pubsub::subscriber_server::Subscriber as PubsubSubscriberApi;
use ferry_proto::v1 as api;
use ferry_proto::v1::subscriber_server::Subscriber as _;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use futures::StreamExt;

use super::convert::{add_dead_letter_attributes, duration, message_id, seconds_up, timestamp, update_mask};
use super::forward::{self, Caller, Forwarder};
use super::names::{from_ferry, to_ferry, Kind};
use super::paging::{FerryPage, ProjectListing, FERRY_PAGE};
use super::{ferry_request, with_principal};
use super::{snapshots, streaming};
use crate::domain::SubscriptionSetting;
use crate::grpc::stopping::ResponseStream;
use crate::grpc::{ApiError, SubscriberService};
use crate::security::Principal;

/// The longest a Pull waits for messages when the client lets it wait.
const PULL_WAIT_MILLIS: u32 = 10_000;
/// Pub/Sub's retry policy present with a bound unset: these.
const RETRY_MIN_DEFAULT_SECONDS: u32 = 10;
const RETRY_MAX_DEFAULT_SECONDS: u32 = 600;

pub struct PubsubSubscriber {
    subscriber: SubscriberService,
    leader: Forwarder,
}

impl PubsubSubscriber {
    pub fn new(subscriber: SubscriberService, leader: Forwarder) -> Self {
        Self { subscriber, leader }
    }

    pub(super) fn subscriber(&self) -> &SubscriberService {
        &self.subscriber
    }

    /// A stream served by group 0's leader over `channel`: the caller's
    /// frames go there as they come (the first, already read, ahead of
    /// them) and its answers come back unchanged. A frame the caller's
    /// stream fails on ends what is sent there.
    async fn relay(
        &self,
        channel: Channel,
        caller: &Caller,
        first: ps::StreamingPullRequest,
        rest: tonic::Streaming<ps::StreamingPullRequest>,
    ) -> Result<Response<ResponseStream<ps::StreamingPullResponse>>, Status> {
        let outbound = futures::stream::once(async { first })
            .chain(rest.take_while(|frame| futures::future::ready(frame.is_ok())).filter_map(|f| async { f.ok() }));
        let answers = forward::subscriber(channel).streaming_pull(self.leader.copy(caller, outbound)).await?;
        Ok(Response::new(Box::pin(answers.into_inner())))
    }
}

/// Ferry's settings for a Pub/Sub subscription; what Ferry cannot do is
/// refused naming the field, never dropped.
fn settings_to_ferry(sub: &ps::Subscription) -> Result<api::SubscriptionSettings, ApiError> {
    let refuse = |field: &str, what: &str| Err(ApiError::invalid(field, format!("Ferry has no {what}")));
    if sub.push_config.as_ref().is_some_and(|p| !p.push_endpoint.is_empty()) {
        return refuse("push_config", "push delivery");
    }
    if !sub.filter.is_empty() {
        return refuse("filter", "subscription filters");
    }
    if sub.enable_exactly_once_delivery {
        return refuse("enable_exactly_once_delivery", "exactly-once delivery");
    }
    if sub.retain_acked_messages {
        return refuse("retain_acked_messages", "retention of acked messages per subscription");
    }
    if sub.bigquery_config.is_some() || sub.cloud_storage_config.is_some() || sub.bigtable_config.is_some() {
        return refuse("bigquery_config", "export to other services");
    }
    let ack_deadline_seconds = u32::try_from(sub.ack_deadline_seconds)
        .map_err(|_| ApiError::invalid("ack_deadline_seconds", "must not be negative"))?;
    let (retry_min_backoff_seconds, retry_max_backoff_seconds) = match &sub.retry_policy {
        None => (0, 0),
        Some(policy) => {
            let min = seconds_up("retry_policy.minimum_backoff", policy.minimum_backoff.as_ref())?;
            let max = seconds_up("retry_policy.maximum_backoff", policy.maximum_backoff.as_ref())?;
            let clamp = |s: u64| u32::try_from(s).unwrap_or(u32::MAX);
            (min.map_or(RETRY_MIN_DEFAULT_SECONDS, clamp), max.map_or(RETRY_MAX_DEFAULT_SECONDS, clamp))
        }
    };
    let (dead_letter_topic, max_delivery_attempts) = match &sub.dead_letter_policy {
        Some(policy) if !policy.dead_letter_topic.is_empty() => {
            let topic = to_ferry("dead_letter_policy.dead_letter_topic", Kind::Topic, &policy.dead_letter_topic)?;
            let attempts = u32::try_from(policy.max_delivery_attempts)
                .map_err(|_| ApiError::invalid("dead_letter_policy.max_delivery_attempts", "must not be negative"))?;
            (topic, attempts)
        }
        _ => (String::new(), 0),
    };
    Ok(api::SubscriptionSettings {
        ack_deadline_seconds,
        retry_min_backoff_seconds,
        retry_max_backoff_seconds,
        dead_letter_topic,
        max_delivery_attempts,
        labels: sub.labels.clone(),
    })
}

/// A Ferry subscription as Pub/Sub shows it.
fn subscription(ferry: &api::Subscription) -> Option<ps::Subscription> {
    let settings = ferry.settings.clone().unwrap_or_default();
    let retry = settings.retry_max_backoff_seconds > 0;
    let dead_letter = !settings.dead_letter_topic.is_empty();
    Some(ps::Subscription {
        name: from_ferry(Kind::Subscription, &ferry.name)?,
        topic: from_ferry(Kind::Topic, &ferry.topic)?,
        ack_deadline_seconds: settings.ack_deadline_seconds as i32,
        labels: settings.labels.clone(),
        // Ferry keeps each key's messages in order, always.
        enable_message_ordering: true,
        retry_policy: retry.then(|| ps::RetryPolicy {
            minimum_backoff: Some(duration(u64::from(settings.retry_min_backoff_seconds))),
            maximum_backoff: Some(duration(u64::from(settings.retry_max_backoff_seconds))),
        }),
        dead_letter_policy: dead_letter.then(|| ps::DeadLetterPolicy {
            dead_letter_topic: from_ferry(Kind::Topic, &settings.dead_letter_topic).unwrap_or_default(),
            max_delivery_attempts: settings.max_delivery_attempts as i32,
        }),
        state: ps::subscription::State::Active as i32,
        ..Default::default()
    })
}

/// A delivered message as Pub/Sub shows it; `delivery_attempt` only where
/// a dead-letter policy counts attempts, as the service does.
pub fn received(ferry: api::ReceivedMessage, counts_attempts: bool) -> ps::ReceivedMessage {
    let position = api::Position { partition: ferry.partition, offset: ferry.offset };
    let mut message = ferry.message.unwrap_or_default();
    add_dead_letter_attributes(&mut message.attributes);
    ps::ReceivedMessage {
        ack_id: ferry.ack_id,
        message: Some(ps::PubsubMessage {
            data: message.data,
            attributes: message.attributes,
            message_id: message_id(&position),
            publish_time: Some(timestamp(ferry.publish_time_unix_micros)),
            ordering_key: message.ordering_key,
        }),
        delivery_attempt: if counts_attempts { ferry.delivery_attempt as i32 } else { 0 },
    }
}

impl PubsubSubscriber {
    /// Whether the subscription counts delivery attempts (has a dead-letter policy).
    async fn counts_attempts<T>(&self, request: &Request<T>, name: &str) -> Result<bool, Status> {
        let get = api::GetSubscriptionRequest { name: name.to_owned() };
        Ok(dead_letters(&self.subscriber.get_subscription(ferry_request(request, get)).await?.into_inner()))
    }
}

/// Whether a subscription has a dead-letter policy (and so counts attempts).
fn dead_letters(subscription: &api::Subscription) -> bool {
    subscription.settings.as_ref().is_some_and(|s| !s.dead_letter_topic.is_empty())
}

impl PubsubSubscriber {
    async fn create_subscription_here(
        &self,
        request: &Request<ps::Subscription>,
    ) -> Result<Response<ps::Subscription>, Status> {
        let sub = request.get_ref();
        let name = to_ferry("name", Kind::Subscription, &sub.name)?;
        let topic = to_ferry("topic", Kind::Topic, &sub.topic)?;
        let settings = Some(settings_to_ferry(sub)?);
        let create = api::CreateSubscriptionRequest { name, topic, settings };
        let created = self.subscriber.create_subscription(ferry_request(request, create)).await?.into_inner();
        Ok(Response::new(subscription(&created).ok_or_else(|| Status::internal("a subscription without a project"))?))
    }

    async fn get_subscription_here(
        &self,
        request: &Request<ps::GetSubscriptionRequest>,
    ) -> Result<Response<ps::Subscription>, Status> {
        let name = to_ferry("subscription", Kind::Subscription, &request.get_ref().subscription)?;
        let got = self.subscriber.get_subscription(ferry_request(request, api::GetSubscriptionRequest { name }));
        let got = got.await?.into_inner();
        Ok(Response::new(subscription(&got).ok_or_else(|| Status::internal("a subscription without a project"))?))
    }

    /// The ack deadline, retry and dead-letter policies and labels change;
    /// a policy named in the mask but absent is removed.
    async fn update_subscription_here(
        &self,
        request: &Request<ps::UpdateSubscriptionRequest>,
    ) -> Result<Response<ps::Subscription>, Status> {
        let sub = request.get_ref().subscription.as_ref();
        let sub = sub.ok_or_else(|| ApiError::invalid("subscription", "is required"))?;
        let name = to_ferry("subscription.name", Kind::Subscription, &sub.name)?;
        let update_mask = update_mask(request.get_ref().update_mask.as_ref(), |path| match path {
            "ack_deadline_seconds" | "retry_policy" | "dead_letter_policy" | "labels" => {
                SubscriptionSetting::named(path).map(SubscriptionSetting::name)
            }
            _ => None,
        })?;
        let update = api::UpdateSubscriptionRequest { name, settings: Some(settings_to_ferry(sub)?), update_mask };
        let updated = self.subscriber.update_subscription(ferry_request(request, update)).await?.into_inner();
        Ok(Response::new(subscription(&updated).ok_or_else(|| Status::internal("a subscription without a project"))?))
    }

    async fn list_subscriptions_here(
        &self,
        request: &Request<ps::ListSubscriptionsRequest>,
    ) -> Result<Response<ps::ListSubscriptionsResponse>, Status> {
        let ask = request.get_ref();
        let listing = ProjectListing::new(&ask.project, Kind::Subscription, ask.page_size, &ask.page_token)?;
        let (subscriptions, next_page_token) = listing
            .collect(|after| async move {
                let list =
                    api::ListSubscriptionsRequest { topic: String::new(), page_size: FERRY_PAGE, page_token: after };
                let page = self.subscriber.list_subscriptions(ferry_request(request, list)).await?.into_inner();
                let items = page.subscriptions.iter().map(|s| (s.name.clone(), subscription(s))).collect();
                Ok(FerryPage { items, more: !page.next_page_token.is_empty() })
            })
            .await?;
        Ok(Response::new(ps::ListSubscriptionsResponse { subscriptions, next_page_token }))
    }

    async fn delete_subscription_here(
        &self,
        request: &Request<ps::DeleteSubscriptionRequest>,
    ) -> Result<Response<()>, Status> {
        let name = to_ferry("subscription", Kind::Subscription, &request.get_ref().subscription)?;
        let delete = api::DeleteSubscriptionRequest { name };
        self.subscriber.delete_subscription(ferry_request(request, delete)).await?;
        Ok(Response::new(()))
    }

    async fn modify_ack_deadline_here(
        &self,
        request: &Request<ps::ModifyAckDeadlineRequest>,
    ) -> Result<Response<()>, Status> {
        let subscription = to_ferry("subscription", Kind::Subscription, &request.get_ref().subscription)?;
        let ack_deadline_seconds = u32::try_from(request.get_ref().ack_deadline_seconds)
            .map_err(|_| ApiError::invalid("ack_deadline_seconds", "must not be negative"))?;
        let modify = api::ModifyAckDeadlineRequest {
            subscription,
            ack_ids: request.get_ref().ack_ids.clone(),
            ack_deadline_seconds,
        };
        self.subscriber.modify_ack_deadline(ferry_request(request, modify)).await?;
        Ok(Response::new(()))
    }

    async fn acknowledge_here(&self, request: &Request<ps::AcknowledgeRequest>) -> Result<Response<()>, Status> {
        let subscription = to_ferry("subscription", Kind::Subscription, &request.get_ref().subscription)?;
        let ack = api::AcknowledgeRequest { subscription, ack_ids: request.get_ref().ack_ids.clone() };
        self.subscriber.acknowledge(ferry_request(request, ack)).await?;
        Ok(Response::new(()))
    }

    async fn pull_here(&self, request: &Request<ps::PullRequest>) -> Result<Response<ps::PullResponse>, Status> {
        let name = to_ferry("subscription", Kind::Subscription, &request.get_ref().subscription)?;
        let max_messages = u32::try_from(request.get_ref().max_messages)
            .ok()
            .filter(|m| *m > 0)
            .ok_or_else(|| ApiError::invalid("max_messages", "must be at least 1"))?;
        #[allow(deprecated)]
        let wait_millis = if request.get_ref().return_immediately { 0 } else { PULL_WAIT_MILLIS };
        let counts_attempts = self.counts_attempts(request, &name).await?;
        let pull = api::PullRequest { subscription: name, max_messages: max_messages.min(1000), wait_millis };
        let pulled = self.subscriber.pull(ferry_request(request, pull)).await?.into_inner();
        let received_messages = pulled.messages.into_iter().map(|m| received(m, counts_attempts)).collect();
        Ok(Response::new(ps::PullResponse { received_messages }))
    }

    async fn seek_here(&self, request: &Request<ps::SeekRequest>) -> Result<Response<ps::SeekResponse>, Status> {
        let subscription = to_ferry("subscription", Kind::Subscription, &request.get_ref().subscription)?;
        let seek = snapshots::seek_target(subscription, request.get_ref().target.as_ref())?;
        self.subscriber.seek(ferry_request(request, seek)).await?;
        Ok(Response::new(ps::SeekResponse {}))
    }
}

#[tonic::async_trait]
impl PubsubSubscriberApi for PubsubSubscriber {
    type StreamingPullStream = ResponseStream<ps::StreamingPullResponse>;

    async fn create_subscription(
        &self,
        request: Request<ps::Subscription>,
    ) -> Result<Response<ps::Subscription>, Status> {
        let here = self.create_subscription_here(&request).await;
        self.leader
            .or_leader(here, request, |c, r| async move { forward::subscriber(c).create_subscription(r).await })
            .await
    }

    async fn get_subscription(
        &self,
        request: Request<ps::GetSubscriptionRequest>,
    ) -> Result<Response<ps::Subscription>, Status> {
        let here = self.get_subscription_here(&request).await;
        self.leader
            .or_leader(here, request, |c, r| async move { forward::subscriber(c).get_subscription(r).await })
            .await
    }

    async fn update_subscription(
        &self,
        request: Request<ps::UpdateSubscriptionRequest>,
    ) -> Result<Response<ps::Subscription>, Status> {
        let here = self.update_subscription_here(&request).await;
        self.leader
            .or_leader(here, request, |c, r| async move { forward::subscriber(c).update_subscription(r).await })
            .await
    }

    async fn list_subscriptions(
        &self,
        request: Request<ps::ListSubscriptionsRequest>,
    ) -> Result<Response<ps::ListSubscriptionsResponse>, Status> {
        let here = self.list_subscriptions_here(&request).await;
        self.leader
            .or_leader(here, request, |c, r| async move { forward::subscriber(c).list_subscriptions(r).await })
            .await
    }

    async fn delete_subscription(
        &self,
        request: Request<ps::DeleteSubscriptionRequest>,
    ) -> Result<Response<()>, Status> {
        let here = self.delete_subscription_here(&request).await;
        self.leader
            .or_leader(here, request, |c, r| async move { forward::subscriber(c).delete_subscription(r).await })
            .await
    }

    async fn modify_ack_deadline(
        &self,
        request: Request<ps::ModifyAckDeadlineRequest>,
    ) -> Result<Response<()>, Status> {
        let here = self.modify_ack_deadline_here(&request).await;
        self.leader
            .or_leader(here, request, |c, r| async move { forward::subscriber(c).modify_ack_deadline(r).await })
            .await
    }

    async fn acknowledge(&self, request: Request<ps::AcknowledgeRequest>) -> Result<Response<()>, Status> {
        let here = self.acknowledge_here(&request).await;
        self.leader.or_leader(here, request, |c, r| async move { forward::subscriber(c).acknowledge(r).await }).await
    }

    async fn pull(&self, request: Request<ps::PullRequest>) -> Result<Response<ps::PullResponse>, Status> {
        let here = self.pull_here(&request).await;
        self.leader.or_leader(here, request, |c, r| async move { forward::subscriber(c).pull(r).await }).await
    }

    async fn streaming_pull(
        &self,
        request: Request<tonic::Streaming<ps::StreamingPullRequest>>,
    ) -> Result<Response<Self::StreamingPullStream>, Status> {
        let principal = request.extensions().get::<Principal>().cloned();
        let caller = Caller::of(&request);
        let mut frames = request.into_inner();
        let first =
            frames.message().await?.ok_or_else(|| ApiError::invalid("stream", "ended before its first request"))?;
        let name = to_ferry("subscription", Kind::Subscription, &first.subscription)?;
        let get = with_principal(principal.as_ref(), api::GetSubscriptionRequest { name: name.clone() });
        if let Err(status) = self.subscriber.get_subscription(get).await {
            return match self.leader.leader(&status, &caller)? {
                // The stream goes on there, its first frame included.
                Some(channel) => self.relay(channel, &caller, first, frames).await,
                None => Err(status),
            };
        }
        // Whether attempts are reported follows the subscription's settings
        // as they change while the stream runs.
        let catalog = Arc::clone(self.subscriber.proposer.state());
        let counts_attempts = {
            let name = name.clone();
            move || catalog.catalog().subscription(&name).is_some_and(|s| !s.config.dead_letter_topic.is_empty())
        };
        let first = streaming::first_to_ferry(name, first)?;
        let refusal = streaming::Refusal::default();
        let rest = refusal.frames_to_ferry(frames);
        let responses = self.subscriber.open_stream(principal.as_ref(), first, Box::pin(rest)).await?;
        let converted = responses.flat_map(move |response| {
            let frames: Vec<Result<ps::StreamingPullResponse, Status>> = match response {
                Ok(response) => {
                    streaming::responses_from_ferry(response, counts_attempts()).into_iter().map(Ok).collect()
                }
                Err(status) => vec![Err(status)],
            };
            futures::stream::iter(frames)
        });
        Ok(Response::new(Box::pin(refusal.end_on_refusal(converted))))
    }

    async fn modify_push_config(&self, request: Request<ps::ModifyPushConfigRequest>) -> Result<Response<()>, Status> {
        if request.get_ref().push_config.as_ref().is_some_and(|p| !p.push_endpoint.is_empty()) {
            return Err(ApiError::invalid("push_config", "Ferry has no push delivery").into());
        }
        Ok(Response::new(()))
    }

    async fn get_snapshot(&self, request: Request<ps::GetSnapshotRequest>) -> Result<Response<ps::Snapshot>, Status> {
        let here = self.get_snapshot_here(&request).await;
        self.leader.or_leader(here, request, |c, r| async move { forward::subscriber(c).get_snapshot(r).await }).await
    }

    async fn list_snapshots(
        &self,
        request: Request<ps::ListSnapshotsRequest>,
    ) -> Result<Response<ps::ListSnapshotsResponse>, Status> {
        let here = self.list_snapshots_here(&request).await;
        self.leader.or_leader(here, request, |c, r| async move { forward::subscriber(c).list_snapshots(r).await }).await
    }

    async fn create_snapshot(
        &self,
        request: Request<ps::CreateSnapshotRequest>,
    ) -> Result<Response<ps::Snapshot>, Status> {
        let here = self.create_snapshot_here(&request).await;
        self.leader
            .or_leader(here, request, |c, r| async move { forward::subscriber(c).create_snapshot(r).await })
            .await
    }

    async fn update_snapshot(&self, _: Request<ps::UpdateSnapshotRequest>) -> Result<Response<ps::Snapshot>, Status> {
        Err(Status::unimplemented("Ferry cannot change a snapshot; create another"))
    }

    async fn delete_snapshot(&self, request: Request<ps::DeleteSnapshotRequest>) -> Result<Response<()>, Status> {
        let here = self.delete_snapshot_here(&request).await;
        self.leader
            .or_leader(here, request, |c, r| async move { forward::subscriber(c).delete_snapshot(r).await })
            .await
    }

    async fn seek(&self, request: Request<ps::SeekRequest>) -> Result<Response<ps::SeekResponse>, Status> {
        let here = self.seek_here(&request).await;
        self.leader.or_leader(here, request, |c, r| async move { forward::subscriber(c).seek(r).await }).await
    }
}
