//! `GroupRoutes`: where a group's work runs. A partition's publish runs on
//! the leader of the group holding the partition: here when this node leads
//! it, otherwise forwarded to that leader (one hop) over the internal
//! `ferry.internal.v1.Groups` service. Admin calls wait here for the data
//! groups to take up a change of group 0's catalog.
//!
//! Group 0 is never forwarded to: its requests are answered by its leader
//! and a client on another node is sent there with a leader hint, as before
//! data groups existed.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use ferry_proto::internal as pb;
use ferry_proto::internal::groups_client::GroupsClient;
use parking_lot::Mutex;
use tokio::time::Instant;
use tonic::Code;

use super::early_ack::EarlyAck;
use super::proposer::Proposer;
use super::sequencer::Sequencer;
use super::status::{ApiError, REASON_METADATA};
use crate::clock::Clock;
use crate::domain::limits::GRPC_MESSAGE_BYTES_MAX;
use crate::domain::{self, Catalog, Command, PartitionState, ProducerKey, PublishBatch, TopicState};
use crate::raft::network::Network;
use crate::raft::{GroupId, Groups, NodeId, META_GROUP};
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
    /// TESTING ONLY: answer plain publishes before they commit.
    acking_before_commit: bool,
    /// Per group this node has led: what orders its idempotent producers'
    /// batches (and, testing only, numbers early acks). Each keeps to its
    /// group's terms, so a group's leader change forgets only its own.
    lanes: Mutex<HashMap<GroupId, Arc<Lanes>>>,
}

#[derive(Debug, Default)]
struct Lanes {
    sequencer: Sequencer,
    early_ack: EarlyAck,
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
        Self { groups, network, node_id, commit_timeout, clock, acking_before_commit: false, lanes: Mutex::default() }
    }

    /// UNSAFE: answers plain publishes before they are committed (see
    /// [`EarlyAck`]); for proving the fault harness catches it.
    pub fn acking_before_commit(mut self) -> Self {
        self.acking_before_commit = true;
        self
    }

    /// The proposer of a group this node hosts.
    pub fn proposer(&self, group: GroupId) -> Result<Proposer, ApiError> {
        let hosted = self
            .groups
            .get(group)
            .ok_or_else(|| ApiError::Unavailable(format!("group {group} is not started on this node yet")))?;
        Ok(Proposer::new(hosted.raft, self.node_id, hosted.state, self.commit_timeout))
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
            Some(id) if id == self.node_id => Leader::Here,
            Some(id) => match metrics.membership_config.membership().get_node(&id) {
                Some(node) => Leader::At(node.addr.clone()),
                None => Leader::Unknown,
            },
            None => Leader::Unknown,
        }
    }

    /// Publishes one partition's batch through the leader of `group`: here,
    /// or forwarded to it. Group 0's batches are published only here.
    pub async fn publish(&self, group: GroupId, batch: PublishBatch) -> Result<Published, ApiError> {
        if group == META_GROUP {
            return self.publish_here(group, batch).await;
        }
        let give_up = Instant::now() + self.commit_timeout;
        loop {
            let addr = match self.leader(group) {
                Leader::Here => return self.publish_here(group, batch).await,
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
            let forwarded = tokio::time::timeout(self.forward_timeout(), self.forward_publish(group, &addr, &batch));
            match forwarded.await {
                // Not proposed there: look for the leader again (this node
                // learns of a new one from the group's heartbeats).
                Ok(Err(status)) if (is_not_leader(&status) || never_sent(&status)) && Instant::now() < give_up => {
                    tokio::time::sleep(RELOOK).await;
                }
                Ok(Err(status)) => return Err(forward_failed(group, &addr, status)),
                Ok(Ok(reply)) => return Ok(Published { first_offset: reply.first_offset, duplicate: reply.duplicate }),
                Err(_) => {
                    return Err(ApiError::Unavailable(format!(
                        "group {group}'s leader at {addr} did not answer within {:?}; the publish may still commit",
                        self.forward_timeout()
                    )))
                }
            }
        }
    }

    /// How long a forwarded call may take: the leader's own commit timeout,
    /// and a margin for the hop.
    fn forward_timeout(&self) -> Duration {
        self.commit_timeout + FORWARD_MARGIN
    }

    async fn forward_publish(
        &self,
        group: GroupId,
        addr: &str,
        batch: &PublishBatch,
    ) -> Result<pb::ForwardedPublishReply, tonic::Status> {
        let channel = self.network.channel(addr).map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let mut client = GroupsClient::new(channel)
            .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX);
        let request = pb::ForwardedPublish { group_id: group, batch: Some(publish_to_record(batch)) };
        Ok(client.publish(request).await?.into_inner())
    }

    /// Publishes a forwarded batch, if this node leads its group.
    pub async fn publish_forwarded(&self, request: pb::ForwardedPublish) -> Result<Published, ApiError> {
        let record = request.batch.ok_or_else(|| ApiError::invalid("batch", "is required"))?;
        self.publish_here(request.group_id, publish_from_record(record)).await
    }

    /// Proposes a partition's batch in `group`, which this node must lead,
    /// stamped with this leader's clock.
    async fn publish_here(&self, group: GroupId, mut batch: PublishBatch) -> Result<Published, ApiError> {
        let proposer = self.proposer(group)?;
        let term = proposer.ensure_leader()?;
        batch.publish_time_us = self.clock.wall_us();
        let lanes = self.lanes(group);
        if batch.producer.is_some() {
            return publish_idempotent(&proposer, &lanes.sequencer, term, batch).await;
        }
        if self.acking_before_commit {
            let first_offset = lanes.early_ack.publish(&proposer, batch).await?;
            return Ok(Published { first_offset, duplicate: false });
        }
        published(proposer.propose(Command::Publish(batch)).await?)
    }

    fn lanes(&self, group: GroupId) -> Arc<Lanes> {
        Arc::clone(self.lanes.lock().entry(group).or_default())
    }

    /// Each partition's state as this node's replica of its group holds it:
    /// group 0's copy of a placed topic has its offsets at zero.
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
    let first = producer.first_sequence;
    let sequences = first..first.saturating_add(batch.messages.len() as u64);
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
            "forwarding to group {group}'s leader at {addr} failed ({}); the publish may still commit",
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
