//! What applying a command produces: a `Response` for the proposer and the
//! `Write`s that make the change durable.

use std::collections::BTreeSet;

use super::acks::AckedRange;
use super::bookmarks::BookmarkState;
use super::catalog::{AckState, PartitionState, SubscriptionState, TopicState};
use super::command::Layout;
use super::locks::LockState;
use super::message::MessageBody;
use super::producers::{ProducerKey, ProducerState};

/// A command that was valid when proposed but not when applied (the state
/// changed in between). Rejections are ordinary values: the entry is still
/// applied, it changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("topic {name:?} does not exist")]
    TopicNotFound { name: String },
    #[error("topic {name:?} already exists")]
    TopicExists { name: String },
    #[error("subscription {name:?} does not exist")]
    SubscriptionNotFound { name: String },
    #[error("subscription {name:?} already exists")]
    SubscriptionExists { name: String },
    #[error("partition {partition} is out of range: the topic has {partitions} partitions")]
    PartitionOutOfRange { partition: u32, partitions: u32 },
    /// An idempotent batch skipped sequence numbers: an earlier batch of the
    /// producer has not been committed (the client resends from `expected`).
    #[error("producer {producer_id:#x} partition {partition}: expected sequence {expected}, got {got}; resend from {expected}")]
    SequenceGap { producer_id: u64, partition: u32, expected: u64, got: u64 },
    /// An idempotent batch of a producer the state does not know (or no
    /// longer remembers) that does not start at sequence 0.
    #[error("producer {producer_id:#x} partition {partition}: unknown producer, and sequence {got} is not 0; resend after the producer's earlier batches, or as a new producer")]
    UnknownProducer { producer_id: u64, partition: u32, got: u64 },
    /// An idempotent batch reuses sequence numbers that are committed, but not
    /// as this exact batch (or too long ago to report its offsets).
    #[error("producer {producer_id:#x} partition {partition}: sequence {sequence} was committed before (next is {next}) and is not a retry of a remembered batch")]
    SequenceCommitted { producer_id: u64, partition: u32, sequence: u64, next: u64 },
    #[error("the cluster was formed with {data_groups} data groups; that cannot change")]
    LayoutFixed { data_groups: u32 },
    /// A command for a partition another group holds: the sender's routing
    /// was stale.
    #[error("topic #{topic_id} partition {partition} is held by group {holder}, not group {group}")]
    PartitionNotInGroup { topic_id: u64, partition: u32, group: u32, holder: u32 },
    /// A sync computed from an older state of the group: recompute it.
    #[error("the group has synced to group 0's index {meta_index} since this sync was computed")]
    StaleSync { meta_index: u64 },
    #[error("the cluster holds {limit} unexpired locks, its limit; release some")]
    TooManyLocks { limit: usize },
    /// An update would dead-letter a subscription into its own topic (the
    /// subscription was created again on another topic meanwhile).
    #[error("subscription {subscription:?} reads topic {topic:?}: it cannot dead-letter into it")]
    DeadLetterLoop { subscription: String, topic: String },
    #[error("bookmark {name:?} already exists")]
    BookmarkExists { name: String },
    #[error("bookmark {name:?} does not exist")]
    BookmarkNotFound { name: String },
    #[error("the cluster holds {limit} unexpired bookmarks, its limit; delete some")]
    TooManyBookmarks { limit: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The answer to blank and membership entries.
    Empty,
    TopicCreated(TopicState),
    TopicDeleted {
        subscriptions_deleted: usize,
    },
    SubscriptionCreated(SubscriptionState),
    SubscriptionDeleted,
    /// The topic with its settings as the update left them.
    TopicUpdated(TopicState),
    SubscriptionUpdated(SubscriptionState),
    /// The batch got offsets `first_offset .. first_offset + count`;
    /// `duplicate`: it had been committed before, by an earlier try.
    Published {
        partition: u32,
        first_offset: u64,
        count: u32,
        publish_time_us: i64,
        duplicate: bool,
    },
    /// Acks that changed state (acks of already-acked offsets are not counted).
    Acknowledged {
        count: u64,
    },
    /// Messages deleted by retention.
    Trimmed {
        deleted: u64,
    },
    Sought,
    /// Where the message went in the dead-letter topic (partition, offset);
    /// `None` when it had been acked meanwhile and stayed where it was.
    DeadLettered {
        position: Option<(u32, u64)>,
    },
    /// The layout in force.
    LayoutSet(Layout),
    /// The nodes marked leaving.
    Leaving(BTreeSet<u64>),
    /// A data group synced to group 0's index `meta_index`.
    Synced {
        meta_index: u64,
    },
    /// The lock as it stands: granted to the asker, or held by another.
    Lock {
        granted: bool,
        lock: LockState,
    },
    /// Whether the asker held the lock it released.
    LockReleased {
        released: bool,
    },
    BookmarkCreated(BookmarkState),
    BookmarkDeleted,
    Rejected(Rejection),
}

/// A durable change, in terms of the domain; the storage layer maps it to keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    PutTopic(TopicState),
    PutPartition {
        topic_id: u64,
        partition: u32,
        state: PartitionState,
    },
    /// Removes the topic record, its partitions and all of its messages.
    DeleteTopic {
        id: u64,
        name: String,
        partitions: u32,
    },
    PutSubscription(SubscriptionState),
    PutAckState {
        subscription_id: u64,
        partition: u32,
        state: AckState,
    },
    /// Removes the subscription record, its ack states and its stored acks.
    DeleteSubscription {
        id: u64,
        name: String,
        partitions: u32,
    },
    /// The messages of one publish, stored together from `first_offset` on.
    PutMessages {
        topic_id: u64,
        partition: u32,
        first_offset: u64,
        publish_time_us: i64,
        /// Bytes published to the partition before the first of them.
        bytes_before: u64,
        bodies: Vec<MessageBody>,
    },
    /// Retention: removes a partition's stored batches that start below
    /// `below` (the first offset of the batch holding the new start).
    DeleteMessages {
        topic_id: u64,
        partition: u32,
        below: u64,
    },
    /// Acks above the floor, stored as one range.
    PutAckedRange {
        subscription_id: u64,
        partition: u32,
        range: AckedRange,
    },
    /// Removes the stored range starting at `start`: the floor climbed past it.
    DeleteAckedRange {
        subscription_id: u64,
        partition: u32,
        start: u64,
    },
    /// Removes the stored ranges starting in `from..to` (`to == u64::MAX`: all
    /// of the partition's).
    DeleteAckedRanges {
        subscription_id: u64,
        partition: u32,
        from: u64,
        to: u64,
    },
    /// What deduplication remembers of one producer.
    PutProducer {
        key: ProducerKey,
        state: ProducerState,
    },
    DeleteProducer {
        key: ProducerKey,
    },
    PutIdCounters {
        last_topic_id: u64,
        last_subscription_id: u64,
        last_lock_epoch: u64,
    },
    PutLayout(Layout),
    /// The nodes marked leaving, all of them.
    PutLeaving(BTreeSet<u64>),
    PutMetaIndex(u64),
    /// The first offset a partition got in the hour from `hour_start_us`;
    /// boundaries older than `hours::HOUR_STARTS_KEPT` hours go with it.
    PutHourStart {
        topic_id: u64,
        partition: u32,
        hour_start_us: i64,
        first_offset: u64,
    },
    PutLock(LockState),
    DeleteLock {
        name: String,
    },
    PutBookmark(BookmarkState),
    DeleteBookmark {
        name: String,
    },
}

/// The result of applying one command.
#[derive(Debug)]
pub struct Applied {
    pub response: Response,
    pub writes: Vec<Write>,
}

impl Applied {
    pub fn rejected(rejection: Rejection) -> Self {
        Self { response: Response::Rejected(rejection), writes: Vec::new() }
    }
}
