//! Several groups' logs in one shared database: each keeps its own entries,
//! vote and purge point, across purges and a reopen.

use openraft::storage::{RaftLogReader, RaftLogStorage};
use openraft::{CommittedLeaderId, EntryPayload};
use tempfile::TempDir;

use super::*;
use crate::raft::META_GROUP;
use crate::storage::db::DbResources;

const DATA_GROUP: GroupId = 3;

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn entries(term: u64, indexes: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
    indexes.map(|index| Entry { log_id: log_id(term, index), payload: EntryPayload::Blank }).collect()
}

async fn indexes_and_terms(store: &mut LogStore) -> Vec<(u64, u64)> {
    let read = store.try_get_log_entries(0..).await.expect("read log");
    read.iter().map(|entry| (entry.log_id.index, entry.log_id.leader_id.term)).collect()
}

fn open_both(dir: &TempDir) -> (LogStore, LogStore) {
    let db = LogDb::open(&dir.path().join("raft-log"), SyncMode::Fsync, &DbResources::default()).expect("open log db");
    let meta = LogStore::open(&db, META_GROUP).expect("open group 0");
    let data = LogStore::open(&db, DATA_GROUP).expect("open data group");
    (meta, data)
}

#[tokio::test]
async fn groups_sharing_the_database_keep_their_own_entries_votes_and_purge_points() {
    let dir = TempDir::new().expect("temp dir");
    let (mut meta, mut data) = open_both(&dir);
    meta.write_entries(entries(1, 1..=10)).expect("append to group 0");
    data.write_entries(entries(2, 1..=5)).expect("append to the data group");
    meta.save_vote(&Vote::new_committed(1, 1)).await.expect("vote in group 0");
    data.save_vote(&Vote::new(2, 2)).await.expect("vote in the data group");

    meta.purge(log_id(1, 8)).await.expect("purge group 0");
    assert_eq!(indexes_and_terms(&mut meta).await, vec![(9, 1), (10, 1)]);
    assert_eq!(indexes_and_terms(&mut data).await, (1..=5).map(|index| (index, 2)).collect::<Vec<_>>());
    let state = data.get_log_state().await.expect("data group's log state");
    assert_eq!((state.last_purged_log_id, state.last_log_id), (None, Some(log_id(2, 5))));

    data.truncate(log_id(2, 4)).await.expect("truncate the data group");
    assert_eq!(indexes_and_terms(&mut meta).await, vec![(9, 1), (10, 1)]);
    drop((meta, data));

    let (mut meta, mut data) = open_both(&dir);
    let state = meta.get_log_state().await.expect("group 0's log state");
    assert_eq!((state.last_purged_log_id, state.last_log_id), (Some(log_id(1, 8)), Some(log_id(1, 10))));
    assert_eq!(indexes_and_terms(&mut data).await, vec![(1, 2), (2, 2), (3, 2)]);
    // Each store reads its own vote back (not committed at start-up).
    assert_eq!(meta.read_vote().await.expect("group 0's vote"), Some(Vote::new(1, 1)));
    assert_eq!(data.read_vote().await.expect("data group's vote"), Some(Vote::new(2, 2)));
}

#[tokio::test]
async fn a_data_group_opened_for_the_first_time_starts_empty_beside_group_0() {
    let dir = TempDir::new().expect("temp dir");
    let db = LogDb::open(&dir.path().join("raft-log"), SyncMode::Fsync, &DbResources::default()).expect("open log db");
    let mut meta = LogStore::open(&db, META_GROUP).expect("open group 0");
    meta.write_entries(entries(1, 1..=3)).expect("append to group 0");
    meta.save_vote(&Vote::new(1, 1)).await.expect("vote in group 0");
    meta.save_committed(Some(log_id(1, 3))).await.expect("commit in group 0");

    let mut data = LogStore::open(&db, 7).expect("open data group 7");
    let state = data.get_log_state().await.expect("log state");
    assert_eq!((state.last_purged_log_id, state.last_log_id), (None, None));
    assert_eq!(data.read_vote().await.expect("vote"), None);
    assert_eq!(data.read_committed().await.expect("committed"), None);
}

async fn read(store: &mut LogStore, range: std::ops::Range<u64>) -> Vec<(u64, u64)> {
    let read = store.try_get_log_entries(range).await.expect("read log");
    read.iter().map(|entry| (entry.log_id.index, entry.log_id.leader_id.term)).collect()
}

#[tokio::test]
async fn entries_just_appended_are_read_back_from_memory() {
    let dir = TempDir::new().expect("temp dir");
    let (_meta, mut data) = open_both(&dir);
    data.write_entries(entries(1, 1..=5)).expect("append");
    // Removed behind the store's back: only the kept entries still hold them.
    let cf = data.log_cf().expect("log family");
    data.db.rocks().delete_range_cf(&cf, keys::entry(0), keys::entry(u64::MAX)).expect("delete");
    drop(cf);
    assert_eq!(read(&mut data, 2..5).await, vec![(2, 1), (3, 1), (4, 1)]);
    assert_eq!(indexes_and_terms(&mut data).await, vec![], "a range without an end goes to RocksDB");
}

#[tokio::test]
async fn entries_read_back_are_never_truncated_ones() {
    let dir = TempDir::new().expect("temp dir");
    let (_meta, mut data) = open_both(&dir);
    data.write_entries(entries(1, 1..=5)).expect("append");
    assert_eq!(read(&mut data, 3..6).await, vec![(3, 1), (4, 1), (5, 1)]);
    data.truncate(log_id(1, 4)).await.expect("truncate");
    assert_eq!(read(&mut data, 4..6).await, vec![]);
    data.write_entries(entries(2, 4..=6)).expect("append after the truncation");
    assert_eq!(read(&mut data, 1..7).await, vec![(1, 1), (2, 1), (3, 1), (4, 2), (5, 2), (6, 2)]);
    data.purge(log_id(1, 2)).await.expect("purge");
    assert_eq!(read(&mut data, 3..7).await, vec![(3, 1), (4, 2), (5, 2), (6, 2)]);
    // With RocksDB emptied behind the store's back, only kept entries are
    // read: the purged ones are not among them.
    let cf = data.log_cf().expect("log family");
    data.db.rocks().delete_range_cf(&cf, keys::entry(0), keys::entry(u64::MAX)).expect("delete");
    drop(cf);
    assert_eq!(read(&mut data, 2..4).await, vec![]);
    assert_eq!(read(&mut data, 3..4).await, vec![(3, 1)]);
}
