//! The `ferry.v1.Subscriber` service: subscription admin and delivery.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ferry_proto::v1 as api;
use ferry_proto::v1::subscriber_server::Subscriber;
use tonic::{Request, Response, Status, Streaming};

use super::fan_in::{self, Placed};
use super::group_delivery::{GroupDelivery, SeekTarget};
use super::proposer::Proposer;
use super::routing::GroupRoutes;
use super::status::ApiError;
use super::stopping::ResponseStream;
use super::{convert, stream_fan_in, streaming_pull};
use crate::clock::Clock;
use crate::domain::{self, validate, Command, Rejection, SubscriptionSetting, SubscriptionState};
use crate::raft::{GroupId, META_GROUP};
use crate::security::{authorize, authorize_as, Action, Principal};

#[derive(Debug)]
pub struct SubscriberService {
    /// Group 0's: subscriptions are created and deleted there.
    pub(super) proposer: Proposer,
    /// Where each group's delivery runs, and what admin calls wait on for
    /// data groups to take up a change.
    pub(super) routes: Arc<GroupRoutes>,
    pub(super) clock: Arc<dyn Clock>,
    /// Turns the group a placed subscription's pull asks first.
    next_group: AtomicUsize,
}

impl SubscriberService {
    pub fn new(proposer: Proposer, routes: Arc<GroupRoutes>, clock: Arc<dyn Clock>) -> Self {
        Self { proposer, routes, clock, next_group: AtomicUsize::new(0) }
    }

    /// The subscription `name` if its topic is placed in data groups (any
    /// node serves it); `None` for the rest, which group 0's leader serves.
    fn placed(&self, name: &str) -> Result<Option<Placed>, ApiError> {
        validate::name("subscription", name)?;
        Ok(Placed::find(&self.proposer.state().catalog(), name))
    }

    /// Group 0's delivery, on this node.
    fn group_0(&self) -> Result<GroupDelivery, ApiError> {
        Ok(self.routes.local(META_GROUP)?.delivery())
    }

    /// The data groups holding partitions of topic `topic_id`.
    fn groups_of(&self, topic_id: u64) -> BTreeSet<GroupId> {
        let catalog = self.proposer.state().catalog();
        catalog.topic_by_id(topic_id).map(|t| t.groups.iter().copied().collect()).unwrap_or_default()
    }

    async fn create(&self, request: api::CreateSubscriptionRequest) -> Result<api::Subscription, ApiError> {
        validate::name("name", &request.name)?;
        validate::name("topic", &request.topic)?;
        let settings = request.settings.unwrap_or_default();
        let config = validate::subscription_config(convert::subscription_config(settings))?;
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

    /// Changes the settings `update_mask` names, as `PublisherService`
    /// updates a topic's.
    async fn update(&self, request: api::UpdateSubscriptionRequest) -> Result<api::Subscription, ApiError> {
        validate::name("name", &request.name)?;
        let known = SubscriptionSetting::ALL.map(SubscriptionSetting::name);
        let settings = validate::update_mask(&request.update_mask, SubscriptionSetting::named, &known)?;
        let requested = convert::subscription_config(request.settings.unwrap_or_default());
        self.proposer.ensure_leader()?;
        let (topic, mut config) = match self.proposer.state().catalog().subscription(&request.name) {
            Some(s) => (s.topic.clone(), s.config.clone()),
            None => return Err(Rejection::SubscriptionNotFound { name: request.name }.into()),
        };
        for setting in &settings {
            setting.copy(&requested, &mut config);
        }
        let config = validate::subscription_config(config)?;
        if settings.contains(&SubscriptionSetting::DeadLetterPolicy) && config.dead_letter_topic == topic {
            let problem = "must differ from the subscription's own topic";
            return Err(ApiError::invalid("settings.dead_letter_topic", problem));
        }
        let command = Command::UpdateSubscription { name: request.name, config, settings: settings.clone() };
        let updated = match self.proposer.propose(command).await? {
            domain::Response::SubscriptionUpdated(s) => s,
            other => return Err(ApiError::Internal(format!("update subscription answered {other:?}"))),
        };
        let groups = self.groups_of(updated.topic_id);
        // As for topics: only the settings this call changed.
        let taken_up = |c: &domain::Catalog| {
            let holds = |held: &SubscriptionState| {
                domain::updates::holds(&held.config, &updated.config, &settings, SubscriptionSetting::copy)
            };
            c.subscription_by_id(updated.id).is_none_or(holds)
        };
        self.routes.wait_for_groups(&groups, "the subscription was updated", taken_up).await?;
        Ok(convert::subscription(&updated))
    }

    /// Opens a consumer's stream on `first`'s subscription, the rest of its
    /// requests coming from `rest`: for `ferry.v1` and for Pub/Sub's
    /// StreamingPull alike. Ends with UNAVAILABLE when the node stops.
    pub async fn open_stream(
        &self,
        principal: Option<&Principal>,
        first: api::StreamingPullRequest,
        rest: streaming_pull::Requests,
    ) -> Result<ResponseStream<api::StreamingPullResponse>, Status> {
        self.routes.stopping().refuse_if_stopping("a new stream")?;
        validate::name("subscription", &first.subscription).map_err(ApiError::from)?;
        self.may(principal, Action::Subscribe, &first.subscription)?;
        let responses = match self.placed(&first.subscription)? {
            Some(placed) => stream_fan_in::start(Arc::clone(&self.routes), placed, first, rest)?,
            None => streaming_pull::start(self.group_0()?, first, rest, None).await?,
        };
        Ok(self.routes.stopping().until_stopping(responses))
    }

    /// Whether `principal` may do `action` to subscription `name`, judged by
    /// its topic. A subscription this node does not know is left to the
    /// call, which reports it missing (or sends the client to the leader).
    fn may(&self, principal: Option<&Principal>, action: Action, name: &str) -> Result<(), Status> {
        let topic = self.proposer.state().catalog().subscription(name).map(|s| s.topic.clone());
        match topic {
            Some(topic) => authorize_as(principal, action, Some(&topic)),
            None => Ok(()),
        }
    }

    pub(super) async fn get(&self, name: &str) -> Result<api::Subscription, ApiError> {
        let now = self.clock.wall_us();
        if let Some(placed) = self.placed(name)? {
            let mut reply = convert::subscription(&placed.subscription);
            reply.backlog = Some(fan_in::backlog(&self.routes, &placed, now).await?);
            return Ok(reply);
        }
        let group_0 = self.group_0()?;
        let mut reply = convert::subscription(&group_0.subscription(name)?);
        reply.backlog = Some(group_0.backlog(name)?);
        Ok(reply)
    }
}

#[tonic::async_trait]
impl Subscriber for SubscriberService {
    type StreamingPullStream = ResponseStream<api::StreamingPullResponse>;

    #[tracing::instrument(skip_all, fields(subscription = %request.get_ref().name, topic = %request.get_ref().topic))]
    async fn create_subscription(
        &self,
        request: Request<api::CreateSubscriptionRequest>,
    ) -> Result<Response<api::Subscription>, Status> {
        authorize(request.extensions(), Action::Admin, Some(&request.get_ref().topic))?;
        // Dead-lettering publishes to that topic on the creator's behalf.
        let dead_letter = request.get_ref().settings.as_ref().map(|s| s.dead_letter_topic.as_str()).unwrap_or_default();
        if !dead_letter.is_empty() {
            authorize(request.extensions(), Action::Publish, Some(dead_letter))?;
        }
        Ok(Response::new(self.create(request.into_inner()).await?))
    }

    #[tracing::instrument(skip_all, fields(subscription = %request.get_ref().name))]
    async fn update_subscription(
        &self,
        request: Request<api::UpdateSubscriptionRequest>,
    ) -> Result<Response<api::Subscription>, Status> {
        self.may(request.extensions().get(), Action::Admin, &request.get_ref().name)?;
        // Dead-lettering publishes to that topic on the updater's behalf.
        let dead_letter = request.get_ref().settings.as_ref().map(|s| s.dead_letter_topic.as_str()).unwrap_or_default();
        let changes_it =
            request.get_ref().update_mask.iter().any(|m| m == SubscriptionSetting::DeadLetterPolicy.name());
        if changes_it && !dead_letter.is_empty() {
            authorize(request.extensions(), Action::Publish, Some(dead_letter))?;
        }
        Ok(Response::new(self.update(request.into_inner()).await?))
    }

    async fn get_subscription(
        &self,
        request: Request<api::GetSubscriptionRequest>,
    ) -> Result<Response<api::Subscription>, Status> {
        authorize(request.extensions(), Action::Read, None)?;
        let name = request.into_inner().name;
        validate::name("name", &name).map_err(ApiError::from)?;
        Ok(Response::new(self.get(&name).await?))
    }

    async fn list_subscriptions(
        &self,
        request: Request<api::ListSubscriptionsRequest>,
    ) -> Result<Response<api::ListSubscriptionsResponse>, Status> {
        authorize(request.extensions(), Action::Read, None)?;
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
        self.may(request.extensions().get(), Action::Admin, &request.get_ref().name)?;
        let name = request.into_inner().name;
        validate::name("name", &name).map_err(ApiError::from)?;
        self.proposer.ensure_leader()?;
        let doomed = self.proposer.state().catalog().subscription(&name).map(|s| (s.id, s.topic_id));
        match self.proposer.propose(Command::DeleteSubscription { name }).await? {
            domain::Response::SubscriptionDeleted => {}
            other => return Err(ApiError::Internal(format!("delete subscription answered {other:?}")).into()),
        }
        if let Some((id, topic_id)) = doomed {
            self.group_0()?.dispatcher().forget(id);
            let groups = self.groups_of(topic_id);
            self.routes
                .wait_for_groups(&groups, "the subscription was deleted", |c| c.subscription_by_id(id).is_none())
                .await?;
        }
        Ok(Response::new(api::DeleteSubscriptionResponse {}))
    }

    #[tracing::instrument(skip_all, fields(subscription = %request.get_ref().subscription))]
    async fn pull(&self, request: Request<api::PullRequest>) -> Result<Response<api::PullResponse>, Status> {
        self.may(request.extensions().get(), Action::Subscribe, &request.get_ref().subscription)?;
        let request = request.into_inner();
        let pulled = match self.placed(&request.subscription)? {
            Some(placed) => {
                let turn = self.next_group.fetch_add(1, Ordering::Relaxed);
                fan_in::pull(&self.routes, &placed, request, turn).await?
            }
            None => self.group_0()?.pull(request).await?,
        };
        Ok(Response::new(pulled))
    }

    async fn streaming_pull(
        &self,
        request: Request<Streaming<api::StreamingPullRequest>>,
    ) -> Result<Response<Self::StreamingPullStream>, Status> {
        self.routes.stopping().refuse_if_stopping("a new stream")?;
        let principal = request.extensions().get::<Principal>().cloned();
        let mut requests = request.into_inner();
        let first = streaming_pull::first_request(&mut requests).await?;
        Ok(Response::new(self.open_stream(principal.as_ref(), first, Box::pin(requests)).await?))
    }

    #[tracing::instrument(skip_all, fields(subscription = %request.get_ref().subscription, ack_ids = request.get_ref().ack_ids.len()))]
    async fn acknowledge(
        &self,
        request: Request<api::AcknowledgeRequest>,
    ) -> Result<Response<api::AcknowledgeResponse>, Status> {
        self.may(request.extensions().get(), Action::Subscribe, &request.get_ref().subscription)?;
        let request = request.into_inner();
        let acked = match self.placed(&request.subscription)? {
            Some(placed) => fan_in::acknowledge(&self.routes, &placed, request.ack_ids).await?,
            None => self.group_0()?.acknowledge(request).await?,
        };
        Ok(Response::new(acked))
    }

    #[tracing::instrument(skip_all, fields(subscription = %request.get_ref().subscription))]
    async fn modify_ack_deadline(
        &self,
        request: Request<api::ModifyAckDeadlineRequest>,
    ) -> Result<Response<api::ModifyAckDeadlineResponse>, Status> {
        self.may(request.extensions().get(), Action::Subscribe, &request.get_ref().subscription)?;
        let request = request.into_inner();
        let modified = match self.placed(&request.subscription)? {
            Some(placed) => fan_in::modify_ack_deadline(&self.routes, &placed, request).await?,
            None => self.group_0()?.modify_ack_deadline(request)?,
        };
        Ok(Response::new(modified))
    }

    #[tracing::instrument(skip_all, fields(subscription = %request.get_ref().subscription))]
    async fn seek(&self, request: Request<api::SeekRequest>) -> Result<Response<api::SeekResponse>, Status> {
        self.may(request.extensions().get(), Action::Subscribe, &request.get_ref().subscription)?;
        let request = request.into_inner();
        let target = match request.bookmark.as_str() {
            "" => SeekTarget::Time(request.time_unix_micros),
            bookmark => SeekTarget::Floors(self.bookmark_floors(&request.subscription, bookmark)?),
        };
        match self.placed(&request.subscription)? {
            Some(placed) => fan_in::seek(&self.routes, &placed, target).await?,
            None => self.group_0()?.seek(&request.subscription, target).await.map(drop)?,
        }
        Ok(Response::new(api::SeekResponse {}))
    }

    async fn create_bookmark(
        &self,
        request: Request<api::CreateBookmarkRequest>,
    ) -> Result<Response<api::Bookmark>, Status> {
        // As creating a subscription does: admin on its topic.
        self.proposer.ensure_leader()?;
        self.may(request.extensions().get(), Action::Admin, &request.get_ref().subscription)?;
        Ok(Response::new(self.save_bookmark(request.into_inner()).await?))
    }

    async fn get_bookmark(&self, request: Request<api::GetBookmarkRequest>) -> Result<Response<api::Bookmark>, Status> {
        authorize(request.extensions(), Action::Read, None)?;
        Ok(Response::new(self.find_bookmark(&request.into_inner().name)?))
    }

    async fn list_bookmarks(
        &self,
        request: Request<api::ListBookmarksRequest>,
    ) -> Result<Response<api::ListBookmarksResponse>, Status> {
        authorize(request.extensions(), Action::Read, None)?;
        Ok(Response::new(self.bookmarks_page(request.into_inner())?))
    }

    async fn delete_bookmark(
        &self,
        request: Request<api::DeleteBookmarkRequest>,
    ) -> Result<Response<api::DeleteBookmarkResponse>, Status> {
        // Judged on the leader's catalog, which holds every bookmark.
        self.proposer.ensure_leader()?;
        let topic = self.proposer.state().catalog().bookmarks.get(&request.get_ref().name).map(|b| b.topic.clone());
        if let Some(topic) = topic {
            authorize(request.extensions(), Action::Admin, Some(&topic))?;
        }
        self.remove_bookmark(request.into_inner().name).await?;
        Ok(Response::new(api::DeleteBookmarkResponse {}))
    }
}
