//! The batched reads the state transition relies on, against real RocksDB.

use bytes::Bytes;
use ferry_proto::internal as pb;

use super::StateDb;
use crate::domain::{MessageBody, StateRead, Write};

const TOPIC: u64 = 7;

fn body(len: usize) -> MessageBody {
    MessageBody { data: Bytes::from(vec![b'x'; len]), ..MessageBody::default() }
}

/// A database holding messages of `len(offset)` bytes at `offsets` of
/// partitions 0 and 1 (partition 1's are 1,000 bytes longer).
fn stored(dir: &std::path::Path, offsets: impl Iterator<Item = u64> + Clone, len: fn(u64) -> usize) -> StateDb {
    let db = StateDb::open(dir).expect("open");
    let mut writes = Vec::new();
    for partition in 0..2u32 {
        for offset in offsets.clone() {
            let size = len(offset) + 1000 * partition as usize;
            writes.push(Write::PutMessage {
                topic_id: TOPIC,
                partition,
                offset,
                publish_time_us: 0,
                bytes_before: 0,
                body: body(size),
            });
        }
    }
    db.write(writes, &pb::LogId { term: 1, leader_node_id: 1, index: 1 }, None).expect("write");
    db
}

#[test]
fn message_sizes_finds_each_offset_near_or_far_and_zero_for_missing_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Offsets 0..200 without the multiples of 10, and 5,000..5,010.
    let offsets = (0..200u64).filter(|o| o % 10 != 0).chain(5_000..5_010);
    let db = stored(dir.path(), offsets, |offset| (offset % 97) as usize + 1);

    let wanted = [1, 2, 3, 10, 11, 19, 20, 21, 150, 199, 200, 4_999, 5_000, 5_009, 5_010, 9_999_999];
    let sizes = db.message_sizes(TOPIC, 0, &wanted).expect("sizes");
    let expected: Vec<u64> = wanted
        .iter()
        .map(|&o| if (o < 200 && o % 10 != 0) || (5_000..5_010).contains(&o) { o % 97 + 1 } else { 0 })
        .collect();
    assert_eq!(sizes, expected);
    // The other partition is not read into.
    let sizes = db.message_sizes(TOPIC, 1, &[1, 5_009]).expect("sizes");
    assert_eq!(sizes, vec![1002, 5_009 % 97 + 1001]);
    assert_eq!(db.message_sizes(TOPIC, 2, &[1]).expect("sizes"), vec![0], "no such partition");
}

#[test]
fn stored_acks_lists_each_ack_in_the_range_with_its_size() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = StateDb::open(dir.path()).expect("open");
    let writes = [3u64, 4, 9, 70, 71]
        .into_iter()
        .flat_map(|offset| {
            [0, 1].map(|partition| Write::PutAck { subscription_id: 5, partition, offset, size: offset * 10 })
        })
        .collect();
    db.write(writes, &pb::LogId { term: 1, leader_node_id: 1, index: 1 }, None).expect("write");

    assert_eq!(db.stored_acks(5, 0, 4, 71).expect("acks"), vec![(4, 40), (9, 90), (70, 700)]);
    assert_eq!(db.stored_acks(5, 1, 0, 5).expect("acks"), vec![(3, 30), (4, 40)]);
    assert!(db.stored_acks(5, 0, 10, 70).expect("acks").is_empty());
    assert!(db.stored_acks(6, 0, 0, 100).expect("acks").is_empty(), "another subscription's");
}

#[test]
fn read_messages_reads_in_order_from_an_offset_within_the_count_and_about_the_bytes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = stored(dir.path(), 0..100u64, |offset| offset as usize + 10);
    let offsets =
        |messages: Vec<crate::domain::StoredMessage>| -> Vec<u64> { messages.iter().map(|m| m.offset).collect() };

    let all = db.read_messages(TOPIC, 0, 95, 1000, usize::MAX).expect("read");
    assert_eq!(offsets(all.clone()), vec![95, 96, 97, 98, 99], "up to the partition's end, not into the next");
    assert!(all.iter().all(|m| m.partition == 0 && m.body.data.len() == m.offset as usize + 10));
    assert_eq!(offsets(db.read_messages(TOPIC, 1, 0, 3, usize::MAX).expect("read")), vec![0, 1, 2]);
    let one = db.read_messages(TOPIC, 1, 7, 1000, 1).expect("read");
    assert_eq!(offsets(one.clone()), vec![7], "at least one message, however small the byte bound");
    assert_eq!(one[0].body.data.len(), 1017);
    let some = db.read_messages(TOPIC, 0, 0, 1000, 200).expect("read");
    let bytes: usize = some.iter().map(|m| m.body.size_bytes()).sum();
    assert!(!some.is_empty() && bytes <= 200 + 30, "about 200 bytes: {bytes} in {}", some.len());
    assert!(db.read_messages(TOPIC, 0, 100, 1000, usize::MAX).expect("read").is_empty());
}
