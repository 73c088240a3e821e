//! The raft log's threads, shared by every group: the log-sync thread
//! (group commit: one WAL fsync for every append queued meanwhile, whatever
//! its group), the reclaimer (gives the space of purged entries back) and
//! the WAL trimmer (deletes obsolete WAL files gently, see
//! [`wal_trimmer`](super::wal_trimmer)). The first two hold the database,
//! so [`LogWorkers`] joins them all when dropped: a process never exits with
//! RocksDB work still running against a database nobody closed (RocksDB
//! aborts on that).

use std::collections::BTreeMap;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ferry_metrics::Histogram;
use tokio::sync::mpsc;

use super::groups::GroupId;
use super::log_db::GroupFamilies;
use super::wal_trimmer;
use super::SyncMode;
use super::STORAGE_WAIT_BOUNDS_SECONDS;
use crate::domain::limits::DATA_GROUPS_MAX;
use crate::storage::db::{self, LogRocksDb, CF_GROUP_META, CF_RAFT_META};
use crate::storage::keys::log as keys;

/// Called once the WAL holding the writes made before it was queued is
/// fsynced (or the fsync failed).
pub type SyncWaiter = Box<dyn FnOnce(std::io::Result<()>) + Send>;

/// Quiet after the last purge that makes the reclaimer flush the log: under
/// load the memtable fills and flushes by itself, and the purged entries in
/// it are dropped; once the load stops, this gives their WAL files back.
const IDLE_FLUSH_AFTER: Duration = Duration::from_secs(5);

/// Purges waiting for the reclaimer, at most; one more is dropped (that
/// group's next purge covers it, as every range starts at the log's
/// beginning).
const RECLAIMS_PENDING_MAX: usize = 1024;

/// A purge to reclaim: the group and the last index it purged.
type Reclaim = (GroupId, u64);

/// Upper bounds of the appends-per-fsync buckets (group commit's batches).
static APPENDS_BOUNDS: [f64; 12] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0];

/// What the log-sync thread measured, for the node's metrics.
#[derive(Debug)]
pub struct LogSyncStats {
    /// How long each WAL fsync took (its count is the number of fsyncs).
    pub fsync_seconds: Histogram,
    /// Appends, of any groups, each fsync made durable at once.
    pub appends_per_fsync: Histogram,
}

impl Default for LogSyncStats {
    fn default() -> Self {
        Self {
            fsync_seconds: Histogram::new(&STORAGE_WAIT_BOUNDS_SECONDS),
            appends_per_fsync: Histogram::new(&APPENDS_BOUNDS),
        }
    }
}

pub struct LogWorkers {
    reclaims: Option<SyncSender<Reclaim>>,
    /// Dropped to stop the WAL trimmer.
    stop_trimming: Option<SyncSender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl LogWorkers {
    /// Starts the threads; the sync thread ends when every sender of
    /// `pending` is gone, the others when this is dropped. Each fsync is
    /// recorded in `stats`.
    pub fn start(
        db: &Arc<LogRocksDb>,
        pending: mpsc::Receiver<SyncWaiter>,
        sync_mode: SyncMode,
        stats: Arc<LogSyncStats>,
    ) -> std::io::Result<Self> {
        let sync_db = Arc::clone(db);
        let sync = thread::Builder::new()
            .name("ferry-log-sync".into())
            .spawn(move || run_log_sync(&sync_db, pending, sync_mode, &stats))?;
        let (reclaims, requests) = sync_channel(RECLAIMS_PENDING_MAX);
        let reclaim_db = Arc::clone(db);
        let reclaimer = thread::Builder::new()
            .name("ferry-log-reclaim".into())
            .spawn(move || run_reclaimer(&reclaim_db, requests))?;
        let (stop_trimming, stop) = sync_channel(0);
        let archive = db.path().join(wal_trimmer::ARCHIVE_DIR);
        let trimmer =
            thread::Builder::new().name("ferry-wal-trim".into()).spawn(move || wal_trimmer::run(&archive, stop))?;
        Ok(Self {
            reclaims: Some(reclaims),
            stop_trimming: Some(stop_trimming),
            threads: vec![sync, reclaimer, trimmer],
        })
    }

    /// Asks for the space of `group`'s entries up to `last_purged` back.
    pub fn reclaim(&self, group: GroupId, last_purged: u64) {
        if let Some(reclaims) = &self.reclaims {
            match reclaims.try_send((group, last_purged)) {
                Ok(()) | Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Disconnected(_)) => tracing::warn!("the log reclaimer has stopped"),
            }
        }
    }
}

impl Drop for LogWorkers {
    fn drop(&mut self) {
        self.reclaims = None;
        self.stop_trimming = None;
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("a raft log thread panicked");
            }
        }
    }
}

fn run_log_sync(db: &LogRocksDb, mut pending: mpsc::Receiver<SyncWaiter>, sync_mode: SyncMode, stats: &LogSyncStats) {
    let mut batch = Vec::new();
    while pending.blocking_recv().map(|first| batch.push(first)).is_some() {
        while let Ok(next) = pending.try_recv() {
            batch.push(next);
        }
        let result = match sync_mode {
            SyncMode::Fsync => {
                let started = Instant::now();
                let synced = db.flush_wal(true).map_err(|e| format!("fsync raft log: {e}"));
                stats.fsync_seconds.observe(started.elapsed().as_secs_f64());
                stats.appends_per_fsync.observe(batch.len() as f64);
                synced
            }
            SyncMode::Skip => Ok(()),
        };
        for waiter in batch.drain(..) {
            waiter(result.clone().map_err(std::io::Error::other));
        }
    }
}

/// Reclaims each group's latest purge of those queued meanwhile; once purges
/// stop for [`IDLE_FLUSH_AFTER`] after any, flushes the log, so the WAL
/// files holding the purged entries go too.
fn run_reclaimer(db: &LogRocksDb, requests: Receiver<Reclaim>) {
    let mut purged_since_flush = false;
    loop {
        match requests.recv_timeout(IDLE_FLUSH_AFTER) {
            Ok(first) => {
                let mut latest = BTreeMap::from([first]);
                while let Ok((group, last_purged)) = requests.try_recv() {
                    let entry = latest.entry(group).or_insert(last_purged);
                    *entry = (*entry).max(last_purged);
                }
                for (group, last_purged) in latest {
                    reclaim_purged(db, &GroupFamilies::of(group), last_purged);
                }
                purged_since_flush = true;
            }
            Err(RecvTimeoutError::Timeout) => {
                if std::mem::take(&mut purged_since_flush) {
                    flush_log(db);
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Flushes every group's column families: the WAL files then hold nothing
/// unflushed, and RocksDB archives them (for the WAL trimmer to remove). A
/// WAL file goes only once every family with writes in it has flushed, so
/// flushing just the purged groups kept their entries' WAL files for as
/// long as another group (group 0's few admin entries, say) had unflushed
/// writes in them: with data groups, a topic's expired 64 MiB stayed on
/// disk. Writes the entries kept after each group's last purge (a few MiB,
/// or a few entries of a quiet group) to tables, which later purges drop.
fn flush_log(db: &LogRocksDb) {
    let mut names = vec![CF_RAFT_META.to_owned(), CF_GROUP_META.to_owned()];
    names.extend((0..=DATA_GROUPS_MAX).map(db::group_log_family));
    let families: Vec<_> = names.iter().filter_map(|name| db.cf_handle(name)).collect();
    let mut options = rocksdb::FlushOptions::default();
    options.set_wait(true);
    if let Err(e) = db.flush_cfs_opt(&families.iter().collect::<Vec<_>>(), &options) {
        tracing::warn!(error = %e, "flushing the raft log after purges failed");
    }
}

/// Gives the disk space of purged tables back: those wholly inside the range
/// are dropped without compaction. Nothing is flushed or compacted: purged
/// entries still in the memtable are dropped when it flushes (full, or once
/// purges stop), and the WAL files holding them go with it; a table
/// straddling the purge point is wholly purged by a later purge, as every
/// purge moves the point forward. Compacting it instead would first flush the
/// memtable, writing to a table the very entries the next purge drops.
/// Failures only delay reclaiming.
fn reclaim_purged(db: &LogRocksDb, families: &GroupFamilies, last_purged: u64) {
    let Some(log) = db.cf_handle(&families.log) else { return };
    // The range is inclusive: files holding only purged entries, never one
    // that ends with the first entry kept.
    if let Err(e) = db.delete_file_in_range_cf(&log, keys::entry(0), keys::entry(last_purged)) {
        tracing::warn!(error = %e, log = families.log, "dropping purged raft log files failed");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::channel;

    use super::*;
    use crate::storage::db;

    /// Appends of any groups queued while the sync thread was busy are made
    /// durable by one fsync, so the fsync rate does not grow with the groups.
    #[test]
    fn waiters_queued_meanwhile_are_completed_by_one_fsync() {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let db = Arc::new(db::open_log_db(dir.path(), &db::DbResources::default()).expect("open log db"));
        let (syncs, pending) = mpsc::channel::<SyncWaiter>(16);
        let (done, completed) = channel();
        for group in [0, 3, 7] {
            let done = done.clone();
            let waiter: SyncWaiter = Box::new(move |synced| done.send((group, synced.is_ok())).expect("test waits"));
            assert!(syncs.try_send(waiter).is_ok(), "the channel has room");
        }
        let stats = Arc::new(LogSyncStats::default());
        let workers = LogWorkers::start(&db, pending, SyncMode::Fsync, Arc::clone(&stats)).expect("start");
        let mut groups: Vec<_> = (0..3).map(|_| completed.recv().expect("completed")).collect();
        groups.sort();
        assert_eq!(groups, vec![(0, true), (3, true), (7, true)]);
        assert_eq!(stats.fsync_seconds.snapshot().count, 1);
        let appends = stats.appends_per_fsync.snapshot();
        assert_eq!((appends.count, appends.sum), (1, 3.0), "one fsync made three appends durable");
        drop(syncs);
        drop(workers);
    }
}
