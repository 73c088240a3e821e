//! The client's own types for topics, subscriptions and messages: plain Rust
//! values, converted to and from the wire in one place.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ferry_proto::v1 as api;

use crate::error::Error;

/// Settings of a new topic. Zero values take the server's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicSettings {
    pub partitions: u32,
    pub max_message_bytes: u32,
    /// How long messages are kept (default 7 days).
    pub retention: Duration,
    /// Most bytes a partition keeps; 0 = no limit.
    pub retention_bytes: u64,
    /// The owner's notes; Ferry keeps them and never reads them.
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: u32,
    pub start_offset: u64,
    pub end_offset: u64,
    pub stored_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    pub name: String,
    pub settings: TopicSettings,
    pub create_time: SystemTime,
    pub partitions: Vec<PartitionInfo>,
}

/// Settings of a new subscription. Zero values take the server's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionSettings {
    /// Lease of a delivered message (10 s..10 min, default 10 s).
    pub ack_deadline: Duration,
    /// Wait before redelivering after a nack or expiry: `min * 2^(attempt-1)`,
    /// at most `max`. Zero = redeliver at once.
    pub retry_min_backoff: Duration,
    pub retry_max_backoff: Duration,
    /// Where a message goes after `max_delivery_attempts` (5..=100, default 5)
    /// deliveries without an ack. Empty = never dead-letter.
    pub dead_letter_topic: String,
    pub max_delivery_attempts: u32,
    pub labels: BTreeMap<String, String>,
}

/// What a subscription still has to work through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlog {
    /// Not yet acked, leased ones included.
    pub unacked_messages: u64,
    pub unacked_bytes: u64,
    /// Leased to consumers right now.
    pub leased_messages: u64,
    /// Age of the oldest unacked message by its publish time; zero when none.
    pub oldest_unacked_age: Duration,
    pub oldest_unacked_publish_time: Option<SystemTime>,
    /// The server's wall clock when this was read (publish times are on
    /// that clock): with nothing unacked, the subscription's watermark.
    pub as_of: SystemTime,
    /// Each partition's ack floor and end, in partition order.
    pub partitions: Vec<PartitionProgress>,
}

/// Where a batch sits in an idempotent producer's sequence, for callers that
/// number their own batches ([`Client::publish_sequenced`](crate::Client::publish_sequenced)):
/// a mirror numbers them by source offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerSequence {
    pub partition: u32,
    /// Nonzero, stable for as long as the sequence numbers go on.
    pub producer_id: u64,
    /// The sequence number of the batch's first message.
    pub first_sequence: u64,
    /// Where the producer's previous batch ended, when the sequences from
    /// there up to `first_sequence` were skipped on purpose; `Some(0)` starts
    /// a producer at `first_sequence`. `None`: the batch follows on directly.
    pub skip_from: Option<u64>,
}

/// The answer to a sequenced batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequencedPublish {
    pub positions: Vec<Position>,
    /// The batch had been committed before: nothing new was stored, and the
    /// positions are the first copy's.
    pub duplicate: bool,
}

/// Where a subscription stands in one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionProgress {
    pub partition: u32,
    /// Every offset below it is acked (or was trimmed by retention first).
    pub ack_floor: u64,
    /// The partition's next offset.
    pub end_offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub name: String,
    pub topic: String,
    pub settings: SubscriptionSettings,
    pub create_time: SystemTime,
    /// Present on `get_subscription`.
    pub backlog: Option<Backlog>,
}

/// A message to publish.
///
/// ```
/// use ferry_client::Message;
/// let message = Message::new("hello").attribute("type", "greeting").ordering_key("user-1");
/// assert_eq!(message.attributes["type"], "greeting");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub data: Bytes,
    pub attributes: BTreeMap<String, String>,
    pub ordering_key: String,
    pub event_id: String,
}

impl Message {
    pub fn new(data: impl Into<Bytes>) -> Self {
        Self { data: data.into(), ..Self::default() }
    }

    pub fn attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }

    /// Messages with the same key go to the same partition, in order.
    pub fn ordering_key(mut self, key: impl Into<String>) -> Self {
        self.ordering_key = key.into();
        self
    }

    /// The producer's id of this event, kept for downstream deduplication.
    pub fn event_id(mut self, id: impl Into<String>) -> Self {
        self.event_id = id.into();
        self
    }
}

/// Where a published message was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub partition: u32,
    pub offset: u64,
}

/// A message delivered by a pull, leased until its ack deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// Pass to `acknowledge` or `modify_ack_deadline`.
    pub ack_id: String,
    /// 1 on the first delivery.
    pub delivery_attempt: u32,
    pub position: Position,
    pub publish_time: SystemTime,
    pub message: Message,
}

/// The outcome of an acknowledge call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckOutcome {
    pub acknowledged: u32,
    /// Acks of a delivery already superseded by a redelivery; ignored.
    pub stale: u32,
}

pub(crate) fn micros_of(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

pub(crate) fn time_from_micros(micros: i64) -> SystemTime {
    if micros >= 0 {
        UNIX_EPOCH + Duration::from_micros(micros as u64)
    } else {
        UNIX_EPOCH - Duration::from_micros(micros.unsigned_abs())
    }
}

pub(crate) fn topic_from_api(topic: api::Topic) -> Topic {
    let settings = topic.settings.unwrap_or_default();
    Topic {
        name: topic.name,
        settings: TopicSettings {
            partitions: settings.partitions,
            max_message_bytes: settings.max_message_bytes,
            retention: Duration::from_secs(settings.retention_seconds),
            retention_bytes: settings.retention_bytes,
            labels: settings.labels,
        },
        create_time: time_from_micros(topic.create_time_unix_micros),
        partitions: topic
            .partitions
            .into_iter()
            .map(|p| PartitionInfo {
                partition: p.partition,
                start_offset: p.start_offset,
                end_offset: p.end_offset,
                stored_bytes: p.stored_bytes,
            })
            .collect(),
    }
}

pub(crate) fn subscription_from_api(subscription: api::Subscription) -> Subscription {
    let settings = subscription.settings.unwrap_or_default();
    let seconds = |s: u32| Duration::from_secs(u64::from(s));
    Subscription {
        name: subscription.name,
        topic: subscription.topic,
        settings: SubscriptionSettings {
            ack_deadline: seconds(settings.ack_deadline_seconds),
            retry_min_backoff: seconds(settings.retry_min_backoff_seconds),
            retry_max_backoff: seconds(settings.retry_max_backoff_seconds),
            dead_letter_topic: settings.dead_letter_topic,
            max_delivery_attempts: settings.max_delivery_attempts,
            labels: settings.labels,
        },
        create_time: time_from_micros(subscription.create_time_unix_micros),
        backlog: subscription.backlog.map(|b| Backlog {
            unacked_messages: b.unacked_messages,
            unacked_bytes: b.unacked_bytes,
            leased_messages: b.leased_messages,
            oldest_unacked_age: Duration::from_millis(b.oldest_unacked_age_millis),
            oldest_unacked_publish_time: (b.unacked_messages > 0)
                .then(|| time_from_micros(b.oldest_unacked_publish_time_unix_micros)),
            as_of: time_from_micros(b.as_of_unix_micros),
            partitions: b
                .partitions
                .into_iter()
                .map(|p| PartitionProgress { partition: p.partition, ack_floor: p.ack_floor, end_offset: p.end_offset })
                .collect(),
        }),
    }
}

pub(crate) fn topic_settings_to_api(settings: &TopicSettings) -> api::TopicSettings {
    api::TopicSettings {
        partitions: settings.partitions,
        max_message_bytes: settings.max_message_bytes,
        retention_seconds: settings.retention.as_secs(),
        retention_bytes: settings.retention_bytes,
        labels: settings.labels.clone(),
    }
}

pub(crate) fn subscription_settings_to_api(settings: &SubscriptionSettings) -> api::SubscriptionSettings {
    let seconds = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
    api::SubscriptionSettings {
        ack_deadline_seconds: seconds(settings.ack_deadline),
        retry_min_backoff_seconds: seconds(settings.retry_min_backoff),
        retry_max_backoff_seconds: seconds(settings.retry_max_backoff),
        dead_letter_topic: settings.dead_letter_topic.clone(),
        max_delivery_attempts: settings.max_delivery_attempts,
        labels: settings.labels.clone(),
    }
}

pub(crate) fn message_to_api(message: Message) -> api::Message {
    api::Message {
        data: message.data,
        attributes: message.attributes,
        ordering_key: message.ordering_key,
        event_id: message.event_id,
    }
}

/// A received message the server sent without its `message` field: carries
/// its ack id, so the delivery can be given back, and becomes the `Error`
/// the application is told.
#[derive(Debug)]
pub(crate) struct Broken {
    pub ack_id: String,
}

impl From<Broken> for Error {
    fn from(broken: Broken) -> Self {
        Error::Protocol(format!(
            "the server sent a received message without its `message` field (ack id {})",
            broken.ack_id
        ))
    }
}

pub(crate) fn received_from_api(received: api::ReceivedMessage) -> Result<ReceivedMessage, Broken> {
    let Some(message) = received.message else { return Err(Broken { ack_id: received.ack_id }) };
    Ok(ReceivedMessage {
        ack_id: received.ack_id,
        delivery_attempt: received.delivery_attempt,
        position: Position { partition: received.partition, offset: received.offset },
        publish_time: time_from_micros(received.publish_time_unix_micros),
        message: message_from_api(message),
    })
}

/// One node's own view of the cluster and its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub node_id: u64,
    pub addr: String,
    /// `leader`, `follower`, `candidate` or `learner`.
    pub role: String,
    pub term: u64,
    pub leader_id: Option<u64>,
    pub last_log_index: u64,
    pub committed_index: u64,
    pub applied_index: u64,
    pub snapshot_index: u64,
    pub purged_index: u64,
    pub version: String,
    /// The git commit the node's ferryd was built from.
    pub commit: String,
    /// When the node's process started: a restart changes it.
    pub started: SystemTime,
    /// The node is shutting down (handing its leaderships over).
    pub stopping: bool,
    /// The cluster the node belongs to: the same on every node of a
    /// cluster. `None` for a cluster from before cluster ids, and for a
    /// node joining one that has not learnt it yet.
    pub cluster_id: Option<String>,
    /// Every Raft group the node hosts, as it sees it, group 0 first.
    pub groups: Vec<GroupStatus>,
}

impl ClusterStatus {
    /// The leader's own status, if there is a leader and it answered.
    pub fn leader_status(&self) -> Option<&NodeStatus> {
        let leader = self.members.iter().find(|member| Some(member.node_id) == self.leader_id)?;
        leader.status.as_ref().ok()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub node_id: u64,
    pub addr: String,
    pub voter: bool,
    /// `Err` with the reason when the member did not answer.
    pub status: std::result::Result<NodeStatus, String>,
    /// Entries the leader has that this member does not.
    pub lag_entries: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStatus {
    pub leader_id: Option<u64>,
    pub term: u64,
    pub members: Vec<Member>,
    /// Every Raft group as the answering node sees it, group 0 first.
    pub groups: Vec<GroupStatus>,
}

/// One Raft group on one node: group 0 holds the catalog, data groups hold
/// partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStatus {
    pub group: u32,
    /// The node's role in the group, as in [`NodeStatus::role`].
    pub role: String,
    pub term: u64,
    pub leader_id: Option<u64>,
    pub voters: Vec<u64>,
    pub applied_index: u64,
    /// This group's log here, as [`NodeStatus`] gives group 0's.
    pub last_log_index: u64,
    pub snapshot_index: u64,
    pub purged_index: u64,
}

/// A node's backup (`Client::backup`): where it is and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// On the node's filesystem.
    pub dir: String,
    pub node_id: u64,
    pub created: SystemTime,
    /// Group 0 first.
    pub groups: Vec<GroupBackup>,
}

/// One Raft group's state in a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupBackup {
    pub group: u32,
    /// The Raft entry the copy is at.
    pub applied_term: u64,
    pub applied_index: u64,
    pub bytes: u64,
}

/// A message as one replica stored it (see `Client::read_log`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub offset: u64,
    pub publish_time: SystemTime,
    pub message: Message,
}

fn nonzero(id: u64) -> Option<u64> {
    (id != 0).then_some(id)
}

fn message_from_api(message: api::Message) -> Message {
    Message {
        data: message.data,
        attributes: message.attributes,
        ordering_key: message.ordering_key,
        event_id: message.event_id,
    }
}

pub(crate) fn node_status_from_api(status: api::NodeStatus) -> NodeStatus {
    NodeStatus {
        node_id: status.node_id,
        addr: status.addr,
        role: status.role,
        term: status.term,
        leader_id: nonzero(status.leader_id),
        last_log_index: status.last_log_index,
        committed_index: status.committed_index,
        applied_index: status.applied_index,
        snapshot_index: status.snapshot_index,
        purged_index: status.purged_index,
        version: status.version,
        commit: status.commit,
        started: time_from_micros(status.started_unix_micros as i64),
        stopping: status.stopping,
        cluster_id: Some(status.cluster_id).filter(|id| !id.is_empty()),
        groups: status.groups.into_iter().map(group_status_from_api).collect(),
    }
}

fn group_status_from_api(g: api::GroupStatus) -> GroupStatus {
    GroupStatus {
        group: g.group,
        role: g.role,
        term: g.term,
        leader_id: nonzero(g.leader_id),
        voters: g.voters,
        applied_index: g.applied_index,
        last_log_index: g.last_log_index,
        snapshot_index: g.snapshot_index,
        purged_index: g.purged_index,
    }
}

pub(crate) fn cluster_status_from_api(status: api::ClusterStatus) -> ClusterStatus {
    ClusterStatus {
        leader_id: nonzero(status.leader_id),
        term: status.term,
        members: status
            .members
            .into_iter()
            .map(|m| Member {
                node_id: m.node_id,
                addr: m.addr,
                voter: m.voter,
                status: m.status.map(node_status_from_api).ok_or(m.error),
                lag_entries: m.lag_entries,
            })
            .collect(),
        groups: status.groups.into_iter().map(group_status_from_api).collect(),
    }
}

pub(crate) fn backup_from_api(made: api::BackupResponse) -> Backup {
    let groups = made
        .groups
        .into_iter()
        .map(|g| GroupBackup {
            group: g.group,
            applied_term: g.applied_term,
            applied_index: g.applied_index,
            bytes: g.bytes,
        })
        .collect();
    Backup { dir: made.dir, node_id: made.node_id, created: time_from_micros(made.created_unix_micros as i64), groups }
}

pub(crate) fn log_record_from_api(record: api::LogRecord) -> Result<LogRecord, Error> {
    let message = record.message.ok_or_else(|| Error::Protocol("a log record without its message".into()))?;
    Ok(LogRecord {
        offset: record.offset,
        publish_time: time_from_micros(record.publish_time_unix_micros),
        message: message_from_api(message),
    })
}
