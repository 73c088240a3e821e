//! The `ferry.v1.Cluster` service: cluster status, membership changes and the
//! debug read of a replica's log.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use ferry_proto::v1 as api;
use ferry_proto::v1::cluster_client::ClusterClient;
use ferry_proto::v1::cluster_server::Cluster;
use futures::future::join_all;
use openraft::{BasicNode, RaftMetrics, ServerState};
use tonic::{Request, Response, Status};

use super::handoff::successor;
use super::membership;
use super::proposer::Proposer;
use super::routing::GroupRoutes;
use super::status::ApiError;
use crate::domain::{validate, Rejection};
use crate::raft::backup::{self, BackupError};
use crate::raft::network::Network;
use crate::raft::{Groups, NodeId, META_GROUP};
use crate::security::{authorize, cluster_id, Action};

/// How long a member may take to answer a status request.
const NODE_STATUS_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a backup waits for this node to apply what its groups' leaders had.
const BACKUP_CATCH_UP_TIMEOUT: Duration = Duration::from_secs(10);
/// Most messages one ReadLog returns.
const READ_LOG_MESSAGES_MAX: u32 = 10_000;

#[derive(Debug)]
pub struct ClusterService {
    proposer: Proposer,
    groups: Arc<Groups>,
    routes: Arc<GroupRoutes>,
    /// When the node started serving (the wall clock, not the node's
    /// clock, which tests may stop): a restart changes it.
    started_unix_micros: u64,
}

impl ClusterService {
    /// Group 0's leader cannot watch the data groups drop itself: once a
    /// group's final voters leave it out, their leaders stop sending it
    /// entries, so its copies never show the change it waits for. Asked to
    /// remove itself, it hands group 0 to another voter and answers with
    /// that leader's hint; the client's retry removes it from there.
    async fn hand_group_0_over(&self) -> ApiError {
        let me = self.proposer.node_id();
        let metrics = self.proposer.raft().metrics().borrow().clone();
        let Some(to) = successor(&metrics, me) else {
            return ApiError::Unavailable(format!("node {me} leads group 0 and no other voter can take it over"));
        };
        if let Err(e) = self.routes.transfer_here(META_GROUP, to).await {
            return e;
        }
        // Another node leads now: the usual answer names it.
        match self.proposer.ensure_leader() {
            Err(not_leader) => not_leader,
            Ok(_) => ApiError::Unavailable(format!("node {me} still leads group 0; retry")),
        }
    }

    pub fn new(proposer: Proposer, groups: Arc<Groups>, routes: Arc<GroupRoutes>) -> Self {
        let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Self { proposer, groups, routes, started_unix_micros: started.as_micros() as u64 }
    }

    fn group_statuses(&self) -> Vec<api::GroupStatus> {
        let id = self.proposer.node_id();
        let groups = self.groups.all().into_iter().map(|(group, hosted)| {
            let metrics = hosted.raft.metrics().borrow().clone();
            api::GroupStatus {
                group,
                role: role(&metrics, id).into(),
                term: metrics.current_term,
                leader_id: metrics.current_leader.unwrap_or(0),
                voters: metrics.membership_config.membership().voter_ids().collect(),
                applied_index: metrics.last_applied.map_or(0, |l| l.index),
                last_log_index: metrics.last_log_index.unwrap_or(0),
                snapshot_index: metrics.snapshot.map_or(0, |l| l.index),
                purged_index: metrics.purged.map_or(0, |l| l.index),
            }
        });
        groups.collect()
    }

    async fn node_status(&self) -> api::NodeStatus {
        let raft = self.proposer.raft();
        let metrics = raft.metrics().borrow().clone();
        let committed = raft.with_raft_state(|state| state.committed).await.ok().flatten();
        let id = self.proposer.node_id();
        let addr = metrics.membership_config.membership().get_node(&id).map(|n| n.addr.clone()).unwrap_or_default();
        api::NodeStatus {
            node_id: id,
            addr,
            role: role(&metrics, id).into(),
            term: metrics.current_term,
            leader_id: metrics.current_leader.unwrap_or(0),
            last_log_index: metrics.last_log_index.unwrap_or(0),
            committed_index: committed.map_or(0, |c| c.index),
            applied_index: metrics.last_applied.map_or(0, |l| l.index),
            snapshot_index: metrics.snapshot.map_or(0, |l| l.index),
            purged_index: metrics.purged.map_or(0, |l| l.index),
            version: crate::VERSION.into(),
            commit: crate::GIT_COMMIT.into(),
            groups: self.group_statuses(),
            forwarded_publish_batches: self.routes.forwarded_publishes(),
            started_unix_micros: self.started_unix_micros,
            stopping: self.routes.stopping().is_stopping(),
            cluster_id: self.routes.network().cluster_identity().get().unwrap_or_default().into(),
        }
    }

    async fn cluster_status(&self) -> api::ClusterStatus {
        let metrics = self.proposer.raft().metrics().borrow().clone();
        let membership = metrics.membership_config.membership().clone();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let nodes: BTreeMap<NodeId, String> = membership.nodes().map(|(id, n)| (*id, n.addr.clone())).collect();
        let me = self.proposer.node_id();
        let statuses = join_all(nodes.iter().map(|(id, addr)| async move {
            if *id == me {
                Ok(self.node_status().await)
            } else {
                remote_node_status(self.routes.network(), addr).await
            }
        }))
        .await;
        let leader_last =
            statuses.iter().filter_map(|s| s.as_ref().ok()).find(|s| s.role == "leader").map(|s| s.last_log_index);
        let members = nodes
            .into_iter()
            .zip(statuses)
            .map(|((node_id, addr), status)| {
                let (status, error) = match status {
                    Ok(status) => (Some(status), String::new()),
                    Err(e) => (None, e),
                };
                let lag_entries = match (leader_last, &status) {
                    (Some(leader), Some(status)) => leader.saturating_sub(status.last_log_index),
                    _ => 0,
                };
                api::Member { node_id, addr, voter: voters.contains(&node_id), status, error, lag_entries }
            })
            .collect();
        api::ClusterStatus {
            leader_id: metrics.current_leader.unwrap_or(0),
            term: metrics.current_term,
            members,
            groups: self.group_statuses(),
        }
    }
}

impl ClusterService {
    /// Before a backup: this node must host every group of the layout, and
    /// have applied in each what the group's leader had applied when asked
    /// (everything acknowledged before the call: the leader answers a write
    /// once it applied it).
    async fn catch_up_for_backup(&self) -> Result<(), ApiError> {
        let me = self.proposer.node_id();
        let expected = self.proposer.state().catalog().layout.as_ref().map_or(0, |l| l.data_groups as usize) + 1;
        let hosted = self.groups.all();
        if hosted.len() < expected {
            return Err(ApiError::Unavailable(format!(
                "node {me} hosts {} of the cluster's {expected} groups yet; back up another node",
                hosted.len()
            )));
        }
        let mut leaders_status: BTreeMap<NodeId, api::NodeStatus> = BTreeMap::new();
        for (group, hosted) in hosted {
            let metrics = hosted.raft.metrics().borrow().clone();
            let leader = metrics.current_leader.ok_or_else(|| {
                ApiError::Unavailable(format!(
                    "group {group} knows no leader; a backup now could miss acknowledged writes"
                ))
            })?;
            if leader == me {
                continue;
            }
            if let std::collections::btree_map::Entry::Vacant(entry) = leaders_status.entry(leader) {
                let addr = metrics.membership_config.membership().get_node(&leader).map(|n| n.addr.clone());
                let addr =
                    addr.ok_or_else(|| ApiError::Unavailable(format!("the address of node {leader} is unknown")))?;
                let status = remote_node_status(self.routes.network(), &addr).await;
                entry.insert(status.map_err(|e| ApiError::Unavailable(format!("group {group}'s leader: {e}")))?);
            }
            let target =
                leaders_status[&leader].groups.iter().find(|g| g.group == group).map_or(0, |g| g.applied_index);
            let wait = hosted.raft.wait(Some(BACKUP_CATCH_UP_TIMEOUT));
            wait.applied_index_at_least(Some(target), "backup").await.map_err(|_| {
                ApiError::Unavailable(format!(
                    "node {me} has not applied group {group} up to its leader's index {target} within \
                     {BACKUP_CATCH_UP_TIMEOUT:?}; back up another node"
                ))
            })?;
        }
        Ok(())
    }
}

async fn remote_node_status(network: &Network, addr: &str) -> Result<api::NodeStatus, String> {
    ask_node_status(network, addr).await.map_err(|status| status.message().to_owned())
}

/// The `NodeStatus` of the node at `addr`, or why not (within 1 s).
async fn ask_node_status(network: &Network, addr: &str) -> Result<api::NodeStatus, Status> {
    let call = async {
        let channel = network.channel(addr).map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(ClusterClient::new(channel).node_status(api::NodeStatusRequest {}).await?.into_inner())
    };
    tokio::time::timeout(NODE_STATUS_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err(Status::deadline_exceeded("no answer within 1s")))
}

/// Fails when the node at `addr` refuses this cluster's calls (it belongs to
/// another cluster, or is joining and has not learnt its id): added anyway,
/// it would stay a learner that never catches up, called for good. A node
/// that does not answer may be starting, and is added as before.
async fn takes_our_calls(network: &Network, node_id: NodeId, addr: &str) -> Result<(), ApiError> {
    match ask_node_status(network, addr).await {
        Err(refused) if cluster_id::is_refusal(&refused) => {
            Err(ApiError::Remote(Status::failed_precondition(format!(
                "node {node_id} at {addr} refuses this cluster's calls: {}. A node that formed a cluster of its own \
             must be wiped and started with --join",
                refused.message()
            ))))
        }
        _ => Ok(()),
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn status(&self, _: Request<api::ClusterStatusRequest>) -> Result<Response<api::ClusterStatus>, Status> {
        Ok(Response::new(self.cluster_status().await))
    }

    async fn node_status(&self, _: Request<api::NodeStatusRequest>) -> Result<Response<api::NodeStatus>, Status> {
        Ok(Response::new(ClusterService::node_status(self).await))
    }

    #[tracing::instrument(skip_all, fields(node_id = request.get_ref().node_id))]
    async fn add_node(&self, request: Request<api::AddNodeRequest>) -> Result<Response<api::ClusterStatus>, Status> {
        authorize(request.extensions(), Action::Cluster, None)?;
        let request = request.into_inner();
        if request.node_id == 0 {
            return Err(ApiError::invalid("node_id", "must be at least 1").into());
        }
        if request.addr.parse::<std::net::SocketAddr>().is_err() && !request.addr.contains(':') {
            return Err(ApiError::invalid("addr", format!("{:?} is not HOST:PORT", request.addr)).into());
        }
        takes_our_calls(self.routes.network(), request.node_id, &request.addr).await?;
        membership::add_node(&self.proposer, &self.groups, request.node_id, request.addr).await?;
        Ok(Response::new(self.cluster_status().await))
    }

    #[tracing::instrument(skip_all, fields(node_id = request.get_ref().node_id))]
    async fn remove_node(
        &self,
        request: Request<api::RemoveNodeRequest>,
    ) -> Result<Response<api::ClusterStatus>, Status> {
        authorize(request.extensions(), Action::Cluster, None)?;
        let node_id = request.into_inner().node_id;
        if node_id == self.proposer.node_id() && !self.groups.data().is_empty() {
            return Err(self.hand_group_0_over().await.into());
        }
        membership::remove_node(&self.proposer, &self.groups, node_id).await?;
        Ok(Response::new(self.cluster_status().await))
    }

    #[tracing::instrument(skip_all, fields(group = request.get_ref().group, node_id = request.get_ref().node_id))]
    async fn transfer_leader(
        &self,
        request: Request<api::TransferLeaderRequest>,
    ) -> Result<Response<api::TransferLeaderResponse>, Status> {
        authorize(request.extensions(), Action::Cluster, None)?;
        let api::TransferLeaderRequest { group, node_id } = request.into_inner();
        let leader_id = self.routes.transfer_leader(group, node_id).await?;
        Ok(Response::new(api::TransferLeaderResponse { leader_id }))
    }

    async fn routes(&self, request: Request<api::RoutesRequest>) -> Result<Response<api::RoutesResponse>, Status> {
        let topic = request.into_inner().topic;
        validate::name("topic", &topic).map_err(ApiError::from)?;
        if self.routes.topic_placement(&topic).is_none() {
            return Err(ApiError::Rejected(Rejection::TopicNotFound { name: topic }).into());
        }
        Ok(Response::new(api::RoutesResponse { partitions: self.routes.partition_routes(&topic) }))
    }

    #[tracing::instrument(skip_all, fields(dir = %request.get_ref().dir))]
    async fn backup(&self, request: Request<api::BackupRequest>) -> Result<Response<api::BackupResponse>, Status> {
        authorize(request.extensions(), Action::Cluster, None)?;
        let dir = std::path::PathBuf::from(request.into_inner().dir);
        self.catch_up_for_backup().await?;
        let (groups, node_id) = (Arc::clone(&self.groups), self.proposer.node_id());
        let made = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || backup::create(&groups, node_id, &dir)).await
        };
        let manifest = match made.map_err(|e| Status::internal(format!("the backup task failed: {e}")))? {
            Ok(manifest) => manifest,
            Err(BackupError::Invalid(problem)) => return Err(ApiError::invalid("dir", problem).into()),
            Err(BackupError::Storage(e)) => return Err(ApiError::Storage(e).into()),
        };
        tracing::info!(groups = manifest.groups.len(), "backed up");
        let groups = manifest
            .groups
            .into_iter()
            .map(|g| api::GroupBackup {
                group: g.group,
                applied_term: g.applied_term,
                applied_index: g.applied_index,
                bytes: g.bytes,
            })
            .collect();
        Ok(Response::new(api::BackupResponse {
            dir: dir.display().to_string(),
            node_id,
            created_unix_micros: manifest.created_unix_micros,
            groups,
        }))
    }

    async fn read_log(&self, request: Request<api::ReadLogRequest>) -> Result<Response<api::ReadLogResponse>, Status> {
        // A debug read of any topic's messages: for operators only.
        authorize(request.extensions(), Action::Cluster, None)?;
        let request = request.into_inner();
        validate::name("topic", &request.topic).map_err(ApiError::from)?;
        if !(1..=READ_LOG_MESSAGES_MAX).contains(&request.max_messages) {
            let problem = format!("{} is outside 1..={READ_LOG_MESSAGES_MAX}", request.max_messages);
            return Err(ApiError::invalid("max_messages", problem).into());
        }
        let (topic_id, group) = {
            let catalog = self.proposer.state().catalog();
            let topic = catalog
                .topic(&request.topic)
                .ok_or_else(|| ApiError::from(Rejection::TopicNotFound { name: request.topic.clone() }))?;
            let group = topic.group_of(request.partition).ok_or_else(|| {
                ApiError::from(Rejection::PartitionOutOfRange {
                    partition: request.partition,
                    partitions: topic.config.partitions,
                })
            })?;
            (topic.id, group)
        };
        // This replica's copy of the group holding the partition.
        let state = self
            .groups
            .get(group)
            .ok_or_else(|| ApiError::Unavailable(format!("group {group} is not started on this node yet")))?
            .state;
        let (start_offset, end_offset) = {
            let catalog = state.catalog();
            let partition = catalog.topic_by_id(topic_id).and_then(|t| t.partitions.get(request.partition as usize));
            partition.map_or((0, 0), |p| (p.start_offset, p.next_offset))
        };
        // The batch holding the start offset is stored whole; what lies below
        // the start is trimmed all the same.
        let from = request.from_offset.max(start_offset);
        let messages = state
            .db()
            .read_messages(topic_id, request.partition, from, request.max_messages as usize, usize::MAX)
            .map_err(ApiError::from)?;
        let records = messages
            .into_iter()
            .map(|m| api::LogRecord {
                offset: m.offset,
                publish_time_unix_micros: m.publish_time_us,
                message: Some(api::Message {
                    data: m.body.data,
                    attributes: m.body.attributes,
                    ordering_key: m.body.ordering_key,
                    event_id: m.body.event_id,
                }),
            })
            .collect();
        Ok(Response::new(api::ReadLogResponse { records, end_offset }))
    }
}

/// A node's role in one group, as `NodeStatus.role` names it.
fn role(metrics: &RaftMetrics<NodeId, BasicNode>, id: NodeId) -> &'static str {
    let voter = metrics.membership_config.membership().voter_ids().any(|v| v == id);
    match metrics.state {
        ServerState::Leader => "leader",
        ServerState::Candidate => "candidate",
        ServerState::Follower if voter => "follower",
        ServerState::Follower | ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}
