//! Adding and removing nodes. Group 0's voters are the membership of record;
//! data groups follow them (`node/membership.rs`), and these calls answer
//! once every data group this node hosts has followed. Both are idempotent,
//! so a call that failed half way is finished by calling it again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};

use super::proposer::Proposer;
use super::status::ApiError;
use crate::domain::Command;
use crate::raft::{GroupId, Groups, HostedGroup, NodeId};

/// How long a new node may take to catch up as a learner, in group 0 and
/// then in the data groups.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the data groups may take to drop a leaving node.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the data groups' voters are looked at while waiting.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// Makes `node_id` at `addr` a voter of group 0 (a learner first, until it
/// caught up), then waits until it is a voter of every data group.
pub async fn add_node(proposer: &Proposer, groups: &Groups, node_id: NodeId, addr: String) -> Result<(), ApiError> {
    proposer.ensure_leader()?;
    if proposer.state().catalog().leaving.contains(&node_id) {
        proposer.propose(Command::SetLeaving { node_id, leaving: false }).await?;
    }
    let voter_at = {
        let metrics = proposer.raft().metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        let voter = membership.voter_ids().any(|v| v == node_id);
        voter.then(|| membership.get_node(&node_id).map(|n| n.addr.clone()))
    };
    match voter_at {
        Some(Some(existing)) if existing != addr => {
            let problem = format!("node {node_id} is already a member at another address ({existing})");
            return Err(ApiError::invalid("node_id", problem));
        }
        Some(_) => {}
        None => {
            let raft = proposer.raft();
            let learner =
                tokio::time::timeout(CATCH_UP_TIMEOUT, raft.add_learner(node_id, BasicNode::new(&addr), true));
            learner
                .await
                .map_err(|_| {
                    ApiError::Unavailable(format!("node {node_id} did not catch up within {CATCH_UP_TIMEOUT:?}"))
                })?
                .map_err(membership_error)?;
            tracing::info!(node_id, %addr, "learner caught up; promoting to voter");
            raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([node_id])), false)
                .await
                .map_err(membership_error)?;
        }
    }
    data_groups_follow(groups, CATCH_UP_TIMEOUT, |voters| voters.contains_key(&node_id)).await.map_err(|lagging| {
        ApiError::Unavailable(format!(
            "node {node_id} is a voter of group 0, not yet of data groups {lagging}; they keep adding it"
        ))
    })
}

/// Removes `node_id`: marks it leaving, waits until every data group dropped
/// it, then removes it from group 0. The mark comes first and is durable, so
/// no data group adds the node back while group 0 still lists it.
pub async fn remove_node(proposer: &Proposer, groups: &Groups, node_id: NodeId) -> Result<(), ApiError> {
    proposer.ensure_leader()?;
    let voter = {
        let metrics = proposer.raft().metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        if membership.get_node(&node_id).is_none() {
            return Err(ApiError::invalid("node_id", format!("node {node_id} is not a member")));
        }
        membership.voter_ids().any(|v| v == node_id)
    };
    if !groups.data().is_empty() {
        proposer.propose(Command::SetLeaving { node_id, leaving: true }).await?;
        data_groups_follow(groups, LEAVE_TIMEOUT, |voters| !voters.contains_key(&node_id)).await.map_err(
            |lagging| {
                ApiError::Unavailable(format!(
                    "node {node_id} is marked leaving; data groups {lagging} still hold it; they keep removing it"
                ))
            },
        )?;
    }
    let change = if voter {
        ChangeMembers::RemoveVoters(BTreeSet::from([node_id]))
    } else {
        ChangeMembers::RemoveNodes(BTreeSet::from([node_id]))
    };
    proposer.raft().change_membership(change, false).await.map_err(membership_error)?;
    if proposer.state().catalog().leaving.contains(&node_id) {
        // Not a voter of group 0 any more, so no data group wants it either.
        proposer.propose(Command::SetLeaving { node_id, leaving: false }).await?;
    }
    tracing::info!(node_id, "removed from the cluster");
    Ok(())
}

/// Waits until every data group hosted here has voters that satisfy `done`
/// (as this node's copy of each group shows them); on timeout, the groups
/// that have not, each as this node sees it.
async fn data_groups_follow(
    groups: &Groups,
    within: Duration,
    done: impl Fn(&BTreeMap<NodeId, String>) -> bool,
) -> Result<(), String> {
    let give_up = tokio::time::Instant::now() + within;
    loop {
        let lagging: Vec<(GroupId, HostedGroup)> = groups
            .data()
            .into_iter()
            .filter(|(_, group)| !group.voters().is_some_and(|voters| done(&voters)))
            .collect();
        if lagging.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= give_up {
            let seen: Vec<String> = lagging.iter().map(|(id, group)| format!("{id} ({})", group.describe())).collect();
            return Err(seen.join(", "));
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}

fn membership_error(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> ApiError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => ApiError::NotLeader {
            reason: "leadership moved during the membership change".into(),
            leader: forward.leader_id.zip(forward.leader_node.map(|n| n.addr)),
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            ApiError::Unavailable(format!("membership change refused: {e}"))
        }
        RaftError::Fatal(fatal) => ApiError::Unavailable(format!("raft has stopped: {fatal}")),
    }
}
