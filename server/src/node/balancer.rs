//! Spreading the data groups' leaders over the nodes. Each node leads
//! about G/N data groups, since a group's writes and deliveries run on its
//! leader. Leaders start spread (each group's preferred node campaigns
//! first, `data_groups.rs`), but a node that dies hands its groups to
//! whoever wins their elections, and a node that returns leads none. So
//! group 0's leader looks every few seconds and moves leaders, a few at a
//! time, from the nodes leading the most groups to those leading the
//! fewest, through the handoff (`grpc/handoff.rs`).
//!
//! Balance is by count of groups led, not by load; group 0 is not counted
//! and never moved.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use ferry_proto::v1 as api;
use ferry_proto::v1::cluster_client::ClusterClient;
use futures::future::join_all;

use crate::grpc::GroupRoutes;
use crate::raft::network::Network;
use crate::raft::{GroupId, Groups, NodeId, META_GROUP};

/// How often group 0's leader looks at the spread.
const ROUND_EVERY: Duration = Duration::from_secs(5);
/// How long a node may take to answer whether it is up.
const STATUS_TIMEOUT: Duration = Duration::from_secs(1);
/// How far behind a group's applied entries (as group 0's leader has them)
/// a node may be and still take leaders: a node back from a stop catches
/// up first.
const CAUGHT_UP_ENTRIES: u64 = 1_000;

/// The voter that campaigns first for `group` when the cluster forms: the
/// voters (in id order) take turns, so leaders start spread.
pub fn preferred_leader(group: GroupId, voters: &BTreeSet<NodeId>) -> Option<NodeId> {
    voters.iter().nth(group as usize % voters.len().max(1)).copied()
}

/// The moves (group, new leader) that bring the spread of `leaders` over
/// the `live` nodes closer to even: while the most loaded live node leads
/// at least two groups more than the least loaded, one of its groups moves
/// to the least loaded, preferring a group whose preferred node that is,
/// then the lowest id. At most `budget` moves; each group moves once.
/// Groups led by a node that is not live are left to their elections.
pub fn plan_moves(
    leaders: &BTreeMap<GroupId, NodeId>,
    live: &BTreeSet<NodeId>,
    preferred: impl Fn(GroupId) -> Option<NodeId>,
    budget: usize,
) -> Vec<(GroupId, NodeId)> {
    // What each live node leads and may still hand over this round, and
    // how many it leads counting the moves planned.
    let mut movable: BTreeMap<NodeId, BTreeSet<GroupId>> = live.iter().map(|n| (*n, BTreeSet::new())).collect();
    for (group, leader) in leaders {
        if let Some(groups) = movable.get_mut(leader) {
            groups.insert(*group);
        }
    }
    let mut count: BTreeMap<NodeId, usize> = movable.iter().map(|(n, groups)| (*n, groups.len())).collect();
    let mut moves = Vec::new();
    while moves.len() < budget {
        // Ties go to the lowest id, so a plan is the same every time.
        let most = count.iter().rev().max_by_key(|(_, led)| **led).map(|(n, led)| (*n, *led));
        let least = count.iter().min_by_key(|(_, led)| **led).map(|(n, led)| (*n, *led));
        let (Some((from, most)), Some((to, least))) = (most, least) else { break };
        if most < least + 2 {
            break;
        }
        let candidates = movable.get_mut(&from).expect("every live node is counted");
        let Some(group) =
            candidates.iter().copied().find(|g| preferred(*g) == Some(to)).or_else(|| candidates.first().copied())
        else {
            break;
        };
        candidates.remove(&group);
        *count.get_mut(&from).expect("counted") -= 1;
        *count.get_mut(&to).expect("counted") += 1;
        moves.push((group, to));
    }
    moves
}

/// Runs on every node as long as it runs; acts only while this node leads
/// group 0.
pub async fn run(routes: Arc<GroupRoutes>, groups: Arc<Groups>, network: Network, me: NodeId) {
    loop {
        tokio::time::sleep(ROUND_EVERY).await;
        if let Err(reason) = round(&routes, &groups, &network, me).await {
            tracing::debug!(reason, "no leader balancing this round");
        }
    }
}

/// One look at the spread, and the moves it calls for.
async fn round(routes: &GroupRoutes, groups: &Groups, network: &Network, me: NodeId) -> Result<(), String> {
    let meta = groups.get(META_GROUP).ok_or("group 0 is not hosted")?;
    if meta.raft.metrics().borrow().current_leader != Some(me) {
        return Err("this node does not lead group 0".into());
    }
    let data = groups.data();
    if data.is_empty() {
        return Err("no data groups".into());
    }
    let voters = meta.data_group_voters().ok_or("group 0's membership is changing")?;
    // What this node, leading group 0, has applied of each data group.
    let applied: BTreeMap<GroupId, u64> = data
        .iter()
        .map(|(group, hosted)| (*group, hosted.raft.metrics().borrow().last_applied.map_or(0, |l| l.index)))
        .collect();
    let leaders: BTreeMap<GroupId, NodeId> = data
        .iter()
        .filter_map(|(group, hosted)| Some((*group, hosted.raft.metrics().borrow().current_leader?)))
        .collect();
    let applied = &applied;
    let answers = join_all(voters.iter().map(|(id, addr)| async move {
        let up = *id == me || caught_up(network, addr, applied).await;
        (*id, up)
    }))
    .await;
    let live: BTreeSet<NodeId> = answers.into_iter().filter(|(_, up)| *up).map(|(id, _)| id).collect();
    let ids: BTreeSet<NodeId> = voters.keys().copied().collect();
    let budget = (data.len() / (2 * ids.len().max(1))).max(1);
    let moves = plan_moves(&leaders, &live, |g| preferred_leader(g, &ids), budget);
    let done = join_all(moves.iter().map(|(group, to)| routes.transfer_leader(*group, *to))).await;
    for ((group, to), outcome) in moves.into_iter().zip(done) {
        match outcome {
            Ok(leader) => tracing::info!(group, to, leader, "moved a data group's leader to even the spread"),
            Err(e) => {
                tracing::info!(group, to, error = %e, "moving a data group's leader failed; the next round retries")
            }
        }
    }
    Ok(())
}

/// Whether the node at `addr` answers, is not shutting down, and has
/// applied every data group to within `CAUGHT_UP_ENTRIES` of what this
/// node has.
async fn caught_up(network: &Network, addr: &str, applied: &BTreeMap<GroupId, u64>) -> bool {
    let status = async {
        let mut client = ClusterClient::new(network.channel(addr).ok()?);
        client.node_status(api::NodeStatusRequest {}).await.ok().map(tonic::Response::into_inner)
    };
    let Ok(Some(status)) = tokio::time::timeout(STATUS_TIMEOUT, status).await else { return false };
    if status.stopping {
        // It is handing its groups over on its way down.
        return false;
    }
    let theirs: BTreeMap<GroupId, u64> = status.groups.iter().map(|g| (g.group, g.applied_index)).collect();
    applied.iter().all(|(group, mine)| theirs.get(group).is_some_and(|t| t + CAUGHT_UP_ENTRIES >= *mine))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaders(pairs: &[(GroupId, NodeId)]) -> BTreeMap<GroupId, NodeId> {
        pairs.iter().copied().collect()
    }

    fn nodes(ids: &[NodeId]) -> BTreeSet<NodeId> {
        ids.iter().copied().collect()
    }

    /// Groups led per node after the moves.
    fn spread(leaders: &BTreeMap<GroupId, NodeId>, moves: &[(GroupId, NodeId)], live: &BTreeSet<NodeId>) -> Vec<usize> {
        let mut after = leaders.clone();
        after.extend(moves.iter().copied());
        live.iter().map(|n| after.values().filter(|l| *l == n).count()).collect()
    }

    #[test]
    fn preferred_leaders_take_turns_over_the_voters() {
        let voters = nodes(&[1, 2, 3]);
        let preferred: Vec<_> = (1..=6).map(|g| preferred_leader(g, &voters)).collect();
        assert_eq!(preferred, [2, 3, 1, 2, 3, 1].map(Some));
        assert_eq!(preferred_leader(1, &BTreeSet::new()), None);
    }

    #[test]
    fn an_even_or_nearly_even_spread_moves_nothing() {
        let live = nodes(&[1, 2, 3]);
        let even = leaders(&[(1, 1), (2, 2), (3, 3), (4, 1), (5, 2), (6, 3)]);
        assert_eq!(plan_moves(&even, &live, |_| None, 3), []);
        let off_by_one = leaders(&[(1, 1), (2, 2), (3, 3), (4, 1)]);
        assert_eq!(plan_moves(&off_by_one, &live, |_| None, 3), []);
    }

    #[test]
    fn a_returning_node_gets_groups_back_within_the_budget() {
        // Node 3 restarted: nodes 1 and 2 lead all six groups.
        let live = nodes(&[1, 2, 3]);
        let before = leaders(&[(1, 1), (2, 2), (3, 1), (4, 2), (5, 1), (6, 2)]);
        let voters = live.clone();
        let preferred = |g| preferred_leader(g, &voters);
        let moves = plan_moves(&before, &live, preferred, 1);
        assert_eq!(moves.len(), 1, "the budget bounds the moves of a round");
        let moves = plan_moves(&before, &live, preferred, 5);
        assert_eq!(spread(&before, &moves, &live), [2, 2, 2]);
        // The groups that prefer node 3 (2 and 5) go there first.
        assert!(moves.iter().all(|(g, to)| *to == 3 && preferred(*g) == Some(3)), "{moves:?}");
    }

    #[test]
    fn groups_of_a_node_that_is_down_are_left_and_the_rest_evened() {
        // Node 3 is down and still named leader of group 3 by stale views.
        let live = nodes(&[1, 2]);
        let before = leaders(&[(1, 1), (2, 1), (3, 3), (4, 1), (5, 1), (6, 2)]);
        let moves = plan_moves(&before, &live, |_| None, 5);
        assert_eq!(moves, [(1, 2)]);
        assert_eq!(spread(&before, &moves, &live), [3, 2]);
    }

    #[test]
    fn thirty_groups_on_three_nodes_even_out_to_ten_each() {
        let live = nodes(&[1, 2, 3]);
        let mut current: BTreeMap<GroupId, NodeId> = (1..=30).map(|g| (g, if g % 2 == 0 { 1 } else { 2 })).collect();
        let mut rounds = 0;
        loop {
            let moves = plan_moves(&current, &live, |g| preferred_leader(g, &live), 5);
            if moves.is_empty() {
                break;
            }
            let moved: BTreeSet<GroupId> = moves.iter().map(|(g, _)| *g).collect();
            assert_eq!(moved.len(), moves.len(), "a group moves once per round");
            current.extend(moves);
            rounds += 1;
        }
        assert_eq!(spread(&current, &[], &live), [10, 10, 10]);
        assert_eq!(rounds, 2, "ten moves at five a round");
    }
}
