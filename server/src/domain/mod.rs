//! The replicated domain state: what a command does to topics, partitions and
//! subscriptions, independent of how it is stored or replicated.
//!
//! Architecture invariant: nothing here touches tokio, RocksDB or a clock. The
//! leader stamps times into commands; [`apply`](apply::apply) is deterministic,
//! so every replica that applies the same log holds the same state.

pub mod acks;
pub mod apply;
pub mod bookmarks;
pub mod catalog;
pub mod command;
pub mod hours;
pub mod invalid;
pub mod limits;
pub mod locks;
pub mod message;
pub mod outcome;
pub mod placement;
pub mod producers;
pub mod sync;
pub mod updates;
pub mod validate;

#[cfg(test)]
mod tests;

pub use acks::{AckedRange, AckedTotal};
pub use apply::{apply, MessageExtent, StateRead};
pub use bookmarks::BookmarkState;
pub use catalog::{AckState, Catalog, PartitionState, SubscriptionState, TopicState};
pub use command::{
    AckBatch, Command, DeadLetter, Layout, PartitionAcks, ProducerSequence, PublishBatch, Seek, SubscriptionConfig,
    SubscriptionSetting, SyncGroup, TopicConfig, TopicSetting, Trim,
};
pub use invalid::InvalidArgument;
pub use locks::LockState;
pub use message::{MessageBody, StoredMessage};
pub use outcome::{Applied, Rejection, Response, Write};
pub use producers::{CommittedBatch, ProducerKey, ProducerState, Producers, StoredSequences};
