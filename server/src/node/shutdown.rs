//! A graceful stop: what a node does between SIGTERM and closing its
//! databases, so a rolling restart costs clients a pause rather than errors.
//!
//! 1. It says it is stopping: health turns NOT_SERVING (load balancers and
//!    probes move on), `NodeStatus.stopping` keeps the balancer from
//!    handing it leaders, it refuses leaderships and new consumer streams,
//!    and the streams it serves end with UNAVAILABLE so their consumers
//!    reconnect elsewhere.
//! 2. It hands every group it leads, group 0 included, to the voter that
//!    has the most of that group's log ([`hand_over`]), and stops calling
//!    elections. A group nobody can take (one node, or no voter caught up)
//!    is left; its followers elect a leader once this node is gone.
//! 3. Only then does it stop taking calls, and it gives those in flight a
//!    few seconds to finish (`Node::shutdown`).
//!
//! Writes arriving meanwhile are turned away as during any handoff, with
//! UNAVAILABLE, and the client retries them at the next leader.

use std::time::Duration;

use futures::future::join_all;

use crate::grpc::handoff::successor;
use crate::grpc::GroupRoutes;
use crate::raft::{Groups, NodeId};

/// How long handing every led group over may take in all: one leader
/// lease and an election, with room to spare.
pub const HAND_OVER_TIMEOUT: Duration = Duration::from_secs(6);
/// How long calls in flight get to finish once the node stops taking new ones.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Hands each group `me` leads to its best successor, all at once, and
/// stops this node's elections in every group; returns once each handoff
/// ended or `HAND_OVER_TIMEOUT` passed.
pub async fn hand_over(routes: &GroupRoutes, groups: &Groups, me: NodeId) {
    let mut handoffs = Vec::new();
    for (group, hosted) in groups.all() {
        // A follower of a stopping node must not campaign in its last seconds.
        hosted.raft.runtime_config().elect(false);
        let metrics = hosted.raft.metrics().borrow().clone();
        if metrics.current_leader != Some(me) {
            continue;
        }
        match successor(&metrics, me) {
            Some(to) => handoffs.push((group, to)),
            None => tracing::info!(group, "no voter to hand the group to; its followers elect once this node stops"),
        }
    }
    let handed = join_all(handoffs.iter().map(|(group, to)| routes.transfer_here(*group, *to)));
    let Ok(outcomes) = tokio::time::timeout(HAND_OVER_TIMEOUT, handed).await else {
        tracing::warn!(timeout = ?HAND_OVER_TIMEOUT, "handing leadership over took too long; stopping anyway");
        return;
    };
    for ((group, to), outcome) in handoffs.into_iter().zip(outcomes) {
        match outcome {
            Ok(pb) => tracing::info!(group, to, leader = pb.leader_id, "handed the group over before stopping"),
            Err(e) => tracing::warn!(group, to, error = %e, "could not hand the group over; its followers elect"),
        }
    }
}
