//! `GroupDelivery`: a subscription's delivery calls on the leader of one
//! group, for the partitions that group holds: group 0 for a topic not
//! placed in data groups (the whole topic), a data group for its share of a
//! placed one (the node the client called merges the groups' answers, see
//! `fan_in.rs`). Leases live in the group's `Dispatcher`; acks, seeks and
//! dead-letter moves are proposed in the group.

use std::sync::Arc;
use std::time::Duration;

use ferry_proto::internal as pb;
use ferry_proto::v1 as api;

use super::proposer::Proposer;
use super::routing::GroupRoutes;
use super::status::ApiError;
use super::{acks, convert, dead_letter};
use crate::clock::Clock;
use crate::delivery::{self, AckId, Dispatcher, Lessee, UNARY_CONSUMER};
use crate::domain::limits::PULL_BYTES_MAX;
use crate::domain::{self, validate, Command, Rejection, Seek, SubscriptionState};

/// Where a seek moves a subscription's floors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeekTarget {
    /// To the first message published at or after this time.
    Time(i64),
    /// To these floors (a bookmark's), one per partition of the topic.
    Floors(Vec<u64>),
}

impl SeekTarget {
    /// The forwarded form: the subscription and time in the public request,
    /// floors beside it.
    pub fn to_record(&self, group: u32, subscription: String) -> pb::GroupSeek {
        let (time_unix_micros, floors) = match self {
            SeekTarget::Time(time) => (*time, None),
            SeekTarget::Floors(floors) => (0, Some(pb::SeekFloors { floors: floors.clone() })),
        };
        let request = api::SeekRequest { subscription, time_unix_micros, ..Default::default() };
        pb::GroupSeek { group_id: group, request: Some(request), floors }
    }

    /// The subscription and target of a forwarded seek.
    pub fn from_record(seek: pb::GroupSeek) -> Result<(String, SeekTarget), ApiError> {
        let request = seek.request.ok_or_else(|| ApiError::invalid("request", "is required"))?;
        let target = match seek.floors {
            Some(floors) => SeekTarget::Floors(floors.floors),
            None => SeekTarget::Time(request.time_unix_micros),
        };
        Ok((request.subscription, target))
    }
}

#[derive(Clone)]
pub struct GroupDelivery {
    proposer: Proposer,
    dispatcher: Arc<Dispatcher>,
    /// Where messages dead-lettered into another group's partition go.
    routes: Arc<GroupRoutes>,
}

impl GroupDelivery {
    pub fn new(proposer: Proposer, dispatcher: Arc<Dispatcher>, routes: Arc<GroupRoutes>) -> Self {
        Self { proposer, dispatcher, routes }
    }

    pub fn routes(&self) -> &Arc<GroupRoutes> {
        &self.routes
    }

    pub fn proposer(&self) -> &Proposer {
        &self.proposer
    }

    pub fn dispatcher(&self) -> &Arc<Dispatcher> {
        &self.dispatcher
    }

    fn clock(&self) -> &Arc<dyn Clock> {
        self.dispatcher.clock()
    }

    /// The group's copy of the subscription, if this node leads the group.
    pub fn subscription(&self, name: &str) -> Result<SubscriptionState, ApiError> {
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

    pub async fn pull(&self, request: api::PullRequest) -> Result<api::PullResponse, ApiError> {
        validate::name("subscription", &request.subscription)?;
        validate::pull(request.max_messages, request.wait_millis)?;
        // A pull after an ack must not see the state from before it.
        let term = self.proposer.recently_confirmed_leader_term().await?;
        let wait = Duration::from_millis(u64::from(request.wait_millis));
        let lessee =
            Lessee { consumer: UNARY_CONSUMER, count_max: request.max_messages as usize, bytes_max: PULL_BYTES_MAX };
        let leased = self.dispatcher.pull(term, &request.subscription, lessee, wait).await?;
        if !leased.exhausted.is_empty() {
            let subscription = self.dispatcher.subscription(&request.subscription)?;
            dead_letter::spawn(self, term, &subscription, leased.exhausted);
        }
        let messages = leased.deliveries.into_iter().map(convert::received).collect();
        Ok(api::PullResponse { messages })
    }

    /// Waits up to the request's `wait_millis` until the subscription may
    /// have something to deliver in this group (messages arrived, leases
    /// were released or ran out), leasing nothing.
    pub async fn wait(&self, request: api::PullRequest) -> Result<(), ApiError> {
        let subscription = self.subscription(&request.subscription)?;
        let term = self.proposer.leader_term()?;
        let give_up = tokio::time::Instant::now() + Duration::from_millis(u64::from(request.wait_millis));
        let mut wakeups = self.dispatcher.watch(term, &subscription);
        self.dispatcher.wait(term, &subscription.name, &mut wakeups, give_up).await;
        Ok(())
    }

    pub async fn acknowledge(&self, request: api::AcknowledgeRequest) -> Result<api::AcknowledgeResponse, ApiError> {
        let subscription = self.subscription(&request.subscription)?;
        let ids = self.ack_ids(&subscription, &request.ack_ids)?;
        let term = self.proposer.leader_term()?;
        let committed = acks::commit(&self.proposer, &self.dispatcher, term, &subscription, ids).await?;
        Ok(api::AcknowledgeResponse { acknowledged: committed.acked.len() as u32, stale: committed.stale.len() as u32 })
    }

    pub fn modify_ack_deadline(
        &self,
        request: api::ModifyAckDeadlineRequest,
    ) -> Result<api::ModifyAckDeadlineResponse, ApiError> {
        let subscription = self.subscription(&request.subscription)?;
        validate::ack_deadline_change(request.ack_deadline_seconds)?;
        let ids = self.ack_ids(&subscription, &request.ack_ids)?;
        let term = self.proposer.leader_term()?;
        let stale = self.dispatcher.modify_deadline(term, &subscription, &ids, request.ack_deadline_seconds);
        let stale = stale.len() as u32;
        Ok(api::ModifyAckDeadlineResponse { modified: ids.len() as u32 - stale, stale })
    }

    /// Seeks the group's partitions of `subscription` to `target`.
    pub async fn seek(&self, subscription: &str, target: SeekTarget) -> Result<api::SeekResponse, ApiError> {
        let subscription = self.subscription(subscription)?;
        let floors = match target {
            SeekTarget::Time(time_unix_micros) => self.floors_at(&subscription, time_unix_micros)?,
            SeekTarget::Floors(floors) => floors,
        };
        let command = Command::Seek(Seek { subscription_id: subscription.id, floors });
        match self.proposer.propose(command).await? {
            domain::Response::Sought => Ok(api::SeekResponse {}),
            other => Err(ApiError::Internal(format!("seek answered {other:?}"))),
        }
    }

    /// In each partition, the first message published at or after `time`.
    fn floors_at(&self, subscription: &SubscriptionState, time_unix_micros: i64) -> Result<Vec<u64>, ApiError> {
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
                m.publish_time_us >= time_unix_micros
            })?;
            floors.push(floor);
        }
        Ok(floors)
    }

    /// The subscription's backlog in the group's partitions.
    pub fn backlog(&self, name: &str) -> Result<api::Backlog, ApiError> {
        let subscription = self.subscription(name)?;
        let term = self.proposer.leader_term()?;
        let leased = self.dispatcher.leased(term, &subscription);
        let backlog = delivery::backlog(self.proposer.state(), &subscription, leased)?;
        Ok(convert::backlog(&backlog, self.clock().wall_us()))
    }
}
