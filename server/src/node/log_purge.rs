//! Snapshots and purges the Raft log by its size, on every node.
//!
//! openraft counts entries, and an entry may carry one message or a thousand:
//! 10,000 entries could be 10 GB of log on disk, flushed from the memtable to
//! tables and compacted, three writes of every byte where durability needs
//! one (the WAL; the state database holds the data after that). So a snapshot
//! is also taken once [`SNAPSHOT_EVERY_BYTES`] of log came after the last one,
//! and the log is purged right after it down to [`KEPT_BYTES`]: entries are
//! gone before their memtable is flushed (`storage::db` sizes it to outlast
//! several snapshots), and a purged range flushes to nothing.
//!
//! A leader keeps more for a follower that lags ([`LAGGING_KEPT_BYTES`]), so
//! a follower restarting under load catches up from the log rather than with
//! a whole copy of the state; past that it gets a snapshot. It goes on
//! keeping it for a while after it stops leading ([`HOLD_AFTER_LEADING`]): a
//! restarted follower may call an election before it catches up, and the
//! same node usually wins it again.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use openraft::ServerState;

use crate::raft::log_sizes::LogSizes;
use crate::raft::{NodeId, Raft};

/// Log bytes after the last snapshot that make the next one.
pub const SNAPSHOT_EVERY_BYTES: u64 = 16 * 1024 * 1024;
/// Log bytes kept before a snapshot, so a follower a moment behind (a
/// network hiccup, a slow fsync) catches up from the log.
pub const KEPT_BYTES: u64 = 4 * 1024 * 1024;
/// Log bytes a leader keeps before a snapshot for a follower behind it.
pub const LAGGING_KEPT_BYTES: u64 = 512 * 1024 * 1024;
/// How long a node that stopped leading keeps the log for the followers it
/// last saw lagging.
pub const HOLD_AFTER_LEADING: Duration = Duration::from_secs(30);
/// How often the log's size is looked at.
const CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// What the log's size calls for now.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    pub snapshot: bool,
    /// Purge up to and including this index.
    pub purge_upto: Option<u64>,
}

/// The log's state as the plan needs it.
#[derive(Debug, Clone, Copy)]
pub struct LogPosition {
    /// Last index in the latest snapshot.
    pub snapshot: Option<u64>,
    pub purged: Option<u64>,
    /// The lowest index every follower is known to hold, as this node saw it
    /// while leading (lately).
    pub slowest_follower: Option<u64>,
}

/// Decides whether to snapshot and how far to purge.
pub fn plan(sizes: &LogSizes, at: LogPosition) -> Plan {
    let snapshot_due = sizes.bytes_after(at.snapshot.unwrap_or(0)) >= SNAPSHOT_EVERY_BYTES;
    let Some(snapshot) = at.snapshot else {
        return Plan { snapshot: snapshot_due, purge_upto: None };
    };
    let mut upto = sizes.purge_point(snapshot, KEPT_BYTES);
    if let (Some(point), Some(follower)) = (upto, at.slowest_follower) {
        if follower < point {
            // Keep what the follower needs, up to a bound.
            upto = sizes.purge_point(snapshot, LAGGING_KEPT_BYTES).map(|far| far.max(follower));
        }
    }
    let purge_upto = upto.filter(|&point| at.purged.is_none_or(|purged| point > purged));
    Plan { snapshot: snapshot_due, purge_upto }
}

/// Runs until Raft stops.
pub async fn run(raft: Raft, sizes: Arc<LogSizes>) {
    let mut metrics = raft.metrics();
    // The slowest follower last seen while leading, and until when it counts.
    let mut hold: Option<(u64, Instant)> = None;
    loop {
        tokio::time::sleep(CHECK_INTERVAL).await;
        let now = Instant::now();
        let position = {
            let m = metrics.borrow_and_update();
            if m.running_state.is_err() {
                return;
            }
            if m.state == ServerState::Leader {
                hold = slowest_follower(m.id, m.replication.as_ref()).map(|index| (index, now + HOLD_AFTER_LEADING));
            }
            LogPosition {
                snapshot: m.snapshot.map(|id| id.index),
                purged: m.purged.map(|id| id.index),
                slowest_follower: hold.filter(|&(_, until)| now < until).map(|(index, _)| index),
            }
        };
        let plan = plan(&sizes, position);
        // Both are requests: openraft ignores a snapshot while one is being
        // built and purges only what no replication still reads.
        if plan.snapshot && raft.trigger().snapshot().await.is_err() {
            return;
        }
        if let Some(upto) = plan.purge_upto {
            if raft.trigger().purge_log(upto).await.is_err() {
                return;
            }
        }
    }
}

/// The lowest index a follower is known to hold (0 for one not heard from).
fn slowest_follower(
    me: NodeId,
    replication: Option<&std::collections::BTreeMap<NodeId, Option<openraft::LogId<NodeId>>>>,
) -> Option<u64> {
    replication?.iter().filter(|(id, _)| **id != me).map(|(_, matched)| matched.map_or(0, |id| id.index)).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    /// A log of `entries` entries of `each` bytes from index 1.
    fn log(entries: u64, each: u64) -> LogSizes {
        let sizes = LogSizes::default();
        for index in 1..=entries {
            sizes.appended(index, each);
        }
        sizes
    }

    fn at(snapshot: Option<u64>, purged: Option<u64>, slowest_follower: Option<u64>) -> LogPosition {
        LogPosition { snapshot, purged, slowest_follower }
    }

    #[test]
    fn a_snapshot_is_due_once_enough_bytes_follow_the_last_one() {
        assert!(!plan(&log(15, MIB), at(None, None, None)).snapshot);
        assert!(plan(&log(16, MIB), at(None, None, None)).snapshot);
        assert!(!plan(&log(40, MIB), at(Some(30), None, None)).snapshot, "10 MiB since the snapshot");
        assert!(plan(&log(40, MIB), at(Some(20), None, None)).snapshot, "20 MiB since the snapshot");
    }

    #[test]
    fn after_a_snapshot_the_log_is_purged_down_to_the_kept_bytes() {
        let sizes = log(35, 2 * MIB);
        let plan = plan(&sizes, at(Some(30), None, None));
        assert_eq!(plan, Plan { snapshot: false, purge_upto: Some(28) }, "4 MiB kept before index 30: 29 and 30");
    }

    #[test]
    fn nothing_is_purged_twice_or_below_what_was() {
        let sizes = log(40, 2 * MIB);
        assert_eq!(plan(&sizes, at(Some(30), Some(28), None)).purge_upto, None);
        assert_eq!(plan(&sizes, at(Some(30), Some(29), None)).purge_upto, None);
    }

    #[test]
    fn a_leader_keeps_the_log_a_lagging_follower_needs_up_to_a_bound() {
        let sizes = log(400, 2 * MIB);
        // A follower at 300 of a snapshot at 390: the log from 301 stays.
        assert_eq!(plan(&sizes, at(Some(390), None, Some(300))).purge_upto, Some(300));
        // A follower at 10 is past the bound (512 MiB = 256 entries): it gets a snapshot.
        assert_eq!(plan(&sizes, at(Some(390), None, Some(10))).purge_upto, Some(134));
        // A follower ahead of the purge point changes nothing.
        assert_eq!(plan(&sizes, at(Some(390), None, Some(395))).purge_upto, Some(388));
    }

    #[test]
    fn small_entries_never_make_a_purge_by_size() {
        let sizes = log(10_000, 100);
        assert_eq!(plan(&sizes, at(Some(9_000), None, None)), Plan { snapshot: false, purge_upto: None });
    }
}
