//! openraft's storage conformance suite against Ferry's RocksDB log store and
//! state machine, each built on a fresh temporary data directory.

use ferry_server::raft::{AppliedState, LogStore, StateMachine, SyncMode, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use tempfile::TempDir;

struct RocksDbStores;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for RocksDbStores {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = TempDir::new().expect("temp dir");
        let log = LogStore::open(&dir.path().join("raft-log"), SyncMode::Fsync).expect("open log store");
        let state = AppliedState::open(dir.path()).expect("open state");
        Ok((dir, log, StateMachine::new(state)))
    }
}

#[test]
fn rocksdb_stores_pass_the_openraft_storage_suite() {
    if let Err(e) = Suite::test_all(RocksDbStores) {
        panic!("storage suite failed: {e}");
    }
}

/// The log's background threads (fsync, reclaiming purged space) hold the
/// database; dropping the store joins them, so the database is closed at
/// once — reopened straight away, and never left open at process exit,
/// where RocksDB aborts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_log_store_closes_its_database_at_once() {
    use openraft::storage::RaftLogStorage;
    use openraft::{CommittedLeaderId, LogId};

    let dir = TempDir::new().expect("temp dir");
    let path = dir.path().join("raft-log");
    for round in 1..=20u64 {
        let mut log = LogStore::open(&path, SyncMode::Fsync).expect("the previous store let go of the database");
        log.purge(LogId::new(CommittedLeaderId::new(1, 1), round * 1_000)).await.expect("purge");
        drop(log);
    }
}
