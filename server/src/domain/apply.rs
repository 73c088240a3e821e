//! The state transition: `apply(catalog, command, reads) -> (response, writes)`.
//!
//! Architecture invariant: this is a pure function of the catalog, the command
//! and the replicated state it reads through [`StateRead`]. No clock, no I/O
//! of its own, no randomness — every replica computes the same writes.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use super::acks::{self, AckedRange, AckedTotal};
use super::bookmarks;
use super::catalog::{AckState, Catalog, PartitionState, SubscriptionState, TopicState};
use super::command::{
    AckBatch, Command, DeadLetter, Layout, PublishBatch, Seek, SubscriptionConfig, SyncGroup, TopicConfig, Trim,
};
use super::hours;
use super::locks;
use super::message::MessageBody;
use super::outcome::{Applied, Rejection, Response, Write};
use super::producers::{CommittedBatch, ProducerKey, SequenceCheck};
use super::updates;

/// Where a stored message sits in its partition's byte count, and in the
/// stored batch that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageExtent {
    pub bytes_before: u64,
    pub size: u64,
    pub publish_time_us: i64,
    /// Offset of the first message of the publish batch stored with it.
    pub batch_first: u64,
}

/// Reads of replicated state that live on disk rather than in the catalog.
///
/// Acks arrive in batches of nearby offsets, so the reads are ranges and
/// batches: a point read per acked message cost more than the rest of
/// applying an ack together.
pub trait StateRead {
    type Error;
    /// The stored ranges of acks above the floor that hold an offset in
    /// `from..to`, in offset order. One may start before `from`, but none
    /// below `floor` (the ack floor, at most `from`), where none is looked
    /// for: looking back further would walk over the deletes of every range
    /// the floor passed.
    fn stored_acks(
        &self,
        subscription_id: u64,
        partition: u32,
        floor: u64,
        from: u64,
        to: u64,
    ) -> Result<Vec<AckedRange>, Self::Error>;
    /// What the stored ranges starting in `floor..to` add up to (`floor`:
    /// the ack floor), read without holding them all.
    fn stored_acks_total(
        &self,
        subscription_id: u64,
        partition: u32,
        floor: u64,
        to: u64,
    ) -> Result<AckedTotal, Self::Error>;
    fn message_extent(&self, topic_id: u64, partition: u32, offset: u64) -> Result<Option<MessageExtent>, Self::Error>;
    /// The sizes of the messages at `offsets` (ascending), in that order;
    /// 0 for one not stored.
    fn message_sizes(&self, topic_id: u64, partition: u32, offsets: &[u64]) -> Result<Vec<u64>, Self::Error>;
}

/// Applies one command to the catalog and returns what to persist.
///
/// The catalog is updated in place; the caller must persist the writes before
/// it applies the next command or answers the proposer.
pub fn apply<R: StateRead>(catalog: &mut Catalog, command: Command, reads: &R) -> Result<Applied, R::Error> {
    Ok(match command {
        Command::CreateTopic { name, config, create_time_us, groups } => {
            create_topic(catalog, name, config, create_time_us, groups)
        }
        Command::DeleteTopic { name } => delete_topic(catalog, &name),
        Command::CreateSubscription { name, topic, config, create_time_us } => {
            create_subscription(catalog, name, &topic, config, create_time_us)
        }
        Command::DeleteSubscription { name } => delete_subscription(catalog, &name),
        Command::UpdateTopic { name, config, settings } => updates::topic(catalog, &name, &config, &settings),
        Command::UpdateSubscription { name, config, settings } => {
            updates::subscription(catalog, &name, &config, &settings)
        }
        Command::Publish(batch) => publish(catalog, batch),
        Command::Acknowledge(batch) => return acknowledge(catalog, batch, reads),
        Command::Trim(trim_at) => return trim(catalog, trim_at, reads),
        Command::Seek(seek_to) => seek(catalog, seek_to),
        Command::DeadLetter(dead) => return dead_letter(catalog, dead, reads),
        Command::SetLayout(layout) => set_layout(catalog, layout),
        Command::SetLeaving { node_id, leaving } => set_leaving(catalog, node_id, leaving),
        Command::SyncGroup(sync) => sync_group(catalog, sync),
        Command::AcquireLock { name, holder, ttl_us, now_us } => locks::acquire(catalog, name, holder, ttl_us, now_us),
        Command::ReleaseLock { name, holder } => locks::release(catalog, &name, &holder),
        Command::CreateBookmark(bookmark) => bookmarks::create(catalog, bookmark),
        Command::DeleteBookmark { name } => bookmarks::delete(catalog, &name),
    })
}

/// Keeps the first layout. A cluster that holds topics already was formed
/// with everything in group 0, and keeps it that way: its layout gets no
/// data groups, whatever was asked.
fn set_layout(catalog: &mut Catalog, mut layout: Layout) -> Applied {
    if let Some(existing) = &catalog.layout {
        if existing.data_groups != layout.data_groups {
            return Applied::rejected(Rejection::LayoutFixed { data_groups: existing.data_groups });
        }
        return Applied { response: Response::LayoutSet(existing.clone()), writes: Vec::new() };
    }
    if catalog.topic_count() > 0 {
        layout.data_groups = 0;
    }
    catalog.layout = Some(layout.clone());
    Applied { response: Response::LayoutSet(layout.clone()), writes: vec![Write::PutLayout(layout)] }
}

fn set_leaving(catalog: &mut Catalog, node_id: u64, leaving: bool) -> Applied {
    let changed = if leaving { catalog.leaving.insert(node_id) } else { catalog.leaving.remove(&node_id) };
    let writes = if changed { vec![Write::PutLeaving(catalog.leaving.clone())] } else { Vec::new() };
    Applied { response: Response::Leaving(catalog.leaving.clone()), writes }
}

fn create_topic(
    catalog: &mut Catalog,
    name: String,
    config: TopicConfig,
    create_time_us: i64,
    groups: Vec<u32>,
) -> Applied {
    if catalog.topic(&name).is_some() {
        return Applied::rejected(Rejection::TopicExists { name });
    }
    let topic = TopicState {
        id: catalog.last_topic_id + 1,
        partitions: vec![PartitionState::default(); config.partitions as usize],
        name,
        config,
        create_time_us,
        groups,
    };
    let mut writes = install_topic(catalog, topic.clone());
    writes.push(id_counters(catalog));
    Applied { response: Response::TopicCreated(topic), writes }
}

/// Adds a topic with empty partitions to the catalog.
fn install_topic(catalog: &mut Catalog, topic: TopicState) -> Vec<Write> {
    let mut writes = vec![Write::PutTopic(topic.clone())];
    writes.extend(topic.partitions.iter().enumerate().map(|(partition, state)| Write::PutPartition {
        topic_id: topic.id,
        partition: partition as u32,
        state: state.clone(),
    }));
    catalog.insert_topic(topic);
    writes
}

/// Applies a data group's sync: removals first (cascading as deletes do),
/// then installs of what the group does not hold yet. Ids are never reused,
/// so a name removed and created again in one sync is two topics.
fn sync_group(catalog: &mut Catalog, sync: SyncGroup) -> Applied {
    if catalog.meta_index != sync.expect_meta_index {
        return Applied::rejected(Rejection::StaleSync { meta_index: catalog.meta_index });
    }
    let mut writes = Vec::new();
    for id in sync.remove_subscriptions {
        if let Some(subscription) = catalog.remove_subscription(id) {
            writes.push(delete_subscription_write(&subscription));
        }
    }
    for id in sync.remove_topics {
        if let Some(name) = catalog.topic_by_id(id).map(|t| t.name.clone()) {
            writes.extend(delete_topic(catalog, &name).writes);
        }
    }
    for mut topic in sync.install_topics {
        if catalog.topic_by_id(topic.id).is_none() {
            topic.partitions = vec![PartitionState::default(); topic.config.partitions as usize];
            writes.extend(install_topic(catalog, topic));
        }
    }
    for subscription in sync.install_subscriptions {
        if catalog.subscription_by_id(subscription.id).is_some() {
            continue;
        }
        let Some(topic) = catalog.topic_by_id(subscription.topic_id) else { continue };
        let subscription = SubscriptionState { seek_epoch: 0, acks: floors_at_end(topic), ..subscription };
        writes.extend(install_subscription(catalog, subscription));
    }
    for changed in sync.update_topics {
        if let Some(topic) = catalog.topic_by_id_mut(changed.id) {
            // The partition count never changes; the rest is group 0's.
            topic.config = TopicConfig { partitions: topic.config.partitions, ..changed.config };
            writes.push(Write::PutTopic(topic.clone()));
        }
    }
    for changed in sync.update_subscriptions {
        if let Some(subscription) = catalog.subscription_by_id_mut(changed.id) {
            subscription.config = changed.config;
            writes.push(Write::PutSubscription(subscription.clone()));
        }
    }
    catalog.meta_index = sync.meta_index;
    writes.push(Write::PutMetaIndex(sync.meta_index));
    Applied { response: Response::Synced { meta_index: sync.meta_index }, writes }
}

fn delete_topic(catalog: &mut Catalog, name: &str) -> Applied {
    let Some(topic) = catalog.topic(name) else {
        return Applied::rejected(Rejection::TopicNotFound { name: name.to_owned() });
    };
    let topic_id = topic.id;
    let doomed: Vec<u64> = catalog.subscriptions_of(topic_id).map(|s| s.id).collect();
    let mut writes = Vec::with_capacity(doomed.len() + 1);
    for id in &doomed {
        if let Some(subscription) = catalog.remove_subscription(*id) {
            writes.push(delete_subscription_write(&subscription));
        }
    }
    if let Some(topic) = catalog.remove_topic(topic_id) {
        writes.push(Write::DeleteTopic { id: topic.id, name: topic.name, partitions: topic.config.partitions });
    }
    writes.extend(bookmarks::drop_topics(catalog, topic_id));
    Applied { response: Response::TopicDeleted { subscriptions_deleted: doomed.len() }, writes }
}

fn create_subscription(
    catalog: &mut Catalog,
    name: String,
    topic: &str,
    config: SubscriptionConfig,
    create_time_us: i64,
) -> Applied {
    if catalog.subscription(&name).is_some() {
        return Applied::rejected(Rejection::SubscriptionExists { name });
    }
    let Some(topic) = catalog.topic(topic) else {
        return Applied::rejected(Rejection::TopicNotFound { name: topic.to_owned() });
    };
    let subscription = SubscriptionState {
        id: catalog.last_subscription_id + 1,
        name,
        topic: topic.name.clone(),
        topic_id: topic.id,
        config,
        create_time_us,
        seek_epoch: 0,
        acks: floors_at_end(topic),
    };
    let mut writes = install_subscription(catalog, subscription.clone());
    writes.push(id_counters(catalog));
    Applied { response: Response::SubscriptionCreated(subscription), writes }
}

/// A subscription receives what is published after it exists: its floors
/// start at the end of each partition.
fn floors_at_end(topic: &TopicState) -> Vec<AckState> {
    topic.partitions.iter().map(|p| AckState { floor: p.next_offset, ..AckState::default() }).collect()
}

fn install_subscription(catalog: &mut Catalog, subscription: SubscriptionState) -> Vec<Write> {
    let mut writes = vec![Write::PutSubscription(subscription.clone())];
    writes.extend(subscription.acks.iter().enumerate().map(|(partition, state)| Write::PutAckState {
        subscription_id: subscription.id,
        partition: partition as u32,
        state: state.clone(),
    }));
    catalog.insert_subscription(subscription);
    writes
}

fn delete_subscription(catalog: &mut Catalog, name: &str) -> Applied {
    let Some(id) = catalog.subscription(name).map(|s| s.id) else {
        return Applied::rejected(Rejection::SubscriptionNotFound { name: name.to_owned() });
    };
    let writes = catalog.remove_subscription(id).map(|s| delete_subscription_write(&s)).into_iter().collect();
    Applied { response: Response::SubscriptionDeleted, writes }
}

/// Appends messages to one partition; returns the first offset and the
/// publish time they got.
fn append(
    topic_id: u64,
    partition: u32,
    state: &mut PartitionState,
    publish_time_us: i64,
    bodies: Vec<MessageBody>,
    writes: &mut Vec<Write>,
) -> (u64, i64) {
    // Publish times never go backwards within a partition, even if the new
    // leader's clock is behind the old one's.
    let publish_time_us = publish_time_us.max(state.last_publish_time_us);
    let (first_offset, bytes_before) = (state.next_offset, state.total_bytes);
    let new_hour = first_offset == 0 || hours::hour_of(publish_time_us) > hours::hour_of(state.last_publish_time_us);
    if new_hour && !bodies.is_empty() {
        let hour_start_us = hours::hour_of(publish_time_us);
        writes.push(Write::PutHourStart { topic_id, partition, hour_start_us, first_offset });
    }
    state.next_offset += bodies.len() as u64;
    state.total_bytes += bodies.iter().map(|body| body.size_bytes() as u64).sum::<u64>();
    if !bodies.is_empty() {
        writes.push(Write::PutMessages { topic_id, partition, first_offset, publish_time_us, bytes_before, bodies });
    }
    state.last_publish_time_us = publish_time_us;
    writes.push(Write::PutPartition { topic_id, partition, state: state.clone() });
    (first_offset, publish_time_us)
}

fn publish(catalog: &mut Catalog, batch: PublishBatch) -> Applied {
    let count = batch.messages.len() as u32;
    let producer = batch.producer.map(|p| {
        let key = ProducerKey { topic_id: batch.topic_id, partition: batch.partition, producer_id: p.producer_id };
        (key, p)
    });
    // Producers are only remembered for partitions that exist, so a duplicate
    // is answered before the topic is looked up.
    if let Some((key, sequence)) = &producer {
        match catalog.producers.check(key, sequence, count) {
            SequenceCheck::Fresh => {}
            SequenceCheck::Duplicate(committed) => {
                let response = Response::Published {
                    partition: batch.partition,
                    first_offset: committed.first_offset,
                    count,
                    publish_time_us: committed.publish_time_us,
                    duplicate: true,
                };
                return Applied { response, writes: Vec::new() };
            }
            SequenceCheck::Rejected(rejection) => return Applied::rejected(rejection),
        }
    }
    let Some(topic) = catalog.topic_by_id(batch.topic_id) else {
        return Applied::rejected(Rejection::TopicNotFound { name: format!("#{}", batch.topic_id) });
    };
    if let Err(rejection) = held_here(catalog, topic, batch.partition) {
        return Applied::rejected(rejection);
    }
    let Some(topic) = catalog.topic_by_id_mut(batch.topic_id) else {
        return Applied::rejected(Rejection::TopicNotFound { name: format!("#{}", batch.topic_id) });
    };
    let partitions = topic.config.partitions;
    let Some(state) = topic.partitions.get_mut(batch.partition as usize) else {
        return Applied::rejected(Rejection::PartitionOutOfRange { partition: batch.partition, partitions });
    };
    let mut writes = Vec::with_capacity(3);
    let (first_offset, publish_time_us) =
        append(batch.topic_id, batch.partition, state, batch.publish_time_us, batch.messages, &mut writes);
    if let Some((key, sequence)) = producer {
        let first_sequence = sequence.first_sequence;
        let committed = CommittedBatch { first_sequence, count, first_offset, publish_time_us };
        catalog.producers.record(key, committed, &mut writes);
    }
    let response =
        Response::Published { partition: batch.partition, first_offset, count, publish_time_us, duplicate: false };
    Applied { response, writes }
}

fn acknowledge<R: StateRead>(catalog: &mut Catalog, batch: AckBatch, reads: &R) -> Result<Applied, R::Error> {
    let Some(subscription) = catalog.subscription_by_id(batch.subscription_id) else {
        let name = format!("#{}", batch.subscription_id);
        return Ok(Applied::rejected(Rejection::SubscriptionNotFound { name }));
    };
    let Some(topic) = catalog.topic_by_id(subscription.topic_id) else {
        return Ok(Applied::rejected(Rejection::TopicNotFound { name: subscription.topic.clone() }));
    };
    let ends: Vec<u64> = topic.partitions.iter().map(|p| p.next_offset).collect();
    if let Some(bad) = batch.partitions.iter().find(|p| p.partition as usize >= ends.len()) {
        let partitions = ends.len() as u32;
        return Ok(Applied::rejected(Rejection::PartitionOutOfRange { partition: bad.partition, partitions }));
    }
    if let Some(rejection) = batch.partitions.iter().find_map(|p| held_here(catalog, topic, p.partition).err()) {
        return Ok(Applied::rejected(rejection));
    }
    // A partition's acks are applied in one pass: a second pass would not
    // see the ranges the first stored, which are written after all passes.
    let mut by_partition: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for group in batch.partitions {
        match by_partition.entry(group.partition) {
            Entry::Vacant(entry) => {
                entry.insert(group.offsets);
            }
            Entry::Occupied(mut entry) => entry.get_mut().extend(group.offsets),
        }
    }
    let mut acks = subscription.acks.clone();
    let mut writes = Vec::new();
    let mut count = 0;
    for (partition, offsets) in by_partition {
        let p = partition as usize;
        count += acks::ack_partition(subscription, partition, &mut acks[p], ends[p], offsets, reads, &mut writes)?;
    }
    if let Some(subscription) = catalog.subscription_by_id_mut(batch.subscription_id) {
        subscription.acks = acks;
    }
    Ok(Applied { response: Response::Acknowledged { count }, writes })
}

fn trim<R: StateRead>(catalog: &mut Catalog, trim_at: Trim, reads: &R) -> Result<Applied, R::Error> {
    let Some(topic) = catalog.topic_by_id(trim_at.topic_id) else {
        return Ok(Applied::rejected(Rejection::TopicNotFound { name: format!("#{}", trim_at.topic_id) }));
    };
    let partitions = topic.config.partitions;
    let Some(state) = topic.partitions.get(trim_at.partition as usize) else {
        return Ok(Applied::rejected(Rejection::PartitionOutOfRange { partition: trim_at.partition, partitions }));
    };
    if let Err(rejection) = held_here(catalog, topic, trim_at.partition) {
        return Ok(Applied::rejected(rejection));
    }
    let (old_start, end) = (state.start_offset, state.next_offset);
    let start = trim_at.start_offset.min(end);
    if start <= old_start {
        return Ok(Applied { response: Response::Trimmed { deleted: 0 }, writes: Vec::new() });
    }
    // Messages are stored a publish batch at a time, so the batch holding the
    // new start stays whole; readers skip what lies below the start.
    let (start_bytes, kept_batch) = match reads.message_extent(trim_at.topic_id, trim_at.partition, start)? {
        Some(extent) => (extent.bytes_before, extent.batch_first),
        None => (state.total_bytes, end),
    };
    let (topic_id, partition) = (trim_at.topic_id, trim_at.partition);
    let mut writes = vec![Write::DeleteMessages { topic_id, partition, below: kept_batch }];

    // Trimmed messages are gone for every subscription: floors move past them.
    let subscribers: Vec<u64> =
        catalog.subscriptions_of(topic_id).filter(|s| s.acks[partition as usize].floor < start).map(|s| s.id).collect();
    for id in subscribers {
        let Some(subscription) = catalog.subscription_by_id(id) else { continue };
        let mut ack = subscription.acks[partition as usize].clone();
        acks::raise_floor(id, partition, &mut ack, start, end, reads, &mut writes)?;
        if let Some(subscription) = catalog.subscription_by_id_mut(id) {
            subscription.acks[partition as usize] = ack;
        }
    }
    if let Some(state) = catalog.topic_by_id_mut(topic_id).and_then(|t| t.partitions.get_mut(partition as usize)) {
        state.start_offset = start;
        state.start_bytes = start_bytes;
        writes.push(Write::PutPartition { topic_id, partition, state: state.clone() });
    }
    Ok(Applied { response: Response::Trimmed { deleted: start - old_start }, writes })
}

fn seek(catalog: &mut Catalog, seek_to: Seek) -> Applied {
    let Some(subscription) = catalog.subscription_by_id(seek_to.subscription_id) else {
        let name = format!("#{}", seek_to.subscription_id);
        return Applied::rejected(Rejection::SubscriptionNotFound { name });
    };
    let Some(topic) = catalog.topic_by_id(subscription.topic_id) else {
        return Applied::rejected(Rejection::TopicNotFound { name: subscription.topic.clone() });
    };
    if seek_to.floors.len() != topic.partitions.len() {
        let partitions = topic.config.partitions;
        return Applied::rejected(Rejection::PartitionOutOfRange {
            partition: seek_to.floors.len() as u32,
            partitions,
        });
    }
    // Only the partitions this group holds move; the others' floors are
    // another group's to set.
    let mut acks = subscription.acks.clone();
    let id = subscription.id;
    let mut writes = Vec::new();
    for partition in catalog.owned(topic) {
        let (p, floor) = (&topic.partitions[partition as usize], seek_to.floors[partition as usize]);
        let state = AckState { floor: floor.clamp(p.start_offset, p.next_offset), ..AckState::default() };
        writes.push(Write::DeleteAckedRanges { subscription_id: id, partition, from: 0, to: u64::MAX });
        writes.push(Write::PutAckState { subscription_id: id, partition, state: state.clone() });
        acks[partition as usize] = state;
    }
    if let Some(subscription) = catalog.subscription_by_id_mut(id) {
        subscription.acks = acks;
        subscription.seek_epoch += 1;
        writes.push(Write::PutSubscription(subscription.clone()));
    }
    Applied { response: Response::Sought, writes }
}

fn dead_letter<R: StateRead>(catalog: &mut Catalog, dead: DeadLetter, reads: &R) -> Result<Applied, R::Error> {
    let Some(subscription) = catalog.subscription_by_id(dead.subscription_id) else {
        let name = format!("#{}", dead.subscription_id);
        return Ok(Applied::rejected(Rejection::SubscriptionNotFound { name }));
    };
    let p = dead.partition as usize;
    let Some(topic) = catalog.topic_by_id(subscription.topic_id) else {
        return Ok(Applied::rejected(Rejection::TopicNotFound { name: subscription.topic.clone() }));
    };
    let Some(end) = topic.partitions.get(p).map(|state| state.next_offset) else {
        return Ok(Applied::rejected(Rejection::TopicNotFound { name: subscription.topic.clone() }));
    };
    if let Err(rejection) = held_here(catalog, topic, dead.partition) {
        return Ok(Applied::rejected(rejection));
    }
    let mut ack = subscription.acks[p].clone();
    if acks::is_acked(subscription.id, dead.partition, &ack, dead.offset, reads)? {
        // Acked meanwhile: nothing to move.
        return Ok(Applied { response: Response::DeadLettered { position: None }, writes: Vec::new() });
    }
    let Some(target) = catalog.topic_by_id(dead.dead_letter_topic_id) else {
        let name = format!("#{}", dead.dead_letter_topic_id);
        return Ok(Applied::rejected(Rejection::TopicNotFound { name }));
    };
    if dead.dead_letter_partition >= target.config.partitions {
        let (partition, partitions) = (dead.dead_letter_partition, target.config.partitions);
        return Ok(Applied::rejected(Rejection::PartitionOutOfRange { partition, partitions }));
    }
    if let Err(rejection) = held_here(catalog, target, dead.dead_letter_partition) {
        return Ok(Applied::rejected(rejection));
    }
    let mut writes = Vec::new();
    let subscription = subscription.clone();
    acks::ack_partition(&subscription, dead.partition, &mut ack, end, [dead.offset], reads, &mut writes)?;
    if let Some(subscription) = catalog.subscription_by_id_mut(dead.subscription_id) {
        subscription.acks[p] = ack;
    }
    let mut first_offset = 0;
    if let Some(state) = catalog
        .topic_by_id_mut(dead.dead_letter_topic_id)
        .and_then(|t| t.partitions.get_mut(dead.dead_letter_partition as usize))
    {
        let (topic_id, partition) = (dead.dead_letter_topic_id, dead.dead_letter_partition);
        (first_offset, _) = append(topic_id, partition, state, dead.publish_time_us, vec![dead.message], &mut writes);
    }
    let position = Some((dead.dead_letter_partition, first_offset));
    Ok(Applied { response: Response::DeadLettered { position }, writes })
}

/// Turns down a command for a partition another group holds (a partition
/// out of range is left to the caller's own check).
fn held_here(catalog: &Catalog, topic: &TopicState, partition: u32) -> Result<(), Rejection> {
    match topic.group_of(partition) {
        Some(holder) if holder != catalog.group => {
            Err(Rejection::PartitionNotInGroup { topic_id: topic.id, partition, group: catalog.group, holder })
        }
        _ => Ok(()),
    }
}

fn delete_subscription_write(subscription: &SubscriptionState) -> Write {
    Write::DeleteSubscription {
        id: subscription.id,
        name: subscription.name.clone(),
        partitions: subscription.acks.len() as u32,
    }
}

pub(super) fn id_counters(catalog: &Catalog) -> Write {
    Write::PutIdCounters {
        last_topic_id: catalog.last_topic_id,
        last_subscription_id: catalog.last_subscription_id,
        last_lock_epoch: catalog.last_lock_epoch,
    }
}
