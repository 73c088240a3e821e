//! The `ferry.v1.Subscriber` service: subscription admin and delivery.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ferry_proto::v1 as api;
use ferry_proto::v1::subscriber_server::Subscriber;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::proposer::Proposer;
use super::routing::GroupRoutes;
use super::status::ApiError;
use super::{acks, convert, dead_letter, streaming_pull};
use crate::clock::Clock;
use crate::delivery::{self, AckId, Dispatcher, Lessee, UNARY_CONSUMER};
use crate::domain::limits::PULL_BYTES_MAX;
use crate::domain::{self, validate, Command, Rejection, Seek, SubscriptionConfig, SubscriptionState};
use crate::raft::GroupId;

#[derive(Debug)]
pub struct SubscriberService {
    proposer: Proposer,
    /// What admin calls wait on for data groups to take up a change.
    routes: Arc<GroupRoutes>,
    clock: Arc<dyn Clock>,
    dispatcher: Arc<Dispatcher>,
}

impl SubscriberService {
    pub fn new(
        proposer: Proposer,
        routes: Arc<GroupRoutes>,
        clock: Arc<dyn Clock>,
        dispatcher: Arc<Dispatcher>,
    ) -> Self {
        Self { proposer, routes, clock, dispatcher }
    }

    /// The data groups holding partitions of topic `topic_id`.
    fn groups_of(&self, topic_id: u64) -> BTreeSet<GroupId> {
        let catalog = self.proposer.state().catalog();
        catalog.topic_by_id(topic_id).map(|t| t.groups.iter().copied().collect()).unwrap_or_default()
    }

    fn subscription(&self, name: &str) -> Result<SubscriptionState, ApiError> {
        validate::name("subscription", name)?;
        self.proposer.ensure_leader()?;
        let catalog = self.proposer.state().catalog();
        catalog.subscription(name).cloned().ok_or_else(|| Rejection::SubscriptionNotFound { name: name.into() }.into())
    }

    /// Decodes ack ids for a unary call: one bad id rejects the whole call.
    fn ack_ids(&self, subscription: &SubscriptionState, ids: &[String]) -> Result<Vec<AckId>, ApiError> {
        validate::ack_id_count(ids.len())?;
        acks::decode(&self.proposer, subscription, ids).into_iter().map(|id| id.map_err(ApiError::from)).collect()
    }

    async fn acknowledge_ids(&self, request: api::AcknowledgeRequest) -> Result<api::AcknowledgeResponse, ApiError> {
        let subscription = self.subscription(&request.subscription)?;
        let ids = self.ack_ids(&subscription, &request.ack_ids)?;
        let term = self.proposer.leader_term()?;
        let committed = acks::commit(&self.proposer, &self.dispatcher, term, &subscription, ids).await?;
        Ok(api::AcknowledgeResponse { acknowledged: committed.acked.len() as u32, stale: committed.stale.len() as u32 })
    }

    async fn create(&self, request: api::CreateSubscriptionRequest) -> Result<api::Subscription, ApiError> {
        validate::name("name", &request.name)?;
        validate::name("topic", &request.topic)?;
        let settings = request.settings.unwrap_or_default();
        let config = validate::subscription_config(SubscriptionConfig {
            ack_deadline_seconds: settings.ack_deadline_seconds,
            retry_min_backoff_seconds: settings.retry_min_backoff_seconds,
            retry_max_backoff_seconds: settings.retry_max_backoff_seconds,
            dead_letter_topic: settings.dead_letter_topic,
            max_delivery_attempts: settings.max_delivery_attempts,
        })?;
        if config.dead_letter_topic == request.topic {
            let problem = "must differ from the subscription's own topic";
            return Err(ApiError::invalid("settings.dead_letter_topic", problem));
        }
        self.proposer.ensure_leader()?;
        {
            let catalog = self.proposer.state().catalog();
            if catalog.subscription(&request.name).is_some() {
                return Err(Rejection::SubscriptionExists { name: request.name }.into());
            }
            if catalog.topic(&request.topic).is_none() {
                return Err(Rejection::TopicNotFound { name: request.topic }.into());
            }
            if !config.dead_letter_topic.is_empty() && catalog.topic(&config.dead_letter_topic).is_none() {
                return Err(Rejection::TopicNotFound { name: config.dead_letter_topic }.into());
            }
        }
        let command = Command::CreateSubscription {
            name: request.name,
            topic: request.topic,
            config,
            create_time_us: self.clock.wall_us(),
        };
        let created = match self.proposer.propose(command).await? {
            domain::Response::SubscriptionCreated(s) => s,
            other => return Err(ApiError::Internal(format!("create subscription answered {other:?}"))),
        };
        // Every publish acknowledged from here on reaches the subscription:
        // answer once each group holding a partition has set its floors.
        let groups = self.groups_of(created.topic_id);
        let id = created.id;
        self.routes
            .wait_for_groups(&groups, "the subscription was created", |c| c.subscription_by_id(id).is_some())
            .await?;
        Ok(convert::subscription(&created))
    }

    /// Seeks by publish time: in each partition, the first message published
    /// at or after `time` becomes the floor.
    async fn seek_to_time(&self, request: api::SeekRequest) -> Result<api::SeekResponse, ApiError> {
        let subscription = self.subscription(&request.subscription)?;
        let partitions = {
            let catalog = self.proposer.state().catalog();
            let topic = catalog
                .topic_by_id(subscription.topic_id)
                .ok_or_else(|| Rejection::TopicNotFound { name: subscription.topic.clone() })?;
            topic.partitions.clone()
        };
        let db = self.proposer.state().db();
        let mut floors = Vec::with_capacity(partitions.len());
        for (p, partition) in partitions.iter().enumerate() {
            let (start, end) = (partition.start_offset, partition.next_offset);
            let floor = db.first_offset_where(subscription.topic_id, p as u32, start, end, |m| {
                m.publish_time_us >= request.time_unix_micros
            })?;
            floors.push(floor);
        }
        let command = Command::Seek(Seek { subscription_id: subscription.id, floors });
        match self.proposer.propose(command).await? {
            domain::Response::Sought => Ok(api::SeekResponse {}),
            other => Err(ApiError::Internal(format!("seek answered {other:?}"))),
        }
    }

    fn get(&self, name: &str) -> Result<api::Subscription, ApiError> {
        let subscription = self.subscription(name)?;
        let term = self.proposer.leader_term()?;
        let leased = self.dispatcher.leased(term, &subscription);
        let backlog = delivery::backlog(self.proposer.state(), &subscription, leased)?;
        let mut reply = convert::subscription(&subscription);
        reply.backlog = Some(convert::backlog(&backlog, self.clock.wall_us()));
        Ok(reply)
    }
}

#[tonic::async_trait]
impl Subscriber for SubscriberService {
    type StreamingPullStream = ReceiverStream<Result<api::StreamingPullResponse, Status>>;

    #[tracing::instrument(skip_all, fields(subscription = %request.get_ref().name, topic = %request.get_ref().topic))]
    async fn create_subscription(
        &self,
        request: Request<api::CreateSubscriptionRequest>,
    ) -> Result<Response<api::Subscription>, Status> {
        Ok(Response::new(self.create(request.into_inner()).await?))
    }

    async fn get_subscription(
        &self,
        request: Request<api::GetSubscriptionRequest>,
    ) -> Result<Response<api::Subscription>, Status> {
        let name = request.into_inner().name;
        validate::name("name", &name).map_err(ApiError::from)?;
        Ok(Response::new(self.get(&name)?))
    }

    async fn list_subscriptions(
        &self,
        request: Request<api::ListSubscriptionsRequest>,
    ) -> Result<Response<api::ListSubscriptionsResponse>, Status> {
        let request = request.into_inner();
        let page_size = validate::page_size(request.page_size).map_err(ApiError::from)?;
        if !request.topic.is_empty() {
            validate::name("topic", &request.topic).map_err(ApiError::from)?;
        }
        self.proposer.ensure_leader()?;
        let catalog = self.proposer.state().catalog();
        let matching = catalog
            .subscriptions_after(&request.page_token)
            .filter(|s| request.topic.is_empty() || s.topic == request.topic)
            .map(convert::subscription);
        let (subscriptions, next_page_token) = convert::page(matching, page_size, |s| &s.name);
        Ok(Response::new(api::ListSubscriptionsResponse { subscriptions, next_page_token }))
    }

    #[tracing::instrument(skip_all, fields(subscription = %request.get_ref().name))]
    async fn delete_subscription(
        &self,
        request: Request<api::DeleteSubscriptionRequest>,
    ) -> Result<Response<api::DeleteSubscriptionResponse>, Status> {
        let name = request.into_inner().name;
        validate::name("name", &name).map_err(ApiError::from)?;
        self.proposer.ensure_leader()?;
        let doomed = self.proposer.state().catalog().subscription(&name).map(|s| (s.id, s.topic_id));
        match self.proposer.propose(Command::DeleteSubscription { name }).await? {
            domain::Response::SubscriptionDeleted => {}
            other => return Err(ApiError::Internal(format!("delete subscription answered {other:?}")).into()),
        }
        if let Some((id, topic_id)) = doomed {
            self.dispatcher.forget(id);
            let groups = self.groups_of(topic_id);
            self.routes
                .wait_for_groups(&groups, "the subscription was deleted", |c| c.subscription_by_id(id).is_none())
                .await?;
        }
        Ok(Response::new(api::DeleteSubscriptionResponse {}))
    }

    #[tracing::instrument(skip_all, fields(subscription = %request.get_ref().subscription))]
    async fn pull(&self, request: Request<api::PullRequest>) -> Result<Response<api::PullResponse>, Status> {
        let request = request.into_inner();
        validate::name("subscription", &request.subscription).map_err(ApiError::from)?;
        validate::pull(request.max_messages, request.wait_millis).map_err(ApiError::from)?;
        let term = self.proposer.leader_term()?;
        let wait = Duration::from_millis(u64::from(request.wait_millis));
        let lessee =
            Lessee { consumer: UNARY_CONSUMER, count_max: request.max_messages as usize, bytes_max: PULL_BYTES_MAX };
        let leased = self.dispatcher.pull(term, &request.subscription, lessee, wait).await.map_err(ApiError::from)?;
        if !leased.exhausted.is_empty() {
            let subscription = self.dispatcher.subscription(&request.subscription).map_err(ApiError::from)?;
            dead_letter::spawn(&self.proposer, &self.dispatcher, term, &subscription, leased.exhausted);
        }
        let messages = leased.deliveries.into_iter().map(convert::received).collect();
        Ok(Response::new(api::PullResponse { messages }))
    }

    async fn streaming_pull(
        &self,
        request: Request<Streaming<api::StreamingPullRequest>>,
    ) -> Result<Response<Self::StreamingPullStream>, Status> {
        let responses =
            streaming_pull::start(self.proposer.clone(), Arc::clone(&self.dispatcher), request.into_inner()).await?;
        Ok(Response::new(ReceiverStream::new(responses)))
    }

    #[tracing::instrument(skip_all, fields(subscription = %request.get_ref().subscription, ack_ids = request.get_ref().ack_ids.len()))]
    async fn acknowledge(
        &self,
        request: Request<api::AcknowledgeRequest>,
    ) -> Result<Response<api::AcknowledgeResponse>, Status> {
        Ok(Response::new(self.acknowledge_ids(request.into_inner()).await?))
    }

    #[tracing::instrument(skip_all, fields(subscription = %request.get_ref().subscription))]
    async fn modify_ack_deadline(
        &self,
        request: Request<api::ModifyAckDeadlineRequest>,
    ) -> Result<Response<api::ModifyAckDeadlineResponse>, Status> {
        let request = request.into_inner();
        let subscription = self.subscription(&request.subscription)?;
        validate::ack_deadline_change(request.ack_deadline_seconds).map_err(ApiError::from)?;
        let ids = self.ack_ids(&subscription, &request.ack_ids)?;
        let term = self.proposer.leader_term()?;
        let stale = self.dispatcher.modify_deadline(term, &subscription, &ids, request.ack_deadline_seconds);
        let stale = stale.len() as u32;
        Ok(Response::new(api::ModifyAckDeadlineResponse { modified: ids.len() as u32 - stale, stale }))
    }

    #[tracing::instrument(skip_all, fields(subscription = %request.get_ref().subscription))]
    async fn seek(&self, request: Request<api::SeekRequest>) -> Result<Response<api::SeekResponse>, Status> {
        Ok(Response::new(self.seek_to_time(request.into_inner()).await?))
    }
}
