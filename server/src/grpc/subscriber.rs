//! The `ferry.v1.Subscriber` service: subscription admin and delivery.

use std::sync::Arc;
use std::time::Duration;

use ferry_proto::v1 as api;
use ferry_proto::v1::subscriber_server::Subscriber;
use tonic::{Request, Response, Status};

use super::convert;
use super::proposer::Proposer;
use super::status::ApiError;
use crate::clock::Clock;
use crate::delivery::{AckId, Dispatcher};
use crate::domain::{self, validate, AckBatch, Command, PartitionAcks, Rejection, SubscriptionState};

#[derive(Debug)]
pub struct SubscriberService {
    proposer: Proposer,
    clock: Arc<dyn Clock>,
    dispatcher: Arc<Dispatcher>,
}

impl SubscriberService {
    pub fn new(proposer: Proposer, clock: Arc<dyn Clock>, dispatcher: Arc<Dispatcher>) -> Self {
        Self { proposer, clock, dispatcher }
    }

    fn subscription(&self, name: &str) -> Result<SubscriptionState, ApiError> {
        validate::name("subscription", name)?;
        self.proposer.ensure_leader()?;
        let catalog = self.proposer.state().catalog();
        catalog.subscription(name).cloned().ok_or_else(|| Rejection::SubscriptionNotFound { name: name.into() }.into())
    }

    /// Decodes ack ids and checks each belongs to `subscription` and names a
    /// published offset. One bad id rejects the whole call.
    fn ack_ids(&self, subscription: &SubscriptionState, ids: &[String]) -> Result<Vec<AckId>, ApiError> {
        validate::ack_id_count(ids.len())?;
        let ends: Vec<u64> = {
            let catalog = self.proposer.state().catalog();
            let topic = catalog.topic_by_id(subscription.topic_id);
            topic.map(|t| t.partitions.iter().map(|p| p.next_offset).collect()).unwrap_or_default()
        };
        ids.iter()
            .enumerate()
            .map(|(i, text)| {
                let field = format!("ack_ids[{i}]");
                let id = AckId::decode(text).map_err(|e| ApiError::invalid(&field, e.to_string()))?;
                if id.subscription_id != subscription.id {
                    return Err(ApiError::invalid(
                        &field,
                        format!("belongs to another subscription than {:?}", subscription.name),
                    ));
                }
                match ends.get(id.partition as usize) {
                    Some(end) if id.offset < *end => Ok(id),
                    _ => Err(ApiError::invalid(&field, "names a message that was never delivered")),
                }
            })
            .collect()
    }

    async fn acknowledge_ids(&self, request: api::AcknowledgeRequest) -> Result<api::AcknowledgeResponse, ApiError> {
        let subscription = self.subscription(&request.subscription)?;
        let ids = self.ack_ids(&subscription, &request.ack_ids)?;
        let term = self.proposer.leader_term()?;
        let plan = self.dispatcher.begin_ack(term, &subscription, &ids);
        if plan.commit.is_empty() {
            return Ok(api::AcknowledgeResponse { acknowledged: 0, stale: plan.stale });
        }
        let mut partitions: Vec<PartitionAcks> = Vec::new();
        for &(partition, offset) in &plan.commit {
            match partitions.iter_mut().find(|p| p.partition == partition) {
                Some(group) => group.offsets.push(offset),
                None => partitions.push(PartitionAcks { partition, offsets: vec![offset] }),
            }
        }
        let command = Command::Acknowledge(AckBatch { subscription_id: subscription.id, partitions });
        let result = self.proposer.propose(command).await;
        self.dispatcher.finish_ack(term, &subscription, &plan.commit, result.is_ok());
        match result? {
            domain::Response::Acknowledged { .. } => {
                Ok(api::AcknowledgeResponse { acknowledged: plan.commit.len() as u32, stale: plan.stale })
            }
            other => Err(ApiError::Internal(format!("acknowledge answered {other:?}"))),
        }
    }
}

#[tonic::async_trait]
impl Subscriber for SubscriberService {
    #[tracing::instrument(skip_all, fields(subscription = %request.get_ref().name, topic = %request.get_ref().topic))]
    async fn create_subscription(
        &self,
        request: Request<api::CreateSubscriptionRequest>,
    ) -> Result<Response<api::Subscription>, Status> {
        let request = request.into_inner();
        validate::name("name", &request.name).map_err(ApiError::from)?;
        validate::name("topic", &request.topic).map_err(ApiError::from)?;
        let settings = request.settings.unwrap_or_default();
        let config = validate::subscription_config(settings.ack_deadline_seconds).map_err(ApiError::from)?;
        self.proposer.ensure_leader()?;
        {
            let catalog = self.proposer.state().catalog();
            if catalog.subscription(&request.name).is_some() {
                return Err(ApiError::from(Rejection::SubscriptionExists { name: request.name }).into());
            }
            if catalog.topic(&request.topic).is_none() {
                return Err(ApiError::from(Rejection::TopicNotFound { name: request.topic }).into());
            }
        }
        let command = Command::CreateSubscription {
            name: request.name,
            topic: request.topic,
            config,
            create_time_us: self.clock.wall_us(),
        };
        match self.proposer.propose(command).await? {
            domain::Response::SubscriptionCreated(s) => Ok(Response::new(convert::subscription(&s))),
            other => Err(ApiError::Internal(format!("create subscription answered {other:?}")).into()),
        }
    }

    async fn get_subscription(
        &self,
        request: Request<api::GetSubscriptionRequest>,
    ) -> Result<Response<api::Subscription>, Status> {
        let name = request.into_inner().name;
        validate::name("name", &name).map_err(ApiError::from)?;
        self.proposer.ensure_leader()?;
        let catalog = self.proposer.state().catalog();
        match catalog.subscription(&name) {
            Some(subscription) => Ok(Response::new(convert::subscription(subscription))),
            None => Err(ApiError::from(Rejection::SubscriptionNotFound { name }).into()),
        }
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
        let id = self.proposer.state().catalog().subscription(&name).map(|s| s.id);
        match self.proposer.propose(Command::DeleteSubscription { name }).await? {
            domain::Response::SubscriptionDeleted => {
                if let Some(id) = id {
                    self.dispatcher.forget(id);
                }
                Ok(Response::new(api::DeleteSubscriptionResponse {}))
            }
            other => Err(ApiError::Internal(format!("delete subscription answered {other:?}")).into()),
        }
    }

    #[tracing::instrument(skip_all, fields(subscription = %request.get_ref().subscription))]
    async fn pull(&self, request: Request<api::PullRequest>) -> Result<Response<api::PullResponse>, Status> {
        let request = request.into_inner();
        validate::name("subscription", &request.subscription).map_err(ApiError::from)?;
        validate::pull(request.max_messages, request.wait_millis).map_err(ApiError::from)?;
        let term = self.proposer.leader_term()?;
        let wait = Duration::from_millis(u64::from(request.wait_millis));
        let deliveries = self
            .dispatcher
            .pull(term, &request.subscription, request.max_messages as usize, wait)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(api::PullResponse { messages: deliveries.into_iter().map(convert::received).collect() }))
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
        let (modified, stale) =
            self.dispatcher.modify_deadline(term, &subscription, &ids, request.ack_deadline_seconds);
        Ok(Response::new(api::ModifyAckDeadlineResponse { modified, stale }))
    }
}
