//! Data groups follow group 0's membership. Group 0's voters are the
//! membership of record; every data group should have them as voters, less
//! the nodes marked leaving (`Command::SetLeaving`). Each data group's leader
//! drives its group there: it adds a missing voter as a learner first, so the
//! voter has the log before it counts towards a quorum, then replaces the
//! voters in one change. Adding and removing a node (`ClusterService`) only
//! change group 0 and wait for the data groups to follow, so a crash at any
//! point is finished by whichever node leads each group next.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ferry_proto::v1 as api;
use ferry_proto::v1::cluster_client::ClusterClient;
use openraft::{BasicNode, ChangeMembers};

use crate::raft::network::Network;
use crate::raft::{GroupId, HostedGroup, NodeId};

/// How often a data group's leader compares its voters with group 0's.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);
/// How long a new voter may take to catch up as a learner.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a read of group 0's commit index from its leader may take.
const READ_INDEX_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a data group may stay unlike group 0 (or without a leader)
/// before this node says so in its log, and how often it says it again.
const STALL_REPORT_EVERY: Duration = Duration::from_secs(10);

/// Runs as long as this node hosts `group`: whenever it leads the group,
/// keeps the group's voters equal to what group 0 (`meta`) says.
pub async fn follow(group: GroupId, meta: HostedGroup, data: HostedGroup, node_id: NodeId, network: Network) {
    let mut stall = Stall::default();
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        let outcome = follow_once(group, &meta, &data, node_id, &network).await;
        stall.note(group, outcome);
    }
}

/// One look at the group: `Err` says why it is not yet as group 0 says
/// while nothing here can change that (or why this node could not).
async fn follow_once(
    group: GroupId,
    meta: &HostedGroup,
    data: &HostedGroup,
    node_id: NodeId,
    network: &Network,
) -> Result<(), String> {
    let leader = data.raft.metrics().borrow().current_leader;
    match leader {
        None => return Err(format!("the group has no leader ({})", data.describe())),
        Some(leader) if leader != node_id => return Ok(()),
        Some(_) => {}
    }
    if !differs(meta, data) {
        return Ok(());
    }
    // Not while the group is handed to another node: a change begun now
    // could be cut off between its two steps.
    if data.is_handing_off() {
        return Err("its leadership is being handed to another node".into());
    }
    // This node's copy of group 0 may lag behind (a node that has just
    // joined, say): act only on a copy as new as group 0's commit, or a
    // lagging leader would undo a change made by a leader before it.
    catch_up_with_group_0(meta, node_id, network).await.map_err(|e| format!("group 0 is not readable: {e}"))?;
    let (Some(desired), current) = (meta.data_group_voters(), data.all_voters()) else {
        return Err("group 0's own voters are changing".into());
    };
    if desired.is_empty() || !differs(meta, data) {
        return Ok(());
    }
    let joint = data.in_joint_config();
    tracing::info!(group, ?current, joint, ?desired, "changing a data group's voters to follow group 0");
    change(data, &current, joint, &desired).await.map_err(|e| format!("changing its voters to {desired:?}: {e}"))
}

/// Since when a group has not been as group 0 says, and when that was last
/// logged: a `remove-node` that waits on a group should find the reason in
/// the log of the node that leads it (or of every node, when none does).
#[derive(Default)]
struct Stall {
    since: Option<tokio::time::Instant>,
    reported: Option<tokio::time::Instant>,
}

impl Stall {
    fn note(&mut self, group: GroupId, outcome: Result<(), String>) {
        let now = tokio::time::Instant::now();
        let Err(reason) = outcome else {
            *self = Self::default();
            return;
        };
        let since = *self.since.get_or_insert(now);
        let due = self.reported.map_or(since, |at| at) + STALL_REPORT_EVERY;
        if now >= due {
            let secs = now.duration_since(since).as_secs();
            tracing::warn!(group, secs, %reason, "a data group has not followed group 0's voters");
            self.reported = Some(now);
        }
    }
}

/// How long group 0 may stay between two sets of voters before its leader
/// finishes the change: one under way makes both steps within moments.
const LEFT_CHANGE_AFTER: Duration = Duration::from_secs(5);

/// Runs as long as the node: on group 0's leader, finishes a change of
/// group 0's voters left between openraft's two steps. openraft's leader
/// makes both in one call, the second in the caller's future, and nothing
/// finishes a change whose leader died (or whose call was dropped) between
/// them; meanwhile no data group follows group 0
/// (`HostedGroup::data_group_voters`), so adding or removing a node waits on
/// them. The change's second half is where it was going.
pub async fn finish_left_change(meta: HostedGroup, node_id: NodeId) {
    let mut joint_since = None;
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        let leads = meta.raft.metrics().borrow().current_leader == Some(node_id);
        let Some(voters) = meta.joint_target().filter(|_| leads) else {
            joint_since = None;
            continue;
        };
        let since = *joint_since.get_or_insert_with(tokio::time::Instant::now);
        if since.elapsed() < LEFT_CHANGE_AFTER {
            continue;
        }
        tracing::info!(?voters, "finishing a change of group 0's voters left between its two steps");
        if let Err(e) = meta.raft.change_membership(ChangeMembers::ReplaceAllVoters(voters), false).await {
            tracing::warn!(error = %e, "finishing a change of group 0's voters failed; retrying");
        }
        joint_since = None;
    }
}

/// Whether the data group's members differ from what group 0 says (while
/// group 0's own are settled). A data group between two sets of voters
/// differs too: only this task changes them here, and it awaits each change
/// whole, so such a group was left so by a leader that lost its place
/// between the two steps (to a handoff, a crash), and openraft's next leader
/// does not finish the change by itself.
fn differs(meta: &HostedGroup, data: &HostedGroup) -> bool {
    match meta.data_group_voters() {
        Some(desired) => data.in_joint_config() || desired != data.all_voters() || !data.learners().is_empty(),
        None => false,
    }
}

/// Adds the missing voters as learners (waiting until they caught up), then
/// replaces the voters (also to finish a change left `joint`, whose
/// `current` voters are those of both halves), then drops learners that are
/// not wanted.
async fn change(
    data: &HostedGroup,
    current: &BTreeMap<NodeId, String>,
    joint: bool,
    desired: &BTreeMap<NodeId, String>,
) -> Result<(), String> {
    for (id, addr) in desired.iter().filter(|(id, _)| !current.contains_key(id)) {
        let learner = data.raft.add_learner(*id, BasicNode::new(addr), true);
        tokio::time::timeout(CATCH_UP_TIMEOUT, learner)
            .await
            .map_err(|_| format!("node {id} did not catch up within {CATCH_UP_TIMEOUT:?}"))?
            .map_err(|e| format!("adding node {id} as a learner: {e}"))?;
    }
    if joint || current.keys().ne(desired.keys()) {
        let voters: BTreeSet<NodeId> = desired.keys().copied().collect();
        data.raft
            .change_membership(ChangeMembers::ReplaceAllVoters(voters), false)
            .await
            .map_err(|e| format!("replacing the voters: {e}"))?;
    }
    let unwanted: BTreeSet<NodeId> = data.learners().into_iter().filter(|id| !desired.contains_key(id)).collect();
    if !unwanted.is_empty() {
        data.raft
            .change_membership(ChangeMembers::RemoveNodes(unwanted), false)
            .await
            .map_err(|e| format!("removing learners: {e}"))?;
    }
    Ok(())
}

/// Waits until this node has applied everything group 0 had committed when
/// asked (a read index: from this node's own Raft when it leads group 0,
/// else from the leader's status).
async fn catch_up_with_group_0(meta: &HostedGroup, node_id: NodeId, network: &Network) -> Result<(), String> {
    let leader = meta.raft.metrics().borrow().current_leader;
    let committed = match leader {
        None => return Err("group 0 has no leader".into()),
        Some(leader) if leader == node_id => {
            let read = tokio::time::timeout(READ_INDEX_TIMEOUT, meta.raft.ensure_linearizable());
            return read
                .await
                .map_err(|_| "no read index within 2s".to_owned())?
                .map(|_| ())
                .map_err(|e| e.to_string());
        }
        Some(leader) => {
            let addr = meta.voters().and_then(|voters| voters.get(&leader).cloned()).ok_or("leader address unknown")?;
            leader_committed_index(network, &addr).await?
        }
    };
    meta.raft
        .wait(Some(READ_INDEX_TIMEOUT))
        .applied_index_at_least(Some(committed), "group 0 caught up")
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Group 0's commit index as its leader at `addr` reports it.
async fn leader_committed_index(network: &Network, addr: &str) -> Result<u64, String> {
    let ask = async {
        let mut client = ClusterClient::new(network.channel(addr).map_err(|e| e.to_string())?);
        let status = client.node_status(api::NodeStatusRequest {}).await.map_err(|e| e.message().to_owned())?;
        let status = status.into_inner();
        if status.role != "leader" {
            return Err(format!("node {} no longer leads group 0", status.node_id));
        }
        Ok(status.committed_index)
    };
    tokio::time::timeout(READ_INDEX_TIMEOUT, ask).await.map_err(|_| "no answer within 2s".to_owned())?
}
