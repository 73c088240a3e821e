//! How the CLI prints topics, subscriptions and messages.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ferry_client::{Backlog, Bookmark, ReceivedMessage, Subscription, Topic};
use serde_json::{json, Value};

pub fn print_json(value: &Value) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, value)?;
    writeln!(stdout)?;
    Ok(())
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_micros(time).to_string()
}

fn unix_micros(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

pub fn topic(topic: &Topic) -> Value {
    json!({
        "name": topic.name,
        "partitions": topic.settings.partitions,
        "max_message_bytes": topic.settings.max_message_bytes,
        "retention_seconds": topic.settings.retention.as_secs(),
        "retention_bytes": topic.settings.retention_bytes,
        "labels": topic.settings.labels,
        "create_time": rfc3339(topic.create_time),
        "offsets": topic.partitions.iter().map(|p| json!({
            "partition": p.partition,
            "start_offset": p.start_offset,
            "end_offset": p.end_offset,
            "stored_bytes": p.stored_bytes,
        })).collect::<Vec<_>>(),
    })
}

pub fn bookmark(bookmark: &Bookmark) -> Value {
    json!({
        "name": bookmark.name,
        "topic": bookmark.topic,
        "floors": bookmark.floors,
        "create_time": rfc3339(bookmark.create_time),
        "expire_time": rfc3339(bookmark.expire_time),
        "labels": bookmark.labels,
    })
}

pub fn subscription(subscription: &Subscription) -> Value {
    json!({
        "name": subscription.name,
        "topic": subscription.topic,
        "ack_deadline_seconds": subscription.settings.ack_deadline.as_secs(),
        "retry_min_backoff_seconds": subscription.settings.retry_min_backoff.as_secs(),
        "retry_max_backoff_seconds": subscription.settings.retry_max_backoff.as_secs(),
        "dead_letter_topic": subscription.settings.dead_letter_topic,
        "max_delivery_attempts": subscription.settings.max_delivery_attempts,
        "labels": subscription.settings.labels,
        "create_time": rfc3339(subscription.create_time),
        "backlog": backlog(subscription.backlog.as_ref()),
    })
}

pub fn backlog(backlog: Option<&Backlog>) -> Value {
    let Some(backlog) = backlog else { return Value::Null };
    json!({
        "unacked_messages": backlog.unacked_messages,
        "unacked_bytes": backlog.unacked_bytes,
        "leased_messages": backlog.leased_messages,
        "oldest_unacked_age_seconds": backlog.oldest_unacked_age.as_secs_f64(),
        "oldest_unacked_publish_time": backlog.oldest_unacked_publish_time.map(rfc3339),
    })
}

/// One JSON object per message. Data that is UTF-8 is printed as `data`,
/// anything else base64-encoded as `data_base64`.
pub fn received(received: &ReceivedMessage) -> Value {
    let mut value = json!({
        "partition": received.position.partition,
        "offset": received.position.offset,
        "publish_time": rfc3339(received.publish_time),
        "publish_time_unix_micros": unix_micros(received.publish_time),
        "attributes": received.message.attributes,
        "ordering_key": received.message.ordering_key,
        "event_id": received.message.event_id,
        "ack_id": received.ack_id,
        "delivery_attempt": received.delivery_attempt,
    });
    match std::str::from_utf8(&received.message.data) {
        Ok(text) => value["data"] = json!(text),
        Err(_) => value["data_base64"] = json!(STANDARD.encode(&received.message.data)),
    }
    value
}
