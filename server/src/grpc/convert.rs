//! Conversions between the `ferry.v1` API types and domain types.

use ferry_proto::v1 as api;

use crate::delivery::Delivery;
use crate::domain::{MessageBody, SubscriptionState, TopicState};

pub fn topic(topic: &TopicState) -> api::Topic {
    api::Topic {
        name: topic.name.clone(),
        settings: Some(api::TopicSettings {
            partitions: topic.config.partitions,
            max_message_bytes: topic.config.max_message_bytes,
        }),
        create_time_unix_micros: topic.create_time_us,
        partitions: topic
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| api::PartitionInfo {
                partition: i as u32,
                start_offset: p.start_offset,
                end_offset: p.next_offset,
            })
            .collect(),
    }
}

pub fn subscription(subscription: &SubscriptionState) -> api::Subscription {
    api::Subscription {
        name: subscription.name.clone(),
        topic: subscription.topic.clone(),
        settings: Some(api::SubscriptionSettings { ack_deadline_seconds: subscription.config.ack_deadline_seconds }),
        create_time_unix_micros: subscription.create_time_us,
    }
}

pub fn message_body(message: api::Message) -> MessageBody {
    MessageBody {
        data: message.data,
        attributes: message.attributes,
        ordering_key: message.ordering_key,
        event_id: message.event_id,
    }
}

pub fn received(delivery: Delivery) -> api::ReceivedMessage {
    let Delivery { ack_id, attempt, message } = delivery;
    api::ReceivedMessage {
        ack_id: ack_id.encode(),
        delivery_attempt: attempt,
        partition: message.partition,
        offset: message.offset,
        publish_time_unix_micros: message.publish_time_us,
        message: Some(api::Message {
            data: message.body.data,
            attributes: message.body.attributes,
            ordering_key: message.body.ordering_key,
            event_id: message.body.event_id,
        }),
    }
}

/// One page of a name-ordered listing: at most `size` items, and the token to
/// continue after them (the last name), empty on the last page.
pub fn page<T>(items: impl Iterator<Item = T>, size: usize, name: impl Fn(&T) -> &str) -> (Vec<T>, String) {
    let mut page: Vec<T> = items.take(size + 1).collect();
    if page.len() <= size {
        return (page, String::new());
    }
    page.truncate(size);
    let token = page.last().map(|item| name(item).to_owned()).unwrap_or_default();
    (page, token)
}
