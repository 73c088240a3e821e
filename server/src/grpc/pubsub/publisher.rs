//! `google.pubsub.v1.Publisher` over Ferry's own Publisher service: each
//! call is turned into the `ferry.v1` call it means (names mapped, values
//! converted) and answered from that call's answer, so validation,
//! permissions, placement and errors are Ferry's, in one place.

use ferry_proto::pubsub as ps;
use ferry_proto::pubsub::publisher_server::Publisher as PubsubPublisherApi;
use ferry_proto::v1 as api;
use ferry_proto::v1::publisher_server::Publisher as _;
use ferry_proto::v1::subscriber_server::Subscriber as _;
use tonic::{Request, Response, Status};

use super::convert::{duration, message_id, message_to_ferry, seconds_up, update_mask};
use super::forward::{self, Forwarder};
use super::names::{from_ferry, to_ferry, Kind};
use super::paging::{page_size, FerryPage, ProjectListing, FERRY_PAGE};
use super::{ferry_request, snapshots};
use crate::grpc::{ApiError, PublisherService, SubscriberService};

pub struct PubsubPublisher {
    publisher: PublisherService,
    subscriber: SubscriberService,
    /// Partitions of a topic created through Pub/Sub, which has none.
    partitions: u32,
    leader: Forwarder,
}

impl PubsubPublisher {
    pub fn new(publisher: PublisherService, subscriber: SubscriberService, partitions: u32, leader: Forwarder) -> Self {
        Self { publisher, subscriber, partitions, leader }
    }

    /// A Ferry topic as Pub/Sub shows it.
    fn topic(ferry: &api::Topic) -> Option<ps::Topic> {
        let name = from_ferry(Kind::Topic, &ferry.name)?;
        let retention = ferry.settings.as_ref().map(|s| s.retention_seconds).filter(|s| *s > 0);
        Some(ps::Topic {
            name,
            labels: ferry.settings.as_ref().map(|s| s.labels.clone()).unwrap_or_default(),
            message_retention_duration: retention.map(duration),
            state: ps::topic::State::Active as i32,
            ..Default::default()
        })
    }
}

impl PubsubPublisher {
    async fn create_topic_here(&self, request: &Request<ps::Topic>) -> Result<Response<ps::Topic>, Status> {
        let topic = request.get_ref();
        let name = to_ferry("name", Kind::Topic, &topic.name)?;
        if topic.schema_settings.is_some() {
            return Err(ApiError::invalid("schema_settings", "Ferry has no schemas").into());
        }
        if topic.ingestion_data_source_settings.is_some() || !topic.message_transforms.is_empty() {
            return Err(
                ApiError::invalid("ingestion_data_source_settings", "Ferry has no ingestion or transforms").into()
            );
        }
        let retention_seconds =
            seconds_up("message_retention_duration", topic.message_retention_duration.as_ref())?.unwrap_or(0);
        let settings = api::TopicSettings {
            partitions: self.partitions,
            retention_seconds,
            labels: topic.labels.clone(),
            ..Default::default()
        };
        let create = api::CreateTopicRequest { name, settings: Some(settings) };
        let created = self.publisher.create_topic(ferry_request(request, create)).await?.into_inner();
        let reply = Self::topic(&created).ok_or_else(|| Status::internal("a created topic without a project"))?;
        Ok(Response::new(reply))
    }

    /// Labels and retention change; Ferry has nothing else of a topic's to
    /// change. Retention cleared goes back to Ferry's default.
    async fn update_topic_here(
        &self,
        request: &Request<ps::UpdateTopicRequest>,
    ) -> Result<Response<ps::Topic>, Status> {
        let topic = request.get_ref().topic.as_ref().ok_or_else(|| ApiError::invalid("topic", "is required"))?;
        let name = to_ferry("topic.name", Kind::Topic, &topic.name)?;
        let update_mask = update_mask(request.get_ref().update_mask.as_ref(), |path| match path {
            "labels" => Some("labels"),
            "message_retention_duration" => Some("retention_seconds"),
            _ => None,
        })?;
        let retention_seconds =
            seconds_up("topic.message_retention_duration", topic.message_retention_duration.as_ref())?.unwrap_or(0);
        let settings = api::TopicSettings { retention_seconds, labels: topic.labels.clone(), ..Default::default() };
        let update = api::UpdateTopicRequest { name, settings: Some(settings), update_mask };
        let updated = self.publisher.update_topic(ferry_request(request, update)).await?.into_inner();
        Ok(Response::new(Self::topic(&updated).ok_or_else(|| Status::internal("a topic without a project"))?))
    }

    async fn publish_here(
        &self,
        request: &Request<ps::PublishRequest>,
    ) -> Result<Response<ps::PublishResponse>, Status> {
        let topic = to_ferry("topic", Kind::Topic, &request.get_ref().topic)?;
        let messages = request.get_ref().messages.iter().cloned().map(message_to_ferry).collect();
        let publish = api::PublishRequest { topic, messages, ..Default::default() };
        let published = self.publisher.publish(ferry_request(request, publish)).await?.into_inner();
        let message_ids = published.positions.iter().map(message_id).collect();
        Ok(Response::new(ps::PublishResponse { message_ids }))
    }

    async fn get_topic_here(&self, request: &Request<ps::GetTopicRequest>) -> Result<Response<ps::Topic>, Status> {
        let name = to_ferry("topic", Kind::Topic, &request.get_ref().topic)?;
        let get = api::GetTopicRequest { name, ..Default::default() };
        let topic = self.publisher.get_topic(ferry_request(request, get)).await?.into_inner();
        Ok(Response::new(Self::topic(&topic).ok_or_else(|| Status::internal("a topic without a project"))?))
    }

    async fn list_topics_here(
        &self,
        request: &Request<ps::ListTopicsRequest>,
    ) -> Result<Response<ps::ListTopicsResponse>, Status> {
        let ask = request.get_ref();
        let listing = ProjectListing::new(&ask.project, Kind::Topic, ask.page_size, &ask.page_token)?;
        let (topics, next_page_token) = listing
            .collect(|after| async move {
                let list = api::ListTopicsRequest { page_size: FERRY_PAGE, page_token: after };
                let page = self.publisher.list_topics(ferry_request(request, list)).await?.into_inner();
                let items = page.topics.iter().map(|t| (t.name.clone(), Self::topic(t))).collect();
                Ok(FerryPage { items, more: !page.next_page_token.is_empty() })
            })
            .await?;
        Ok(Response::new(ps::ListTopicsResponse { topics, next_page_token }))
    }

    async fn list_topic_subscriptions_here(
        &self,
        request: &Request<ps::ListTopicSubscriptionsRequest>,
    ) -> Result<Response<ps::ListTopicSubscriptionsResponse>, Status> {
        let topic = to_ferry("topic", Kind::Topic, &request.get_ref().topic)?;
        let page_size = page_size(request.get_ref().page_size)? as u32;
        let page_token = request.get_ref().page_token.clone();
        // Ferry answers an empty list for a topic that does not exist.
        let get = api::GetTopicRequest { name: topic.clone(), ..Default::default() };
        self.publisher.get_topic(ferry_request(request, get)).await?;
        let list = api::ListSubscriptionsRequest { topic, page_size, page_token };
        let page = self.subscriber.list_subscriptions(ferry_request(request, list)).await?.into_inner();
        let subscriptions = page.subscriptions.iter().filter_map(|s| from_ferry(Kind::Subscription, &s.name)).collect();
        Ok(Response::new(ps::ListTopicSubscriptionsResponse { subscriptions, next_page_token: page.next_page_token }))
    }

    async fn delete_topic_here(&self, request: &Request<ps::DeleteTopicRequest>) -> Result<Response<()>, Status> {
        let name = to_ferry("topic", Kind::Topic, &request.get_ref().topic)?;
        let delete = api::DeleteTopicRequest { name };
        self.publisher.delete_topic(ferry_request(request, delete)).await?;
        Ok(Response::new(()))
    }
}

#[tonic::async_trait]
impl PubsubPublisherApi for PubsubPublisher {
    async fn create_topic(&self, request: Request<ps::Topic>) -> Result<Response<ps::Topic>, Status> {
        let here = self.create_topic_here(&request).await;
        self.leader.or_leader(here, request, |c, r| async move { forward::publisher(c).create_topic(r).await }).await
    }

    async fn update_topic(&self, request: Request<ps::UpdateTopicRequest>) -> Result<Response<ps::Topic>, Status> {
        let here = self.update_topic_here(&request).await;
        self.leader.or_leader(here, request, |c, r| async move { forward::publisher(c).update_topic(r).await }).await
    }

    async fn publish(&self, request: Request<ps::PublishRequest>) -> Result<Response<ps::PublishResponse>, Status> {
        let here = self.publish_here(&request).await;
        self.leader.or_leader(here, request, |c, r| async move { forward::publisher(c).publish(r).await }).await
    }

    async fn get_topic(&self, request: Request<ps::GetTopicRequest>) -> Result<Response<ps::Topic>, Status> {
        let here = self.get_topic_here(&request).await;
        self.leader.or_leader(here, request, |c, r| async move { forward::publisher(c).get_topic(r).await }).await
    }

    async fn list_topics(
        &self,
        request: Request<ps::ListTopicsRequest>,
    ) -> Result<Response<ps::ListTopicsResponse>, Status> {
        let here = self.list_topics_here(&request).await;
        self.leader.or_leader(here, request, |c, r| async move { forward::publisher(c).list_topics(r).await }).await
    }

    async fn list_topic_subscriptions(
        &self,
        request: Request<ps::ListTopicSubscriptionsRequest>,
    ) -> Result<Response<ps::ListTopicSubscriptionsResponse>, Status> {
        let here = self.list_topic_subscriptions_here(&request).await;
        self.leader
            .or_leader(here, request, |c, r| async move { forward::publisher(c).list_topic_subscriptions(r).await })
            .await
    }

    async fn list_topic_snapshots(
        &self,
        request: Request<ps::ListTopicSnapshotsRequest>,
    ) -> Result<Response<ps::ListTopicSnapshotsResponse>, Status> {
        let here = snapshots::of_topic(&self.publisher, &self.subscriber, &request).await;
        self.leader
            .or_leader(here, request, |c, r| async move { forward::publisher(c).list_topic_snapshots(r).await })
            .await
    }

    async fn delete_topic(&self, request: Request<ps::DeleteTopicRequest>) -> Result<Response<()>, Status> {
        let here = self.delete_topic_here(&request).await;
        self.leader.or_leader(here, request, |c, r| async move { forward::publisher(c).delete_topic(r).await }).await
    }

    async fn detach_subscription(
        &self,
        _: Request<ps::DetachSubscriptionRequest>,
    ) -> Result<Response<ps::DetachSubscriptionResponse>, Status> {
        Err(Status::unimplemented("Ferry cannot detach a subscription; delete it instead"))
    }
}
