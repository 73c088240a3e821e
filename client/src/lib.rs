//! `ferry-client`: the async Rust client for Ferry.
//!
//! [`Client`] speaks the `ferry.v1` gRPC API with typed values: topics and
//! subscriptions admin, publish (acknowledged once durable), pull, acknowledge
//! and lease changes. The `ferry` command-line tool is built on it.

pub mod audit;
pub mod bookmarks;
pub mod client;
pub mod error;
mod held;
pub mod locks;
pub mod options;
pub mod publisher;
mod router;
mod routes;
pub mod subscriber;
pub mod types;

pub use audit::ProducerInfo;
pub use bookmarks::Bookmark;
pub use client::{Client, RETRY_BUDGET_DEFAULT};
pub use error::{Code, Error, Result};
pub use locks::{Lock, LockGrant};
pub use options::ClientOptions;
pub use publisher::{Compression, PublishHandle, Publisher, PublisherSettings};
pub use subscriber::{Delivered, Subscriber, SubscriberSettings, SubscriberStats};
pub use types::{
    AckOutcome, Backlog, Backup, ClusterStatus, GroupBackup, GroupStatus, LogRecord, Member, Message, NodeStatus,
    PartitionInfo, PartitionProgress, Position, ProducerSequence, ReceivedMessage, SequencedPublish, Subscription,
    SubscriptionSettings, Topic, TopicSettings,
};
