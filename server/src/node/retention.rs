//! Retention: the leader of each group periodically deletes what the topics'
//! partitions in the group no longer keep — messages older than the
//! retention period, the oldest bytes over the size limit, and messages
//! every subscription has acked and no bookmark may replay — by proposing
//! `Trim`s in that group.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::domain::{self, BookmarkState, Command, Trim};
use crate::grpc::{ApiError, GroupRoutes, Proposer};

/// How often the leader looks for messages to delete (on its clock).
pub const CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// Runs until the node stops, over every group this node leads.
pub async fn run(routes: Arc<GroupRoutes>, clock: Arc<dyn Clock>) {
    loop {
        clock.sleep_until(clock.monotonic() + CHECK_INTERVAL).await;
        // Read once a pass, for every group: they are group 0's.
        let now_us = clock.wall_us();
        let bookmarks = routes.bookmarks(now_us);
        for group in routes.hosted() {
            let Ok(local) = routes.local(group) else { continue };
            if local.proposer.ensure_leader().is_err() {
                continue;
            }
            if let Err(e) = trim_once(&local.proposer, now_us, &bookmarks).await {
                tracing::warn!(group, error = %e, "retention pass failed; retrying later");
            }
        }
    }
}

/// One partition's retention inputs, copied out of the catalog.
struct PartitionPlan {
    topic_id: u64,
    partition: u32,
    start: u64,
    end: u64,
    start_bytes: u64,
    total_bytes: u64,
    retention_seconds: u64,
    retention_bytes: u64,
    /// The lowest ack floor of the topic's subscriptions and bookmarks, if
    /// it has subscriptions.
    lowest_floor: Option<u64>,
}

/// Proposes a trim for every partition of the proposer's group holding
/// messages it should no longer keep (a partition held elsewhere is empty
/// here); returns how many trims were committed. `bookmarks`: the
/// unexpired ones, whose floors hold back the trim of acked messages.
pub async fn trim_once(proposer: &Proposer, now_wall_us: i64, bookmarks: &[BookmarkState]) -> Result<u64, ApiError> {
    let mut marks_by_topic: HashMap<u64, Vec<&BookmarkState>> = HashMap::new();
    for bookmark in bookmarks {
        marks_by_topic.entry(bookmark.topic_id).or_default().push(bookmark);
    }
    let marks_by_topic = &marks_by_topic;
    let plans: Vec<PartitionPlan> = {
        let catalog = proposer.state().catalog();
        catalog
            .topics_after("")
            .flat_map(|topic| {
                let catalog = &catalog;
                topic.partitions.iter().enumerate().map(move |(p, state)| PartitionPlan {
                    topic_id: topic.id,
                    partition: p as u32,
                    start: state.start_offset,
                    end: state.next_offset,
                    start_bytes: state.start_bytes,
                    total_bytes: state.total_bytes,
                    retention_seconds: topic.config.retention_seconds,
                    retention_bytes: topic.config.retention_bytes,
                    lowest_floor: catalog.subscriptions_of(topic.id).map(|s| s.acks[p].floor).min().map(|floor| {
                        let marks = marks_by_topic.get(&topic.id).map(Vec::as_slice).unwrap_or_default();
                        marks.iter().filter_map(|b| b.floors.get(p).copied()).fold(floor, u64::min)
                    }),
                })
            })
            .filter(|plan| plan.start < plan.end)
            .collect()
    };
    let db = proposer.state().db();
    let mut trims = 0;
    for plan in plans {
        let (topic, partition) = (plan.topic_id, plan.partition);
        let retention_us = i64::try_from(plan.retention_seconds.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
        let cutoff_us = now_wall_us.saturating_sub(retention_us);
        let mut start =
            db.first_offset_where(topic, partition, plan.start, plan.end, |m| m.publish_time_us >= cutoff_us)?;
        if plan.retention_bytes > 0 && plan.total_bytes - plan.start_bytes > plan.retention_bytes {
            let total = plan.total_bytes;
            let by_size = db.first_offset_where(topic, partition, plan.start, plan.end, |m| {
                total - m.bytes_before <= plan.retention_bytes
            })?;
            start = start.max(by_size);
        }
        // What every subscription has acked is not needed by anyone.
        if let Some(floor) = plan.lowest_floor {
            start = start.max(floor);
        }
        if start > plan.start {
            let command = Command::Trim(Trim { topic_id: topic, partition, start_offset: start });
            if let domain::Response::Trimmed { deleted } = proposer.propose(command).await? {
                tracing::info!(topic_id = topic, partition, deleted, start, "retention deleted messages");
                trims += 1;
            }
        }
    }
    Ok(trims)
}
