//! What a node serves to Prometheus (`--metrics-listen`): its Raft groups,
//! the partitions and subscriptions of the groups it leads, its databases and
//! its process. Rendered from live state on each scrape.
//!
//! Partition and subscription figures come from each group's leader only, so
//! summing a metric over the cluster's nodes counts every partition once.

use std::sync::Arc;

use ferry_metrics::Exposition;

use super::rpc_metrics::RpcMetrics;
use crate::grpc::GroupRoutes;
use crate::raft::{GroupId, Groups, LogDb, NodeId};

/// Everything a scrape reads.
#[derive(Debug, Clone)]
pub struct NodeMetrics {
    pub node_id: NodeId,
    pub groups: Arc<Groups>,
    pub routes: Arc<GroupRoutes>,
    /// The gRPC calls served (`rpc_metrics.rs`).
    pub rpc: Arc<RpcMetrics>,
    /// The raft log, shared by every group: its fsyncs.
    pub log_db: Arc<LogDb>,
}

impl NodeMetrics {
    pub fn render(&self) -> String {
        let mut text = Exposition::default();
        let build = [("version", crate::VERSION), ("commit", crate::GIT_COMMIT)];
        text.gauge("ferry_build_info", "The running build (always 1).", &build, 1.0);
        self.raft(&mut text);
        self.partitions(&mut text);
        self.subscriptions(&mut text);
        self.storage(&mut text);
        self.log_syncs(&mut text);
        self.rpc.render(&mut text);
        process(&mut text);
        text.into_text()
    }

    fn raft(&self, text: &mut Exposition) {
        let all = self.groups.all();
        let metrics: Vec<(String, openraft::RaftMetrics<NodeId, openraft::BasicNode>)> =
            all.iter().map(|(group, hosted)| (group.to_string(), hosted.raft.metrics().borrow().clone())).collect();
        type Read = fn(&openraft::RaftMetrics<NodeId, openraft::BasicNode>, NodeId) -> f64;
        let gauges: [(&str, &str, Read); 5] = [
            ("ferry_raft_term", "The group's current Raft term.", |m, _| m.current_term as f64),
            ("ferry_raft_leader_id", "The node the group's leader is (0: none known).", |m, _| {
                m.current_leader.unwrap_or(0) as f64
            }),
            ("ferry_raft_is_leader", "1 where this node leads the group.", |m, me| {
                f64::from(u8::from(m.current_leader == Some(me)))
            }),
            ("ferry_raft_last_log_index", "Index of the group's last log entry here.", |m, _| {
                m.last_log_index.unwrap_or(0) as f64
            }),
            ("ferry_raft_applied_index", "Index of the last entry applied here.", |m, _| {
                m.last_applied.map_or(0, |l| l.index) as f64
            }),
        ];
        for (name, help, read) in gauges {
            for (group, m) in &metrics {
                text.gauge(name, help, &[("group", group)], read(m, self.node_id));
            }
        }
        type Timing = fn(&crate::raft::HostedGroup) -> ferry_metrics::HistogramSnapshot;
        let timings: [(&str, &str, Timing); 2] = [
            (
                "ferry_raft_apply_seconds",
                "How long applying each entry to the group's state took here (a publish waits for it on the leader).",
                |hosted| hosted.state.apply_seconds(),
            ),
            (
                "ferry_raft_proposal_seconds",
                "How long each command proposed here took from its submission to Raft until committed and applied here (timed out: the time waited).",
                |hosted| hosted.proposal_seconds.snapshot(),
            ),
        ];
        for (name, help, read) in timings {
            for (group, hosted) in &all {
                text.histogram(name, help, &[("group", &group.to_string())], &read(hosted));
            }
        }
        for (group, m) in &metrics {
            let last = m.last_log_index.unwrap_or(0);
            let followers = m.replication.iter().flatten().filter(|(id, _)| **id != self.node_id);
            for (follower, matched) in followers {
                let lag = last.saturating_sub(matched.map_or(0, |l| l.index));
                let follower = follower.to_string();
                let labels = [("group", group.as_str()), ("follower", follower.as_str())];
                let help = "Entries the leader holds that a follower does not yet (on the leader).";
                text.gauge("ferry_raft_replication_lag_entries", help, &labels, lag as f64);
            }
        }
    }

    /// The groups this node leads, with their id.
    fn led(&self) -> Vec<(GroupId, crate::raft::HostedGroup)> {
        let me = Some(self.node_id);
        self.groups
            .all()
            .into_iter()
            .filter(|(_, hosted)| hosted.raft.metrics().borrow().current_leader == me)
            .collect()
    }

    fn partitions(&self, text: &mut Exposition) {
        let mut rows = Vec::new();
        for (_, hosted) in self.led() {
            let catalog = hosted.state.catalog();
            for topic in catalog.topics_after("") {
                for partition in catalog.owned(topic) {
                    if let Some(state) = topic.partitions.get(partition as usize) {
                        rows.push((topic.name.clone(), partition.to_string(), state.clone()));
                    }
                }
            }
        }
        type Read = fn(&crate::domain::PartitionState) -> u64;
        let counters: [(&str, &str, Read); 2] = [
            ("ferry_partition_published_messages_total", "Messages published to the partition.", |p| p.next_offset),
            ("ferry_partition_published_bytes_total", "Message bytes published to the partition.", |p| p.total_bytes),
        ];
        for (name, help, read) in counters {
            for (topic, partition, state) in &rows {
                text.counter(name, help, &[("topic", topic), ("partition", partition)], read(state));
            }
        }
        let gauges: [(&str, &str, Read); 2] = [
            (
                "ferry_partition_stored_messages",
                "Messages the partition still holds (retention trims the rest).",
                |p| p.next_offset - p.start_offset,
            ),
            ("ferry_partition_stored_bytes", "Message bytes the partition still holds.", |p| p.stored_bytes()),
        ];
        for (name, help, read) in gauges {
            for (topic, partition, state) in &rows {
                text.gauge(name, help, &[("topic", topic), ("partition", partition)], read(state) as f64);
            }
        }
    }

    /// Each subscription's backlog in the partitions of the groups this node
    /// leads (a subscription on a topic spread over data groups has a row
    /// per group: sum them).
    fn subscriptions(&self, text: &mut Exposition) {
        let mut rows = Vec::new();
        for (group, hosted) in self.led() {
            let Ok(local) = self.routes.local(group) else { continue };
            let names: Vec<String> = {
                let catalog = hosted.state.catalog();
                let holds_partitions = |s: &crate::domain::SubscriptionState| {
                    catalog.topic_by_id(s.topic_id).is_some_and(|t| catalog.owned(t).next().is_some())
                };
                catalog.subscriptions_after("").filter(|s| holds_partitions(s)).map(|s| s.name.clone()).collect()
            };
            let delivery = local.delivery();
            for name in names {
                if let Ok(backlog) = delivery.backlog(&name) {
                    rows.push((name, group.to_string(), backlog));
                }
            }
        }
        type Read = fn(&ferry_proto::v1::Backlog) -> f64;
        let gauges: [(&str, &str, Read); 4] = [
            ("ferry_subscription_unacked_messages", "Messages not yet acked (leased ones included).", |b| {
                b.unacked_messages as f64
            }),
            ("ferry_subscription_unacked_bytes", "Bytes of the messages not yet acked.", |b| b.unacked_bytes as f64),
            ("ferry_subscription_leased_messages", "Messages leased to consumers now.", |b| b.leased_messages as f64),
            ("ferry_subscription_oldest_unacked_age_seconds", "Age of the oldest unacked message (0: none).", |b| {
                b.oldest_unacked_age_millis as f64 / 1e3
            }),
        ];
        for (name, help, read) in gauges {
            for (subscription, group, backlog) in &rows {
                text.gauge(name, help, &[("subscription", subscription), ("group", group)], read(backlog));
            }
        }
    }

    fn storage(&self, text: &mut Exposition) {
        let usages: Vec<(String, crate::storage::DiskUsage)> = self
            .groups
            .all()
            .into_iter()
            .filter_map(|(group, hosted)| hosted.state.db().usage().ok().map(|usage| (group.to_string(), usage)))
            .collect();
        type Read = fn(&crate::storage::DiskUsage) -> u64;
        let gauges: [(&str, &str, Read); 3] = [
            ("ferry_state_table_bytes", "The group's state database: bytes in tables.", |u| u.table_bytes),
            ("ferry_state_blob_bytes", "The group's state database: bytes in blob files (message batches).", |u| {
                u.blob_bytes
            }),
            ("ferry_state_pending_compaction_bytes", "The group's state database: compaction debt (estimate).", |u| {
                u.pending_compaction_bytes
            }),
        ];
        for (name, help, read) in gauges {
            for (group, usage) in &usages {
                text.gauge(name, help, &[("group", group)], read(usage) as f64);
            }
        }
        // Every group shares the node's one data filesystem.
        if let Some((_, hosted)) = self.groups.all().into_iter().next() {
            let disk = &hosted.disk;
            let free = "Free bytes on the data directory's filesystem, as last measured (every second).";
            text.gauge("ferry_disk_free_bytes", free, &[], disk.free_bytes() as f64);
            let reserve =
                "Free bytes the node keeps (--disk-reserve-bytes): below them, writes that add data are refused.";
            text.gauge("ferry_disk_reserve_bytes", reserve, &[], disk.reserve_bytes() as f64);
            let low = "1 while free space is below the reserve (publishes refused with RESOURCE_EXHAUSTED).";
            text.gauge("ferry_disk_low", low, &[], if disk.is_low() { 1.0 } else { 0.0 });
        }
    }
}

impl NodeMetrics {
    fn log_syncs(&self, text: &mut Exposition) {
        let stats = self.log_db.sync_stats();
        let help = "How long each fsync of the raft log's WAL took (all groups share it; a publish waits for one on each voter).";
        text.histogram("ferry_raft_log_fsync_seconds", help, &[], &stats.fsync_seconds.snapshot());
        let help = "Appends, of any groups, made durable by one fsync of the raft log (group commit).";
        text.histogram("ferry_raft_log_fsync_appends", help, &[], &stats.appends_per_fsync.snapshot());
        let help = "Bytes of obsolete raft-log WAL files waiting in raft-log/archive/ for the trimmer (growing: it fails, see the log).";
        text.gauge("ferry_raft_log_archive_bytes", help, &[], self.log_db.archived_bytes() as f64);
    }
}

/// The standard process metrics, from `/proc/self` (Linux).
fn process(text: &mut Exposition) {
    // Fields 14 and 15 of `stat` (after the parenthesised command name) are
    // user and system time in clock ticks, 100 a second on Linux.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(") ").map(|(_, rest)| rest.split(' ').collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    let cpu_seconds = (ticks(11) + ticks(12)) as f64 / 100.0;
    text.counter_f64("process_cpu_seconds_total", "User and system CPU time spent.", &[], cpu_seconds);
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    text.gauge("process_resident_memory_bytes", "Resident memory.", &[], (rss_kib * 1024) as f64);
    let fds = std::fs::read_dir("/proc/self/fd").map(|dir| dir.count()).unwrap_or(0);
    text.gauge("process_open_fds", "Open file descriptors.", &[], fds as f64);
}
