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
use crate::raft::{GroupId, Groups, HostedGroup, NodeId, Raft};

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
            change_voters(raft, ChangeMembers::AddVoterIds(BTreeSet::from([node_id]))).await?;
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
/// no data group adds the node back while group 0 still lists it. A node
/// that a change cut off between its two steps (`membership::finish_left_change`)
/// is taking out of group 0 is a member still, of the change's first half:
/// its removal goes on where that change ends.
pub async fn remove_node(proposer: &Proposer, groups: &Groups, node_id: NodeId) -> Result<(), ApiError> {
    proposer.ensure_leader()?;
    if proposer.raft().metrics().borrow().membership_config.membership().get_node(&node_id).is_none() {
        return Err(ApiError::invalid("node_id", format!("node {node_id} is not a member")));
    }
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
    let removal = {
        let metrics = proposer.raft().metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        if membership.voter_ids().any(|v| v == node_id) {
            Some(ChangeMembers::RemoveVoters(BTreeSet::from([node_id])))
        } else {
            membership.get_node(&node_id).map(|_| ChangeMembers::RemoveNodes(BTreeSet::from([node_id])))
        }
    };
    if let Some(removal) = removal {
        change_voters(proposer.raft(), removal).await?;
    }
    if proposer.state().catalog().leaving.contains(&node_id) {
        // Not a voter of group 0 any more, so no data group wants it either.
        proposer.propose(Command::SetLeaving { node_id, leaving: false }).await?;
    }
    tracing::info!(node_id, "removed from the cluster");
    Ok(())
}

/// Changes group 0's voters in a task of its own, which a cancelled call
/// does not stop: openraft's `change_membership` makes the change's second
/// step in the caller's future, so a call cut off between the steps (its
/// caller gone, its deadline passed) would leave group 0 joint.
async fn change_voters(raft: &Raft, change: ChangeMembers<NodeId, BasicNode>) -> Result<(), ApiError> {
    let raft = raft.clone();
    let changed = tokio::spawn(async move {
        let changed = raft.change_membership(change.clone(), false).await;
        // Said here too: the caller may be gone.
        if let Err(e) = &changed {
            tracing::warn!(?change, error = %e, "changing group 0's voters failed");
        }
        changed
    });
    changed
        .await
        .map_err(|e| ApiError::Internal(format!("changing group 0's voters: {e}")))?
        .map(drop)
        .map_err(membership_error)
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use ferry_proto::v1 as api;
    use ferry_proto::v1::cluster_client::ClusterClient;
    use openraft::{BasicNode, ChangeMembers, RaftMetrics};

    use crate::node::in_process;
    use crate::raft::{NodeId, META_GROUP};

    fn joint(metrics: &RaftMetrics<NodeId, BasicNode>) -> bool {
        metrics.membership_config.membership().get_joint_config().len() > 1
    }

    /// openraft's leader changes voters in two steps, the second in the
    /// caller's future: a change cut off between them (here its future is
    /// dropped; in life, its leader dies) left group 0 between two sets of
    /// voters for good, and no data group followed group 0 any more. Group
    /// 0's leader now finishes it, and the data groups follow.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_change_left_between_its_two_steps_is_finished_and_the_data_groups_follow() {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let peers = in_process::peers(3);
        let mut nodes = Vec::new();
        for id in 1..=3 {
            nodes.push(in_process::start(&tmp.path().join(id.to_string()), id, &peers, 2).await);
        }
        let within = Duration::from_secs(20);
        let leader = in_process::leader_of(&nodes[0], META_GROUP, within).await.expect("group 0 has a leader");
        for group in 1..=2 {
            in_process::leader_of(&nodes[0], group, within).await.expect("the data group has a leader");
        }
        let victim = (1..=3).find(|id| *id != leader).expect("a follower");
        let raft = nodes.iter().find(|n| n.id() == leader).expect("the leader").raft().clone();

        let change = raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([victim])), false);
        let wait = raft.wait(Some(within));
        tokio::select! {
            biased;
            seen = wait.metrics(joint, "the change's first step") => { seen.expect("joint"); }
            _ = change => panic!("the change finished before it could be cut off"),
        }
        // The first step commits; openraft makes no second by itself.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(joint(&raft.metrics().borrow()), "group 0 left its joint configuration sooner than its leader waits");

        let others: BTreeSet<NodeId> = (1..=3).filter(|id| *id != victim).collect();
        let finished = raft.wait(Some(within)).metrics(|m| !joint(m), "the change finished").await.expect("finished");
        assert_eq!(finished.membership_config.membership().get_joint_config(), &[others], "group 0's voters");
        let mut client = ClusterClient::connect(format!("http://{}", peers[&leader])).await.expect("connect");
        let give_up = tokio::time::Instant::now() + within;
        loop {
            let status = client.node_status(api::NodeStatusRequest {}).await.expect("status").into_inner();
            assert_eq!(status.groups.len(), 3, "group 0 and two data groups");
            let holding: Vec<u32> =
                status.groups.iter().filter(|g| g.voters.contains(&victim)).map(|g| g.group).collect();
            if holding.is_empty() {
                break;
            }
            assert!(tokio::time::Instant::now() < give_up, "groups {holding:?} still hold node {victim}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for node in nodes {
            node.shutdown().await.expect("a clean shutdown");
        }
    }
}
