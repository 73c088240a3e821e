//! The `ferry.v1.Publisher` service: topic admin and Publish.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ferry_proto::v1 as api;
use ferry_proto::v1::publisher_server::Publisher;
use futures::future::join_all;
use tonic::{Request, Response, Status};

use super::convert;
use super::proposer::Proposer;
use super::publish_input::{partition_of_key, PublishInput};
use super::status::ApiError;
use crate::clock::Clock;
use crate::domain::{self, validate, Command, MessageBody, PublishBatch, Rejection};

#[derive(Debug)]
pub struct PublisherService {
    proposer: Proposer,
    clock: Arc<dyn Clock>,
    /// Picks the partition of messages without an ordering key, one request at a time.
    next_partition: AtomicU64,
}

impl PublisherService {
    pub fn new(proposer: Proposer, clock: Arc<dyn Clock>) -> Self {
        Self { proposer, clock, next_partition: AtomicU64::new(0) }
    }

    async fn publish_batch(&self, request: api::PublishRequest) -> Result<api::PublishResponse, ApiError> {
        validate::name("topic", &request.topic)?;
        self.proposer.ensure_leader()?;
        let (topic_id, partitions, max_message_bytes) = {
            let catalog = self.proposer.state().catalog();
            let topic = catalog
                .topic(&request.topic)
                .ok_or_else(|| Rejection::TopicNotFound { name: request.topic.clone() })?;
            (topic.id, topic.config.partitions, topic.config.max_message_bytes)
        };
        let input = PublishInput::parse(request, partitions, max_message_bytes)?;
        let count = input.bodies.len();
        let mut groups: BTreeMap<u32, (Vec<usize>, Vec<MessageBody>)> = BTreeMap::new();
        if let Some(partition) = input.partition {
            groups.insert(partition, ((0..count).collect(), input.bodies));
        } else {
            let keyless_partition =
                (self.next_partition.fetch_add(1, Ordering::Relaxed) % u64::from(partitions)) as u32;
            for (index, body) in input.bodies.into_iter().enumerate() {
                let partition = if body.ordering_key.is_empty() {
                    keyless_partition
                } else {
                    partition_of_key(&body.ordering_key, partitions)
                };
                let group = groups.entry(partition).or_default();
                group.0.push(index);
                group.1.push(body);
            }
        }

        let publish_time_us = self.clock.wall_us();
        let producer = input.producer;
        let (indexes, proposals): (Vec<_>, Vec<_>) = groups
            .into_iter()
            .map(|(partition, (indexes, messages))| {
                let batch = PublishBatch { topic_id, partition, publish_time_us, messages, producer };
                (indexes, self.proposer.propose(Command::Publish(batch)))
            })
            .unzip();
        let mut positions = vec![api::Position::default(); count];
        let mut any_duplicate = false;
        for (indexes, result) in indexes.into_iter().zip(join_all(proposals).await) {
            let domain::Response::Published { partition, first_offset, duplicate, .. } = result? else {
                return Err(ApiError::Internal("publish answered with an unexpected response".into()));
            };
            any_duplicate |= duplicate;
            for (offset, index) in (first_offset..).zip(indexes) {
                positions[index] = api::Position { partition, offset };
            }
        }
        // An idempotent request is one group, so `duplicate` describes all of it.
        Ok(api::PublishResponse { positions, duplicate: any_duplicate })
    }
}

fn unexpected(response: domain::Response) -> ApiError {
    ApiError::Internal(format!("unexpected state machine response {response:?}"))
}

#[tonic::async_trait]
impl Publisher for PublisherService {
    #[tracing::instrument(skip_all, fields(topic = %request.get_ref().name))]
    async fn create_topic(&self, request: Request<api::CreateTopicRequest>) -> Result<Response<api::Topic>, Status> {
        let request = request.into_inner();
        validate::name("name", &request.name).map_err(ApiError::from)?;
        let settings = request.settings.unwrap_or_default();
        let config = validate::topic_config(validate::TopicSettings {
            partitions: settings.partitions,
            max_message_bytes: settings.max_message_bytes,
            retention_seconds: settings.retention_seconds,
            retention_bytes: settings.retention_bytes,
        })
        .map_err(ApiError::from)?;
        self.proposer.ensure_leader()?;
        if self.proposer.state().catalog().topic(&request.name).is_some() {
            return Err(ApiError::from(Rejection::TopicExists { name: request.name }).into());
        }
        let command = Command::CreateTopic { name: request.name, config, create_time_us: self.clock.wall_us() };
        match self.proposer.propose(command).await? {
            domain::Response::TopicCreated(topic) => Ok(Response::new(convert::topic(&topic))),
            other => Err(unexpected(other).into()),
        }
    }

    async fn get_topic(&self, request: Request<api::GetTopicRequest>) -> Result<Response<api::Topic>, Status> {
        let name = request.into_inner().name;
        validate::name("name", &name).map_err(ApiError::from)?;
        self.proposer.ensure_leader()?;
        let catalog = self.proposer.state().catalog();
        match catalog.topic(&name) {
            Some(topic) => Ok(Response::new(convert::topic(topic))),
            None => Err(ApiError::from(Rejection::TopicNotFound { name }).into()),
        }
    }

    async fn list_topics(
        &self,
        request: Request<api::ListTopicsRequest>,
    ) -> Result<Response<api::ListTopicsResponse>, Status> {
        let request = request.into_inner();
        let page_size = validate::page_size(request.page_size).map_err(ApiError::from)?;
        self.proposer.ensure_leader()?;
        let catalog = self.proposer.state().catalog();
        let (topics, next_page_token) =
            convert::page(catalog.topics_after(&request.page_token).map(convert::topic), page_size, |t| &t.name);
        Ok(Response::new(api::ListTopicsResponse { topics, next_page_token }))
    }

    #[tracing::instrument(skip_all, fields(topic = %request.get_ref().name))]
    async fn delete_topic(
        &self,
        request: Request<api::DeleteTopicRequest>,
    ) -> Result<Response<api::DeleteTopicResponse>, Status> {
        let name = request.into_inner().name;
        validate::name("name", &name).map_err(ApiError::from)?;
        self.proposer.ensure_leader()?;
        match self.proposer.propose(Command::DeleteTopic { name }).await? {
            domain::Response::TopicDeleted { .. } => Ok(Response::new(api::DeleteTopicResponse {})),
            other => Err(unexpected(other).into()),
        }
    }

    #[tracing::instrument(skip_all, fields(topic = %request.get_ref().topic, messages = request.get_ref().messages.len()))]
    async fn publish(&self, request: Request<api::PublishRequest>) -> Result<Response<api::PublishResponse>, Status> {
        Ok(Response::new(self.publish_batch(request.into_inner()).await?))
    }
}
