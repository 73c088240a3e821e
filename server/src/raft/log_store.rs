//! `LogStore`: openraft's log storage for one Raft group, on the `raft-log`
//! RocksDB all groups share ([`LogDb`]).
//!
//! Appends are written to RocksDB at once (readable at once) without a sync;
//! their completion callbacks go to the log-sync thread, which fsyncs the WAL
//! once for every callback that has queued up meanwhile, of any group, and
//! only then reports the entries durable. That is group commit: one fsync
//! covers many appends, and openraft never counts an entry that could still
//! be lost.
//!
//! Architecture invariant: openraft is told an append is durable only after
//! `flush_wal(sync = true)` returned for a write that came after it. Votes,
//! truncations and purges are written with `sync = true` before returning.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use bytes::Bytes;
use ferry_proto::internal as pb;
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{BasicNode, EntryPayload, OptionalSend};
use parking_lot::Mutex;
use rocksdb::{BoundColumnFamily, Direction, IteratorMode, ReadOptions, WriteBatch, WriteOptions};

use super::codec::{
    entry_from_record, entry_to_record, log_id_from_record, log_id_to_record, vote_from_record, vote_to_record,
};
use super::errors;
use super::groups::GroupId;
use super::log_db::{GroupFamilies, LogDb};
use super::log_sizes::LogSizes;
use super::type_config::{Entry, LogId, Membership, NodeId, RaftStorageError, TypeConfig, Vote};
use crate::storage::keys::log as keys;
use crate::storage::{codec, StorageError};

mod recent;

use recent::{Kept, Recent};

/// Whether appends are fsynced before they are reported durable. `Skip` exists
/// only so the fault harness can prove it detects the loss it causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    Fsync,
    /// UNSAFE: reports appends durable without an fsync.
    Skip,
}

#[derive(Clone)]
pub struct LogStore {
    /// Shared with the other groups' stores; the last one to go closes it.
    db: Arc<LogDb>,
    group: GroupId,
    families: Arc<GroupFamilies>,
    /// Whether the vote has been read since the store was opened (see `read_vote`).
    vote_read: bool,
    /// Bytes appended, for purging by size (`node::log_purge`).
    sizes: Arc<LogSizes>,
    /// The last entries appended, which openraft reads back at once.
    recent: Arc<Mutex<Recent>>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").field("db", &self.db).field("group", &self.group).finish()
    }
}

impl LogStore {
    /// Opens `group`'s log in the shared database, creating it on first use.
    pub fn open(db: &Arc<LogDb>, group: GroupId) -> Result<Self, StorageError> {
        let families = Arc::new(db.open_group(group)?);
        let sizes = Arc::new(LogSizes::default());
        let recent = Arc::default();
        Ok(Self { db: Arc::clone(db), group, families, vote_read: false, sizes, recent })
    }

    /// The log's size, as appends, truncations and purges leave it. Entries
    /// already on disk when the store opened are not counted.
    pub fn sizes(&self) -> Arc<LogSizes> {
        Arc::clone(&self.sizes)
    }

    /// Writes a new group's first entry, its first membership, as
    /// `Raft::initialize` would (the same log id and payload), if the log
    /// holds nothing yet; whether it did. Written before the group's Raft
    /// starts, so no vote request can reach the group first: a voter that
    /// has granted a vote can no longer initialise (openraft), and had the
    /// candidate died before replicating, the group would be left with no
    /// membership on any voter and never elect.
    pub fn begin_with(&self, members: BTreeMap<NodeId, BasicNode>) -> Result<bool, StorageError> {
        if self.last_entry()?.is_some() || self.last_purged()?.is_some() {
            return Ok(false);
        }
        let first = Entry { log_id: LogId::default(), payload: EntryPayload::Membership(Membership::from(members)) };
        self.write_entries([first])?;
        self.db.rocks().flush_wal(true).map_err(StorageError::rocksdb("sync the first log entry"))?;
        Ok(true)
    }

    fn log_cf(&self) -> Result<Arc<BoundColumnFamily<'_>>, StorageError> {
        self.db.family(&self.families.log)
    }

    fn meta_cf(&self) -> Result<Arc<BoundColumnFamily<'_>>, StorageError> {
        self.db.family(self.families.meta)
    }

    fn read_meta<M: prost::Message + Default>(
        &self,
        name: &[u8],
        what: &'static str,
    ) -> Result<Option<M>, StorageError> {
        let key = self.families.meta_key(name);
        let Some(value) = self.db.rocks().get_cf(&self.meta_cf()?, key).map_err(StorageError::rocksdb(what))? else {
            return Ok(None);
        };
        codec::decode(what, Bytes::from(value)).map(Some).map_err(StorageError::corrupt(what))
    }

    fn write_synced(&self, batch: WriteBatch, what: &str) -> Result<(), StorageError> {
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db.rocks().write_opt(batch, &options).map_err(StorageError::rocksdb(what))
    }

    fn last_purged(&self) -> Result<Option<LogId>, StorageError> {
        Ok(self.read_meta::<pb::LogId>(keys::PURGED, "purged log id")?.as_ref().map(log_id_from_record))
    }

    fn last_entry(&self) -> Result<Option<LogId>, StorageError> {
        let mut iter = self.db.rocks().iterator_cf(&self.log_cf()?, IteratorMode::End);
        match iter.next() {
            None => Ok(None),
            Some(item) => {
                let (_, value) = item.map_err(StorageError::rocksdb("read last log entry"))?;
                let record: pb::LogEntry =
                    codec::decode("log entry", Bytes::from(value)).map_err(StorageError::corrupt("last log entry"))?;
                Ok(Some(log_id_from_record(&pb::LogId {
                    term: record.term,
                    leader_node_id: record.leader_node_id,
                    index: record.index,
                })))
            }
        }
    }

    /// Writes entries to the log without a sync, counts their bytes and
    /// keeps them as the recent ones.
    fn write_entries(&self, entries: impl IntoIterator<Item = Entry>) -> Result<(), StorageError> {
        let cf = self.log_cf()?;
        let mut batch = WriteBatch::default();
        let mut written = Vec::new();
        for entry in entries {
            let record = codec::encode(&entry_to_record(&entry));
            batch.put_cf(&cf, keys::entry(entry.log_id.index), &record);
            written.push((record.len() as u64, entry));
        }
        self.db.rocks().write(batch).map_err(StorageError::rocksdb("append log entries"))?;
        if let Some((_, last)) = written.last() {
            self.sizes.appended(last.log_id.index, written.iter().map(|(bytes, _)| bytes).sum());
        }
        // Kept after the write: a read that misses them meanwhile finds them
        // in RocksDB.
        let kept = Kept::tail_of(written);
        let mut recent = self.recent.lock();
        for kept in kept {
            recent.appended(kept);
        }
        Ok(())
    }

    fn read_range(&self, start: u64, end_exclusive: Option<u64>) -> Result<Vec<Entry>, StorageError> {
        // A range without an end is read from RocksDB: the kept entries end
        // where the last append ended, which may lag RocksDB for a moment.
        if let Some(kept) = end_exclusive.and_then(|end| self.recent.lock().get(start, end)) {
            return Ok(kept);
        }
        let mut options = ReadOptions::default();
        if let Some(end) = end_exclusive {
            options.set_iterate_upper_bound(keys::entry(end).to_vec());
        }
        let from = keys::entry(start);
        let iter =
            self.db.rocks().iterator_cf_opt(&self.log_cf()?, options, IteratorMode::From(&from, Direction::Forward));
        let mut entries = Vec::new();
        for item in iter {
            let (_, value) = item.map_err(StorageError::rocksdb("read log entries"))?;
            let record: pb::LogEntry =
                codec::decode("log entry", Bytes::from(value)).map_err(StorageError::corrupt("log entry"))?;
            entries.push(entry_from_record(record).map_err(StorageError::corrupt("log entry"))?);
        }
        Ok(entries)
    }
}

fn start_of(bound: Bound<&u64>) -> u64 {
    match bound {
        Bound::Included(i) => *i,
        Bound::Excluded(i) => i.saturating_add(1),
        Bound::Unbounded => 0,
    }
}

fn end_of(bound: Bound<&u64>) -> Option<u64> {
    match bound {
        Bound::Included(i) => Some(i.saturating_add(1)),
        Bound::Excluded(i) => Some(*i),
        Bound::Unbounded => None,
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, RaftStorageError> {
        self.read_range(start_of(range.start_bound()), end_of(range.end_bound())).map_err(errors::read_logs)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, RaftStorageError> {
        let last_purged_log_id = self.last_purged().map_err(errors::read_logs)?;
        let last_log_id = self.last_entry().map_err(errors::read_logs)?.or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), RaftStorageError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(
            &self.meta_cf().map_err(errors::write_vote)?,
            self.families.meta_key(keys::VOTE),
            codec::encode(&vote_to_record(vote)),
        );
        self.write_synced(batch, "save vote").map_err(errors::write_vote)
    }

    /// The first read after opening — openraft's start-up — gives the vote
    /// back as not committed. With a committed vote naming itself, openraft
    /// would resume leading its old term at once, without an election or a
    /// blank entry: serving reads from a state machine that has not yet
    /// re-applied what it committed before the restart (found by the fault
    /// harness: acked messages delivered again after a power loss), and
    /// proposing at indexes whose entries the followers may hold while its
    /// own disk lost them. Not committed, it only means "voted for this
    /// leader in this term": the node waits for a leader or stands in the
    /// next term, whose leader commits a blank entry first.
    async fn read_vote(&mut self) -> Result<Option<Vote>, RaftStorageError> {
        let record = self.read_meta::<pb::Vote>(keys::VOTE, "vote").map_err(errors::read_vote)?;
        let at_start_up = !std::mem::replace(&mut self.vote_read, true);
        Ok(record
            .map(|record| pb::Vote { committed: record.committed && !at_start_up, ..record })
            .as_ref()
            .map(vote_from_record))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), RaftStorageError> {
        // Not synced: a stale committed id only means re-applying less at start-up.
        let (cf, key) = (self.meta_cf().map_err(errors::write_logs)?, self.families.meta_key(keys::COMMITTED));
        let result = match committed {
            Some(log_id) => self.db.rocks().put_cf(&cf, key, codec::encode(&log_id_to_record(&log_id))),
            None => self.db.rocks().delete_cf(&cf, key),
        };
        result.map_err(StorageError::rocksdb("save committed")).map_err(errors::write_logs)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, RaftStorageError> {
        let record = self.read_meta::<pb::LogId>(keys::COMMITTED, "committed log id").map_err(errors::read_logs)?;
        Ok(record.as_ref().map(log_id_from_record))
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), RaftStorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.write_entries(entries).map_err(errors::write_logs)?;
        // The sync thread reports durability; if it is gone the node is stopping.
        self.db.after_sync(Box::new(move |synced| callback.log_io_completed(synced))).await.map_err(errors::write_logs)
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), RaftStorageError> {
        // Forgotten first, so no read is served a removed entry.
        self.recent.lock().truncated(log_id.index);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            &self.log_cf().map_err(errors::write_logs)?,
            keys::entry(log_id.index),
            keys::entry(u64::MAX),
        );
        self.write_synced(batch, "truncate log").map_err(errors::write_logs)?;
        self.sizes.truncated(log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), RaftStorageError> {
        // Forgotten first, as with a truncation: what is kept, RocksDB holds.
        self.recent.lock().purged(log_id.index);
        let mut batch = WriteBatch::default();
        batch.put_cf(
            &self.meta_cf().map_err(errors::write_logs)?,
            self.families.meta_key(keys::PURGED),
            codec::encode(&log_id_to_record(&log_id)),
        );
        let (from, to) = (keys::entry(0), keys::entry(log_id.index + 1));
        batch.delete_range_cf(&self.log_cf().map_err(errors::write_logs)?, from, to);
        self.write_synced(batch, "purge log").map_err(errors::write_logs)?;
        self.sizes.purged(log_id.index);
        self.db.reclaim(self.group, log_id.index);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
