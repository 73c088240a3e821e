//! Conversions between the `ferry.v1` API types and domain types.

use ferry_proto::v1 as api;

use crate::delivery::{Backlog, Delivery};
use crate::domain::{MessageBody, PartitionState, SubscriptionConfig, SubscriptionState, TopicConfig, TopicState};

/// A topic with its partitions' states (`topic.partitions` unless the
/// partitions are held by data groups).
pub fn topic(topic: &TopicState, partitions: &[PartitionState]) -> api::Topic {
    api::Topic {
        name: topic.name.clone(),
        settings: Some(api::TopicSettings {
            partitions: topic.config.partitions,
            max_message_bytes: topic.config.max_message_bytes,
            retention_seconds: topic.config.retention_seconds,
            retention_bytes: topic.config.retention_bytes,
            labels: topic.config.labels.clone(),
        }),
        create_time_unix_micros: topic.create_time_us,
        partitions: partitions
            .iter()
            .enumerate()
            .map(|(i, p)| api::PartitionInfo {
                partition: i as u32,
                start_offset: p.start_offset,
                end_offset: p.next_offset,
                stored_bytes: p.stored_bytes(),
                offsets_for_times: Vec::new(),
            })
            .collect(),
    }
}

/// A topic's settings as a request asks for them (zeros: defaults).
pub fn topic_config(settings: api::TopicSettings) -> TopicConfig {
    TopicConfig {
        partitions: settings.partitions,
        max_message_bytes: settings.max_message_bytes,
        retention_seconds: settings.retention_seconds,
        retention_bytes: settings.retention_bytes,
        labels: settings.labels,
    }
}

/// A subscription's settings as a request asks for them (zeros: defaults).
pub fn subscription_config(settings: api::SubscriptionSettings) -> SubscriptionConfig {
    SubscriptionConfig {
        ack_deadline_seconds: settings.ack_deadline_seconds,
        retry_min_backoff_seconds: settings.retry_min_backoff_seconds,
        retry_max_backoff_seconds: settings.retry_max_backoff_seconds,
        dead_letter_topic: settings.dead_letter_topic,
        max_delivery_attempts: settings.max_delivery_attempts,
        labels: settings.labels,
    }
}

pub fn subscription(subscription: &SubscriptionState) -> api::Subscription {
    api::Subscription {
        name: subscription.name.clone(),
        topic: subscription.topic.clone(),
        settings: Some(api::SubscriptionSettings {
            ack_deadline_seconds: subscription.config.ack_deadline_seconds,
            retry_min_backoff_seconds: subscription.config.retry_min_backoff_seconds,
            retry_max_backoff_seconds: subscription.config.retry_max_backoff_seconds,
            dead_letter_topic: subscription.config.dead_letter_topic.clone(),
            max_delivery_attempts: subscription.config.max_delivery_attempts,
            labels: subscription.config.labels.clone(),
        }),
        create_time_unix_micros: subscription.create_time_us,
        backlog: None,
    }
}

pub fn backlog(backlog: &Backlog, now_wall_us: i64) -> api::Backlog {
    let oldest = backlog.oldest_unacked_publish_time_us;
    api::Backlog {
        unacked_messages: backlog.unacked_messages,
        unacked_bytes: backlog.unacked_bytes,
        leased_messages: backlog.leased_messages,
        oldest_unacked_age_millis: oldest.map_or(0, |t| (now_wall_us.saturating_sub(t) / 1000).max(0) as u64),
        oldest_unacked_publish_time_unix_micros: oldest.unwrap_or(0),
        as_of_unix_micros: now_wall_us,
        partitions: backlog
            .partitions
            .iter()
            .map(|p| api::PartitionProgress {
                partition: p.partition,
                ack_floor: p.ack_floor,
                end_offset: p.end_offset,
            })
            .collect(),
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
