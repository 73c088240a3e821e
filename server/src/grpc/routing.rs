//! `GroupRoutes`: where a group's work runs. A partition's publish, and a
//! subscription's delivery calls for the partitions of one group, run on the
//! leader of that group: here when this node leads it, otherwise forwarded
//! to that leader (one hop) over the internal `ferry.internal.v1.Groups`
//! service. Admin calls wait here for the data groups to take up a change of
//! group 0's catalog.
//!
//! Group 0 is never forwarded to: its requests are answered by its leader
//! and a client on another node is sent there with a leader hint, as before
//! data groups existed.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use ferry_proto::internal as pb;
use ferry_proto::internal::groups_client::GroupsClient;
use ferry_proto::v1 as api;
use parking_lot::Mutex;
use tokio::time::Instant;

use tonic::Code;

use super::early_ack::EarlyAck;
use super::group_delivery::{GroupDelivery, SeekTarget};
use super::handoff;
use super::proposer::Proposer;
use super::publish_loads::PublishLoads;
use super::sequencer::Sequencer;
use super::status::{ApiError, REASON_METADATA};
use super::stopping::Stopping;
use super::streaming_pull::{self, Requests};
use super::sub_stream::{self, OpenedSubStream};
use crate::clock::Clock;
use crate::delivery::{Dispatcher, OUTSTANDING_MAX_DEFAULT};
use crate::domain::limits::GRPC_MESSAGE_BYTES_MAX;
use crate::domain::{self, BookmarkState, Catalog, Command, PartitionState, ProducerKey, PublishBatch, TopicState};
use crate::raft::network::{Network, PeerChannel};
use crate::raft::{GroupId, Groups, HostedGroup, NodeId, META_GROUP};
use crate::storage::records::{publish_from_record, publish_to_record};

/// The `ferry-reason` of a forwarded call that reached a node no longer
/// leading the group: the forwarder looks for the leader again.
pub const NOT_LEADER_REASON: &str = "not-leader";

/// How long a forwarder waits before it looks for a moved leader again.
const RELOOK: Duration = Duration::from_millis(50);

/// What a forwarded call may take beyond the commit timeout.
const FORWARD_MARGIN: Duration = Duration::from_secs(1);

/// How long to wait before looking again for a data group this node does
/// not host yet (it starts them once group 0's layout is applied).
const HOSTED_POLL: Duration = Duration::from_millis(50);

/// Where this node reaches a group's leader.
enum Leader {
    Here,
    At(String),
    Unknown,
}

/// A partition's publish, as committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub first_offset: u64,
    /// The batch had been committed before, by an earlier try.
    pub duplicate: bool,
}

pub struct GroupRoutes {
    groups: Arc<Groups>,
    network: Network,
    node_id: NodeId,
    commit_timeout: Duration,
    clock: Arc<dyn Clock>,
    /// Leased messages per subscription and group, at most.
    outstanding_max: usize,
    /// TESTING ONLY: answer plain publishes before they commit.
    acking_before_commit: bool,
    /// This, for what it hands out (a group's delivery dead-letters through it).
    me: Weak<GroupRoutes>,
    /// Per group this node has served: its leases, what orders its
    /// idempotent producers' batches (and, testing only, numbers early
    /// acks). Each keeps to its group's terms, so a group's leader change
    /// forgets only its own.
    lanes: Mutex<HashMap<GroupId, Arc<Lanes>>>,
    /// Partition batches forwarded to another node's group leader.
    forwarded_publishes: AtomicU64,
    /// Partition batches in flight through this node, per group.
    publish_loads: PublishLoads,
    /// Set when the node begins shutting down.
    stopping: Stopping,
}

#[derive(Debug)]
struct Lanes {
    dispatcher: Arc<Dispatcher>,
    sequencer: Sequencer,
    early_ack: EarlyAck,
}

/// A group this node hosts, with what working as its leader needs.
pub struct Local {
    pub proposer: Proposer,
    lanes: Arc<Lanes>,
    routes: Arc<GroupRoutes>,
}

impl Local {
    /// The group's leases and delivery calls.
    pub fn delivery(&self) -> GroupDelivery {
        GroupDelivery::new(self.proposer.clone(), Arc::clone(&self.lanes.dispatcher), Arc::clone(&self.routes))
    }
}

impl std::fmt::Debug for GroupRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupRoutes").field("node_id", &self.node_id).finish()
    }
}

impl GroupRoutes {
    pub fn new(
        groups: Arc<Groups>,
        network: Network,
        node_id: NodeId,
        commit_timeout: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            groups,
            network,
            node_id,
            commit_timeout,
            clock,
            outstanding_max: OUTSTANDING_MAX_DEFAULT,
            acking_before_commit: false,
            me: Weak::new(),
            lanes: Mutex::default(),
            forwarded_publishes: AtomicU64::new(0),
            publish_loads: PublishLoads::default(),
            stopping: Stopping::default(),
        }
    }

    /// Ready to serve, shared.
    pub fn shared(self) -> Arc<Self> {
        Arc::new_cyclic(|me| Self { me: me.clone(), ..self })
    }

    /// Leased messages per subscription and group, at most.
    pub fn outstanding_max(mut self, max: usize) -> Self {
        self.outstanding_max = max;
        self
    }

    /// UNSAFE: answers plain publishes before they are committed (see
    /// [`EarlyAck`]); for proving the fault harness catches it.
    pub fn acking_before_commit(mut self) -> Self {
        self.acking_before_commit = true;
        self
    }

    /// The node's connections to its peers.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The node's shutdown, as the services see it.
    pub fn stopping(&self) -> &Stopping {
        &self.stopping
    }

    /// A group this node hosts (whether it leads it or not).
    pub fn local(&self, group: GroupId) -> Result<Local, ApiError> {
        let hosted = self.hosted_group(group)?;
        let lanes = Arc::clone(self.lanes.lock().entry(group).or_insert_with(|| {
            let dispatcher = Dispatcher::new(Arc::clone(&hosted.state), Arc::clone(&self.clock), self.outstanding_max);
            Arc::new(Lanes {
                dispatcher: Arc::new(dispatcher),
                sequencer: Sequencer::default(),
                early_ack: EarlyAck::default(),
            })
        }));
        let routes = self.me.upgrade().ok_or_else(|| ApiError::Unavailable("the node is stopping".into()))?;
        let proposer = Proposer::new(&hosted, self.node_id, self.commit_timeout);
        Ok(Local { proposer, lanes, routes })
    }

    /// A topic as this node's replica of group 0 holds it: its id, number
    /// of partitions and each partition's group (empty: all in group 0).
    pub fn topic_placement(&self, name: &str) -> Option<(u64, u32, Vec<GroupId>)> {
        let meta = self.groups.get(META_GROUP)?;
        let catalog = meta.state.catalog();
        catalog.topic(name).map(|t| (t.id, t.config.partitions, t.groups.clone()))
    }

    /// The bookmarks unexpired at `now_us`, as this node's replica of group
    /// 0 holds them (retention keeps what they may replay).
    pub fn bookmarks(&self, now_us: i64) -> Vec<BookmarkState> {
        let Some(meta) = self.groups.get(META_GROUP) else { return Vec::new() };
        let catalog = meta.state.catalog();
        catalog.bookmarks.values().filter(|b| !b.expired(now_us)).cloned().collect()
    }

    /// Partition batches this node forwarded to another node since it
    /// started.
    pub fn forwarded_publishes(&self) -> u64 {
        self.forwarded_publishes.load(Ordering::Relaxed)
    }

    /// Each partition of `topic` with its group and that group's leader as
    /// this node knows them; empty for a topic in group 0 (or unknown here).
    pub fn partition_routes(&self, topic: &str) -> Vec<api::PartitionRoute> {
        let Some((_, partitions, groups)) = self.topic_placement(topic) else { return Vec::new() };
        if groups.is_empty() {
            return Vec::new();
        }
        (0..partitions)
            .zip(groups)
            .map(|(partition, group)| {
                let (leader_id, leader_addr) = self.leader_of(group).unwrap_or_default();
                api::PartitionRoute { partition, group, leader_id, leader_addr }
            })
            .collect()
    }

    /// The leader of `group` and its address, as this node knows them.
    fn leader_of(&self, group: GroupId) -> Option<(NodeId, String)> {
        let metrics = self.groups.get(group)?.raft.metrics().borrow().clone();
        let leader = metrics.current_leader?;
        Some((leader, metrics.membership_config.membership().get_node(&leader)?.addr.clone()))
    }

    /// Every group this node hosts.
    pub fn hosted(&self) -> Vec<GroupId> {
        self.groups.all().into_iter().map(|(group, _)| group).collect()
    }

    /// Whether this node leads `group`.
    pub fn leads(&self, group: GroupId) -> bool {
        matches!(self.leader(group), Leader::Here)
    }

    fn leader(&self, group: GroupId) -> Leader {
        let Some(hosted) = self.groups.get(group) else { return Leader::Unknown };
        let metrics = hosted.raft.metrics();
        let metrics = metrics.borrow();
        match metrics.current_leader {
            // Handing it over: wait for the next leader.
            Some(id) if id == self.node_id && hosted.is_handing_off() => Leader::Unknown,
            Some(id) if id == self.node_id => Leader::Here,
            Some(id) => match metrics.membership_config.membership().get_node(&id) {
                Some(node) => Leader::At(node.addr.clone()),
                None => Leader::Unknown,
            },
            None => Leader::Unknown,
        }
    }

    /// Publishes one partition's batch through the leader of `group`: here,
    /// or forwarded to it. Counted in flight against the group from the
    /// call, not from the first poll, so keyless requests choosing on other
    /// threads see it as early as can be.
    pub fn publish(
        &self,
        group: GroupId,
        batch: PublishBatch,
    ) -> impl Future<Output = Result<Published, ApiError>> + Send + '_ {
        let in_flight = self.publish_loads.track(group);
        async move {
            let _in_flight = in_flight;
            let reply = self
                .on_leader(
                    group,
                    batch,
                    |local, batch| self.publish_here(local, batch),
                    |batch| {
                        self.forwarded_publishes.fetch_add(1, Ordering::Relaxed);
                        pb::ForwardedPublish { group_id: group, batch: Some(publish_to_record(batch)) }
                    },
                    |mut client, request| async move { client.publish(request).await },
                )
                .await?;
            Ok(Published { first_offset: reply.first_offset, duplicate: reply.duplicate })
        }
    }

    /// Publishes a forwarded batch, if this node leads its group.
    pub async fn publish_forwarded(
        &self,
        request: pb::ForwardedPublish,
    ) -> Result<pb::ForwardedPublishReply, ApiError> {
        let _in_flight = self.publish_loads.track(request.group_id);
        let record = request.batch.ok_or_else(|| ApiError::invalid("batch", "is required"))?;
        self.publish_here(self.local(request.group_id)?, publish_from_record(record)).await
    }

    /// The batches in flight per group, for keyless requests to weigh.
    pub fn publish_loads(&self) -> &PublishLoads {
        &self.publish_loads
    }

    /// Proposes a partition's batch in the group, which this node must lead,
    /// stamped with this leader's clock.
    async fn publish_here(&self, local: Local, mut batch: PublishBatch) -> Result<pb::ForwardedPublishReply, ApiError> {
        let Local { proposer, lanes, .. } = local;
        let term = proposer.ensure_leader()?;
        batch.publish_time_us = self.clock.wall_us();
        let published = if batch.producer.is_some() {
            publish_idempotent(&proposer, &lanes.sequencer, term, batch).await?
        } else if self.acking_before_commit {
            Published { first_offset: lanes.early_ack.publish(&proposer, batch).await?, duplicate: false }
        } else {
            published(proposer.propose(Command::Publish(batch)).await?)?
        };
        Ok(pb::ForwardedPublishReply { first_offset: published.first_offset, duplicate: published.duplicate })
    }

    /// A subscription's pull from the partitions `group` holds.
    pub async fn pull(&self, group: GroupId, request: api::PullRequest) -> Result<api::PullResponse, ApiError> {
        self.on_leader(
            group,
            request,
            |local, request| async move { local.delivery().pull(request).await },
            |request| pb::GroupPull { group_id: group, request: Some(request.clone()) },
            |mut client, request| async move { client.pull(request).await },
        )
        .await
    }

    /// Waits until the subscription may have something to deliver in the
    /// partitions `group` holds, leasing nothing.
    pub async fn wait(&self, group: GroupId, request: api::PullRequest) -> Result<(), ApiError> {
        self.on_leader(
            group,
            request,
            |local, request| async move { local.delivery().wait(request).await.map(|()| pb::GroupWoke {}) },
            |request| pb::GroupPull { group_id: group, request: Some(request.clone()) },
            |mut client, request| async move { client.wait(request).await },
        )
        .await
        .map(drop)
    }

    pub async fn acknowledge(
        &self,
        group: GroupId,
        request: api::AcknowledgeRequest,
    ) -> Result<api::AcknowledgeResponse, ApiError> {
        self.on_leader(
            group,
            request,
            |local, request| async move { local.delivery().acknowledge(request).await },
            |request| pb::GroupAcknowledge { group_id: group, request: Some(request.clone()) },
            |mut client, request| async move { client.acknowledge(request).await },
        )
        .await
    }

    pub async fn modify_ack_deadline(
        &self,
        group: GroupId,
        request: api::ModifyAckDeadlineRequest,
    ) -> Result<api::ModifyAckDeadlineResponse, ApiError> {
        self.on_leader(
            group,
            request,
            |local, request| async move { local.delivery().modify_ack_deadline(request) },
            |request| pb::GroupModifyAckDeadline { group_id: group, request: Some(request.clone()) },
            |mut client, request| async move { client.modify_ack_deadline(request).await },
        )
        .await
    }

    pub async fn seek(
        &self,
        group: GroupId,
        subscription: String,
        target: SeekTarget,
    ) -> Result<api::SeekResponse, ApiError> {
        self.on_leader(
            group,
            (subscription, target),
            |local, (subscription, target)| async move { local.delivery().seek(&subscription, target).await },
            |(subscription, target)| target.to_record(group, subscription.clone()),
            |mut client, request| async move { client.seek(request).await },
        )
        .await
    }

    /// A subscription's backlog in the partitions `group` holds.
    pub async fn backlog(&self, group: GroupId, subscription: String) -> Result<api::Backlog, ApiError> {
        self.on_leader(
            group,
            subscription,
            |local, subscription| async move { local.delivery().backlog(&subscription) },
            |subscription| pb::GroupBacklog { group_id: group, subscription: subscription.clone() },
            |mut client, request| async move { client.backlog(request).await },
        )
        .await
    }

    /// Hands `group`'s leadership to node `to`, on the group's leader (here
    /// or forwarded); answers who leads afterwards.
    pub async fn transfer_leader(&self, group: GroupId, to: NodeId) -> Result<NodeId, ApiError> {
        if group == META_GROUP || self.groups.get(group).is_none() {
            let data_groups = self.groups.data().len();
            return Err(ApiError::invalid("group", format!("{group} is not a data group (1..={data_groups})")));
        }
        let reply = self
            .on_leader(
                group,
                to,
                |_, to| self.transfer_here(group, to),
                |to| pb::GroupTransfer { group_id: group, node_id: *to },
                |mut client, request| async move { client.transfer_leader(request).await },
            )
            .await?;
        Ok(reply.leader_id)
    }

    /// Hands a group this node leads to `to`.
    pub async fn transfer_here(&self, group: GroupId, to: NodeId) -> Result<pb::GroupTransferred, ApiError> {
        let hosted = self.hosted_group(group)?;
        let campaign = |addr: String| async move {
            let mut client = self.client(&addr).map_err(ApiError::Remote)?;
            client.campaign(pb::GroupCampaign { group_id: group }).await.map_err(ApiError::Remote)?;
            Ok(())
        };
        let leader_id = handoff::transfer(&hosted, group, self.node_id, to, campaign).await?;
        Ok(pb::GroupTransferred { leader_id })
    }

    /// Campaigns for `group`, which its leader is handing to this node.
    pub fn campaign(&self, group: GroupId) -> Result<(), ApiError> {
        if self.stopping.is_stopping() {
            return Err(ApiError::Unavailable(format!(
                "node {} is shutting down; it leads no more groups",
                self.node_id
            )));
        }
        handoff::campaign(self.hosted_group(group)?, group);
        Ok(())
    }

    fn hosted_group(&self, group: GroupId) -> Result<HostedGroup, ApiError> {
        self.groups
            .get(group)
            .ok_or_else(|| ApiError::Unavailable(format!("group {group} is not started on this node yet")))
    }

    /// Opens a group's share of a consumer's stream on the group's leader:
    /// here, or `Groups.StreamingPull` to it. Fails at once when the leader
    /// is unknown or elsewhere than thought; the caller opens it again.
    pub async fn streaming_pull(
        &self,
        group: GroupId,
        first: api::StreamingPullRequest,
        requests: Requests,
    ) -> Result<OpenedSubStream, tonic::Status> {
        match self.leader(group) {
            Leader::Here => {
                let delivery = self.local(group)?.delivery();
                sub_stream::here(|report| async move {
                    Ok(streaming_pull::start(delivery, first, requests, Some(report)).await?)
                })
                .await
            }
            Leader::At(addr) => {
                let mut client = self.client(&addr)?;
                let responses = client.streaming_pull(sub_stream::addressed(group, first, requests)).await?;
                Ok(sub_stream::from_leader(responses.into_inner()))
            }
            Leader::Unknown => Err(tonic::Status::unavailable(format!("group {group} knows no leader"))),
        }
    }

    /// Runs a group's work on its leader: `here` when this node leads the
    /// group, and always for group 0 (whose other nodes send clients to its
    /// leader with a hint); otherwise the call `send` makes with
    /// `encode(request)` on the leader, found again while it moves, within
    /// the commit timeout.
    async fn on_leader<Q, A, HereF, P, SendF>(
        &self,
        group: GroupId,
        request: Q,
        here: impl FnOnce(Local, Q) -> HereF,
        encode: impl Fn(&Q) -> P,
        send: impl Fn(GroupsClient<PeerChannel>, P) -> SendF,
    ) -> Result<A, ApiError>
    where
        HereF: Future<Output = Result<A, ApiError>>,
        SendF: Future<Output = Result<tonic::Response<A>, tonic::Status>>,
    {
        if group == META_GROUP {
            return here(self.local(group)?, request).await;
        }
        let give_up = Instant::now() + self.commit_timeout;
        loop {
            let addr = match self.leader(group) {
                Leader::Here => return here(self.local(group)?, request).await,
                Leader::At(addr) => addr,
                Leader::Unknown => {
                    let reason = format!("group {group} knows no leader (an election may be under way)");
                    if Instant::now() >= give_up {
                        return Err(ApiError::Unavailable(reason));
                    }
                    tokio::time::sleep(RELOOK).await;
                    continue;
                }
            };
            let forwarded = async {
                let client = self.client(&addr)?;
                send(client, encode(&request)).await
            };
            match tokio::time::timeout(self.forward_timeout(), forwarded).await {
                // Not acted on there: look for the leader again (this node
                // learns of a new one from the group's heartbeats).
                Ok(Err(status)) if (is_not_leader(&status) || never_sent(&status)) && Instant::now() < give_up => {
                    tokio::time::sleep(RELOOK).await;
                }
                Ok(Err(status)) => return Err(forward_failed(group, &addr, status)),
                Ok(Ok(reply)) => return Ok(reply.into_inner()),
                Err(_) => {
                    return Err(ApiError::Unavailable(format!(
                        "group {group}'s leader at {addr} did not answer within {:?}; it may still act on the call",
                        self.forward_timeout()
                    )))
                }
            }
        }
    }

    /// How long a forwarded call may take: the leader's own commit timeout,
    /// and a margin for the hop.
    pub fn forward_timeout(&self) -> Duration {
        self.commit_timeout + FORWARD_MARGIN
    }

    fn client(&self, addr: &str) -> Result<GroupsClient<PeerChannel>, tonic::Status> {
        let channel = self.network.channel(addr).map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        Ok(GroupsClient::new(channel)
            .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX))
    }

    /// Each partition's state as this node's replica of its group holds it:
    /// group 0's copy of a placed topic has its offsets at zero.
    /// This node's replica of the group holding `partition` of `topic`.
    pub fn replica_of(&self, topic: &TopicState, partition: u32) -> Option<HostedGroup> {
        self.groups.get(topic.group_of(partition)?)
    }

    pub fn partition_states(&self, topic: &TopicState) -> Vec<PartitionState> {
        (0..topic.config.partitions)
            .map(|p| {
                let group = topic.group_of(p).unwrap_or(META_GROUP);
                if group == META_GROUP {
                    return topic.partitions.get(p as usize).cloned().unwrap_or_default();
                }
                let Some(hosted) = self.groups.get(group) else { return PartitionState::default() };
                let catalog = hosted.state.catalog();
                let state = catalog.topic_by_id(topic.id).and_then(|t| t.partitions.get(p as usize).cloned());
                state.unwrap_or_default()
            })
            .collect()
    }

    /// Waits until this node's replica of every group in `groups` shows
    /// `done`, within the commit timeout: an admin call answers once the
    /// data groups took up what it changed in group 0.
    pub async fn wait_for_groups(
        &self,
        groups: &BTreeSet<GroupId>,
        what: &str,
        done: impl Fn(&Catalog) -> bool,
    ) -> Result<(), ApiError> {
        let give_up = Instant::now() + self.commit_timeout;
        let late = |group: GroupId| {
            ApiError::Unavailable(format!(
                "{what} in group 0, but group {group} had not taken it up within {:?}; it will",
                self.commit_timeout
            ))
        };
        for group in groups.iter().copied().filter(|g| *g != META_GROUP) {
            let state = loop {
                if let Some(hosted) = self.groups.get(group) {
                    break hosted.state;
                }
                if Instant::now() >= give_up {
                    return Err(late(group));
                }
                tokio::time::sleep(HOSTED_POLL).await;
            };
            // Watch before looking, so a change in between is not missed.
            let mut changes = state.watch_catalog();
            while !done(&state.catalog()) {
                match tokio::time::timeout_at(give_up, changes.changed()).await {
                    Ok(Ok(())) => {}
                    _ => return Err(late(group)),
                }
            }
        }
        Ok(())
    }
}

/// Publishes one idempotent producer's batch, submitted to Raft after the
/// producer's earlier batches.
async fn publish_idempotent(
    proposer: &Proposer,
    sequencer: &Sequencer,
    term: u64,
    batch: PublishBatch,
) -> Result<Published, ApiError> {
    let producer = batch.producer.expect("an idempotent batch names its producer");
    let key = ProducerKey { topic_id: batch.topic_id, partition: batch.partition, producer_id: producer.producer_id };
    // A batch that skips sequences follows the batch that ended where its skip starts.
    let sequences = producer.covers_from()..producer.first_sequence.saturating_add(batch.messages.len() as u64);
    let committed_next = proposer.state().catalog().producers.next_sequence(&key).unwrap_or(0);
    let submit = proposer.submit(Command::Publish(batch));
    let submitted = sequencer.in_order(term, key, sequences, committed_next, submit).await?;
    published(submitted.outcome().await?)
}

fn published(response: domain::Response) -> Result<Published, ApiError> {
    match response {
        domain::Response::Published { first_offset, duplicate, .. } => Ok(Published { first_offset, duplicate }),
        other => Err(ApiError::Internal(format!("unexpected state machine response {other:?}"))),
    }
}

/// What a failed forwarded call answers the client: the leader's own answer
/// as it gave it; a call lost with its connection (the leader died or was cut
/// off mid-call), as UNAVAILABLE, which clients retry.
fn forward_failed(group: GroupId, addr: &str, status: tonic::Status) -> ApiError {
    match status.code() {
        Code::Unknown | Code::Cancelled => ApiError::Unavailable(format!(
            "forwarding to group {group}'s leader at {addr} failed ({}); it may still act on the call",
            status.message()
        )),
        _ => ApiError::Remote(status),
    }
}

/// Whether a forwarded call failed before it left this node: no connection
/// to the leader could be made (it died, and this node does not know yet).
fn never_sent(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error.is::<tonic::ConnectError>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// Whether a forwarded call was turned down, unproposed, by a node that does
/// not lead the group (any more).
fn is_not_leader(status: &tonic::Status) -> bool {
    status.code() == Code::Unavailable
        && status.metadata().get(REASON_METADATA).and_then(|v| v.to_str().ok()) == Some(NOT_LEADER_REASON)
}

#[cfg(test)]
#[path = "routing_tests.rs"]
mod tests;
