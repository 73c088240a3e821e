//! The raft log's two threads: the log-sync thread (group commit: one WAL
//! fsync for every append queued meanwhile) and the reclaimer (gives the
//! space of purged entries back). Both hold the database, so [`LogWorkers`]
//! joins them when dropped: a process never exits with RocksDB work still
//! running against a database nobody closed (RocksDB aborts on that).

use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use openraft::storage::LogFlushed;
use rocksdb::DB;
use tokio::sync::mpsc;

use super::type_config::TypeConfig;
use super::SyncMode;
use crate::storage::db::{CF_LOG, CF_RAFT_META};
use crate::storage::keys::log as keys;

/// Quiet after the last purge that makes the reclaimer flush the log: under
/// load the memtable fills and flushes by itself, and the purged entries in
/// it are dropped; once the load stops, this gives their WAL files back.
const IDLE_FLUSH_AFTER: Duration = Duration::from_secs(5);

/// Purges waiting for the reclaimer, at most; one more is dropped (the next
/// purge's range covers it, as every range starts at the log's beginning).
const RECLAIMS_PENDING_MAX: usize = 4;

pub struct LogWorkers {
    reclaims: Option<SyncSender<[u8; 8]>>,
    threads: Vec<JoinHandle<()>>,
}

impl LogWorkers {
    /// Starts both threads; the sync thread ends when every sender of
    /// `pending` is gone, the reclaimer when this is dropped.
    pub fn start(
        db: &Arc<DB>,
        pending: mpsc::Receiver<LogFlushed<TypeConfig>>,
        sync_mode: SyncMode,
    ) -> std::io::Result<Self> {
        let sync_db = Arc::clone(db);
        let sync = thread::Builder::new()
            .name("ferry-log-sync".into())
            .spawn(move || run_log_sync(&sync_db, pending, sync_mode))?;
        let (reclaims, requests) = sync_channel(RECLAIMS_PENDING_MAX);
        let reclaim_db = Arc::clone(db);
        let reclaimer = thread::Builder::new()
            .name("ferry-log-reclaim".into())
            .spawn(move || run_reclaimer(&reclaim_db, requests))?;
        Ok(Self { reclaims: Some(reclaims), threads: vec![sync, reclaimer] })
    }

    /// Asks for the space of the entries up to `last_purged` (a log key) back.
    pub fn reclaim(&self, last_purged: [u8; 8]) {
        if let Some(reclaims) = &self.reclaims {
            match reclaims.try_send(last_purged) {
                Ok(()) | Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Disconnected(_)) => tracing::warn!("the log reclaimer has stopped"),
            }
        }
    }
}

impl Drop for LogWorkers {
    fn drop(&mut self) {
        self.reclaims = None;
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("a raft log thread panicked");
            }
        }
    }
}

fn run_log_sync(db: &DB, mut pending: mpsc::Receiver<LogFlushed<TypeConfig>>, sync_mode: SyncMode) {
    let mut batch = Vec::new();
    while pending.blocking_recv().map(|first| batch.push(first)).is_some() {
        while let Ok(next) = pending.try_recv() {
            batch.push(next);
        }
        let result = match sync_mode {
            SyncMode::Fsync => db.flush_wal(true).map_err(|e| format!("fsync raft log: {e}")),
            SyncMode::Skip => Ok(()),
        };
        for callback in batch.drain(..) {
            callback.log_io_completed(result.clone().map_err(std::io::Error::other));
        }
    }
}

/// Reclaims one purge at a time, the latest of those queued meanwhile; once
/// purges stop for [`IDLE_FLUSH_AFTER`], flushes the log so the WAL files
/// holding the purged entries go too.
fn run_reclaimer(db: &DB, requests: Receiver<[u8; 8]>) {
    let mut purged_since_flush = false;
    loop {
        match requests.recv_timeout(IDLE_FLUSH_AFTER) {
            Ok(mut last_purged) => {
                while let Ok(later) = requests.try_recv() {
                    last_purged = last_purged.max(later);
                }
                reclaim_purged(db, keys::entry(0), last_purged);
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

/// Flushes both column families: the WAL files then hold nothing unflushed
/// and RocksDB deletes them. Writes the entries kept after the last purge (a
/// few MiB) to a table, which a later purge drops.
fn flush_log(db: &DB) {
    let (Some(log), Some(meta)) = (db.cf_handle(CF_LOG), db.cf_handle(CF_RAFT_META)) else { return };
    let mut options = rocksdb::FlushOptions::default();
    options.set_wait(true);
    if let Err(e) = db.flush_cfs_opt(&[log, meta], &options) {
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
fn reclaim_purged(db: &DB, from: [u8; 8], last_purged: [u8; 8]) {
    let Some(log) = db.cf_handle(CF_LOG) else { return };
    // The range is inclusive: files holding only purged entries, never one
    // that ends with the first entry kept.
    if let Err(e) = db.delete_file_in_range_cf(log, from, last_purged) {
        tracing::warn!(error = %e, "dropping purged raft log files failed");
    }
}
