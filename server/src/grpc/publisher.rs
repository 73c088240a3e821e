//! The `ferry.v1.Publisher` service: topic admin and Publish.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ferry_proto::v1 as api;
use ferry_proto::v1::publisher_server::Publisher;
use futures::future::join_all;
use tonic::{Request, Response, Status};

use super::convert;
use super::early_ack::EarlyAck;
use super::proposer::Proposer;
use super::publish_input::{partition_of_key, PublishInput};
use super::sequencer::Sequencer;
use super::status::ApiError;
use crate::clock::Clock;
use crate::domain::{self, validate, Command, MessageBody, ProducerKey, PublishBatch, Rejection};

#[derive(Debug)]
pub struct PublisherService {
    proposer: Proposer,
    clock: Arc<dyn Clock>,
    /// Picks the partition of messages without an ordering key, one request at a time.
    next_partition: AtomicU64,
    /// Submits each idempotent producer's batches in sequence order.
    sequencer: Sequencer,
    /// TESTING ONLY: set by `--unsafe-ack-before-commit`.
    early_ack: Option<EarlyAck>,
}

impl PublisherService {
    pub fn new(proposer: Proposer, clock: Arc<dyn Clock>) -> Self {
        Self { proposer, clock, next_partition: AtomicU64::new(0), sequencer: Sequencer::default(), early_ack: None }
    }

    /// UNSAFE: answers plain publishes before they are committed (see
    /// [`EarlyAck`]); for proving the fault harness catches it.
    pub fn acking_before_commit(mut self) -> Self {
        self.early_ack = Some(EarlyAck::default());
        self
    }

    async fn publish_batch(&self, request: api::PublishRequest) -> Result<api::PublishResponse, ApiError> {
        validate::name("topic", &request.topic)?;
        let term = self.proposer.ensure_leader()?;
        let (topic_id, partitions, max_message_bytes) = {
            let catalog = self.proposer.state().catalog();
            let topic = catalog
                .topic(&request.topic)
                .ok_or_else(|| Rejection::TopicNotFound { name: request.topic.clone() })?;
            (topic.id, topic.config.partitions, topic.config.max_message_bytes)
        };
        let input = PublishInput::parse(request, partitions, max_message_bytes)?;
        let publish_time_us = self.clock.wall_us();
        if let (Some(producer), Some(partition)) = (input.producer, input.partition) {
            let batch =
                PublishBatch { topic_id, partition, publish_time_us, messages: input.bodies, producer: Some(producer) };
            let count = batch.messages.len();
            let (first_offset, duplicate) = self.publish_idempotent(term, batch).await?;
            let positions = (first_offset..).take(count).map(|offset| api::Position { partition, offset }).collect();
            return Ok(api::PublishResponse { positions, duplicate });
        }

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
        if let Some(early_ack) = &self.early_ack {
            let mut positions = vec![api::Position::default(); count];
            for (partition, (indexes, messages)) in groups {
                let batch = PublishBatch { topic_id, partition, publish_time_us, messages, producer: None };
                let first_offset = early_ack.publish(&self.proposer, batch).await?;
                for (offset, index) in (first_offset..).zip(indexes) {
                    positions[index] = api::Position { partition, offset };
                }
            }
            return Ok(api::PublishResponse { positions, duplicate: false });
        }
        let (indexes, proposals): (Vec<_>, Vec<_>) = groups
            .into_iter()
            .map(|(partition, (indexes, messages))| {
                let batch = PublishBatch { topic_id, partition, publish_time_us, messages, producer: None };
                (indexes, self.proposer.propose(Command::Publish(batch)))
            })
            .unzip();
        let mut positions = vec![api::Position::default(); count];
        for (indexes, result) in indexes.into_iter().zip(join_all(proposals).await) {
            let (partition, first_offset, _) = published(result?)?;
            for (offset, index) in (first_offset..).zip(indexes) {
                positions[index] = api::Position { partition, offset };
            }
        }
        Ok(api::PublishResponse { positions, duplicate: false })
    }

    /// Publishes one idempotent producer's batch, submitted to Raft after the
    /// producer's earlier batches. Returns its first offset and whether it
    /// was a retry of a committed batch.
    async fn publish_idempotent(&self, term: u64, batch: PublishBatch) -> Result<(u64, bool), ApiError> {
        let producer = batch.producer.expect("an idempotent batch names its producer");
        let key =
            ProducerKey { topic_id: batch.topic_id, partition: batch.partition, producer_id: producer.producer_id };
        let first = producer.first_sequence;
        let sequences = first..first.saturating_add(batch.messages.len() as u64);
        let committed_next = self.proposer.state().catalog().producers.next_sequence(&key).unwrap_or(0);
        let submit = self.proposer.submit(Command::Publish(batch));
        let submitted = self.sequencer.in_order(term, key, sequences, committed_next, submit).await?;
        let (_, first_offset, duplicate) = published(submitted.outcome().await?)?;
        Ok((first_offset, duplicate))
    }
}

/// The partition, first offset and duplicate flag of a publish's answer.
fn published(response: domain::Response) -> Result<(u32, u64, bool), ApiError> {
    match response {
        domain::Response::Published { partition, first_offset, duplicate, .. } => {
            Ok((partition, first_offset, duplicate))
        }
        other => Err(unexpected(other)),
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
        let command = Command::CreateTopic {
            name: request.name,
            config,
            create_time_us: self.clock.wall_us(),
            groups: Vec::new(),
        };
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
