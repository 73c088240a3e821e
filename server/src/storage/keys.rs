//! Key encodings of both RocksDB instances.
//!
//! Keys are a persistent API: big-endian integers (so byte order is numeric
//! order and range scans work), fixed widths, one-byte type tags in the mixed
//! column families. The layout of each database is versioned ([`LOG_FORMAT`],
//! [`STATE_FORMAT`]), stored in it and checked when it is opened.
//!
//! | database  | column family | key                                   | value            |
//! |-----------|---------------|---------------------------------------|------------------|
//! | raft-log  | `log`         | index u64                             | `LogEntry`       |
//! | raft-log  | `raft_meta`   | `vote` / `committed` / `purged` / `format` | `Vote` / `LogId` / u32 |
//! | raft-log  | `log-<g>`     | index u64 (data group g's log)        | `LogEntry`       |
//! | raft-log  | `group_meta`  | group u32 ‖ `vote` / `committed` / `purged` | `Vote` / `LogId` |
//! | state     | `meta`        | `T` topic id u64                      | `TopicRecord`    |
//! |           |               | `P` topic id u64, partition u32       | `PartitionRecord`|
//! |           |               | `S` subscription id u64               | `SubscriptionRecord` |
//! |           |               | `F` subscription id u64, partition u32| `AckFloorRecord` |
//! |           |               | `R` topic id u64, partition u32, producer id u64 | `ProducerRecord` |
//! |           |               | `C`                                   | `IdCounters`     |
//! |           |               | `L`                                   | `SetLayout`      |
//! |           |               | `N` (nodes marked leaving)            | `LeavingNodes`   |
//! |           |               | `I` (group 0's index synced to)       | `MetaIndex`      |
//! |           |               | `E` lock name (UTF-8)                | `LockRecord`    |
//! |           |               | `H` topic id u64, partition u32, hour start µs u64 | `HourStart` |
//! |           |               | `A` (applied log id), `M` (membership), `V` (format) | `LogId` / `StoredMembership` / u32 |
//! | state     | `messages`    | topic id u64, partition u32, first offset u64 | `BatchRecord` |
//! | state     | `acks`        | subscription id u64, partition u32, first offset u64 | end u64, bytes u64 |

/// A database's layout version: its keys and value framing. Bump it, and
/// read or migrate the older one, when either changes incompatibly.
#[derive(Debug, Clone, Copy)]
pub struct Format {
    pub version: u32,
    /// Older versions this build reads as they are, marking the database
    /// with `version` when it opens it (so an older ferryd then refuses it).
    pub reads_older: &'static [u32],
}

pub const LOG_FORMAT: Format = Format { version: 1, reads_older: &[] };

/// Version 2 stores a publish batch per `messages` record. A version-1
/// record (one message, its body as field 2) reads as a batch of one.
/// Version 3 stores a range of acked offsets per `acks` record; a
/// version-2 record (one offset, its message's size) reads as a range of one.
pub const STATE_FORMAT: Format = Format { version: 3, reads_older: &[1, 2] };

pub mod log {
    /// Key of the log entry at `index`.
    pub fn entry(index: u64) -> [u8; 8] {
        index.to_be_bytes()
    }

    pub fn entry_index(key: &[u8]) -> Option<u64> {
        Some(u64::from_be_bytes(key.try_into().ok()?))
    }

    /// Key of a data group's `name` (one of the keys below) in `group_meta`;
    /// group 0 keeps them in `raft_meta` under `name` alone.
    pub fn group_meta(group: u32, name: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(4 + name.len());
        key.extend_from_slice(&group.to_be_bytes());
        key.extend_from_slice(name);
        key
    }

    pub const VOTE: &[u8] = b"vote";
    pub const COMMITTED: &[u8] = b"committed";
    pub const PURGED: &[u8] = b"purged";
    pub const FORMAT: &[u8] = b"format";
}

pub mod meta {
    pub const TOPIC: u8 = b'T';
    pub const PARTITION: u8 = b'P';
    pub const SUBSCRIPTION: u8 = b'S';
    pub const ACK_FLOOR: u8 = b'F';
    pub const PRODUCER: u8 = b'R';
    pub const LOCK: u8 = b'E';
    pub const BOOKMARK: u8 = b'B';
    pub const HOUR_START: u8 = b'H';
    pub const ID_COUNTERS: &[u8] = b"C";
    pub const LAYOUT: &[u8] = b"L";
    pub const LEAVING: &[u8] = b"N";
    pub const META_INDEX: &[u8] = b"I";
    pub const APPLIED: &[u8] = b"A";
    pub const MEMBERSHIP: &[u8] = b"M";
    pub const FORMAT: &[u8] = b"V";

    pub fn topic(id: u64) -> [u8; 9] {
        tagged_id(TOPIC, id)
    }

    pub fn subscription(id: u64) -> [u8; 9] {
        tagged_id(SUBSCRIPTION, id)
    }

    pub fn partition(topic_id: u64, partition: u32) -> [u8; 13] {
        tagged_id_partition(PARTITION, topic_id, partition)
    }

    pub fn ack_floor(subscription_id: u64, partition: u32) -> [u8; 13] {
        tagged_id_partition(ACK_FLOOR, subscription_id, partition)
    }

    pub fn producer(topic_id: u64, partition: u32, producer_id: u64) -> [u8; 21] {
        let mut key = [0u8; 21];
        key[..13].copy_from_slice(&tagged_id_partition(PRODUCER, topic_id, partition));
        key[13..].copy_from_slice(&producer_id.to_be_bytes());
        key
    }

    /// Lock names vary in length: nothing follows them in the key.
    pub fn lock(name: &str) -> Vec<u8> {
        let mut key = Vec::with_capacity(1 + name.len());
        key.push(LOCK);
        key.extend_from_slice(name.as_bytes());
        key
    }

    /// Bookmark names vary in length, as lock names do.
    pub fn bookmark(name: &str) -> Vec<u8> {
        let mut key = Vec::with_capacity(1 + name.len());
        key.push(BOOKMARK);
        key.extend_from_slice(name.as_bytes());
        key
    }

    /// Key of a partition's first offset in the hour starting at
    /// `hour_start_us` (not before 1970).
    pub fn hour_start(topic_id: u64, partition: u32, hour_start_us: i64) -> [u8; 21] {
        let mut key = [0u8; 21];
        key[..13].copy_from_slice(&tagged_id_partition(HOUR_START, topic_id, partition));
        key[13..].copy_from_slice(&(hour_start_us.max(0) as u64).to_be_bytes());
        key
    }

    /// Splits an `R` key into topic id, partition and producer id.
    pub fn split_producer(key: &[u8]) -> Option<(u64, u32, u64)> {
        let (topic_id, partition) = split_id_partition(key)?;
        let producer_id = u64::from_be_bytes(key.get(13..21)?.try_into().ok()?);
        Some((topic_id, partition, producer_id))
    }

    /// The range holding every key of one tag and id: `[tag id, tag id+1)`.
    pub fn id_range(tag: u8, id: u64) -> ([u8; 9], [u8; 9]) {
        (tagged_id(tag, id), tagged_id(tag, id + 1))
    }

    /// Splits a `P` or `F` key into its id and partition.
    pub fn split_id_partition(key: &[u8]) -> Option<(u64, u32)> {
        let id = u64::from_be_bytes(key.get(1..9)?.try_into().ok()?);
        let partition = u32::from_be_bytes(key.get(9..13)?.try_into().ok()?);
        Some((id, partition))
    }

    fn tagged_id(tag: u8, id: u64) -> [u8; 9] {
        let mut key = [0u8; 9];
        key[0] = tag;
        key[1..].copy_from_slice(&id.to_be_bytes());
        key
    }

    fn tagged_id_partition(tag: u8, id: u64, partition: u32) -> [u8; 13] {
        let mut key = [0u8; 13];
        key[0] = tag;
        key[1..9].copy_from_slice(&id.to_be_bytes());
        key[9..].copy_from_slice(&partition.to_be_bytes());
        key
    }
}

/// Keys of the `messages` and `acks` families: (owner id, partition, offset),
/// where the owner is a topic or a subscription.
pub mod offset {
    pub const LEN: usize = 20;

    pub fn key(owner_id: u64, partition: u32, offset: u64) -> [u8; LEN] {
        let mut key = [0u8; LEN];
        key[..8].copy_from_slice(&owner_id.to_be_bytes());
        key[8..12].copy_from_slice(&partition.to_be_bytes());
        key[12..].copy_from_slice(&offset.to_be_bytes());
        key
    }

    pub fn split(key: &[u8]) -> Option<(u64, u32, u64)> {
        if key.len() != LEN {
            return None;
        }
        let owner = u64::from_be_bytes(key[..8].try_into().ok()?);
        let partition = u32::from_be_bytes(key[8..12].try_into().ok()?);
        let offset = u64::from_be_bytes(key[12..].try_into().ok()?);
        Some((owner, partition, offset))
    }

    /// Every key of one owner: `[owner, owner+1)`.
    pub fn owner_range(owner_id: u64) -> ([u8; LEN], [u8; LEN]) {
        (key(owner_id, 0, 0), key(owner_id + 1, 0, 0))
    }

    /// Every key of one owner's partition.
    pub fn partition_range(owner_id: u64, partition: u32) -> ([u8; LEN], [u8; LEN]) {
        let end = match partition.checked_add(1) {
            Some(next) => key(owner_id, next, 0),
            None => key(owner_id + 1, 0, 0),
        };
        (key(owner_id, partition, 0), end)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn offset_keys_round_trip_and_sort_numerically(
            a in (any::<u64>(), any::<u32>(), any::<u64>()),
            b in (any::<u64>(), any::<u32>(), any::<u64>()),
        ) {
            let (ka, kb) = (offset::key(a.0, a.1, a.2), offset::key(b.0, b.1, b.2));
            prop_assert_eq!(offset::split(&ka), Some(a));
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
        }

        #[test]
        fn log_keys_round_trip_and_sort_numerically(a in any::<u64>(), b in any::<u64>()) {
            prop_assert_eq!(log::entry_index(&log::entry(a)), Some(a));
            prop_assert_eq!(log::entry(a).cmp(&log::entry(b)), a.cmp(&b));
        }

        #[test]
        fn meta_keys_round_trip(id in 0u64..u64::MAX, partition in any::<u32>()) {
            prop_assert_eq!(meta::split_id_partition(&meta::partition(id, partition)), Some((id, partition)));
            let (start, end) = meta::id_range(meta::PARTITION, id);
            let key = meta::partition(id, partition);
            prop_assert!(start.as_slice() <= key.as_slice() && key.as_slice() < end.as_slice());
        }

        #[test]
        fn producer_keys_round_trip_and_fall_in_their_topic_range(
            id in 0u64..u64::MAX, partition in any::<u32>(), producer in any::<u64>(),
        ) {
            let key = meta::producer(id, partition, producer);
            prop_assert_eq!(meta::split_producer(&key), Some((id, partition, producer)));
            let (start, end) = meta::id_range(meta::PRODUCER, id);
            prop_assert!(start.as_slice() <= key.as_slice() && key.as_slice() < end.as_slice());
        }
    }

    #[test]
    fn partition_range_holds_only_that_partition() {
        let (start, end) = offset::partition_range(7, 3);
        assert!(offset::key(7, 3, u64::MAX) < end);
        assert!(offset::key(7, 4, 0) >= end);
        assert!(offset::key(7, 2, u64::MAX) < start);
    }
}
