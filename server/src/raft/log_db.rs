//! `LogDb`: the raft-log RocksDB, shared by every Raft group this process
//! hosts, with its log-sync and reclaimer threads.
//!
//! Each group's log has its own column family (group 0's is `log`, data
//! group g's `log-<g>`), so a purge drops whole tables of that group alone.
//! All groups share one WAL, so the log-sync thread's one fsync makes every
//! group's queued appends durable at once: the fsync rate is bounded by the
//! disk, not by the number of groups.

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use rocksdb::BoundColumnFamily;
use tokio::sync::mpsc;

use super::groups::{GroupId, META_GROUP};
use super::log_workers::{LogSyncStats, LogWorkers, SyncWaiter};
use super::{wal_trimmer, SyncMode};
use crate::storage::db::{self, DbResources, LogRocksDb, CF_GROUP_META, CF_RAFT_META};
use crate::storage::keys::log as keys;
use crate::storage::keys::LOG_FORMAT;
use crate::storage::StorageError;

/// Appends whose fsync is pending, at most, over all groups. An append waits
/// when it is full.
const PENDING_SYNCS_MAX: usize = 4096;

pub struct LogDb {
    db: Arc<LogRocksDb>,
    resources: DbResources,
    /// Held while column families are created, so two groups opening at once
    /// do not both create `group_meta`.
    creating: Mutex<()>,
    sync_stats: Arc<LogSyncStats>,
    /// Declared before `workers`: dropped first, it ends the sync thread,
    /// which `workers` then joins.
    syncs: mpsc::Sender<SyncWaiter>,
    workers: LogWorkers,
}

impl std::fmt::Debug for LogDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogDb").field("path", &self.db.path()).finish()
    }
}

impl LogDb {
    /// Opens (or creates) the database at `path` with every group's column
    /// families, and starts its threads. They are joined when the last
    /// `Arc` (held by each group's `LogStore`) goes.
    pub fn open(path: &Path, sync_mode: SyncMode, resources: &DbResources) -> Result<Arc<Self>, StorageError> {
        let db = Arc::new(db::open_log_db(path, resources)?);
        let meta = db::log_family(&db, CF_RAFT_META)?;
        db::check_format(&db, &meta, keys::FORMAT, "raft log", LOG_FORMAT)?;
        drop(meta);
        let (syncs, pending) = mpsc::channel(PENDING_SYNCS_MAX);
        let sync_stats = Arc::new(LogSyncStats::default());
        let workers = LogWorkers::start(&db, pending, sync_mode, Arc::clone(&sync_stats))
            .map_err(StorageError::io("start the log threads"))?;
        let creating = Mutex::new(());
        Ok(Arc::new(Self { db, resources: resources.clone(), creating, sync_stats, syncs, workers }))
    }

    /// Where `group`'s log and metadata live, creating its column families
    /// the first time a data group is opened.
    pub(super) fn open_group(&self, group: GroupId) -> Result<GroupFamilies, StorageError> {
        let families = GroupFamilies::of(group);
        if group != META_GROUP {
            let _creating = self.creating.lock();
            db::ensure_log_family(&self.db, &self.resources, &families.log)?;
            db::ensure_log_family(&self.db, &self.resources, families.meta)?;
        }
        Ok(families)
    }

    pub(super) fn rocks(&self) -> &LogRocksDb {
        &self.db
    }

    pub(super) fn family(&self, name: &str) -> Result<Arc<BoundColumnFamily<'_>>, StorageError> {
        db::log_family(&self.db, name)
    }

    /// Queues `waiter` for the log-sync thread, which calls it once the WAL
    /// holding every write made before this call is fsynced.
    pub(super) async fn after_sync(&self, waiter: SyncWaiter) -> Result<(), StorageError> {
        self.syncs.send(waiter).await.map_err(|_| StorageError::Invalid("the log-sync thread has stopped".into()))
    }

    /// Asks for the space of `group`'s purged entries back.
    pub(super) fn reclaim(&self, group: GroupId, last_purged: u64) {
        self.workers.reclaim(group, last_purged);
    }

    /// The WAL fsyncs made since the database opened, over all groups.
    pub fn sync_stats(&self) -> &LogSyncStats {
        &self.sync_stats
    }

    /// The bytes of obsolete WAL files the trimmer has yet to remove.
    pub fn archived_bytes(&self) -> u64 {
        wal_trimmer::archived_bytes(&self.db.path().join(wal_trimmer::ARCHIVE_DIR))
    }
}

/// Where one group's log and metadata are kept in the shared database.
#[derive(Debug, Clone)]
pub(super) struct GroupFamilies {
    /// The column family of its log entries.
    pub log: String,
    /// The column family of its vote, commit and purge point.
    pub meta: &'static str,
    group: GroupId,
}

impl GroupFamilies {
    pub fn of(group: GroupId) -> Self {
        let meta = if group == META_GROUP { CF_RAFT_META } else { CF_GROUP_META };
        Self { log: db::group_log_family(group), meta, group }
    }

    /// The key of `name` (`keys::VOTE`, `COMMITTED` or `PURGED`) in `meta`.
    pub fn meta_key(&self, name: &[u8]) -> Vec<u8> {
        if self.group == META_GROUP {
            name.to_vec()
        } else {
            keys::group_meta(self.group, name)
        }
    }
}
