//! `Catalog`: the replicated metadata — topics, their partitions' offsets, and
//! subscriptions with their ack floors.
//!
//! Architecture invariant: the catalog is small (it grows with the number of
//! topics, partitions and subscriptions, never with the backlog) and lives in
//! memory on every replica; messages and the acks above each floor live on disk.

use std::collections::{BTreeMap, BTreeSet};

use super::bookmarks::BookmarkState;
use super::command::{Layout, SubscriptionConfig, TopicConfig};
use super::locks::LockState;
use super::producers::Producers;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartitionState {
    /// Offset of the oldest message still stored.
    pub start_offset: u64,
    /// Offset the next message will get.
    pub next_offset: u64,
    /// Publish time of the newest message; publish times never go below it.
    pub last_publish_time_us: i64,
    /// Bytes published before `start_offset`, and in all; every message
    /// record also holds the bytes published before it, so the bytes of any
    /// offset range are a subtraction.
    pub start_bytes: u64,
    pub total_bytes: u64,
}

impl PartitionState {
    /// Bytes of the messages still stored.
    pub fn stored_bytes(&self) -> u64 {
        self.total_bytes - self.start_bytes
    }
}

/// A subscription's ack state in one partition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AckState {
    /// Every offset below the floor is acknowledged.
    pub floor: u64,
    /// Offsets acked above the floor (stored as ranges), and their bytes.
    pub acked_above: u64,
    pub acked_above_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicState {
    /// Unique for the life of the cluster; never reused after a delete.
    pub id: u64,
    pub name: String,
    pub config: TopicConfig,
    pub create_time_us: i64,
    pub partitions: Vec<PartitionState>,
    /// The data group holding each partition; empty: all are in group 0 (a
    /// cluster without data groups, or a topic created before them).
    pub groups: Vec<u32>,
}

impl TopicState {
    /// The group holding `partition`, if it exists.
    pub fn group_of(&self, partition: u32) -> Option<u32> {
        if partition >= self.config.partitions {
            return None;
        }
        if self.groups.is_empty() {
            return Some(0);
        }
        self.groups.get(partition as usize).copied()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionState {
    /// Unique for the life of the cluster; ack ids carry it.
    pub id: u64,
    pub name: String,
    pub topic: String,
    pub topic_id: u64,
    pub config: SubscriptionConfig,
    pub create_time_us: i64,
    /// Counts seeks: leases handed out before a seek no longer apply.
    pub seek_epoch: u64,
    /// Per partition: the ack floor and what is acked above it.
    pub acks: Vec<AckState>,
}

impl SubscriptionState {
    pub fn floors(&self) -> Vec<u64> {
        self.acks.iter().map(|a| a.floor).collect()
    }
}

/// Topics and subscriptions, indexed by name and by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    topics: BTreeMap<u64, TopicState>,
    topic_ids: BTreeMap<String, u64>,
    subscriptions: BTreeMap<u64, SubscriptionState>,
    subscription_ids: BTreeMap<String, u64>,
    /// Ids handed out so far; the next one is one more.
    pub last_topic_id: u64,
    pub last_subscription_id: u64,
    /// The epoch of the newest lock holder (`locks`).
    pub last_lock_epoch: u64,
    /// Locks by name (group 0 only).
    pub locks: BTreeMap<String, LockState>,
    /// Bookmarks by name (group 0 only).
    pub bookmarks: BTreeMap<String, BookmarkState>,
    /// Idempotent producers' recent batches, for deduplication.
    pub producers: Producers,
    /// How the cluster is split into Raft groups, once set.
    pub layout: Option<Layout>,
    /// Nodes being removed: data groups drop them first, then group 0.
    pub leaving: BTreeSet<u64>,
    /// The Raft group this catalog belongs to: set when it is opened, never
    /// replicated. A group stores and serves only the partitions it owns.
    pub group: u32,
    /// In a data group: group 0's applied index its topics and
    /// subscriptions were last synced to (`Command::SyncGroup`).
    pub meta_index: u64,
}

impl Catalog {
    /// An empty catalog of `group`.
    pub fn for_group(group: u32) -> Self {
        Self { group, ..Self::default() }
    }

    /// Whether this catalog's group holds `partition` of `topic`.
    pub fn owns(&self, topic: &TopicState, partition: u32) -> bool {
        topic.group_of(partition) == Some(self.group)
    }

    /// The partitions of `topic` this catalog's group holds.
    pub fn owned<'a>(&'a self, topic: &'a TopicState) -> impl Iterator<Item = u32> + 'a {
        (0..topic.config.partitions).filter(move |p| self.owns(topic, *p))
    }

    pub fn topic(&self, name: &str) -> Option<&TopicState> {
        self.topic_ids.get(name).and_then(|id| self.topics.get(id))
    }

    pub fn topic_by_id(&self, id: u64) -> Option<&TopicState> {
        self.topics.get(&id)
    }

    /// Per partition of topic `id`: the offset its next message will get
    /// (empty for a topic that does not exist).
    pub fn partition_ends(&self, id: u64) -> Vec<u64> {
        self.topic_by_id(id).map(|t| t.partitions.iter().map(|p| p.next_offset).collect()).unwrap_or_default()
    }

    pub(crate) fn topic_by_id_mut(&mut self, id: u64) -> Option<&mut TopicState> {
        self.topics.get_mut(&id)
    }

    /// Topics in name order, starting after `after`.
    pub fn topics_after<'a>(&'a self, after: &str) -> impl Iterator<Item = &'a TopicState> + 'a {
        use std::ops::Bound::{Excluded, Unbounded};
        let start = if after.is_empty() { Unbounded } else { Excluded(after.to_owned()) };
        self.topic_ids.range((start, Unbounded)).filter_map(|(_, id)| self.topics.get(id))
    }

    pub fn subscription(&self, name: &str) -> Option<&SubscriptionState> {
        self.subscription_ids.get(name).and_then(|id| self.subscriptions.get(id))
    }

    pub fn subscription_by_id(&self, id: u64) -> Option<&SubscriptionState> {
        self.subscriptions.get(&id)
    }

    pub(crate) fn subscription_by_id_mut(&mut self, id: u64) -> Option<&mut SubscriptionState> {
        self.subscriptions.get_mut(&id)
    }

    /// Subscriptions in name order, starting after `after`.
    pub fn subscriptions_after<'a>(&'a self, after: &str) -> impl Iterator<Item = &'a SubscriptionState> + 'a {
        use std::ops::Bound::{Excluded, Unbounded};
        let start = if after.is_empty() { Unbounded } else { Excluded(after.to_owned()) };
        self.subscription_ids.range((start, Unbounded)).filter_map(|(_, id)| self.subscriptions.get(id))
    }

    /// Subscriptions of one topic incarnation.
    pub fn subscriptions_of(&self, topic_id: u64) -> impl Iterator<Item = &SubscriptionState> + '_ {
        self.subscriptions.values().filter(move |s| s.topic_id == topic_id)
    }

    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    pub fn subscription_count(&self) -> usize {
        self.subscriptions.len()
    }

    pub fn insert_topic(&mut self, topic: TopicState) {
        self.last_topic_id = self.last_topic_id.max(topic.id);
        self.topic_ids.insert(topic.name.clone(), topic.id);
        self.topics.insert(topic.id, topic);
    }

    pub fn remove_topic(&mut self, id: u64) -> Option<TopicState> {
        let topic = self.topics.remove(&id)?;
        self.topic_ids.remove(&topic.name);
        self.producers.remove_topic(id);
        Some(topic)
    }

    pub fn insert_subscription(&mut self, subscription: SubscriptionState) {
        self.last_subscription_id = self.last_subscription_id.max(subscription.id);
        self.subscription_ids.insert(subscription.name.clone(), subscription.id);
        self.subscriptions.insert(subscription.id, subscription);
    }

    pub fn remove_subscription(&mut self, id: u64) -> Option<SubscriptionState> {
        let subscription = self.subscriptions.remove(&id)?;
        self.subscription_ids.remove(&subscription.name);
        Some(subscription)
    }
}
