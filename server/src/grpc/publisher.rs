//! The `ferry.v1.Publisher` service: topic admin and Publish.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ferry_proto::v1 as api;
use ferry_proto::v1::publisher_server::Publisher;
use futures::future::join_all;
use tonic::{Request, Response, Status};

use super::keyless::Keyless;
use super::proposer::Proposer;
use super::publish_input::{partition_of_key, PublishInput};
use super::routing::GroupRoutes;
use super::status::ApiError;
use super::{convert, partition_reads};
use crate::clock::Clock;
use crate::domain::{
    self, placement, validate, Command, MessageBody, PublishBatch, Rejection, TopicSetting, TopicState,
};
use crate::raft::{GroupId, META_GROUP};
use crate::security::{authorize, Action};

#[derive(Debug)]
pub struct PublisherService {
    /// Group 0's: topics are created and deleted there.
    proposer: Proposer,
    /// Where each partition's publishes run.
    routes: Arc<GroupRoutes>,
    clock: Arc<dyn Clock>,
    /// Each topic's turn for keyless requests.
    keyless: Keyless,
}

/// What a publish needs of its topic.
struct Target {
    topic_id: u64,
    partitions: u32,
    max_message_bytes: u32,
    /// Each partition's group; empty: all in group 0.
    groups: Vec<GroupId>,
}

impl Target {
    fn group_of(&self, partition: u32) -> GroupId {
        self.groups.get(partition as usize).copied().unwrap_or(META_GROUP)
    }
}

impl PublisherService {
    pub fn new(proposer: Proposer, routes: Arc<GroupRoutes>, clock: Arc<dyn Clock>) -> Self {
        Self { proposer, routes, clock, keyless: Keyless::default() }
    }

    /// The topic a publish goes to, from this node's replica of group 0. Any
    /// node takes a publish to a topic placed in data groups; group 0's
    /// leader takes the rest, and names it does not know.
    fn target(&self, name: &str) -> Result<Target, ApiError> {
        let catalog = self.proposer.state().catalog();
        let topic = catalog.topic(name);
        if topic.is_none_or(|t| t.groups.is_empty()) {
            self.proposer.ensure_leader()?;
        }
        let topic = topic.ok_or_else(|| Rejection::TopicNotFound { name: name.to_owned() })?;
        Ok(Target {
            topic_id: topic.id,
            partitions: topic.config.partitions,
            max_message_bytes: topic.config.max_message_bytes,
            groups: topic.groups.clone(),
        })
    }

    /// The partition of one request's messages without an ordering key (see
    /// [`Keyless`]): of a placed topic, among the partitions whose group
    /// this node leads (no hop to another node), when it leads any; else
    /// among all of them.
    fn keyless_partition(&self, target: &Target) -> u32 {
        let mut candidates: Vec<u32> = if target.groups.is_empty() {
            Vec::new()
        } else {
            (0..target.partitions).filter(|p| self.routes.leads(target.group_of(*p))).collect()
        };
        if candidates.is_empty() {
            candidates = (0..target.partitions).collect();
        }
        let load = |partition| self.routes.publish_loads().of(target.group_of(partition));
        self.keyless.choose(target.topic_id, &candidates, load)
    }

    async fn publish_batch(&self, request: api::PublishRequest) -> Result<api::PublishResponse, ApiError> {
        validate::name("topic", &request.topic)?;
        let target = self.target(&request.topic)?;
        let input = PublishInput::parse(request, target.partitions, target.max_message_bytes)?;
        let topic_id = target.topic_id;
        if let (Some(producer), Some(partition)) = (input.producer, input.partition) {
            let count = input.bodies.len();
            // The partition's leader stamps the publish time.
            let batch = PublishBatch {
                topic_id,
                partition,
                publish_time_us: 0,
                messages: input.bodies,
                producer: Some(producer),
            };
            let published = self.routes.publish(target.group_of(partition), batch).await?;
            let positions =
                (published.first_offset..).take(count).map(|offset| api::Position { partition, offset }).collect();
            return Ok(api::PublishResponse { positions, duplicate: published.duplicate });
        }

        let count = input.bodies.len();
        let mut by_partition: BTreeMap<u32, (Vec<usize>, Vec<MessageBody>)> = BTreeMap::new();
        if let Some(partition) = input.partition {
            by_partition.insert(partition, ((0..count).collect(), input.bodies));
        } else {
            let keyless_partition = self.keyless_partition(&target);
            for (index, body) in input.bodies.into_iter().enumerate() {
                let partition = if body.ordering_key.is_empty() {
                    keyless_partition
                } else {
                    partition_of_key(&body.ordering_key, target.partitions)
                };
                let entry = by_partition.entry(partition).or_default();
                entry.0.push(index);
                entry.1.push(body);
            }
        }
        let (indexes, publishes): (Vec<_>, Vec<_>) = by_partition
            .into_iter()
            .map(|(partition, (indexes, messages))| {
                let batch = PublishBatch { topic_id, partition, publish_time_us: 0, messages, producer: None };
                ((partition, indexes), self.routes.publish(target.group_of(partition), batch))
            })
            .unzip();
        let mut positions = vec![api::Position::default(); count];
        for ((partition, indexes), result) in indexes.into_iter().zip(join_all(publishes).await) {
            for (offset, index) in (result?.first_offset..).zip(indexes) {
                positions[index] = api::Position { partition, offset };
            }
        }
        Ok(api::PublishResponse { positions, duplicate: false })
    }

    /// A topic as the API shows it, with each partition's offsets from the
    /// group holding it.
    fn topic_reply(&self, topic: &TopicState) -> api::Topic {
        if topic.groups.is_empty() {
            return convert::topic(topic, &topic.partitions);
        }
        convert::topic(topic, &self.routes.partition_states(topic))
    }
}

impl PublisherService {
    /// Changes the settings `update_mask` names: the topic's current config
    /// with those replaced is checked whole, then proposed with the names,
    /// so an update racing another of other settings keeps both.
    async fn update(&self, request: api::UpdateTopicRequest) -> Result<api::Topic, ApiError> {
        validate::name("name", &request.name)?;
        let known = TopicSetting::ALL.map(TopicSetting::name);
        let settings = validate::update_mask(&request.update_mask, TopicSetting::named, &known)?;
        let requested = convert::topic_config(request.settings.unwrap_or_default());
        self.proposer.ensure_leader()?;
        let mut config = match self.proposer.state().catalog().topic(&request.name) {
            Some(topic) => topic.config.clone(),
            None => return Err(Rejection::TopicNotFound { name: request.name }.into()),
        };
        for setting in &settings {
            setting.copy(&requested, &mut config);
        }
        let config = validate::topic_config(config)?;
        let update = Command::UpdateTopic { name: request.name, config, settings: settings.clone() };
        let topic = match self.proposer.propose(update).await? {
            domain::Response::TopicUpdated(topic) => topic,
            other => return Err(unexpected(other)),
        };
        let placed: BTreeSet<GroupId> = topic.groups.iter().copied().collect();
        // Only the settings this call changed: another update may change
        // the others meanwhile, and a deleted topic waits for nothing.
        let taken_up = |c: &domain::Catalog| {
            let holds =
                |held: &TopicState| domain::updates::holds(&held.config, &topic.config, &settings, TopicSetting::copy);
            c.topic_by_id(topic.id).is_none_or(holds)
        };
        self.routes.wait_for_groups(&placed, "the topic was updated", taken_up).await?;
        Ok(self.topic_reply(&topic))
    }
}

fn unexpected(response: domain::Response) -> ApiError {
    ApiError::Internal(format!("unexpected state machine response {response:?}"))
}

#[tonic::async_trait]
impl Publisher for PublisherService {
    #[tracing::instrument(skip_all, fields(topic = %request.get_ref().name))]
    async fn create_topic(&self, request: Request<api::CreateTopicRequest>) -> Result<Response<api::Topic>, Status> {
        authorize(request.extensions(), Action::Admin, Some(&request.get_ref().name))?;
        let request = request.into_inner();
        validate::name("name", &request.name).map_err(ApiError::from)?;
        let settings = request.settings.unwrap_or_default();
        let config = validate::topic_config(convert::topic_config(settings)).map_err(ApiError::from)?;
        self.proposer.ensure_leader()?;
        let groups = {
            let catalog = self.proposer.state().catalog();
            if catalog.topic(&request.name).is_some() {
                return Err(ApiError::from(Rejection::TopicExists { name: request.name }).into());
            }
            // Until the layout is set, a topic would fix the cluster at no
            // data groups (`SetLayout` keeps a cluster with topics in group 0).
            let layout = catalog.layout.as_ref().ok_or_else(|| {
                ApiError::Unavailable("the cluster is still forming (its layout is not set yet)".into())
            })?;
            placement::assign(config.partitions, &placement::held(&catalog, layout.data_groups))
        };
        let command = Command::CreateTopic { name: request.name, config, create_time_us: self.clock.wall_us(), groups };
        let topic = match self.proposer.propose(command).await? {
            domain::Response::TopicCreated(topic) => topic,
            other => return Err(unexpected(other).into()),
        };
        let placed: BTreeSet<GroupId> = topic.groups.iter().copied().collect();
        self.routes.wait_for_groups(&placed, "the topic was created", |c| c.topic_by_id(topic.id).is_some()).await?;
        Ok(Response::new(self.topic_reply(&topic)))
    }

    async fn get_topic(&self, request: Request<api::GetTopicRequest>) -> Result<Response<api::Topic>, Status> {
        authorize(request.extensions(), Action::Read, Some(&request.get_ref().name))?;
        let request = request.into_inner();
        validate::name("name", &request.name).map_err(ApiError::from)?;
        self.proposer.ensure_leader()?;
        let catalog = self.proposer.state().catalog();
        let Some(topic) = catalog.topic(&request.name) else {
            return Err(ApiError::from(Rejection::TopicNotFound { name: request.name }).into());
        };
        let mut reply = self.topic_reply(topic);
        let states = self.routes.partition_states(topic);
        let times = &request.offsets_for_times_unix_micros;
        let offsets = partition_reads::offsets_for_times(&self.routes, topic, &states, times)?;
        for (info, offsets) in reply.partitions.iter_mut().zip(offsets) {
            info.offsets_for_times = offsets;
        }
        Ok(Response::new(reply))
    }

    async fn get_producer(
        &self,
        request: Request<api::GetProducerRequest>,
    ) -> Result<Response<api::ProducerInfo>, Status> {
        authorize(request.extensions(), Action::Read, Some(&request.get_ref().topic))?;
        let request = request.into_inner();
        validate::name("topic", &request.topic).map_err(ApiError::from)?;
        self.proposer.ensure_leader()?;
        let catalog = self.proposer.state().catalog();
        let Some(topic) = catalog.topic(&request.topic) else {
            return Err(ApiError::from(Rejection::TopicNotFound { name: request.topic }).into());
        };
        let (partition, producer_id) = (request.partition, request.producer_id);
        let info = partition_reads::producer_info(&self.routes, topic, partition, producer_id, &request.stored_below)?;
        Ok(Response::new(info))
    }

    async fn list_topics(
        &self,
        request: Request<api::ListTopicsRequest>,
    ) -> Result<Response<api::ListTopicsResponse>, Status> {
        authorize(request.extensions(), Action::Read, None)?;
        let request = request.into_inner();
        let page_size = validate::page_size(request.page_size).map_err(ApiError::from)?;
        self.proposer.ensure_leader()?;
        let catalog = self.proposer.state().catalog();
        let (topics, next_page_token) =
            convert::page(catalog.topics_after(&request.page_token).map(|t| self.topic_reply(t)), page_size, |t| {
                &t.name
            });
        Ok(Response::new(api::ListTopicsResponse { topics, next_page_token }))
    }

    #[tracing::instrument(skip_all, fields(topic = %request.get_ref().name))]
    async fn delete_topic(
        &self,
        request: Request<api::DeleteTopicRequest>,
    ) -> Result<Response<api::DeleteTopicResponse>, Status> {
        authorize(request.extensions(), Action::Admin, Some(&request.get_ref().name))?;
        let name = request.into_inner().name;
        validate::name("name", &name).map_err(ApiError::from)?;
        self.proposer.ensure_leader()?;
        let placed = self.proposer.state().catalog().topic(&name).map(|t| (t.id, t.groups.clone()));
        match self.proposer.propose(Command::DeleteTopic { name }).await? {
            domain::Response::TopicDeleted { .. } => {}
            other => return Err(unexpected(other).into()),
        }
        if let Some((id, groups)) = placed {
            let groups: BTreeSet<GroupId> = groups.into_iter().collect();
            self.routes.wait_for_groups(&groups, "the topic was deleted", |c| c.topic_by_id(id).is_none()).await?;
        }
        Ok(Response::new(api::DeleteTopicResponse {}))
    }

    #[tracing::instrument(skip_all, fields(topic = %request.get_ref().name))]
    async fn update_topic(&self, request: Request<api::UpdateTopicRequest>) -> Result<Response<api::Topic>, Status> {
        authorize(request.extensions(), Action::Admin, Some(&request.get_ref().name))?;
        Ok(Response::new(self.update(request.into_inner()).await?))
    }

    #[tracing::instrument(skip_all, fields(topic = %request.get_ref().topic, messages = request.get_ref().messages.len()))]
    async fn publish(&self, request: Request<api::PublishRequest>) -> Result<Response<api::PublishResponse>, Status> {
        authorize(request.extensions(), Action::Publish, Some(&request.get_ref().topic))?;
        Ok(Response::new(self.publish_batch(request.into_inner()).await?))
    }
}
