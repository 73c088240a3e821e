//! `Command`: the replicated operations, the payload of a normal Raft entry.
//!
//! A command carries everything its effect depends on (the leader stamps the
//! time into it), so applying it is deterministic on every replica.

use super::message::MessageBody;

/// Settings fixed when a topic is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    pub partitions: u32,
    pub max_message_bytes: u32,
}

/// Settings fixed when a subscription is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionConfig {
    pub ack_deadline_seconds: u32,
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    CreateTopic { name: String, config: TopicConfig, create_time_us: i64 },
    DeleteTopic { name: String },
    CreateSubscription { name: String, topic: String, config: SubscriptionConfig, create_time_us: i64 },
    DeleteSubscription { name: String },
    Publish(PublishBatch),
    Acknowledge(AckBatch),
}

impl Command {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::CreateTopic { .. } => "create_topic",
            Command::DeleteTopic { .. } => "delete_topic",
            Command::CreateSubscription { .. } => "create_subscription",
            Command::DeleteSubscription { .. } => "delete_subscription",
            Command::Publish(_) => "publish",
            Command::Acknowledge(_) => "acknowledge",
        }
    }
}
