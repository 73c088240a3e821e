//! `Backlog`: what a subscription still has to work through, computed from
//! the replicated ack state plus the leader's leases.

use crate::domain::{StateRead, SubscriptionState};
use crate::raft::AppliedState;
use crate::storage::StorageError;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Not yet acked, leased ones included.
    pub unacked_messages: u64,
    pub unacked_bytes: u64,
    /// Leased to consumers right now (by this leader).
    pub leased_messages: u64,
    /// Publish time of the oldest unacked message, if any.
    pub oldest_unacked_publish_time_us: Option<i64>,
    /// Each partition held here: its ack floor and its end.
    pub partitions: Vec<PartitionProgress>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionProgress {
    pub partition: u32,
    /// Every offset below it is acked (or trimmed).
    pub ack_floor: u64,
    pub end_offset: u64,
}

/// The backlog of `subscription`: per partition, everything from the ack
/// floor to the end, less what is acked above the floor. The oldest unacked
/// message is the one at a floor, so this reads one record per partition.
pub fn backlog(state: &AppliedState, subscription: &SubscriptionState, leased: usize) -> Result<Backlog, StorageError> {
    let (partitions, held) = {
        let catalog = state.catalog();
        match catalog.topic_by_id(subscription.topic_id) {
            Some(topic) => {
                let held = (0..topic.partitions.len()).map(|p| catalog.owns(topic, p as u32)).collect::<Vec<_>>();
                (topic.partitions.clone(), held)
            }
            None => return Ok(Backlog::default()),
        }
    };
    let db = state.db();
    let mut backlog = Backlog { leased_messages: leased as u64, ..Backlog::default() };
    for (p, (ack, partition)) in subscription.acks.iter().zip(&partitions).enumerate() {
        if held[p] {
            let progress =
                PartitionProgress { partition: p as u32, ack_floor: ack.floor, end_offset: partition.next_offset };
            backlog.partitions.push(progress);
        }
        if ack.floor >= partition.next_offset {
            continue;
        }
        backlog.unacked_messages += partition.next_offset - ack.floor - ack.acked_above;
        let Some(extent) = db.message_extent(subscription.topic_id, p as u32, ack.floor)? else { continue };
        backlog.unacked_bytes += (partition.total_bytes - extent.bytes_before).saturating_sub(ack.acked_above_bytes);
        let oldest = backlog.oldest_unacked_publish_time_us.get_or_insert(extent.publish_time_us);
        *oldest = (*oldest).min(extent.publish_time_us);
    }
    Ok(backlog)
}
