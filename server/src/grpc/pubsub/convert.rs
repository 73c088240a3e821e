//! Pub/Sub values and Ferry's: messages, message ids, times and durations.

use ferry_proto::pubsub as ps;
use ferry_proto::v1 as api;

use crate::grpc::ApiError;

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
}
