//! A subscription whose topic is placed in data groups is served by any
//! node: each call goes to the leader of every group holding the topic's
//! partitions (through `GroupRoutes`), and the answers are merged here. Acks
//! and deadline changes go to the group of the partition their ack id names.
//! Nothing here is atomic across groups, and nothing needs to be: every part
//! is idempotent, and a client retries a call that failed in any group.

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_proto::v1 as api;
use futures::future::join_all;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

use super::group_delivery::SeekTarget;
use super::routing::GroupRoutes;
use super::status::ApiError;
use crate::delivery::{AckId, Route};
use crate::domain::{validate, Catalog, InvalidArgument, SubscriptionState};
use crate::raft::GroupId;

/// A subscription on a placed topic, as this node's replica of group 0
/// holds it.
#[derive(Debug, Clone)]
pub struct Placed {
    /// Group 0's copy: its settings, not its floors (those are each group's).
    pub subscription: SubscriptionState,
    /// The group holding each partition of the topic.
    partition_groups: Vec<GroupId>,
}

impl Placed {
    /// The subscription `name`, if its topic is placed in data groups.
    pub fn find(catalog: &Catalog, name: &str) -> Option<Placed> {
        let subscription = catalog.subscription(name)?;
        let topic = catalog.topic_by_id(subscription.topic_id)?;
        if topic.groups.is_empty() {
            return None;
        }
        Some(Placed { subscription: subscription.clone(), partition_groups: topic.groups.clone() })
    }

    /// Every group holding a partition, each once, lowest first.
    pub fn groups(&self) -> Vec<GroupId> {
        let mut groups = self.partition_groups.clone();
        groups.sort_unstable();
        groups.dedup();
        groups
    }

    fn name(&self) -> &str {
        &self.subscription.name
    }

    /// The group of the partition an ack id names; why not, for an id
    /// that is malformed or of another subscription. The id is decoded
    /// whole: a call that names a mangled id must be rejected before any
    /// group acts on the rest.
    pub fn group_of(&self, ack_id: &str) -> Result<GroupId, String> {
        let id = AckId::decode(ack_id).map_err(|e| e.to_string())?;
        self.group_of_route(Route::from(id))
    }

    /// As [`Self::group_of`], reading only where the id goes
    /// ([`Route::parse`]): for a stream, whose acks are confirmed one by
    /// one, so a mangled id is rejected by name in the confirmation of the
    /// group it is sent to.
    pub fn route_of(&self, ack_id: &str) -> Result<GroupId, String> {
        self.group_of_route(Route::parse(ack_id).map_err(|e| e.to_string())?)
    }

    fn group_of_route(&self, route: Route) -> Result<GroupId, String> {
        if route.subscription_id != self.subscription.id {
            return Err(format!("belongs to another subscription than {:?}", self.name()));
        }
        let group = self.partition_groups.get(route.partition as usize);
        group.copied().ok_or_else(|| "names a message that was never delivered".to_owned())
    }

    /// Ack ids by the group of the partition each names; a malformed one, or
    /// one of another subscription, rejects the whole call.
    fn split(&self, ids: Vec<String>) -> Result<BTreeMap<GroupId, Vec<String>>, ApiError> {
        validate::ack_id_count(ids.len())?;
        let mut by_group: BTreeMap<GroupId, Vec<String>> = BTreeMap::new();
        for (i, text) in ids.into_iter().enumerate() {
            let group =
                self.group_of(&text).map_err(|problem| InvalidArgument::new(format!("ack_ids[{i}]"), problem))?;
            by_group.entry(group).or_default().push(text);
        }
        Ok(by_group)
    }
}

/// Up to `max_messages` from the groups, asked in turn from the one `turn`
/// names, so no group starves the others. When none has any and the request
/// waits, every group waits at once for something to deliver, leasing
/// nothing (a lease taken by a wait that lost the race would be dropped with
/// it, and its delivery counted), and the groups are asked again once one
/// wakes; at least every `REASK` too, for what arrived between the asking
/// and the waiting.
pub async fn pull(
    routes: &GroupRoutes,
    placed: &Placed,
    request: api::PullRequest,
    turn: usize,
) -> Result<api::PullResponse, ApiError> {
    validate::pull(request.max_messages, request.wait_millis)?;
    let mut groups = placed.groups();
    let first = turn % groups.len().max(1);
    groups.rotate_left(first);
    let give_up = Instant::now() + Duration::from_millis(u64::from(request.wait_millis));
    loop {
        let (messages, failures) = pull_once(routes, &groups, &request).await;
        let left = give_up.saturating_duration_since(Instant::now());
        if !messages.is_empty() || left.is_zero() || failures.len() == groups.len() {
            return answered(messages, failures, groups.len());
        }
        let wait = api::PullRequest { wait_millis: left.min(REASK).as_millis() as u32, ..request.clone() };
        let mut waits: FuturesUnordered<_> = groups.iter().map(|group| routes.wait(*group, wait.clone())).collect();
        // The first group to wake ends the wait; the others lease nothing.
        while let Some(woke) = waits.next().await {
            if woke.is_ok() {
                break;
            }
        }
    }
}

/// How long a waiting pull waits before it asks the groups again anyway.
const REASK: Duration = Duration::from_secs(1);

/// One pass over the groups without waiting: what they leased, and which failed.
async fn pull_once(
    routes: &GroupRoutes,
    groups: &[GroupId],
    request: &api::PullRequest,
) -> (Vec<api::ReceivedMessage>, Vec<ApiError>) {
    let max = request.max_messages as usize;
    let mut messages = Vec::new();
    let mut failures = Vec::new();
    for group in groups {
        if messages.len() >= max {
            break;
        }
        let ask = api::PullRequest {
            subscription: request.subscription.clone(),
            max_messages: (max - messages.len()) as u32,
            wait_millis: 0,
        };
        match routes.pull(*group, ask).await {
            Ok(response) => messages.extend(response.messages),
            // The other groups may still deliver.
            Err(e) => failures.push(e),
        }
    }
    (messages, failures)
}

/// What a pull answers: the messages, unless every group failed.
fn answered(
    messages: Vec<api::ReceivedMessage>,
    mut failures: Vec<ApiError>,
    groups: usize,
) -> Result<api::PullResponse, ApiError> {
    if messages.is_empty() && groups > 0 && failures.len() == groups {
        return Err(failures.remove(0));
    }
    Ok(api::PullResponse { messages })
}

pub async fn acknowledge(
    routes: &GroupRoutes,
    placed: &Placed,
    ack_ids: Vec<String>,
) -> Result<api::AcknowledgeResponse, ApiError> {
    let calls = placed.split(ack_ids)?.into_iter().map(|(group, ack_ids)| {
        routes.acknowledge(group, api::AcknowledgeRequest { subscription: placed.name().to_owned(), ack_ids })
    });
    let mut total = api::AcknowledgeResponse::default();
    for answer in join_all(calls).await {
        let answer = answer?;
        total.acknowledged += answer.acknowledged;
        total.stale += answer.stale;
    }
    Ok(total)
}

pub async fn modify_ack_deadline(
    routes: &GroupRoutes,
    placed: &Placed,
    request: api::ModifyAckDeadlineRequest,
) -> Result<api::ModifyAckDeadlineResponse, ApiError> {
    validate::ack_deadline_change(request.ack_deadline_seconds)?;
    let seconds = request.ack_deadline_seconds;
    let calls = placed.split(request.ack_ids)?.into_iter().map(|(group, ack_ids)| {
        let change = api::ModifyAckDeadlineRequest {
            subscription: placed.name().to_owned(),
            ack_ids,
            ack_deadline_seconds: seconds,
        };
        routes.modify_ack_deadline(group, change)
    });
    let mut total = api::ModifyAckDeadlineResponse::default();
    for answer in join_all(calls).await {
        let answer = answer?;
        total.modified += answer.modified;
        total.stale += answer.stale;
    }
    Ok(total)
}

/// Seeks in every group; a seek to a time is idempotent, so a call that
/// failed in one group is simply made again.
pub async fn seek(routes: &GroupRoutes, placed: &Placed, target: SeekTarget) -> Result<(), ApiError> {
    let calls = placed.groups().into_iter().map(|group| routes.seek(group, placed.name().to_owned(), target.clone()));
    for answer in join_all(calls).await {
        answer?;
    }
    Ok(())
}

/// The backlog summed over the groups; the oldest unacked message is the
/// oldest of any group, and `as_of` the earliest group's, so a watermark
/// read from it never runs ahead of a group.
pub async fn backlog(routes: &GroupRoutes, placed: &Placed, now_us: i64) -> Result<api::Backlog, ApiError> {
    let calls = placed.groups().into_iter().map(|group| routes.backlog(group, placed.name().to_owned()));
    let mut total = api::Backlog { as_of_unix_micros: now_us, ..Default::default() };
    let mut oldest: Option<i64> = None;
    for answer in join_all(calls).await {
        let answer = answer?;
        total.unacked_messages += answer.unacked_messages;
        total.unacked_bytes += answer.unacked_bytes;
        total.leased_messages += answer.leased_messages;
        if answer.unacked_messages > 0 {
            let time = answer.oldest_unacked_publish_time_unix_micros;
            oldest = Some(oldest.map_or(time, |o| o.min(time)));
        }
        total.as_of_unix_micros = total.as_of_unix_micros.min(answer.as_of_unix_micros);
        total.partitions.extend(answer.partitions);
    }
    total.partitions.sort_by_key(|p| p.partition);
    if let Some(oldest) = oldest {
        total.oldest_unacked_publish_time_unix_micros = oldest;
        total.oldest_unacked_age_millis = (now_us.saturating_sub(oldest) / 1000).max(0) as u64;
    }
    Ok(total)
}
