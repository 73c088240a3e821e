//! Handing a data group's leadership to another voter, the balancer's move.
//!
//! openraft 0.9 has no leadership transfer (0.10 has), so the handoff is
//! built from what 0.9 offers. Two facts shape it: a leader ignores
//! `trigger().elect()`, and a voter refuses its vote while its leader lease
//! (`election_timeout_max` since the leader last reached it) runs. So the
//! leader L of group g, asked to hand g to T:
//!
//! 1. checks that T is a voter of g and nearly caught up (or gets there
//!    within half a second);
//! 2. stops taking writes to g (`HostedGroup::handing_off`; any entry would
//!    renew the followers' lease) and waits briefly for T to match its log;
//! 3. stops its heartbeats to g and tells T to campaign (`Groups.Campaign`);
//! 4. T waits out the lease, then calls elections until it leads; L waits
//!    until another node leads, and whatever happened, heartbeats and
//!    takes writes again.
//!
//! Nothing depends on the handoff succeeding: at worst another voter wins
//! or L stays leader, and the balancer tries again later. Its cost is about
//! one leader lease (2 s) without writes in that group; callers' writes wait
//! and are retried by the forwarder meanwhile.

use std::sync::atomic::Ordering;
use std::time::Duration;

use openraft::{BasicNode, RaftMetrics};
use tokio::time::Instant;

use super::status::ApiError;
use crate::raft::{GroupId, HostedGroup, NodeId};

/// How far behind the leader's log the target may be (waited for up to
/// `MATCH_TIMEOUT` while writes go on).
const HANDOFF_LAG_MAX: u64 = 64;
/// How long the leader waits for the target to match its log before it
/// stops heartbeating (a target short of the last entries loses the vote).
const MATCH_TIMEOUT: Duration = Duration::from_millis(500);
/// How long the leader waits for another node to lead.
const TAKEOVER_TIMEOUT: Duration = Duration::from_millis(4_500);
/// How much later than the lease the target first campaigns.
const CAMPAIGN_MARGIN: Duration = Duration::from_millis(100);
/// How often the target calls an election again while it does not lead.
const CAMPAIGN_EVERY: Duration = Duration::from_millis(150);
/// How long the target keeps campaigning: it stops before the leader gives
/// up waiting (`TAKEOVER_TIMEOUT` after asking), so it cannot unseat a
/// leader that took writes back.
const CAMPAIGN_FOR: Duration = Duration::from_secs(2);

/// On the leader of `group`: hands its leadership to voter `to`, asking
/// `to` to campaign through `campaign`. Answers who leads once another node
/// does, UNAVAILABLE if none took over in time.
pub async fn transfer<F, Fut>(
    hosted: &HostedGroup,
    group: GroupId,
    me: NodeId,
    to: NodeId,
    campaign: F,
) -> Result<NodeId, ApiError>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), ApiError>>,
{
    let metrics = hosted.raft.metrics().borrow().clone();
    if metrics.current_leader != Some(me) {
        return Err(ApiError::NotLeader { reason: format!("node {me} does not lead group {group}"), leader: None });
    }
    if to == me {
        return Ok(me);
    }
    let membership = metrics.membership_config.membership();
    if membership.get_joint_config().len() != 1 {
        // Its leader finishes the change first (`node::membership`): moved
        // now, the group would wait for its next leader to finish it.
        return Err(ApiError::Unavailable(format!("group {group} is changing its voters; moved once it has")));
    }
    let addr = match membership.get_node(&to) {
        Some(node) if membership.voter_ids().any(|id| id == to) => node.addr.clone(),
        _ => return Err(ApiError::invalid("node_id", format!("node {to} is not a voter of group {group}"))),
    };
    // Under load a follower is often a few round trips behind; writes go on
    // while it closes the gap, and only a target still far behind after
    // that is refused (stopping writes for a long catch-up would cost more).
    let near = |m: &RaftMetrics<NodeId, BasicNode>| lag(m, to) <= HANDOFF_LAG_MAX;
    if !near(&metrics) {
        let near_or_lost = |m: &RaftMetrics<NodeId, BasicNode>| near(m) || m.current_leader != Some(me);
        if hosted.raft.wait(Some(MATCH_TIMEOUT)).metrics(near_or_lost, "target nearly caught up").await.is_err() {
            return Err(ApiError::Unavailable(format!(
                "node {to} is more than {HANDOFF_LAG_MAX} entries behind in group {group}; it is caught up first"
            )));
        }
    }
    let _resume = Handing::start(hosted, group)?;
    // Proposals already handed to Raft still replicate; let them, and give
    // the target its last entries, or it could not win the vote.
    let _ = hosted.raft.wait(Some(MATCH_TIMEOUT)).metrics(|m| lag(m, to) == 0, "target matches").await;
    // Leadership may have moved while it waited: only a leader hands over.
    if hosted.raft.metrics().borrow().current_leader != Some(me) {
        return Err(ApiError::NotLeader { reason: format!("node {me} no longer leads group {group}"), leader: None });
    }
    hosted.raft.runtime_config().heartbeat(false);
    campaign(addr).await?;
    let taken_over = |m: &RaftMetrics<NodeId, BasicNode>| m.current_leader.is_some_and(|leader| leader != me);
    let moved = hosted.raft.wait(Some(TAKEOVER_TIMEOUT)).metrics(taken_over, "another node leads").await;
    match moved {
        Ok(metrics) => {
            let leader = metrics.current_leader.expect("waited for a leader");
            tracing::info!(group, from = me, to, leader, "handed the group's leadership over");
            Ok(leader)
        }
        Err(_) => Err(ApiError::Unavailable(format!(
            "node {to} did not take over group {group} within {TAKEOVER_TIMEOUT:?}; node {me} takes writes again while it leads"
        ))),
    }
}

/// On the handoff's target: campaigns for `group` once the old leader's
/// lease has run out on every voter, until it or another new leader leads,
/// or it gives up. Returns at once; the campaign runs on its own.
pub fn campaign(hosted: HostedGroup, group: GroupId) {
    let from = hosted.raft.metrics().borrow().current_leader;
    tokio::spawn(async move {
        let lease = Duration::from_millis(hosted.raft.config().election_timeout_max);
        tokio::time::sleep(lease + CAMPAIGN_MARGIN).await;
        let give_up = Instant::now() + CAMPAIGN_FOR;
        while Instant::now() < give_up {
            let leader = hosted.raft.metrics().borrow().current_leader;
            if leader.is_some() && leader != from {
                return;
            }
            if let Err(e) = hosted.raft.trigger().elect().await {
                tracing::warn!(group, error = %e, "campaigning for a handed-over group failed");
                return;
            }
            tokio::time::sleep(CAMPAIGN_EVERY).await;
        }
        tracing::info!(group, "a handed-over group's campaign did not win; its leader stays or another wins");
    });
}

/// Entries of the leader's log that `to` has not acknowledged (the
/// leader's view; `u64::MAX` when it has no record of `to`).
fn lag(metrics: &RaftMetrics<NodeId, BasicNode>, to: NodeId) -> u64 {
    let last = metrics.last_log_index.unwrap_or(0);
    let matched = metrics.replication.as_ref().and_then(|r| r.get(&to).cloned());
    match matched {
        Some(matched) => last.saturating_sub(matched.map_or(0, |m| m.index)),
        None => u64::MAX,
    }
}

/// The group's handoff under way on this node: dropped (on success,
/// failure or cancellation alike), the leader heartbeats and takes writes
/// again.
struct Handing<'a> {
    hosted: &'a HostedGroup,
}

impl<'a> Handing<'a> {
    fn start(hosted: &'a HostedGroup, group: GroupId) -> Result<Self, ApiError> {
        if hosted.handing_off.swap(true, Ordering::AcqRel) {
            return Err(ApiError::Unavailable(format!("group {group}'s leadership is already being handed over")));
        }
        Ok(Self { hosted })
    }
}

impl Drop for Handing<'_> {
    fn drop(&mut self) {
        self.hosted.raft.runtime_config().heartbeat(true);
        self.hosted.handing_off.store(false, Ordering::Release);
    }
}

/// The voter other than `me` that has acknowledged the most of the group's
/// log, as its leader `me` sees it (ties: the lowest id).
pub fn successor(metrics: &RaftMetrics<NodeId, BasicNode>, me: NodeId) -> Option<NodeId> {
    let replication = metrics.replication.as_ref()?;
    let voters = metrics.membership_config.membership().voter_ids();
    let matched = |id: &NodeId| replication.get(id).map(|m| m.map_or(0, |log| log.index));
    voters
        .filter(|id| *id != me)
        .filter_map(|id| Some((matched(&id)?, id)))
        .max_by_key(|(index, id)| (*index, std::cmp::Reverse(*id)))
        .map(|(_, id)| id)
}
