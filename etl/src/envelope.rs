//! The envelope every event is written in: the event as Ferry delivered it,
//! plus where it came from and whether it arrived after its hour closed.

use std::collections::BTreeMap;

use bytes::Bytes;

/// The Avro schema of every file the ETL writes. Field order is part of the
/// format: readers resolve by name, but the bytes (and so the checksums in
/// manifests) depend on it.
pub const SCHEMA: &str = r#"{
  "type": "record",
  "name": "Event",
  "namespace": "ferry.etl.v1",
  "doc": "One Ferry event, as delivered, in an hourly bucket.",
  "fields": [
    {"name": "event_id", "type": "string",
     "doc": "The producer's event id, else the message id <topic>/<partition>/<offset>; unique within a bucket"},
    {"name": "publish_time", "type": {"type": "long", "logicalType": "timestamp-micros"},
     "doc": "Stamped by the partition leader; decides the bucket unless skewed"},
    {"name": "topic", "type": "string"},
    {"name": "partition", "type": "int"},
    {"name": "offset", "type": "long"},
    {"name": "attributes", "type": {"type": "map", "values": "string"}},
    {"name": "payload", "type": "bytes"},
    {"name": "skewed", "type": "boolean",
     "doc": "Arrived after its own hour closed, so it is in a later one"}
  ]
}"#;

/// One event in the envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub event_id: String,
    pub publish_time_micros: i64,
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub attributes: BTreeMap<String, String>,
    pub payload: Bytes,
    pub skewed: bool,
}

/// What makes two deliveries the same event: the producer's event id when
/// it gave one, else the message's place in the log. Kept apart, so a
/// producer id can never be mistaken for another message's place.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKey {
    Producer(String),
    Message { partition: u32, offset: u64 },
}

impl Envelope {
    /// The message id, the event id of events without a producer one.
    pub fn message_id(topic: &str, partition: u32, offset: u64) -> String {
        format!("{topic}/{partition}/{offset}")
    }

    /// The dedup key: an event id that is its own message id is no producer's.
    pub fn key(&self) -> EventKey {
        if self.event_id == Self::message_id(&self.topic, self.partition, self.offset) {
            EventKey::Message { partition: self.partition, offset: self.offset }
        } else {
            EventKey::Producer(self.event_id.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_id: &str, offset: u64) -> Envelope {
        Envelope {
            event_id: event_id.into(),
            publish_time_micros: 0,
            topic: "t".into(),
            partition: 0,
            offset,
            attributes: BTreeMap::new(),
            payload: Bytes::new(),
            skewed: false,
        }
    }

    #[test]
    fn a_producer_id_that_looks_like_another_messages_id_is_still_a_producer_id() {
        assert_eq!(event("t/0/5", 5).key(), EventKey::Message { partition: 0, offset: 5 });
        assert_eq!(event("t/0/5", 9).key(), EventKey::Producer("t/0/5".into()));
        assert_ne!(event("t/0/5", 5).key(), event("t/0/5", 9).key());
    }
}
