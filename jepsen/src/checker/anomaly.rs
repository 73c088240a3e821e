//! What the checker can find wrong, one variant per kind (FAULTS.md,
//! "Anomalies"). Each carries the subscription or topic, the values, the
//! positions and the history indexes (`…_at`) a person needs to go and look;
//! `anomalies.json` is these, serialized with their `kind` in kebab-case.

use serde::Serialize;

use crate::history::Position;

/// At most this many examples are listed inside one anomaly; `count` always
/// holds the full number. A badly broken run must still give a readable report.
pub const LISTED_MAX: usize = 1_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Anomaly {
    Lost(Lost),
    LostWrite(LostWrite),
    Unexpected(Unexpected),
    AbortedRead(AbortedRead),
    InconsistentOffsets(InconsistentOffsets),
    DuplicatePublish(DuplicatePublish),
    RedeliveredAfterAck(RedeliveredAfterAck),
    Ordering(OrderingInversion),
    PartitionOrder(PartitionInversion),
    OrderingKeyOverlap(KeyOverlap),
    ReplicaDivergence(ReplicaDivergence),
}

impl Anomaly {
    /// Does this break a promise Ferry makes? Non-fatal kinds are reported
    /// for information (Ferry never promised them) and leave the verdict alone.
    pub fn is_fatal(&self) -> bool {
        match self {
            Anomaly::DuplicatePublish(duplicate) => duplicate.idempotent,
            Anomaly::PartitionOrder(_) => false,
            _ => true,
        }
    }

    /// The kind as written in `anomalies.json`, for summary tables.
    pub fn kind(&self) -> &'static str {
        match self {
            Anomaly::Lost(_) => "lost",
            Anomaly::LostWrite(_) => "lost-write",
            Anomaly::Unexpected(_) => "unexpected",
            Anomaly::AbortedRead(_) => "aborted-read",
            Anomaly::InconsistentOffsets(_) => "inconsistent-offsets",
            Anomaly::DuplicatePublish(_) => "duplicate-publish",
            Anomaly::RedeliveredAfterAck(_) => "redelivered-after-ack",
            Anomaly::Ordering(_) => "ordering",
            Anomaly::PartitionOrder(_) => "partition-order",
            Anomaly::OrderingKeyOverlap(_) => "ordering-key-overlap",
            Anomaly::ReplicaDivergence(_) => "replica-divergence",
        }
    }
}

/// Acknowledged values of one writer a subscription never got, after a
/// complete drain, in one region of the writer's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lost {
    pub subscription: String,
    pub topic: String,
    /// The `<writer>` part of the values (the whole value if it has no counter).
    pub writer: String,
    pub region: LostRegion,
    pub count: u64,
    /// By counter, at most [`LISTED_MAX`].
    pub values: Vec<Missing>,
}

/// Where lost values sit among the writer's values the subscription did get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LostRegion {
    /// Below the lowest delivered counter.
    Prefix,
    /// Between delivered counters: a hole.
    Middle,
    /// Above the highest delivered counter, or nothing of the writer delivered.
    Postfix,
}

/// An acknowledged value that was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Missing {
    pub value: String,
    /// Where the `ok` publish said it was stored.
    pub position: Position,
    /// Index of the `ok` publish completion.
    pub published_at: u64,
}

/// Hole rule: the subscription got `delivered_offset` of `partition`, yet
/// acknowledged values below it were never delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LostWrite {
    pub subscription: String,
    pub topic: String,
    pub partition: u32,
    /// The highest offset of the partition delivered to the subscription.
    pub delivered_offset: u64,
    /// Index of the pull completion that delivered it.
    pub delivered_at: u64,
    pub count: u64,
    /// By offset, at most [`LISTED_MAX`].
    pub missing: Vec<Missing>,
}

/// A delivered value no publish of the topic ever carried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unexpected {
    pub subscription: String,
    pub topic: String,
    pub value: String,
    pub position: Position,
    /// Index of the first pull completion that delivered it.
    pub delivered_at: u64,
}

/// A delivered value whose every publish completed `fail`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AbortedRead {
    pub subscription: String,
    pub topic: String,
    pub value: String,
    pub position: Position,
    pub delivered_at: u64,
    /// Indexes of the `fail` publish completions.
    pub failed_at: Vec<u64>,
}

/// One (topic, partition, offset) seen with more than one value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InconsistentOffsets {
    pub topic: String,
    pub position: Position,
    pub claims: Vec<Claim>,
}

/// One value claimed at a position, and who claimed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claim {
    pub value: String,
    /// At most [`SOURCES_MAX`] of them.
    pub sources: Vec<Source>,
}

/// Sources listed per claim, at most: the first few are enough to look.
pub const SOURCES_MAX: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "from", rename_all = "kebab-case")]
pub enum Source {
    /// An `ok` publish completion.
    Publish { at: u64 },
    /// An `ok` pull completion.
    Delivery { subscription: String, at: u64 },
    /// A replica log event.
    Replica { node: u64, at: u64 },
}

/// One value stored at more than one position of its topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DuplicatePublish {
    pub topic: String,
    pub value: String,
    /// Sent through the idempotent Publisher: then the duplicate is a bug.
    pub idempotent: bool,
    pub positions: Vec<Position>,
}

/// A pull invoked after an `ok` ack of a message completed returned it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RedeliveredAfterAck {
    pub subscription: String,
    pub topic: String,
    pub value: String,
    pub position: Position,
    /// Index of the first `ok` ack completion of the position.
    pub acked_at: u64,
    /// Index of the pull invocation, after `acked_at`.
    pub pull_invoked_at: u64,
    /// Index of the pull completion that returned it.
    pub delivered_at: u64,
}

/// A first-time delivery, as ordering anomalies name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FirstDelivery {
    pub value: String,
    pub offset: u64,
    /// Index of the pull completion.
    pub delivered_at: u64,
}

/// An ordering key's first-time deliveries went backwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderingInversion {
    pub subscription: String,
    pub topic: String,
    pub ordering_key: String,
    pub partition: u32,
    /// Delivered first, at the higher offset.
    pub earlier: FirstDelivery,
    pub later: FirstDelivery,
}

/// A consumer's first-time deliveries of one partition went backwards for
/// messages without a key (Ferry does not promise this order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionInversion {
    pub subscription: String,
    pub topic: String,
    pub process: u64,
    pub partition: u32,
    pub earlier: FirstDelivery,
    pub later: FirstDelivery,
}

/// A key's next message was delivered before anyone even tried to ack the
/// previous one, which was acked later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyOverlap {
    pub subscription: String,
    pub topic: String,
    pub ordering_key: String,
    pub partition: u32,
    pub previous: FirstDelivery,
    /// Index of the earliest ack invocation of `previous` (any outcome).
    pub previous_ack_invoked_at: u64,
    pub next: FirstDelivery,
}

/// Nodes disagree about a partition's log after healing, or a node lacks an
/// acknowledged message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicaDivergence {
    pub topic: String,
    pub partition: u32,
    pub count: u64,
    /// By offset, at most [`LISTED_MAX`].
    pub offsets: Vec<OffsetDivergence>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OffsetDivergence {
    pub offset: u64,
    /// The value an `ok` publish stored there, if any.
    pub acknowledged: Option<String>,
    /// Every node whose log covers the offset; `None`: the node lacks it.
    pub nodes: Vec<NodeEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeEntry {
    pub node: u64,
    pub value: Option<String>,
}
