//! The state transition: `apply(catalog, command) -> (response, writes)`.
//!
//! Architecture invariant: this is a pure function of the catalog, the command
//! and the stored acks it reads through [`AckLookup`]. No clock, no I/O of its
//! own, no randomness — every replica computes the same writes.

use std::collections::BTreeSet;

use super::catalog::{Catalog, PartitionState, SubscriptionState, TopicState};
use super::command::{AckBatch, Command, PublishBatch, SubscriptionConfig, TopicConfig};
use super::outcome::{Applied, Rejection, Response, Write};

/// Reads the individual acks stored above a subscription's ack floor.
pub trait AckLookup {
    type Error;
    fn is_acked(&self, subscription_id: u64, partition: u32, offset: u64) -> Result<bool, Self::Error>;
}

/// Applies one command to the catalog and returns what to persist.
///
/// The catalog is updated in place; the caller must persist the writes before
/// it applies the next command or answers the proposer.
pub fn apply<L: AckLookup>(catalog: &mut Catalog, command: Command, acks: &L) -> Result<Applied, L::Error> {
    Ok(match command {
        Command::CreateTopic { name, config, create_time_us } => create_topic(catalog, name, config, create_time_us),
        Command::DeleteTopic { name } => delete_topic(catalog, &name),
        Command::CreateSubscription { name, topic, config, create_time_us } => {
            create_subscription(catalog, name, &topic, config, create_time_us)
        }
        Command::DeleteSubscription { name } => delete_subscription(catalog, &name),
        Command::Publish(batch) => publish(catalog, batch),
        Command::Acknowledge(batch) => return acknowledge(catalog, batch, acks),
    })
}

fn create_topic(catalog: &mut Catalog, name: String, config: TopicConfig, create_time_us: i64) -> Applied {
    if catalog.topic(&name).is_some() {
        return Applied::rejected(Rejection::TopicExists { name });
    }
    let empty = PartitionState { start_offset: 0, next_offset: 0, last_publish_time_us: 0 };
    let topic = TopicState {
        id: catalog.last_topic_id + 1,
        partitions: vec![empty; config.partitions as usize],
        name,
        config,
        create_time_us,
    };
    let mut writes = vec![Write::PutTopic(topic.clone())];
    writes.extend(topic.partitions.iter().enumerate().map(|(partition, state)| Write::PutPartition {
        topic_id: topic.id,
        partition: partition as u32,
        state: state.clone(),
    }));
    catalog.insert_topic(topic.clone());
    writes.push(id_counters(catalog));
    Applied { response: Response::TopicCreated(topic), writes }
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
    // A subscription receives what is published after it exists: its floors
    // start at the end of each partition.
    let subscription = SubscriptionState {
        id: catalog.last_subscription_id + 1,
        name,
        topic: topic.name.clone(),
        topic_id: topic.id,
        config,
        create_time_us,
        ack_floors: topic.partitions.iter().map(|p| p.next_offset).collect(),
    };
    let mut writes = vec![Write::PutSubscription(subscription.clone())];
    writes.extend(subscription.ack_floors.iter().enumerate().map(|(partition, floor)| Write::PutAckFloor {
        subscription_id: subscription.id,
        partition: partition as u32,
        floor: *floor,
    }));
    catalog.insert_subscription(subscription.clone());
    writes.push(id_counters(catalog));
    Applied { response: Response::SubscriptionCreated(subscription), writes }
}

fn delete_subscription(catalog: &mut Catalog, name: &str) -> Applied {
    let Some(id) = catalog.subscription(name).map(|s| s.id) else {
        return Applied::rejected(Rejection::SubscriptionNotFound { name: name.to_owned() });
    };
    let writes = catalog.remove_subscription(id).map(|s| delete_subscription_write(&s)).into_iter().collect();
    Applied { response: Response::SubscriptionDeleted, writes }
}

fn publish(catalog: &mut Catalog, batch: PublishBatch) -> Applied {
    let Some(topic) = catalog.topic_by_id_mut(batch.topic_id) else {
        return Applied::rejected(Rejection::TopicNotFound { name: format!("#{}", batch.topic_id) });
    };
    let partitions = topic.config.partitions;
    let Some(state) = topic.partitions.get_mut(batch.partition as usize) else {
        return Applied::rejected(Rejection::PartitionOutOfRange { partition: batch.partition, partitions });
    };
    // Publish times never go backwards within a partition, even if the new
    // leader's clock is behind the old one's.
    let publish_time_us = batch.publish_time_us.max(state.last_publish_time_us);
    let first_offset = state.next_offset;
    let count = batch.messages.len();
    let mut writes = Vec::with_capacity(count + 1);
    for (offset, body) in (first_offset..).zip(batch.messages) {
        writes.push(Write::PutMessage {
            topic_id: batch.topic_id,
            partition: batch.partition,
            offset,
            publish_time_us,
            body,
        });
    }
    state.next_offset += count as u64;
    state.last_publish_time_us = publish_time_us;
    writes.push(Write::PutPartition { topic_id: batch.topic_id, partition: batch.partition, state: state.clone() });
    Applied {
        response: Response::Published {
            partition: batch.partition,
            first_offset,
            count: count as u32,
            publish_time_us,
        },
        writes,
    }
}

fn acknowledge<L: AckLookup>(catalog: &mut Catalog, batch: AckBatch, acks: &L) -> Result<Applied, L::Error> {
    let Some(subscription) = catalog.subscription_by_id(batch.subscription_id) else {
        let name = format!("#{}", batch.subscription_id);
        return Ok(Applied::rejected(Rejection::SubscriptionNotFound { name }));
    };
    let ends: Vec<u64> = match catalog.topic_by_id(subscription.topic_id) {
        Some(topic) => topic.partitions.iter().map(|p| p.next_offset).collect(),
        None => return Ok(Applied::rejected(Rejection::TopicNotFound { name: subscription.topic.clone() })),
    };
    if let Some(bad) = batch.partitions.iter().find(|p| p.partition as usize >= ends.len()) {
        let partitions = ends.len() as u32;
        return Ok(Applied::rejected(Rejection::PartitionOutOfRange { partition: bad.partition, partitions }));
    }

    let mut floors = subscription.ack_floors.clone();
    let mut writes = Vec::new();
    let mut count = 0u64;
    for group in batch.partitions {
        let p = group.partition as usize;
        let (old_floor, end) = (floors[p], ends[p]);
        // Offsets below the floor are acked already; offsets at or past the end
        // were never published. Both change nothing.
        let mut fresh = BTreeSet::new();
        for offset in group.offsets {
            if (old_floor..end).contains(&offset) && !acks.is_acked(batch.subscription_id, group.partition, offset)? {
                fresh.insert(offset);
            }
        }
        count += fresh.len() as u64;

        let mut floor = old_floor;
        while floor < end && (fresh.remove(&floor) || acks.is_acked(batch.subscription_id, group.partition, floor)?) {
            floor += 1;
        }
        if floor > old_floor {
            floors[p] = floor;
            let (subscription_id, partition) = (batch.subscription_id, group.partition);
            writes.push(Write::DeleteAcks { subscription_id, partition, from: old_floor, to: floor });
            writes.push(Write::PutAckFloor { subscription_id, partition, floor });
        }
        writes.extend(fresh.into_iter().map(|offset| Write::PutAck {
            subscription_id: batch.subscription_id,
            partition: group.partition,
            offset,
        }));
    }
    if let Some(subscription) = catalog.subscription_by_id_mut(batch.subscription_id) {
        subscription.ack_floors = floors;
    }
    Ok(Applied { response: Response::Acknowledged { count }, writes })
}

fn delete_subscription_write(subscription: &SubscriptionState) -> Write {
    Write::DeleteSubscription {
        id: subscription.id,
        name: subscription.name.clone(),
        partitions: subscription.ack_floors.len() as u32,
    }
}

fn id_counters(catalog: &Catalog) -> Write {
    Write::PutIdCounters { last_topic_id: catalog.last_topic_id, last_subscription_id: catalog.last_subscription_id }
}
