//! Input rules. Each check names the field it rejects and the limit it broke,
//! and runs before anything is proposed, so bad input changes nothing.

use super::command::{SubscriptionConfig, TopicConfig};
use super::invalid::InvalidArgument;
use super::limits::*;
use super::message::MessageBody;

/// Topic and subscription names: `[A-Za-z0-9._-]{1,249}`.
pub fn name(field: &str, name: &str) -> Result<(), InvalidArgument> {
    if name.is_empty() {
        return Err(InvalidArgument::new(field, "must not be empty"));
    }
    if name.len() > NAME_BYTES_MAX {
        return Err(InvalidArgument::new(field, format!("{} bytes is over the limit of {NAME_BYTES_MAX}", name.len())));
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(InvalidArgument::new(field, format!("character {bad:?} is not allowed; use [A-Za-z0-9._-]")));
    }
    if name == "." || name == ".." {
        return Err(InvalidArgument::new(field, format!("{name:?} is reserved")));
    }
    Ok(())
}

/// Fills defaults for zero settings and checks ranges.
pub fn topic_config(partitions: u32, max_message_bytes: u32) -> Result<TopicConfig, InvalidArgument> {
    let partitions = if partitions == 0 { PARTITIONS_DEFAULT } else { partitions };
    if partitions > PARTITIONS_MAX {
        let problem = format!("{partitions} is over the limit of {PARTITIONS_MAX}");
        return Err(InvalidArgument::new("settings.partitions", problem));
    }
    let max_message_bytes = if max_message_bytes == 0 { MESSAGE_BYTES_DEFAULT } else { max_message_bytes };
    if max_message_bytes > MESSAGE_BYTES_MAX {
        let problem = format!("{max_message_bytes} is over the limit of {MESSAGE_BYTES_MAX}");
        return Err(InvalidArgument::new("settings.max_message_bytes", problem));
    }
    Ok(TopicConfig { partitions, max_message_bytes })
}

pub fn subscription_config(ack_deadline_seconds: u32) -> Result<SubscriptionConfig, InvalidArgument> {
    let seconds = if ack_deadline_seconds == 0 { ACK_DEADLINE_SECONDS_DEFAULT } else { ack_deadline_seconds };
    if !(ACK_DEADLINE_SECONDS_MIN..=ACK_DEADLINE_SECONDS_MAX).contains(&seconds) {
        let problem = format!("{seconds} is outside {ACK_DEADLINE_SECONDS_MIN}..={ACK_DEADLINE_SECONDS_MAX}");
        return Err(InvalidArgument::new("settings.ack_deadline_seconds", problem));
    }
    Ok(SubscriptionConfig { ack_deadline_seconds: seconds })
}

/// A publish batch against the limits of its topic.
pub fn batch(messages: &[MessageBody], max_message_bytes: u32) -> Result<(), InvalidArgument> {
    if messages.is_empty() {
        return Err(InvalidArgument::new("messages", "must hold at least one message"));
    }
    if messages.len() > BATCH_MESSAGES_MAX {
        let problem = format!("{} messages is over the limit of {BATCH_MESSAGES_MAX}", messages.len());
        return Err(InvalidArgument::new("messages", problem));
    }
    let mut total = 0usize;
    for (i, message) in messages.iter().enumerate() {
        self::message(i, message, max_message_bytes)?;
        total += message.size_bytes() + message.ordering_key.len() + message.event_id.len();
    }
    if total > BATCH_BYTES_MAX {
        return Err(InvalidArgument::new("messages", format!("{total} bytes is over the limit of {BATCH_BYTES_MAX}")));
    }
    Ok(())
}

fn message(i: usize, message: &MessageBody, max_message_bytes: u32) -> Result<(), InvalidArgument> {
    let field = |name: &str| format!("messages[{i}]{name}");
    if message.data.is_empty() && message.attributes.is_empty() {
        return Err(InvalidArgument::new(field(""), "a message needs data or at least one attribute"));
    }
    let size = message.size_bytes();
    if size > max_message_bytes as usize {
        let problem = format!("{size} bytes is over the topic's limit of {max_message_bytes}");
        return Err(InvalidArgument::new(field(""), problem));
    }
    if message.attributes.len() > ATTRIBUTES_MAX {
        let problem = format!("{} attributes is over the limit of {ATTRIBUTES_MAX}", message.attributes.len());
        return Err(InvalidArgument::new(field(".attributes"), problem));
    }
    for (key, value) in &message.attributes {
        if key.is_empty() {
            return Err(InvalidArgument::new(field(".attributes"), "an attribute key must not be empty"));
        }
        if key.len() > ATTRIBUTE_KEY_BYTES_MAX {
            let problem = format!("key of {} bytes is over the limit of {ATTRIBUTE_KEY_BYTES_MAX}", key.len());
            return Err(InvalidArgument::new(field(".attributes"), problem));
        }
        if value.len() > ATTRIBUTE_VALUE_BYTES_MAX {
            let problem =
                format!("value of {key:?} is {} bytes, over the limit of {ATTRIBUTE_VALUE_BYTES_MAX}", value.len());
            return Err(InvalidArgument::new(field(".attributes"), problem));
        }
    }
    for (name, value) in [(".ordering_key", &message.ordering_key), (".event_id", &message.event_id)] {
        if value.len() > KEY_BYTES_MAX {
            let problem = format!("{} bytes is over the limit of {KEY_BYTES_MAX}", value.len());
            return Err(InvalidArgument::new(field(name), problem));
        }
    }
    Ok(())
}

/// A lease change: 0 (nack) up to the longest ack deadline.
pub fn ack_deadline_change(seconds: u32) -> Result<(), InvalidArgument> {
    if seconds > ACK_DEADLINE_SECONDS_MAX {
        let problem = format!("{seconds} is over the limit of {ACK_DEADLINE_SECONDS_MAX}");
        return Err(InvalidArgument::new("ack_deadline_seconds", problem));
    }
    Ok(())
}

pub fn ack_id_count(count: usize) -> Result<(), InvalidArgument> {
    if count == 0 {
        return Err(InvalidArgument::new("ack_ids", "must hold at least one ack id"));
    }
    if count > ACK_IDS_MAX {
        return Err(InvalidArgument::new("ack_ids", format!("{count} ack ids is over the limit of {ACK_IDS_MAX}")));
    }
    Ok(())
}

pub fn pull(max_messages: u32, wait_millis: u32) -> Result<(), InvalidArgument> {
    if !(1..=PULL_MESSAGES_MAX).contains(&max_messages) {
        let problem = format!("{max_messages} is outside 1..={PULL_MESSAGES_MAX}");
        return Err(InvalidArgument::new("max_messages", problem));
    }
    if wait_millis > PULL_WAIT_MILLIS_MAX {
        let problem = format!("{wait_millis} is over the limit of {PULL_WAIT_MILLIS_MAX}");
        return Err(InvalidArgument::new("wait_millis", problem));
    }
    Ok(())
}

/// Fills the default for a zero page size and checks the range.
pub fn page_size(page_size: u32) -> Result<usize, InvalidArgument> {
    let size = if page_size == 0 { PAGE_SIZE_DEFAULT } else { page_size };
    if size > PAGE_SIZE_MAX {
        return Err(InvalidArgument::new("page_size", format!("{size} is over the limit of {PAGE_SIZE_MAX}")));
    }
    Ok(size as usize)
}
