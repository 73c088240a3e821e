//! Where a mirrored message came from: the attributes that record it, the
//! loop check that reads them, and the producer id a route publishes under.

use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

use ferry_client::ReceivedMessage;

pub const CLUSTER: &str = "ferry.origin.cluster";
pub const TOPIC: &str = "ferry.origin.topic";
pub const PARTITION: &str = "ferry.origin.partition";
pub const OFFSET: &str = "ferry.origin.offset";
/// The source publish time, in microseconds since the epoch. The
/// destination's own publish time is its leader's clock (a partition's
/// publish times must not go back: seeks and retention search them).
pub const PUBLISH_TIME: &str = "ferry.origin.publish_time";

/// The attributes a mirrored copy carries: the source's, plus its origin.
/// A message mirrored before (it has an origin cluster) keeps its first
/// origin, so every hop names where the event was first published.
pub fn attributes(source_cluster: &str, topic: &str, received: &ReceivedMessage) -> BTreeMap<String, String> {
    let mut attributes = received.message.attributes.clone();
    if !attributes.contains_key(CLUSTER) {
        let micros = received.publish_time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros());
        attributes.insert(CLUSTER.to_owned(), source_cluster.to_owned());
        attributes.insert(TOPIC.to_owned(), topic.to_owned());
        attributes.insert(PARTITION.to_owned(), received.position.partition.to_string());
        attributes.insert(OFFSET.to_owned(), received.position.offset.to_string());
        attributes.insert(PUBLISH_TIME.to_owned(), micros.to_string());
    }
    attributes
}

/// Whether a message first came from `cluster`: a route into `cluster`
/// leaves it out, so two clusters mirroring each other do not loop.
pub fn came_from(received: &ReceivedMessage, cluster: &str) -> bool {
    received.message.attributes.get(CLUSTER).is_some_and(|origin| origin == cluster)
}

/// The idempotent producer id a route publishes one source partition under:
/// stable across restarts and standbys (a hash of the source cluster, topic
/// and partition, FNV-1a), different per source so fan-in never collides.
/// The topic's creation time tells incarnations apart: a topic deleted and
/// created again numbers its offsets from 0 again, and under the old id the
/// destination would take them for copies it already holds.
pub fn producer_id(source_cluster: &str, topic: &str, topic_created_us: i64, partition: u32) -> u64 {
    let key = format!("{source_cluster}\0{topic}\0{topic_created_us}\0{partition}");
    fnv1a(&key).max(1) // 0 means "not idempotent"
}

/// Microseconds since the Unix epoch.
pub fn micros(time: std::time::SystemTime) -> i64 {
    time.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

/// FNV-1a, 64 bits: a stable hash (the standard library's is not stable
/// across releases).
pub fn fnv1a(text: &str) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    text.bytes().fold(OFFSET_BASIS, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ferry_client::{Message, Position};

    use super::*;

    fn received(message: Message) -> ReceivedMessage {
        ReceivedMessage {
            ack_id: String::new(),
            delivery_attempt: 1,
            position: Position { partition: 2, offset: 41 },
            publish_time: UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456),
            message,
        }
    }

    #[test]
    fn a_first_hop_records_its_origin_and_a_later_hop_keeps_it() {
        let first = attributes("dc1", "clicks", &received(Message::new("x").attribute("k", "v")));
        assert_eq!(first["k"], "v");
        assert_eq!((first[CLUSTER].as_str(), first[TOPIC].as_str()), ("dc1", "clicks"));
        assert_eq!((first[PARTITION].as_str(), first[OFFSET].as_str()), ("2", "41"));
        assert_eq!(first[PUBLISH_TIME], "1700000000123456");

        let mut again = Message::new("x");
        again.attributes = first.clone();
        let second = received(again);
        assert_eq!(attributes("central", "clicks-all", &second), first, "the first origin stays");
        assert!(came_from(&second, "dc1") && !came_from(&second, "central"));
    }

    #[test]
    fn producer_ids_are_stable_nonzero_and_differ_per_source_partition() {
        assert_eq!(producer_id("dc1", "clicks", 7, 0), producer_id("dc1", "clicks", 7, 0));
        assert_ne!(producer_id("dc1", "clicks", 7, 0), producer_id("dc2", "clicks", 7, 0));
        assert_ne!(producer_id("dc1", "clicks", 7, 0), producer_id("dc1", "clicks", 7, 1));
        assert_ne!(producer_id("dc1", "clicks", 7, 0), producer_id("dc1", "clicks", 8, 0), "a re-created topic");
        assert_ne!(producer_id("dc1", "clicks", 7, 0), 0);
    }
}
