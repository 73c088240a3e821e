//! The batched reads the state transition relies on, against real RocksDB.

use bytes::Bytes;
use ferry_proto::internal as pb;
use proptest::prelude::*;

use super::StateDb;
use crate::domain::{AckedRange, AckedTotal, MessageBody, MessageExtent, StateRead, StoredMessage, Write};
use crate::storage::codec;
use crate::storage::db::{DbResources, CF_ACKS, CF_MESSAGES};
use crate::storage::keys::{meta, offset};

const TOPIC: u64 = 7;

fn body(len: usize) -> MessageBody {
    MessageBody { data: Bytes::from(vec![b'x'; len]), ..MessageBody::default() }
}

/// Messages stored as batches of `BATCH` at most, each batch a run of
/// consecutive offsets.
const BATCH: usize = 7;

/// A database holding messages of `len(offset)` bytes at `offsets` of
/// partitions 0 and 1 (partition 1's are 1,000 bytes longer), in batches of
/// consecutive offsets (`BATCH` at most), each published at its first offset
/// in microseconds.
fn stored(dir: &std::path::Path, offsets: impl Iterator<Item = u64> + Clone, len: fn(u64) -> usize) -> StateDb {
    let db = StateDb::open(dir, &DbResources::default()).expect("open");
    let mut writes = Vec::new();
    for partition in 0..2u32 {
        let size = |offset| len(offset) + 1000 * partition as usize;
        let mut batches: Vec<Vec<u64>> = Vec::new();
        for offset in offsets.clone() {
            match batches.last_mut() {
                Some(batch) if batch.len() < BATCH && batch.last() == Some(&(offset - 1)) => batch.push(offset),
                _ => batches.push(vec![offset]),
            }
        }
        let mut bytes_before = 0;
        for batch in batches {
            let bodies: Vec<MessageBody> = batch.iter().map(|&offset| body(size(offset))).collect();
            let bytes: u64 = bodies.iter().map(|b| b.size_bytes() as u64).sum();
            writes.push(Write::PutMessages {
                topic_id: TOPIC,
                partition,
                first_offset: batch[0],
                publish_time_us: batch[0] as i64,
                bytes_before,
                bodies,
            });
            bytes_before += bytes;
        }
    }
    db.write(writes, &log_id(), None).expect("write");
    db
}

fn log_id() -> pb::LogId {
    pb::LogId { term: 1, leader_node_id: 1, index: 1 }
}

fn offsets(messages: Vec<StoredMessage>) -> Vec<u64> {
    messages.iter().map(|m| m.offset).collect()
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

fn acked(start: u64, end: u64, bytes: u64) -> AckedRange {
    AckedRange { start, end, bytes }
}

#[test]
fn stored_acks_lists_the_ranges_holding_an_offset_of_the_range_including_one_that_starts_before() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = StateDb::open(dir.path(), &DbResources::default()).expect("open");
    let ranges = [acked(3, 5, 30), acked(9, 10, 90), acked(70, 80, 700), acked(80, 81, 8)];
    let writes = ranges
        .into_iter()
        .flat_map(|range| [0, 1].map(|partition| Write::PutAckedRange { subscription_id: 5, partition, range }))
        .collect();
    db.write(writes, &log_id(), None).expect("write");

    assert_eq!(db.stored_acks(5, 0, 0, 4, 71).expect("acks"), ranges[..3], "3..5 reaches into 4..71");
    assert_eq!(db.stored_acks(5, 0, 4, 4, 71).expect("acks"), ranges[1..3], "nothing is looked for below the floor");
    assert_eq!(db.stored_acks(5, 0, 0, 3, 5).expect("acks"), ranges[..1], "once, starting at the read");
    assert_eq!(db.stored_acks(5, 1, 0, 0, 5).expect("acks"), ranges[..1]);
    assert_eq!(db.stored_acks(5, 0, 60, 75, 76).expect("acks"), ranges[2..3], "a range around the offsets");
    assert_eq!(db.stored_acks(5, 0, 0, 80, 200).expect("acks"), ranges[3..], "not 70..80, which ends at 80");
    assert!(db.stored_acks(5, 0, 0, 5, 9).expect("acks").is_empty(), "between ranges");
    assert!(db.stored_acks(5, 0, 0, 4, 4).expect("acks").is_empty(), "an empty read");
    assert!(db.stored_acks(6, 0, 0, 0, 100).expect("acks").is_empty(), "another subscription's");
    assert!(db.stored_acks(4, 0, 0, 0, u64::MAX).expect("acks").is_empty(), "another subscription's");
    assert_eq!(db.acked_offsets(5, 0, 0, 4, 72).expect("acked"), vec![4, 9, 70, 71], "clipped to the read");

    db.write(
        vec![
            Write::DeleteAckedRange { subscription_id: 5, partition: 0, start: 9 },
            Write::DeleteAckedRanges { subscription_id: 5, partition: 1, from: 4, to: 80 },
        ],
        &log_id(),
        None,
    )
    .expect("write");
    assert_eq!(db.stored_acks(5, 0, 0, 0, 100).expect("acks"), [ranges[0], ranges[2], ranges[3]]);
    assert_eq!(db.stored_acks(5, 1, 0, 0, 100).expect("acks"), [ranges[0], ranges[3]], "by start: 3..5 stays");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Whatever ranges were stored and deleted (one by one and by range, as
    /// a climbing floor and a trim do, leaving tombstones the reads walk
    /// over), a read returns the ranges that reach into it and start at or
    /// above its floor, and their total sums those starting below its end.
    #[test]
    fn stored_acks_reads_what_a_map_of_the_ranges_holds(
        layout in prop::collection::vec((1u64..4, 0u64..3), 1..40),
        deletes in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
        range_delete in (0u64..100, 0u64..40),
        reads in prop::collection::vec((0u64..120, 0u64..30, 0u64..30), 1..20),
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = StateDb::open(dir.path(), &DbResources::default()).expect("open");
        let mut model = std::collections::BTreeMap::new();
        let mut start = 0;
        for (len, gap) in layout {
            start += gap;
            model.insert(start, acked(start, start + len, start * 10 + len));
            start += len;
        }
        let put = model.values().map(|&range| Write::PutAckedRange { subscription_id: 5, partition: 1, range });
        // The same ranges in a neighbouring partition and subscription, which no read may see.
        let others = model.values().flat_map(|&range| {
            [(5, 0), (5, 2), (4, 1), (6, 1)]
                .map(|(subscription_id, partition)| Write::PutAckedRange { subscription_id, partition, range })
        });
        db.write(put.chain(others).collect(), &log_id(), None).expect("write");
        let starts: Vec<u64> = model.keys().copied().collect();
        let mut writes = Vec::new();
        for index in deletes {
            let start = starts[index.index(starts.len())];
            model.remove(&start);
            writes.push(Write::DeleteAckedRange { subscription_id: 5, partition: 1, start });
        }
        let (from, to) = (range_delete.0, range_delete.0 + range_delete.1);
        model.retain(|&start, _| !(from..to).contains(&start));
        writes.push(Write::DeleteAckedRanges { subscription_id: 5, partition: 1, from, to });
        db.write(writes, &log_id(), None).expect("write");

        for (from, back, len) in reads {
            let (floor, to) = (from.saturating_sub(back), from + len);
            let expected: Vec<AckedRange> =
                model.values().filter(|r| from < to && r.start >= floor && r.start < to && r.end > from).copied().collect();
            prop_assert_eq!(db.stored_acks(5, 1, floor, from, to).expect("read"), expected);
            let mut total = AckedTotal::default();
            model.range(floor..to.max(floor)).for_each(|(_, range)| total.add(range));
            prop_assert_eq!(db.stored_acks_total(5, 1, floor, to).expect("read"), total);
        }
    }
}

#[test]
fn an_ack_of_storage_format_2_reads_as_a_range_of_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = StateDb::open(dir.path(), &DbResources::default()).expect("open");
    // Format 2 stored each ack alone, its value the acked message's size;
    // format 1 stored none.
    let cf = db.cf(CF_ACKS).expect("family");
    db.db.put_cf(cf, offset::key(5, 0, 3), 30u64.to_be_bytes()).expect("put");
    db.db.put_cf(cf, offset::key(5, 0, 4), []).expect("put");
    db.db.put_cf(cf, offset::key(5, 0, 6), [1, 2, 3]).expect("put");
    assert_eq!(db.stored_acks(5, 0, 0, 0, 5).expect("acks"), [acked(3, 4, 30), acked(4, 5, 0)]);
    let error = db.stored_acks(5, 0, 0, 0, 10).expect_err("a value of 3 bytes");
    assert!(error.to_string().contains("offset 6"), "{error}");
}

#[test]
fn read_messages_reads_in_order_from_an_offset_within_the_count_and_about_the_bytes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = stored(dir.path(), 0..100u64, |offset| offset as usize + 10);
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

#[test]
fn a_message_inside_a_batch_has_its_own_extent() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Batches 0..7, 7..10, then 20..27 after a gap; message o is o + 1 bytes.
    let db = stored(dir.path(), (0..10u64).chain(20..27), |offset| offset as usize + 1);
    let before =
        |o: u64| -> u64 { (0..o.min(10)).map(|o| o + 1).sum::<u64>() + (20..o.max(20)).map(|o| o + 1).sum::<u64>() };
    for (at, batch_first) in [(0, 0), (3, 0), (6, 0), (7, 7), (9, 7), (20, 20), (26, 20)] {
        let extent = db.message_extent(TOPIC, 0, at).expect("read").expect("stored");
        let expected =
            MessageExtent { bytes_before: before(at), size: at + 1, publish_time_us: batch_first as i64, batch_first };
        assert_eq!(extent, expected, "offset {at}");
    }
    for missing in [10, 15, 19, 27, 1_000] {
        assert_eq!(db.message_extent(TOPIC, 0, missing).expect("read"), None, "offset {missing}");
    }
    assert_eq!(db.read_message(TOPIC, 0, 8).expect("read").map(|m| m.body.data.len()), Some(9));
    assert_eq!(db.read_message(TOPIC, 0, 12).expect("read"), None);
    assert_eq!(offsets(db.read_messages(TOPIC, 0, 12, 3, usize::MAX).expect("read")), vec![20, 21, 22], "past the gap");
}

#[test]
fn a_trim_keeps_the_batch_holding_the_new_start_and_reads_start_there() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = stored(dir.path(), 0..20u64, |_| 4); // batches 0..7, 7..14, 14..20
    let start = 10;
    let kept = db.message_extent(TOPIC, 0, start).expect("read").expect("stored").batch_first;
    assert_eq!(kept, 7);
    db.write(vec![Write::DeleteMessages { topic_id: TOPIC, partition: 0, below: kept }], &log_id(), None)
        .expect("trim");
    assert_eq!(db.message_extent(TOPIC, 0, 6).expect("read"), None, "the batch wholly below is gone");
    assert_eq!(
        offsets(db.read_messages(TOPIC, 0, start, 100, usize::MAX).expect("read")),
        (10..20).collect::<Vec<_>>()
    );
    assert_eq!(offsets(db.read_messages(TOPIC, 0, 0, 2, usize::MAX).expect("read")), vec![7, 8]);
    assert_eq!(db.read_messages(TOPIC, 1, 0, 100, usize::MAX).expect("read").len(), 20, "other partitions keep theirs");
    db.compact_messages(TOPIC, 0, kept).expect("compact");
    db.write(vec![Write::DeleteMessages { topic_id: TOPIC, partition: 0, below: 20 }], &log_id(), None)
        .expect("trim to the end");
    assert!(db.read_messages(TOPIC, 0, 0, 100, usize::MAX).expect("read").is_empty());
}

#[test]
fn a_record_of_storage_format_1_reads_as_a_batch_of_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = StateDb::open(dir.path(), &DbResources::default()).expect("open");
    // Format 1 stored each message alone: `MessageRecord { publish_time = 1,
    // body = 2, bytes_before = 3 }`, which is this record byte for byte.
    let cf = db.cf(CF_MESSAGES).expect("family");
    for at in 0..3u64 {
        let record = pb::BatchRecord {
            publish_time_unix_micros: 50 + at as i64,
            bodies: vec![crate::storage::records::body_to_record(body(10 + at as usize))],
            bytes_before: (0..at).map(|o| 10 + o).sum(),
            sizes: Vec::new(),
        };
        db.db.put_cf(cf, offset::key(TOPIC, 0, at), codec::encode(&record)).expect("put");
    }
    let read = db.read_messages(TOPIC, 0, 1, 10, usize::MAX).expect("read");
    assert_eq!(
        read.iter().map(|m| (m.offset, m.publish_time_us, m.body.data.len())).collect::<Vec<_>>(),
        vec![(1, 51, 11), (2, 52, 12)]
    );
    let extent = db.message_extent(TOPIC, 0, 2).expect("read").expect("stored");
    assert_eq!(extent, MessageExtent { bytes_before: 21, size: 12, publish_time_us: 52, batch_first: 2 });
    assert_eq!(db.message_sizes(TOPIC, 0, &[0, 1, 2, 3]).expect("sizes"), vec![10, 11, 12, 0]);
}

#[test]
fn a_database_of_an_older_format_opens_as_the_current_one_and_a_newer_one_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let format = |db: &StateDb| db.get(crate::storage::db::CF_META, meta::FORMAT).expect("read").expect("stored");
    let mut db = StateDb::open(dir.path(), &DbResources::default()).expect("open");
    assert_eq!(format(&db).as_ref(), 3u32.to_be_bytes());
    for older in [1u32, 2] {
        let cf = db.cf(crate::storage::db::CF_META).expect("family");
        db.db.put_cf(cf, meta::FORMAT, older.to_be_bytes()).expect("put");
        db.flush().expect("flush");
        drop(db);
        db = StateDb::open(dir.path(), &DbResources::default()).expect("an older database opens");
        assert_eq!(format(&db).as_ref(), 3u32.to_be_bytes(), "and is marked format 3, which an older ferryd refuses");
    }
    let cf = db.cf(crate::storage::db::CF_META).expect("family");
    db.db.put_cf(cf, meta::FORMAT, 4u32.to_be_bytes()).expect("put");
    db.flush().expect("flush");
    drop(db);
    let refused = StateDb::open(dir.path(), &DbResources::default()).expect_err("format 4 is from a newer ferryd");
    assert!(refused.to_string().contains("format 4"), "{refused}");
}

#[test]
fn a_read_from_inside_a_batch_returns_just_what_it_asked_for() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = stored(dir.path(), 0..7u64, |_| 1024); // one batch of 7 KiB
    let read = db.read_messages(TOPIC, 0, 2, 3, usize::MAX).expect("read");
    assert_eq!(offsets(read.clone()), vec![2, 3, 4]);
    // What the messages' buffer holds (their bodies, not the whole batch) is
    // `batches::tests::a_read_decodes_and_copies_just_the_messages_it_wants`.
    assert!(read.iter().all(|message| message.body.data.len() == 1024));
    let one = db.read_message(TOPIC, 0, 5).expect("read").expect("stored");
    assert_eq!((one.offset, one.body.data.len()), (5, 1024));
    assert_eq!(db.read_message(TOPIC, 0, 7).expect("read"), None, "past the batch");
}

#[test]
fn a_read_stops_at_its_byte_limit_inside_a_batch_with_at_least_one_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = stored(dir.path(), 0..7u64, |_| 1024); // one batch of 7 KiB
    let read = db.read_messages(TOPIC, 0, 2, 100, 1500).expect("read");
    assert_eq!(offsets(read.clone()), vec![2, 3], "the second message passes 1,500 bytes");
    assert!(read.iter().all(|message| message.body.data.len() == 1024));
    let one = db.read_messages(TOPIC, 0, 6, 100, 1).expect("read");
    assert_eq!(offsets(one), vec![6], "one message even over the limit");
}

#[test]
fn the_layout_the_nodes_leaving_and_the_meta_index_are_read_back_with_the_catalog() {
    let dir = tempfile::tempdir().expect("temp dir");
    let layout =
        crate::domain::Layout { data_groups: 4, voters: [(1, "a:1".to_owned()), (2, "b:1".to_owned())].into() };
    {
        let db = StateDb::open(dir.path(), &DbResources::default()).expect("open");
        assert_eq!(db.load_catalog(0).expect("catalog").layout, None);
        let writes = vec![Write::PutLayout(layout.clone()), Write::PutLeaving([2, 5].into()), Write::PutMetaIndex(42)];
        db.write(writes, &log_id(), None).expect("write");
        db.flush().expect("flush");
    }
    let db = StateDb::open(dir.path(), &DbResources::default()).expect("reopen");
    let catalog = db.load_catalog(7).expect("catalog");
    assert_eq!((catalog.layout, catalog.leaving), (Some(layout), [2, 5].into()));
    assert_eq!((catalog.meta_index, catalog.group), (42, 7), "the group is the opener's, not stored");
}

#[test]
fn locks_and_the_last_lock_epoch_are_read_back_with_the_catalog() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut catalog = crate::domain::Catalog::for_group(0);
    let db = StateDb::open(dir.path(), &DbResources::default()).expect("open");
    for (name, holder, now_us) in [("route-a", "host-1", 10), ("route-b", "host-2", 11), ("route-a", "host-3", 20)] {
        let command =
            crate::domain::Command::AcquireLock { name: name.into(), holder: holder.into(), ttl_us: 5, now_us };
        let applied = crate::domain::apply(&mut catalog, command, &db).expect("apply");
        db.write(applied.writes, &log_id(), None).expect("write");
    }
    let release = crate::domain::Command::ReleaseLock { name: "route-b".into(), holder: "host-2".into() };
    let applied = crate::domain::apply(&mut catalog, release, &db).expect("apply");
    db.write(applied.writes, &log_id(), None).expect("write");
    db.flush().expect("flush");
    drop(db);

    let loaded = StateDb::open(dir.path(), &DbResources::default()).expect("reopen").load_catalog(0).expect("catalog");
    assert_eq!(loaded.locks, catalog.locks);
    let holders: Vec<(&str, u64)> = loaded.locks.values().map(|l| (l.holder.as_str(), l.epoch)).collect();
    assert_eq!(holders, [("host-3", 3)], "route-b was released; route-a changed hands after host-1's expiry");
    assert_eq!(loaded.last_lock_epoch, 3, "epochs are never handed out twice, released locks included");
}

#[test]
fn bookmarks_are_read_back_with_the_catalog() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut catalog = crate::domain::Catalog::for_group(0);
    let db = StateDb::open(dir.path(), &DbResources::default()).expect("open");
    let config = crate::domain::TopicConfig {
        partitions: 2,
        max_message_bytes: 1024,
        retention_seconds: 60,
        retention_bytes: 0,
        labels: Default::default(),
    };
    let create =
        crate::domain::Command::CreateTopic { name: "t".into(), config, create_time_us: 1, groups: Vec::new() };
    let mut commands = vec![create];
    for name in ["before-deploy", "nightly"] {
        commands.push(crate::domain::Command::CreateBookmark(crate::domain::BookmarkState {
            name: name.into(),
            topic: "t".into(),
            topic_id: 1,
            floors: vec![4, 9],
            create_time_us: 5,
            expire_time_us: 500,
            labels: [("why".to_owned(), name.to_owned())].into(),
        }));
    }
    commands.push(crate::domain::Command::DeleteBookmark { name: "nightly".into() });
    for command in commands {
        let applied = crate::domain::apply(&mut catalog, command, &db).expect("apply");
        db.write(applied.writes, &log_id(), None).expect("write");
    }
    db.flush().expect("flush");
    drop(db);

    let loaded = StateDb::open(dir.path(), &DbResources::default()).expect("reopen").load_catalog(0).expect("catalog");
    assert_eq!(loaded.bookmarks, catalog.bookmarks);
    assert_eq!(loaded.bookmarks.keys().collect::<Vec<_>>(), ["before-deploy"]);
}

/// The state database's blob files under `dir`.
fn blob_files(dir: &std::path::Path) -> usize {
    let entries = std::fs::read_dir(dir).expect("list");
    entries.filter(|e| e.as_ref().expect("entry").file_name().to_string_lossy().ends_with(".blob")).count()
}

#[test]
fn batches_kept_in_blob_files_read_back_and_free_their_disk_once_trimmed() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Batches of 7 messages of 1 KiB (2 KiB in partition 1): above the blob threshold.
    let db = stored(dir.path(), 0..70u64, |_| 1024);
    db.flush().expect("flush");
    assert!(blob_files(dir.path()) > 0, "the batches went to blob files");
    let read = db.read_messages(TOPIC, 1, 30, 10, usize::MAX).expect("read");
    assert_eq!(offsets(read.clone()), (30..40).collect::<Vec<_>>());
    assert!(read.iter().all(|m| m.body.data.len() == 2024));
    assert_eq!(db.message_extent(TOPIC, 0, 9).expect("read").map(|e| e.batch_first), Some(7));

    // Retention trims partition 0 only: its batches share blob files with
    // partition 1's, which stay.
    db.write(vec![Write::DeleteMessages { topic_id: TOPIC, partition: 0, below: 70 }], &log_id(), None).expect("trim");
    db.compact_messages(TOPIC, 0, 70).expect("compact");
    assert!(blob_files(dir.path()) > 0, "partition 1's batches are still there");
    assert_eq!(db.read_messages(TOPIC, 1, 0, 100, usize::MAX).expect("read").len(), 70);

    // Once every batch in them is trimmed, the blob files are deleted.
    db.write(vec![Write::DeleteMessages { topic_id: TOPIC, partition: 1, below: 70 }], &log_id(), None).expect("trim");
    db.compact_messages(TOPIC, 1, 70).expect("compact");
    assert_eq!(blob_files(dir.path()), 0, "trimmed batches leave no blob file behind");
}

#[test]
fn hour_boundaries_are_found_at_or_after_an_hour_and_those_a_week_older_are_dropped() {
    use crate::domain::hours::{HOUR_STARTS_KEPT, HOUR_US};
    let dir = tempfile::tempdir().expect("temp dir");
    let db = StateDb::open(dir.path(), &DbResources::default()).expect("open");
    let put = |hour: i64, first_offset: u64| Write::PutHourStart {
        topic_id: 7,
        partition: 1,
        hour_start_us: hour * HOUR_US,
        first_offset,
    };
    db.write(vec![put(10, 0), put(12, 50), put(13, 80)], &log_id(), None).expect("write");
    let at = |hour: i64| db.hour_start_at_or_after(7, 1, hour * HOUR_US).expect("read");
    assert_eq!((at(9), at(10), at(11), at(12), at(14)), (Some(0), Some(0), Some(50), Some(50), None));
    assert_eq!(db.hour_start_at_or_after(7, 2, 0).expect("read"), None, "another partition's are not its own");

    // A week and more later, the oldest boundaries go.
    db.write(vec![put(12 + HOUR_STARTS_KEPT, 900)], &log_id(), None).expect("write");
    assert_eq!((at(9), at(13)), (Some(50), Some(80)), "hour 10 dropped; 12, a week before, kept");
}

#[test]
fn a_batch_of_a_thousand_2_kib_messages_once_read_stays_in_the_state_block_cache() {
    let dir = tempfile::tempdir().expect("temp dir");
    let resources = DbResources::default();
    let db = StateDb::open(dir.path(), &resources).expect("open");
    let bodies: Vec<MessageBody> = (0..1000).map(|_| body(2048)).collect();
    let put = Write::PutMessages {
        topic_id: TOPIC,
        partition: 0,
        first_offset: 0,
        publish_time_us: 0,
        bytes_before: 0,
        bodies,
    };
    db.write(vec![put], &log_id(), None).expect("write");
    db.flush().expect("flush");
    assert!(blob_files(dir.path()) > 0, "the batch went to a blob file");
    let before = resources.state_cache_usage();

    // The streams reading a partition take a batch a part at a time: the
    // parts after the first are to find it in the cache, not on disk.
    assert_eq!(offsets(db.read_messages(TOPIC, 0, 0, 10, usize::MAX).expect("read")), (0..10).collect::<Vec<_>>());
    let kept = resources.state_cache_usage().saturating_sub(before);
    assert!(kept > 2_000_000, "the cache kept {kept} bytes of the batch");
}
