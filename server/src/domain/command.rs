//! `Command`: the replicated operations, the payload of a normal Raft entry.
//!
//! A command carries everything its effect depends on (the leader stamps the
//! time into it), so applying it is deterministic on every replica.

use std::collections::BTreeMap;

use super::bookmarks::BookmarkState;
use super::catalog::{SubscriptionState, TopicState};
use super::message::MessageBody;

/// A topic's settings, set when it is created; all but `partitions` can
/// be changed later (`Command::UpdateTopic`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    pub partitions: u32,
    pub max_message_bytes: u32,
    /// Messages older than this are deleted, acked or not.
    pub retention_seconds: u64,
    /// When non-zero, a partition keeps at most about this many bytes.
    pub retention_bytes: u64,
    /// The owner's own key-value notes (Pub/Sub's labels); Ferry reads none.
    pub labels: BTreeMap<String, String>,
}

/// A subscription's settings, set when it is created and changed by
/// `Command::UpdateSubscription`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubscriptionConfig {
    pub ack_deadline_seconds: u32,
    /// Backoff before redelivering after a nack or expiry; both 0 = none.
    pub retry_min_backoff_seconds: u32,
    pub retry_max_backoff_seconds: u32,
    /// Empty = no dead-lettering.
    pub dead_letter_topic: String,
    pub max_delivery_attempts: u32,
    pub labels: BTreeMap<String, String>,
}

/// A topic setting an update changes; its name is the API's field name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TopicSetting {
    MaxMessageBytes,
    RetentionSeconds,
    RetentionBytes,
    Labels,
}

impl TopicSetting {
    pub const ALL: [TopicSetting; 4] =
        [Self::MaxMessageBytes, Self::RetentionSeconds, Self::RetentionBytes, Self::Labels];

    pub fn name(self) -> &'static str {
        match self {
            Self::MaxMessageBytes => "max_message_bytes",
            Self::RetentionSeconds => "retention_seconds",
            Self::RetentionBytes => "retention_bytes",
            Self::Labels => "labels",
        }
    }

    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Copies this setting from `from` into `to`.
    pub fn copy(self, from: &TopicConfig, to: &mut TopicConfig) {
        match self {
            Self::MaxMessageBytes => to.max_message_bytes = from.max_message_bytes,
            Self::RetentionSeconds => to.retention_seconds = from.retention_seconds,
            Self::RetentionBytes => to.retention_bytes = from.retention_bytes,
            Self::Labels => to.labels = from.labels.clone(),
        }
    }
}

/// A subscription setting an update changes. The retry policy's two bounds
/// change together, as do the dead-letter topic and its attempt count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SubscriptionSetting {
    AckDeadline,
    RetryPolicy,
    DeadLetterPolicy,
    Labels,
}

impl SubscriptionSetting {
    pub const ALL: [SubscriptionSetting; 4] =
        [Self::AckDeadline, Self::RetryPolicy, Self::DeadLetterPolicy, Self::Labels];

    pub fn name(self) -> &'static str {
        match self {
            Self::AckDeadline => "ack_deadline_seconds",
            Self::RetryPolicy => "retry_policy",
            Self::DeadLetterPolicy => "dead_letter_policy",
            Self::Labels => "labels",
        }
    }

    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Copies this setting from `from` into `to`.
    pub fn copy(self, from: &SubscriptionConfig, to: &mut SubscriptionConfig) {
        match self {
            Self::AckDeadline => to.ack_deadline_seconds = from.ack_deadline_seconds,
            Self::RetryPolicy => {
                to.retry_min_backoff_seconds = from.retry_min_backoff_seconds;
                to.retry_max_backoff_seconds = from.retry_max_backoff_seconds;
            }
            Self::DeadLetterPolicy => {
                to.dead_letter_topic = from.dead_letter_topic.clone();
                to.max_delivery_attempts = from.max_delivery_attempts;
            }
            Self::Labels => to.labels = from.labels.clone(),
        }
    }
}

/// A batch of messages for one partition of one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishBatch {
    /// The topic incarnation the batch was validated against: a topic deleted
    /// and re-created under the same name has a new id and rejects the batch.
    pub topic_id: u64,
    pub partition: u32,
    /// The leader's wall clock when it proposed the batch.
    pub publish_time_us: i64,
    pub messages: Vec<MessageBody>,
    /// Set for an idempotent producer's batch.
    pub producer: Option<ProducerSequence>,
}

/// Who sent an idempotent batch, and the sequence number of its first message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerSequence {
    pub producer_id: u64,
    pub first_sequence: u64,
    /// Where the producer's previous batch ended, when it skipped the
    /// sequences from there to `first_sequence` on purpose (a mirror's source
    /// offsets it filtered out or that were trimmed before it read them).
    pub skip_from: Option<u64>,
}

impl ProducerSequence {
    /// The first sequence this batch accounts for: where its predecessor
    /// ended, skipped sequences included.
    pub fn covers_from(&self) -> u64 {
        self.skip_from.unwrap_or(self.first_sequence)
    }
}

/// Acks of one subscription, grouped by partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckBatch {
    pub subscription_id: u64,
    pub partitions: Vec<PartitionAcks>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionAcks {
    pub partition: u32,
    pub offsets: Vec<u64>,
}

/// Retention: delete a partition's messages below `start_offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trim {
    pub topic_id: u64,
    pub partition: u32,
    pub start_offset: u64,
}

/// Moves a subscription's ack floors; its acks above them are forgotten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seek {
    pub subscription_id: u64,
    /// One per partition, as the leader computed them for the seek time.
    pub floors: Vec<u64>,
}

/// Moves one message of a subscription to a dead-letter topic: appended
/// there, acked here, in one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub subscription_id: u64,
    pub partition: u32,
    pub offset: u64,
    pub dead_letter_topic_id: u64,
    pub dead_letter_partition: u32,
    /// The leader's clock, stamped like a publish.
    pub publish_time_us: i64,
    /// The original message with the dead-letter attributes added.
    pub message: MessageBody,
}

/// How the cluster is split into Raft groups; set once, when it forms.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Layout {
    /// Data groups 1..=data_groups; 0 = group 0 holds everything.
    pub data_groups: u32,
    /// The members every data group starts with: group 0's voters (id and
    /// address) when the layout was set.
    pub voters: BTreeMap<u64, String>,
}

/// What a data group must change to hold the topics and subscriptions of
/// group 0's catalog at `meta_index` that concern it. A compare-and-set:
/// applied only if the group last synced to `expect_meta_index`, so a
/// repeated or stale sync changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncGroup {
    pub expect_meta_index: u64,
    pub meta_index: u64,
    /// Topics as group 0 defined them (their `partitions` are not read).
    pub install_topics: Vec<TopicState>,
    pub remove_topics: Vec<u64>,
    /// Subscriptions as group 0 defined them (their `acks` and `seek_epoch`
    /// are not read: floors start at each owned partition's end).
    pub install_subscriptions: Vec<SubscriptionState>,
    pub remove_subscriptions: Vec<u64>,
    /// Held topics whose settings group 0 changed: their new `config`.
    pub update_topics: Vec<TopicState>,
    /// Held subscriptions whose settings group 0 changed: their new `config`.
    pub update_subscriptions: Vec<SubscriptionState>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    CreateTopic {
        name: String,
        config: TopicConfig,
        create_time_us: i64,
        /// The data group of each partition, chosen by group 0's leader
        /// (`placement::assign`); empty: every partition in group 0.
        groups: Vec<u32>,
    },
    DeleteTopic {
        name: String,
    },
    /// Sets the named `settings` of topic `name` to their values in
    /// `config` (its other fields are not read), so concurrent updates of
    /// different settings both take effect.
    UpdateTopic {
        name: String,
        config: TopicConfig,
        settings: Vec<TopicSetting>,
    },
    CreateSubscription {
        name: String,
        topic: String,
        config: SubscriptionConfig,
        create_time_us: i64,
    },
    DeleteSubscription {
        name: String,
    },
    /// As `UpdateTopic`, for subscription `name`.
    UpdateSubscription {
        name: String,
        config: SubscriptionConfig,
        settings: Vec<SubscriptionSetting>,
    },
    Publish(PublishBatch),
    Acknowledge(AckBatch),
    Trim(Trim),
    Seek(Seek),
    DeadLetter(DeadLetter),
    /// The first one sets the layout; a later one with another number of
    /// data groups is turned down (`Rejection::LayoutFixed`).
    SetLayout(Layout),
    /// Marks a node as leaving (data groups drop it before group 0 does) or
    /// clears the mark (a node added again).
    SetLeaving {
        node_id: u64,
        leaving: bool,
    },
    /// Brings a data group's copy of the catalog up to group 0's.
    SyncGroup(SyncGroup),
    /// Takes or renews lock `name` for `holder` (`locks::acquire`).
    AcquireLock {
        name: String,
        holder: String,
        ttl_us: u64,
        /// The leader's wall clock when it proposed the command.
        now_us: i64,
    },
    ReleaseLock {
        name: String,
        holder: String,
    },
    /// Saves a subscription's floors (`bookmarks::create`).
    CreateBookmark(BookmarkState),
    DeleteBookmark {
        name: String,
    },
}

impl Command {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::CreateTopic { .. } => "create_topic",
            Command::DeleteTopic { .. } => "delete_topic",
            Command::CreateSubscription { .. } => "create_subscription",
            Command::DeleteSubscription { .. } => "delete_subscription",
            Command::UpdateTopic { .. } => "update_topic",
            Command::UpdateSubscription { .. } => "update_subscription",
            Command::CreateBookmark(_) => "create_bookmark",
            Command::DeleteBookmark { .. } => "delete_bookmark",
            Command::Publish(_) => "publish",
            Command::Acknowledge(_) => "acknowledge",
            Command::Trim(_) => "trim",
            Command::Seek(_) => "seek",
            Command::DeadLetter(_) => "dead_letter",
            Command::SetLayout(_) => "set_layout",
            Command::SetLeaving { .. } => "set_leaving",
            Command::SyncGroup(_) => "sync_group",
            Command::AcquireLock { .. } => "acquire_lock",
            Command::ReleaseLock { .. } => "release_lock",
        }
    }

    /// Whether the command adds data to keep (messages, topics,
    /// subscriptions), rather than removing or adjusting it: only these wait
    /// for disk space (`storage/disk_space.rs`), so acks, which let data go,
    /// still pass when it is low.
    pub fn adds_data(&self) -> bool {
        matches!(
            self,
            Command::Publish(_)
                | Command::DeadLetter(_)
                | Command::CreateTopic { .. }
                | Command::CreateSubscription { .. }
        )
    }
}
