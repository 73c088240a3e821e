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
