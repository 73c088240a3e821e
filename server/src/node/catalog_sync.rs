//! Data groups follow group 0's catalog. Group 0 creates and deletes topics
//! and subscriptions; each data group must hold the topics with a partition
//! in it and the subscriptions on them, with ack floors of its own. The
//! leader of each data group compares its group with its replica of group 0
//! and proposes the difference (`domain::sync::sync_for`) as a `SyncGroup`,
//! a compare-and-set on the group-0 index the group last synced to: a second
//! leader, a repeated proposal or a stale copy changes nothing, and whichever
//! node leads next finishes what a crash left undone.

use std::time::Duration;

use crate::domain::sync::sync_for;
use crate::domain::{Command, Rejection};
use crate::grpc::{ApiError, Proposer};
use crate::raft::{GroupId, HostedGroup, NodeId};

/// How long a change of group 0's catalog waits for others to join it, so a
/// burst of admin calls is synced in one entry.
const DEBOUNCE: Duration = Duration::from_millis(5);
/// How often the leader looks even when group 0 did not change: after it
/// gained the leadership, or a sync that failed.
const LOOK_EVERY: Duration = Duration::from_millis(500);
/// How long a stale sync waits for the entries it was behind to apply.
const STALE_RETRY: Duration = Duration::from_millis(20);
/// How long a sync may wait to commit.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs as long as this node hosts `group`: whenever it leads the group,
/// keeps the group's topics and subscriptions up with group 0's (`meta`).
pub async fn follow(group: GroupId, meta: HostedGroup, data: HostedGroup, node_id: NodeId) {
    let proposer = Proposer::new(&data, node_id, COMMIT_TIMEOUT);
    let mut changes = meta.state.watch_catalog();
    loop {
        match sync_once(&meta, &proposer).await {
            // More may have changed meanwhile: look again at once.
            Ok(true) => continue,
            Ok(false) => {}
            Err(ApiError::Rejected(Rejection::StaleSync { .. })) => {
                tokio::time::sleep(STALE_RETRY).await;
                continue;
            }
            Err(e) => tracing::debug!(group, error = %e, "syncing a data group with group 0 failed; retrying"),
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                tokio::time::sleep(DEBOUNCE).await;
                changes.mark_unchanged();
            }
            () = tokio::time::sleep(LOOK_EVERY) => {}
        }
    }
}

/// Proposes what the data group lacks of group 0's catalog, if this node
/// leads it and its replica of group 0 is newer than what the group synced
/// to (an older one would take back newer changes). Whether it proposed.
async fn sync_once(meta: &HostedGroup, proposer: &Proposer) -> Result<bool, ApiError> {
    if proposer.leader_term().is_err() {
        return Ok(false);
    }
    let sync = {
        let meta_catalog = meta.state.catalog();
        // Read under the catalog's lock, which applying holds while it
        // moves both: the index the catalog is at.
        let meta_index = meta.state.last_applied().map_or(0, |id| id.index);
        let group = proposer.state().catalog();
        if meta_index <= group.meta_index {
            return Ok(false);
        }
        sync_for(&meta_catalog, meta_index, &group)
    };
    let Some(sync) = sync else { return Ok(false) };
    tracing::debug!(
        group = proposer.state().catalog().group,
        meta_index = sync.meta_index,
        topics = sync.install_topics.len(),
        subscriptions = sync.install_subscriptions.len(),
        "syncing a data group with group 0"
    );
    proposer.propose(Command::SyncGroup(sync)).await?;
    Ok(true)
}
