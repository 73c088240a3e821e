//! `Document`: the status page's JSON (`GET /status.json`), which the HTML
//! page renders. Built from the public API's answers; every list is capped.

use ferry_proto::v1 as api;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Document {
    /// The answering node's wall clock when the gathering began.
    pub taken_at_unix_millis: i64,
    /// How long gathering took.
    pub gathered_in_millis: u64,
    /// The node that answered (any node answers, not only a leader).
    pub node_id: u64,
    pub cluster: Cluster,
    pub topics: Listing<Topic>,
    pub subscriptions: Listing<Subscription>,
}

/// The cluster as the answering node sees it, with each member's own
/// report (`ferry cluster status`).
#[derive(Debug, Serialize)]
pub struct Cluster {
    /// Group 0's leader (0: none known) and term.
    pub leader_id: u64,
    pub leader_addr: String,
    pub term: u64,
    pub members: Vec<Member>,
    /// Every Raft group, group 0 first, with its leader.
    pub groups: Vec<Group>,
}

#[derive(Debug, Serialize)]
pub struct Member {
    pub node_id: u64,
    pub addr: String,
    pub voter: bool,
    /// Empty when the member did not answer (see `error`).
    pub role: String,
    pub version: String,
    pub commit: String,
    /// The cluster the member says it belongs to (empty: none, its data
    /// predates cluster ids).
    pub cluster_id: String,
    pub term: u64,
    pub last_log_index: u64,
    pub committed_index: u64,
    pub applied_index: u64,
    /// Entries group 0's leader has that this member has not yet.
    pub lag_entries: u64,
    /// Why the member did not answer; empty when it did.
    pub error: String,
}

#[derive(Debug, Serialize)]
pub struct Group {
    pub group: u32,
    /// 0: none known.
    pub leader_id: u64,
    pub leader_addr: String,
    pub term: u64,
    pub voters: Vec<u64>,
}

/// A capped list from group 0's leader: at most `shown_max` items (in name
/// order); `truncated` when there are more; `error` when it could not be had.
#[derive(Debug, Serialize)]
pub struct Listing<T> {
    pub shown_max: u32,
    pub truncated: bool,
    pub error: String,
    pub items: Vec<T>,
}

impl<T> Listing<T> {
    pub fn failed(shown_max: u32, error: String) -> Self {
        Self { shown_max, truncated: false, error, items: Vec::new() }
    }
}

#[derive(Debug, Serialize)]
pub struct Topic {
    pub name: String,
    pub partitions: Vec<Partition>,
    /// Messages and bytes the topic still holds, over its partitions.
    pub stored_messages: u64,
    pub stored_bytes: u64,
    /// Messages ever published (the sum of the partitions' end offsets).
    pub published_messages: u64,
}

#[derive(Debug, Serialize)]
pub struct Partition {
    pub partition: u32,
    pub start_offset: u64,
    pub end_offset: u64,
    pub stored_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct Subscription {
    pub name: String,
    pub topic: String,
    /// The backlog, when it could be had (see `error`).
    pub unacked_messages: u64,
    pub unacked_bytes: u64,
    pub leased_messages: u64,
    pub oldest_unacked_age_millis: u64,
    pub error: String,
}

impl Cluster {
    pub fn from_api(status: api::ClusterStatus) -> Self {
        let addr_of = |id: u64| status.members.iter().find(|m| m.node_id == id).map(|m| m.addr.clone());
        let groups = status
            .groups
            .iter()
            .map(|g| Group {
                group: g.group,
                leader_id: g.leader_id,
                leader_addr: addr_of(g.leader_id).unwrap_or_default(),
                term: g.term,
                voters: g.voters.clone(),
            })
            .collect();
        Self {
            leader_id: status.leader_id,
            leader_addr: addr_of(status.leader_id).unwrap_or_default(),
            term: status.term,
            groups,
            members: status.members.into_iter().map(Member::from_api).collect(),
        }
    }
}

impl Member {
    fn from_api(member: api::Member) -> Self {
        let status = member.status.unwrap_or_default();
        Self {
            node_id: member.node_id,
            addr: member.addr,
            voter: member.voter,
            role: status.role,
            version: status.version,
            commit: status.commit,
            cluster_id: status.cluster_id,
            term: status.term,
            last_log_index: status.last_log_index,
            committed_index: status.committed_index,
            applied_index: status.applied_index,
            lag_entries: member.lag_entries,
            error: member.error,
        }
    }
}

impl Topic {
    pub fn from_api(topic: api::Topic) -> Self {
        let partitions: Vec<Partition> = topic
            .partitions
            .iter()
            .map(|p| Partition {
                partition: p.partition,
                start_offset: p.start_offset,
                end_offset: p.end_offset,
                stored_bytes: p.stored_bytes,
            })
            .collect();
        Self {
            name: topic.name,
            stored_messages: partitions.iter().map(|p| p.end_offset.saturating_sub(p.start_offset)).sum(),
            stored_bytes: partitions.iter().map(|p| p.stored_bytes).sum(),
            published_messages: partitions.iter().map(|p| p.end_offset).sum(),
            partitions,
        }
    }
}

impl Subscription {
    /// A subscription with its backlog, or why the backlog is missing.
    pub fn from_api(subscription: api::Subscription, backlog: Result<api::Backlog, String>) -> Self {
        let (backlog, error) = match backlog {
            Ok(backlog) => (backlog, String::new()),
            Err(error) => (api::Backlog::default(), error),
        };
        Self {
            name: subscription.name,
            topic: subscription.topic,
            unacked_messages: backlog.unacked_messages,
            unacked_bytes: backlog.unacked_bytes,
            leased_messages: backlog.leased_messages,
            oldest_unacked_age_millis: backlog.oldest_unacked_age_millis,
            error,
        }
    }
}
