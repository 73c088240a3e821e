//! Input rules. Each check names the field it rejects and the limit it broke,
//! and runs before anything is proposed, so bad input changes nothing.

use std::collections::BTreeMap;

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

/// Fills defaults for a requested topic config's zero settings and checks
/// ranges.
pub fn topic_config(requested: TopicConfig) -> Result<TopicConfig, InvalidArgument> {
    let or = |value, default| if value == 0 { default } else { value };
    let partitions = or(requested.partitions, PARTITIONS_DEFAULT);
    if partitions > PARTITIONS_MAX {
        let problem = format!("{partitions} is over the limit of {PARTITIONS_MAX}");
        return Err(InvalidArgument::new("settings.partitions", problem));
    }
    let max_message_bytes = or(requested.max_message_bytes, MESSAGE_BYTES_DEFAULT);
    if max_message_bytes > MESSAGE_BYTES_MAX {
        let problem = format!("{max_message_bytes} is over the limit of {MESSAGE_BYTES_MAX}");
        return Err(InvalidArgument::new("settings.max_message_bytes", problem));
    }
    let retention_seconds =
        if requested.retention_seconds == 0 { RETENTION_SECONDS_DEFAULT } else { requested.retention_seconds };
    if retention_seconds > RETENTION_SECONDS_MAX {
        let problem = format!("{retention_seconds} is over the limit of {RETENTION_SECONDS_MAX} (31 days)");
        return Err(InvalidArgument::new("settings.retention_seconds", problem));
    }
    labels("settings.labels", &requested.labels)?;
    Ok(TopicConfig { partitions, max_message_bytes, retention_seconds, ..requested })
}

/// Labels by Pub/Sub's rules: at most `LABELS_MAX`; keys 1..=63 and values
/// 0..=63 characters of `[a-z0-9_-]`, keys starting with a letter.
pub fn labels(field: &str, labels: &BTreeMap<String, String>) -> Result<(), InvalidArgument> {
    if labels.len() > LABELS_MAX {
        return Err(InvalidArgument::new(field, format!("{} labels is over the limit of {LABELS_MAX}", labels.len())));
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
    for (key, value) in labels {
        let well_formed = key.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && key.len() <= LABEL_CHARS_MAX
            && key.chars().all(allowed);
        if !well_formed {
            let problem = format!("key {key:?} must be 1..={LABEL_CHARS_MAX} of [a-z0-9_-], starting with a letter");
            return Err(InvalidArgument::new(field, problem));
        }
        if value.len() > LABEL_CHARS_MAX || !value.chars().all(allowed) {
            let problem = format!("the value of {key:?} must be 0..={LABEL_CHARS_MAX} of [a-z0-9_-]");
            return Err(InvalidArgument::new(field, problem));
        }
    }
    Ok(())
}

/// The settings an update's `update_mask` names: at least one, each known
/// (`named`) and named once.
pub fn update_mask<S: PartialEq>(
    mask: &[String],
    named: fn(&str) -> Option<S>,
    known: &[&str],
) -> Result<Vec<S>, InvalidArgument> {
    if mask.is_empty() {
        return Err(InvalidArgument::new("update_mask", format!("must name at least one of {}", known.join(", "))));
    }
    let mut settings = Vec::with_capacity(mask.len());
    for name in mask {
        let setting = named(name).ok_or_else(|| {
            InvalidArgument::new("update_mask", format!("{name:?} cannot be changed; these can: {}", known.join(", ")))
        })?;
        if settings.contains(&setting) {
            return Err(InvalidArgument::new("update_mask", format!("names {name:?} twice")));
        }
        settings.push(setting);
    }
    Ok(settings)
}

/// Fills defaults and checks ranges of subscription settings. Whether the
/// dead-letter topic exists is the caller's to check.
pub fn subscription_config(mut config: SubscriptionConfig) -> Result<SubscriptionConfig, InvalidArgument> {
    if config.ack_deadline_seconds == 0 {
        config.ack_deadline_seconds = ACK_DEADLINE_SECONDS_DEFAULT;
    }
    let seconds = config.ack_deadline_seconds;
    if !(ACK_DEADLINE_SECONDS_MIN..=ACK_DEADLINE_SECONDS_MAX).contains(&seconds) {
        let problem = format!("{seconds} is outside {ACK_DEADLINE_SECONDS_MIN}..={ACK_DEADLINE_SECONDS_MAX}");
        return Err(InvalidArgument::new("settings.ack_deadline_seconds", problem));
    }
    for (field, value) in [
        ("settings.retry_min_backoff_seconds", config.retry_min_backoff_seconds),
        ("settings.retry_max_backoff_seconds", config.retry_max_backoff_seconds),
    ] {
        if value > RETRY_BACKOFF_SECONDS_MAX {
            return Err(InvalidArgument::new(
                field,
                format!("{value} is over the limit of {RETRY_BACKOFF_SECONDS_MAX}"),
            ));
        }
    }
    if config.retry_max_backoff_seconds == 0 {
        config.retry_max_backoff_seconds = config.retry_min_backoff_seconds;
    }
    if config.retry_min_backoff_seconds > config.retry_max_backoff_seconds {
        let problem = format!(
            "{} is over retry_max_backoff_seconds ({})",
            config.retry_min_backoff_seconds, config.retry_max_backoff_seconds
        );
        return Err(InvalidArgument::new("settings.retry_min_backoff_seconds", problem));
    }
    if config.dead_letter_topic.is_empty() {
        if config.max_delivery_attempts != 0 {
            let problem = "needs settings.dead_letter_topic: attempts count only toward dead-lettering";
            return Err(InvalidArgument::new("settings.max_delivery_attempts", problem));
        }
        labels("settings.labels", &config.labels)?;
        return Ok(config);
    }
    name("settings.dead_letter_topic", &config.dead_letter_topic)?;
    if config.max_delivery_attempts == 0 {
        config.max_delivery_attempts = DELIVERY_ATTEMPTS_DEFAULT;
    }
    let attempts = config.max_delivery_attempts;
    if !(DELIVERY_ATTEMPTS_MIN..=DELIVERY_ATTEMPTS_MAX).contains(&attempts) {
        let problem = format!("{attempts} is outside {DELIVERY_ATTEMPTS_MIN}..={DELIVERY_ATTEMPTS_MAX}");
        return Err(InvalidArgument::new("settings.max_delivery_attempts", problem));
    }
    labels("settings.labels", &config.labels)?;
    Ok(config)
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

/// Who asks for a lock: any non-empty id up to the limit.
pub fn lock_holder(holder: &str) -> Result<(), InvalidArgument> {
    if holder.is_empty() {
        return Err(InvalidArgument::new("holder", "must not be empty"));
    }
    if holder.len() > LOCK_HOLDER_BYTES_MAX {
        let problem = format!("{} bytes is over the limit of {LOCK_HOLDER_BYTES_MAX}", holder.len());
        return Err(InvalidArgument::new("holder", problem));
    }
    Ok(())
}

/// Fills the default for a zero time to live and checks the range.
pub fn lock_ttl_seconds(seconds: u32) -> Result<u32, InvalidArgument> {
    let seconds = if seconds == 0 { LOCK_TTL_SECONDS_DEFAULT } else { seconds };
    if seconds > LOCK_TTL_SECONDS_MAX {
        let problem = format!("{seconds} is over the limit of {LOCK_TTL_SECONDS_MAX}");
        return Err(InvalidArgument::new("ttl_seconds", problem));
    }
    Ok(seconds)
}

/// Fills the default for a zero page size and checks the range.
pub fn page_size(page_size: u32) -> Result<usize, InvalidArgument> {
    let size = if page_size == 0 { PAGE_SIZE_DEFAULT } else { page_size };
    if size > PAGE_SIZE_MAX {
        return Err(InvalidArgument::new("page_size", format!("{size} is over the limit of {PAGE_SIZE_MAX}")));
    }
    Ok(size as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TopicSetting;

    fn labelled(key: &str, value: &str) -> Result<(), InvalidArgument> {
        labels("settings.labels", &[(key.to_owned(), value.to_owned())].into())
    }

    #[test]
    fn labels_follow_pubsubs_rules() {
        assert!(labelled("team", "data-eng_2").is_ok());
        assert!(labelled("team", "").is_ok(), "an empty value is allowed");
        for (key, value) in [("Team", "x"), ("2team", "x"), ("", "x"), ("team", "Data"), ("te am", "x")] {
            let error = labelled(key, value).expect_err(key);
            assert_eq!(error.field, "settings.labels", "{key}={value}");
        }
        assert!(labelled(&"k".repeat(LABEL_CHARS_MAX + 1), "x").is_err());
        let many: BTreeMap<String, String> = (0..=LABELS_MAX).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(labels("settings.labels", &many).is_err());
    }

    #[test]
    fn an_update_mask_names_known_settings_once() {
        let known = TopicSetting::ALL.map(TopicSetting::name);
        let mask = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            update_mask(&mask(&["labels", "retention_seconds"]), TopicSetting::named, &known),
            Ok(vec![TopicSetting::Labels, TopicSetting::RetentionSeconds])
        );
        for bad in [&[][..], &["partitions"][..], &["labels", "labels"][..]] {
            let error = update_mask(&mask(bad), TopicSetting::named, &known).expect_err("refused");
            assert_eq!(error.field, "update_mask");
        }
    }
}
