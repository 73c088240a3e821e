//! Pub/Sub values and Ferry's: messages, message ids, times, durations,
//! update masks and dead-letter attributes.

use std::collections::BTreeMap;

use ferry_proto::pubsub as ps;
use ferry_proto::v1 as api;

use super::names::split_ferry;
use crate::grpc::{dead_letter, ApiError};

/// Partitions a message id can name: the low 10 bits hold the partition.
const PARTITION_BITS: u32 = 10;

/// A message's id: its position, `(offset << 10) | partition` in decimal.
/// Numeric like the service's ids, the same on every redelivery (users
/// deduplicate on it) and unique within the topic.
pub fn message_id(position: &api::Position) -> String {
    ((position.offset << PARTITION_BITS) | u64::from(position.partition)).to_string()
}

/// Ferry's message of a published Pub/Sub one (id and time are the server's).
pub fn message_to_ferry(message: ps::PubsubMessage) -> api::Message {
    api::Message {
        data: message.data,
        attributes: message.attributes,
        ordering_key: message.ordering_key,
        event_id: String::new(),
    }
}

/// Microseconds since the epoch as a protobuf Timestamp.
pub fn timestamp(unix_micros: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: unix_micros.div_euclid(1_000_000),
        nanos: (unix_micros.rem_euclid(1_000_000) * 1_000) as i32,
    }
}

/// Whole seconds of a Duration, rounded up (Ferry keeps seconds); `None`
/// when unset. Negative durations are refused naming `field`.
pub fn seconds_up(field: &str, duration: Option<&prost_types::Duration>) -> Result<Option<u64>, ApiError> {
    let Some(d) = duration else { return Ok(None) };
    if d.seconds < 0 || d.nanos < 0 {
        return Err(ApiError::invalid(field, "must not be negative"));
    }
    Ok(Some(d.seconds as u64 + u64::from(d.nanos > 0)))
}

pub fn duration(seconds: u64) -> prost_types::Duration {
    prost_types::Duration { seconds: seconds as i64, nanos: 0 }
}

/// The Ferry settings a Pub/Sub update mask names: each of its paths mapped
/// by `ferry_setting` (`None`: Ferry cannot change it, refused naming it).
pub fn update_mask(
    mask: Option<&prost_types::FieldMask>,
    ferry_setting: fn(&str) -> Option<&'static str>,
) -> Result<Vec<String>, ApiError> {
    let paths = mask.map(|m| m.paths.as_slice()).unwrap_or_default();
    if paths.is_empty() {
        return Err(ApiError::invalid("update_mask", "must name at least one field"));
    }
    paths
        .iter()
        .map(|path| {
            let setting = ferry_setting(path)
                .ok_or_else(|| ApiError::invalid("update_mask", format!("Ferry cannot change {path:?}")))?;
            Ok(setting.to_owned())
        })
        .collect()
}

/// Pub/Sub's attributes on a dead-lettered message, from what Ferry
/// recorded on it (`grpc::dead_letter`); Ferry's own stay beside them.
pub fn add_dead_letter_attributes(attributes: &mut BTreeMap<String, String>) {
    let Some(source) = attributes.get(dead_letter::SUBSCRIPTION_ATTRIBUTE) else {
        return;
    };
    let mut added = Vec::with_capacity(4);
    if let Some((project, id)) = split_ferry(source) {
        added.push(("CloudPubSubDeadLetterSourceSubscription", id.to_owned()));
        added.push(("CloudPubSubDeadLetterSourceSubscriptionProject", project.to_owned()));
    }
    if let Some(attempts) = attributes.get(dead_letter::ATTEMPTS_ATTRIBUTE) {
        added.push(("CloudPubSubDeadLetterSourceDeliveryCount", attempts.clone()));
    }
    if let Some(published) = attributes.get(dead_letter::PUBLISH_TIME_ATTRIBUTE) {
        added.push(("CloudPubSubDeadLetterSourceTopicPublishTime", published.clone()));
    }
    for (key, value) in added {
        attributes.entry(key.to_owned()).or_insert(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_tell_positions_apart() {
        let id = |partition, offset| message_id(&api::Position { partition, offset });
        assert_eq!(id(0, 0), "0");
        assert_eq!(id(3, 1), "1027");
        assert_ne!(id(1, 0), id(0, 1));
        assert_eq!(id(1023, u64::MAX >> 10), u64::MAX.to_string());
    }

    #[test]
    fn times_and_durations_convert_with_seconds_rounded_up() {
        assert_eq!(timestamp(1_500_000), prost_types::Timestamp { seconds: 1, nanos: 500_000_000 });
        assert_eq!(timestamp(-1), prost_types::Timestamp { seconds: -1, nanos: 999_999_000 });
        let d = |seconds, nanos| prost_types::Duration { seconds, nanos };
        assert_eq!(seconds_up("f", Some(&d(600, 0))).expect("valid"), Some(600));
        assert_eq!(seconds_up("f", Some(&d(600, 1))).expect("valid"), Some(601));
        assert_eq!(seconds_up("f", None).expect("valid"), None);
        assert!(seconds_up("ttl", Some(&d(-1, 0))).expect_err("negative").to_string().contains("ttl"));
    }

    #[test]
    fn a_dead_lettered_message_gets_pubsubs_attributes_beside_ferrys() {
        let mut attributes: BTreeMap<String, String> = [
            (dead_letter::SUBSCRIPTION_ATTRIBUTE, "shop.billing"),
            (dead_letter::ATTEMPTS_ATTRIBUTE, "5"),
            (dead_letter::PUBLISH_TIME_ATTRIBUTE, "2026-12-05T10:00:00.000001Z"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        add_dead_letter_attributes(&mut attributes);
        assert_eq!(attributes["CloudPubSubDeadLetterSourceSubscription"], "billing");
        assert_eq!(attributes["CloudPubSubDeadLetterSourceSubscriptionProject"], "shop");
        assert_eq!(attributes["CloudPubSubDeadLetterSourceDeliveryCount"], "5");
        assert_eq!(attributes["CloudPubSubDeadLetterSourceTopicPublishTime"], "2026-12-05T10:00:00.000001Z");
        assert_eq!(attributes.len(), 7, "Ferry's own stay");

        let mut plain: BTreeMap<String, String> = [("n".to_owned(), "1".to_owned())].into();
        add_dead_letter_attributes(&mut plain);
        assert_eq!(plain.len(), 1, "nothing added to a message never dead-lettered");
    }
}
