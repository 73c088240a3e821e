//! Moving messages that used up their delivery attempts to the subscription's
//! dead-letter topic, through Raft, in the background of the pull that found
//! them (on the leader of the message's group).

use super::group_delivery::GroupDelivery;
use super::publish_input::partition_of_key;
use crate::delivery::Exhausted;
use crate::domain::{self, AckBatch, Command, DeadLetter, PartitionAcks, PublishBatch, SubscriptionState};
use crate::raft::META_GROUP;

/// Attribute keys added to a dead-lettered message.
pub const REASON_ATTRIBUTE: &str = "ferry.dead_letter.reason";
pub const SUBSCRIPTION_ATTRIBUTE: &str = "ferry.dead_letter.subscription";
pub const TOPIC_ATTRIBUTE: &str = "ferry.dead_letter.source_topic";
pub const POSITION_ATTRIBUTE: &str = "ferry.dead_letter.source_position";
pub const ATTEMPTS_ATTRIBUTE: &str = "ferry.dead_letter.delivery_attempts";
/// When the message was first published (RFC 3339, UTC, microseconds).
pub const PUBLISH_TIME_ATTRIBUTE: &str = "ferry.dead_letter.source_publish_time";

/// Starts moving each exhausted message; each finishes on its own.
pub fn spawn(delivery: &GroupDelivery, term: u64, subscription: &SubscriptionState, exhausted: Vec<Exhausted>) {
    for message in exhausted {
        let (delivery, subscription) = (delivery.clone(), subscription.clone());
        tokio::spawn(async move {
            let position = (message.message.partition, message.message.offset);
            let moved = move_one(&delivery, &subscription, message).await;
            delivery.dispatcher().finish_dead_letter(term, &subscription, position, moved);
        });
    }
}

/// Appends the message to the dead-letter topic and acks it: in one entry
/// when the dead-letter partition is in the message's own group, else by a
/// publish to the dead-letter partition's group, then the ack. A failure
/// between the two redelivers the message, which a later move copies again:
/// across groups the dead-letter topic is at-least-once.
async fn move_one(delivery: &GroupDelivery, subscription: &SubscriptionState, exhausted: Exhausted) -> bool {
    let target = &subscription.config.dead_letter_topic;
    let Some((topic_id, partitions, groups)) = delivery.routes().topic_placement(target) else {
        tracing::warn!(subscription = %subscription.name, topic = %target, "dead-letter topic does not exist; redelivering");
        return false;
    };
    let proposer = delivery.proposer();
    let here = proposer.state().catalog().group;
    let Exhausted { message, attempts } = exhausted;
    let mut body = message.body;
    let reason = format!("delivered {attempts} times without an ack (max_delivery_attempts)");
    body.attributes.insert(REASON_ATTRIBUTE.into(), reason);
    body.attributes.insert(SUBSCRIPTION_ATTRIBUTE.into(), subscription.name.clone());
    body.attributes.insert(TOPIC_ATTRIBUTE.into(), subscription.topic.clone());
    body.attributes.insert(POSITION_ATTRIBUTE.into(), format!("{}:{}", message.partition, message.offset));
    body.attributes.insert(ATTEMPTS_ATTRIBUTE.into(), attempts.to_string());
    let published = std::time::UNIX_EPOCH + std::time::Duration::from_micros(message.publish_time_us.max(0) as u64);
    body.attributes.insert(PUBLISH_TIME_ATTRIBUTE.into(), humantime::format_rfc3339_micros(published).to_string());
    let group_of = |partition: u32| groups.get(partition as usize).copied().unwrap_or(META_GROUP);
    let dead_letter_partition = if body.ordering_key.is_empty() {
        // Keyless: a partition in this group if there is one, so the move
        // is one entry.
        let local: Vec<u32> = (0..partitions).filter(|p| group_of(*p) == here).collect();
        if local.is_empty() {
            message.partition % partitions
        } else {
            local[message.partition as usize % local.len()]
        }
    } else {
        partition_of_key(&body.ordering_key, partitions)
    };
    let outcome = if group_of(dead_letter_partition) == here {
        let command = Command::DeadLetter(DeadLetter {
            subscription_id: subscription.id,
            partition: message.partition,
            offset: message.offset,
            dead_letter_topic_id: topic_id,
            dead_letter_partition,
            publish_time_us: delivery.dispatcher().clock().wall_us(),
            message: body,
        });
        proposer.propose(command).await
    } else {
        let batch = PublishBatch {
            topic_id,
            partition: dead_letter_partition,
            publish_time_us: 0,
            messages: vec![body],
            producer: None,
        };
        match delivery.routes().publish(group_of(dead_letter_partition), batch).await {
            Ok(_) => {
                let acks = vec![PartitionAcks { partition: message.partition, offsets: vec![message.offset] }];
                proposer
                    .propose(Command::Acknowledge(AckBatch { subscription_id: subscription.id, partitions: acks }))
                    .await
            }
            Err(e) => Err(e),
        }
    };
    match outcome {
        Ok(domain::Response::DeadLettered { .. } | domain::Response::Acknowledged { .. }) => true,
        Ok(other) => {
            tracing::warn!(?other, "dead-lettering answered unexpectedly");
            false
        }
        Err(e) => {
            tracing::warn!(subscription = %subscription.name, error = %e, "dead-lettering failed; will retry");
            false
        }
    }
}
