//! openraft's storage conformance suite against Ferry's RocksDB log store and
//! state machine, each built on a fresh temporary data directory.

use ferry_server::raft::{AppliedState, GroupId, LogDb, LogStore, StateMachine, SyncMode, TypeConfig, META_GROUP};
use ferry_server::storage::db::DbResources;
use openraft::storage::RaftLogStorage;
use openraft::testing::{StoreBuilder, Suite};
use openraft::{StorageError, Vote};
use tempfile::TempDir;

/// Stores of one group on a fresh data directory. For a data group, group 0
/// shares the log database and has voted and purged already, so the suite
/// also checks that nothing of group 0 shows through.
struct RocksDbStores {
    group: GroupId,
}

/// Keeps the directory, and group 0's store beside a data group's.
type Guard = (TempDir, Option<LogStore>);

impl StoreBuilder<TypeConfig, LogStore, StateMachine, Guard> for RocksDbStores {
    async fn build(&self) -> Result<(Guard, LogStore, StateMachine), StorageError<u64>> {
        let dir = TempDir::new().expect("temp dir");
        let resources = DbResources::default();
        let db = LogDb::open(&dir.path().join("raft-log"), SyncMode::Fsync, &resources).expect("open log db");
        let mut neighbour = None;
        if self.group != META_GROUP {
            let mut meta = LogStore::open(&db, META_GROUP).expect("open group 0");
            meta.save_vote(&Vote::new_committed(9, 9)).await?;
            meta.purge(openraft::LogId::new(openraft::CommittedLeaderId::new(9, 9), 99)).await?;
            neighbour = Some(meta);
        }
        let log = LogStore::open(&db, self.group).expect("open log store");
        let state = AppliedState::open(dir.path(), self.group, &resources).expect("open state");
        Ok(((dir, neighbour), log, StateMachine::new(state)))
    }
}

#[test]
fn rocksdb_stores_pass_the_openraft_storage_suite() {
    if let Err(e) = Suite::test_all(RocksDbStores { group: META_GROUP }) {
        panic!("storage suite failed: {e}");
    }
}

#[test]
fn a_data_group_beside_group_0_passes_the_openraft_storage_suite() {
    if let Err(e) = Suite::test_all(RocksDbStores { group: 3 }) {
        panic!("storage suite failed for group 3: {e}");
    }
}

/// The log's background threads (fsync, reclaiming purged space) hold the
/// database; dropping the store joins them, so the database is closed at
/// once — reopened straight away, and never left open at process exit,
/// where RocksDB aborts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_log_store_closes_its_database_at_once() {
    use openraft::{CommittedLeaderId, LogId};

    let dir = TempDir::new().expect("temp dir");
    let path = dir.path().join("raft-log");
    for round in 1..=20u64 {
        let db = LogDb::open(&path, SyncMode::Fsync, &DbResources::default())
            .expect("the previous store let go of the database");
        let mut log = LogStore::open(&db, (round % 2) as GroupId).expect("open log store");
        drop(db);
        log.purge(LogId::new(CommittedLeaderId::new(1, 1), round * 1_000)).await.expect("purge");
        drop(log);
    }
}
