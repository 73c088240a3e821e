//! Moving messages that used up their delivery attempts to the subscription's
//! dead-letter topic, through Raft, in the background of the pull that found
//! them.

use std::sync::Arc;

use super::proposer::Proposer;
use super::publish_input::partition_of_key;
use crate::delivery::{Dispatcher, Exhausted};
use crate::domain::{self, Command, DeadLetter, SubscriptionState};

/// Attribute keys added to a dead-lettered message.
pub const REASON_ATTRIBUTE: &str = "ferry.dead_letter.reason";
pub const SUBSCRIPTION_ATTRIBUTE: &str = "ferry.dead_letter.subscription";
pub const TOPIC_ATTRIBUTE: &str = "ferry.dead_letter.source_topic";
pub const POSITION_ATTRIBUTE: &str = "ferry.dead_letter.source_position";
pub const ATTEMPTS_ATTRIBUTE: &str = "ferry.dead_letter.delivery_attempts";

/// Starts moving each exhausted message; each finishes on its own.
pub fn spawn(
    proposer: &Proposer,
    dispatcher: &Arc<Dispatcher>,
    term: u64,
    subscription: &SubscriptionState,
    exhausted: Vec<Exhausted>,
) {
    for message in exhausted {
        let (proposer, dispatcher, subscription) = (proposer.clone(), Arc::clone(dispatcher), subscription.clone());
        tokio::spawn(async move {
            let position = (message.message.partition, message.message.offset);
            let moved = move_one(&proposer, &dispatcher, &subscription, message).await;
            dispatcher.finish_dead_letter(term, &subscription, position, moved);
        });
    }
}

async fn move_one(
    proposer: &Proposer,
    dispatcher: &Dispatcher,
    subscription: &SubscriptionState,
    exhausted: Exhausted,
) -> bool {
    let target = &subscription.config.dead_letter_topic;
    let Some((topic_id, partitions)) = proposer.state().catalog().topic(target).map(|t| (t.id, t.config.partitions))
    else {
        tracing::warn!(subscription = %subscription.name, topic = %target, "dead-letter topic does not exist; redelivering");
        return false;
    };
    let Exhausted { message, attempts } = exhausted;
    let mut body = message.body;
    let reason = format!("delivered {attempts} times without an ack (max_delivery_attempts)");
    body.attributes.insert(REASON_ATTRIBUTE.into(), reason);
    body.attributes.insert(SUBSCRIPTION_ATTRIBUTE.into(), subscription.name.clone());
    body.attributes.insert(TOPIC_ATTRIBUTE.into(), subscription.topic.clone());
    body.attributes.insert(POSITION_ATTRIBUTE.into(), format!("{}:{}", message.partition, message.offset));
    body.attributes.insert(ATTEMPTS_ATTRIBUTE.into(), attempts.to_string());
    let dead_letter_partition = if body.ordering_key.is_empty() {
        message.partition % partitions
    } else {
        partition_of_key(&body.ordering_key, partitions)
    };
    let command = Command::DeadLetter(DeadLetter {
        subscription_id: subscription.id,
        partition: message.partition,
        offset: message.offset,
        dead_letter_topic_id: topic_id,
        dead_letter_partition,
        publish_time_us: dispatcher.clock().wall_us(),
        message: body,
    });
    match proposer.propose(command).await {
        Ok(domain::Response::DeadLettered { .. }) => true,
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
