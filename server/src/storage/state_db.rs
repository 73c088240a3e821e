//! `StateDb`: the state machine's database — the catalog's records, every
//! partition's messages and the acks stored above each ack floor.
//!
//! Writes go without a WAL (see the module docs of `storage`); `flush` makes
//! everything written so far durable, atomically across column families.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use ferry_proto::internal as pb;
use rocksdb::{Direction, FlushOptions, IteratorMode, WriteBatch, WriteOptions, DB};

use super::acked_ranges;
use super::batches::{self, BatchExtent, Batches};
use super::db::{self, DbResources, CF_ACKS, CF_MESSAGES, CF_META, STATE_FAMILIES};
use super::keys::{meta, offset, STATE_FORMAT};
use super::records::*;
use super::{codec, CodecError, StorageError};
use crate::domain::{
    hours, AckedRange, AckedTotal, Catalog, MessageExtent, ProducerKey, StateRead, StoredMessage, Write,
};

pub struct StateDb {
    db: DB,
    path: PathBuf,
}

impl std::fmt::Debug for StateDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateDb").field("path", &self.path).finish()
    }
}

/// What the state machine last applied, as stored.
#[derive(Debug, Default)]
pub struct AppliedRecord {
    pub last_applied: Option<pb::LogId>,
    pub membership: Option<pb::StoredMembership>,
}

impl StateDb {
    pub fn open(path: &Path, resources: &DbResources) -> Result<Self, StorageError> {
        let db = db::open_state_db(path, resources)?;
        db::check_format(&db, db::handle(&db, CF_META)?, meta::FORMAT, "state database", STATE_FORMAT)?;
        Ok(Self { db, path: path.to_owned() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn cf(&self, family: &str) -> Result<&rocksdb::ColumnFamily, StorageError> {
        db::handle(&self.db, family)
    }

    /// The first offset of the first hour at or after `hour_start_us` that
    /// the partition got messages in, from its hour boundaries (kept a week).
    pub fn hour_start_at_or_after(
        &self,
        topic_id: u64,
        partition: u32,
        hour_start_us: i64,
    ) -> Result<Option<u64>, StorageError> {
        Ok(self.hour_boundary_from(topic_id, partition, hour_start_us)?.map(|(_, offset)| offset))
    }

    /// The partition's first hour boundary at or after `hour_start_us`: the
    /// hour's start and its first offset.
    fn hour_boundary_from(
        &self,
        topic_id: u64,
        partition: u32,
        hour_start_us: i64,
    ) -> Result<Option<(i64, u64)>, StorageError> {
        let from = meta::hour_start(topic_id, partition, hour_start_us);
        let end = meta::hour_start(topic_id, partition, i64::MAX);
        let mut iter = self.db.raw_iterator_cf(self.cf(CF_META)?);
        iter.seek(from);
        match (iter.key(), iter.value()) {
            (Some(key), Some(value)) if key < end.as_slice() => {
                let corrupt = || StorageError::corrupt(format!("an hour start in {}", self.path.display()));
                let hour = key.get(13..21).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
                let hour = hour.ok_or_else(|| corrupt()(CodecError::Missing("hour")))? as i64;
                let record: pb::HourStart =
                    codec::decode("hour start", Bytes::copy_from_slice(value)).map_err(corrupt())?;
                Ok(Some((hour, record.first_offset)))
            }
            _ => {
                iter.status().map_err(StorageError::rocksdb("reading hour starts"))?;
                Ok(None)
            }
        }
    }

    /// What the database holds on disk and owes compaction, summed over its
    /// column families (RocksDB's own estimates).
    pub fn usage(&self) -> Result<DiskUsage, StorageError> {
        let mut usage = DiskUsage::default();
        for family in STATE_FAMILIES {
            let cf = self.cf(family)?;
            let property = |name: &str| {
                let value = self.db.property_int_value_cf(cf, name);
                value.map(Option::unwrap_or_default).map_err(StorageError::rocksdb(format!("reading {name}")))
            };
            usage.table_bytes += property("rocksdb.total-sst-files-size")?;
            usage.blob_bytes += property("rocksdb.total-blob-file-size")?;
            usage.pending_compaction_bytes += property("rocksdb.estimate-pending-compaction-bytes")?;
        }
        Ok(usage)
    }

    /// Rebuilds group `group`'s catalog from its records.
    pub fn load_catalog(&self, group: u32) -> Result<Catalog, StorageError> {
        let mut catalog = Catalog::for_group(group);
        let corrupt = |what: &str| StorageError::corrupt(format!("{what} in {}", self.path.display()));
        let mut topics = Vec::new();
        let mut subscriptions = Vec::new();
        for (_, value) in self.scan_prefix(CF_META, &[meta::TOPIC])? {
            let record: pb::TopicRecord = codec::decode("topic record", value).map_err(corrupt("topic"))?;
            topics.push(topic_from_record(record).map_err(corrupt("topic"))?);
        }
        for mut topic in topics {
            let (start, _) = meta::id_range(meta::PARTITION, topic.id);
            for (key, value) in self.scan_prefix(CF_META, &start)? {
                let Some((_, partition)) = meta::split_id_partition(&key) else { continue };
                let record: pb::PartitionRecord =
                    codec::decode("partition record", value).map_err(corrupt("partition"))?;
                if partition as usize != topic.partitions.len() {
                    return Err(StorageError::Invalid(format!("topic {} is missing partition records", topic.name)));
                }
                topic.partitions.push(partition_from_record(record));
            }
            catalog.insert_topic(topic);
        }
        for (_, value) in self.scan_prefix(CF_META, &[meta::SUBSCRIPTION])? {
            let record: pb::SubscriptionRecord =
                codec::decode("subscription record", value).map_err(corrupt("subscription"))?;
            subscriptions.push(subscription_from_record(record).map_err(corrupt("subscription"))?);
        }
        for mut subscription in subscriptions {
            let (start, _) = meta::id_range(meta::ACK_FLOOR, subscription.id);
            for (_, value) in self.scan_prefix(CF_META, &start)? {
                let record: pb::AckFloorRecord = codec::decode("ack floor", value).map_err(corrupt("ack floor"))?;
                subscription.acks.push(ack_state_from_record(record));
            }
            catalog.insert_subscription(subscription);
        }
        for (key, value) in self.scan_prefix(CF_META, &[meta::PRODUCER])? {
            let (topic_id, partition, producer_id) = meta::split_producer(&key)
                .ok_or_else(|| StorageError::Invalid(format!("a malformed producer key in {}", self.path.display())))?;
            let record: pb::ProducerRecord = codec::decode("producer record", value).map_err(corrupt("producer"))?;
            catalog.producers.insert(ProducerKey { topic_id, partition, producer_id }, producer_from_record(record));
        }
        if let Some(value) = self.get(CF_META, meta::LAYOUT)? {
            let record: pb::SetLayout = codec::decode("layout", value).map_err(corrupt("layout"))?;
            catalog.layout = Some(layout_from_record(record));
        }
        if let Some(value) = self.get(CF_META, meta::META_INDEX)? {
            let record: pb::MetaIndex = codec::decode("meta index", value).map_err(corrupt("meta index"))?;
            catalog.meta_index = record.index;
        }
        if let Some(value) = self.get(CF_META, meta::LEAVING)? {
            let record: pb::LeavingNodes = codec::decode("leaving nodes", value).map_err(corrupt("leaving nodes"))?;
            catalog.leaving = record.node_ids.into_iter().collect();
        }
        if let Some(value) = self.get(CF_META, meta::ID_COUNTERS)? {
            let counters: pb::IdCounters = codec::decode("id counters", value).map_err(corrupt("id counters"))?;
            catalog.last_topic_id = catalog.last_topic_id.max(counters.next_topic_id);
            catalog.last_subscription_id = catalog.last_subscription_id.max(counters.next_subscription_id);
            catalog.last_lock_epoch = counters.last_lock_epoch;
        }
        for (_, value) in self.scan_prefix(CF_META, &[meta::LOCK])? {
            let record: pb::LockRecord = codec::decode("lock record", value).map_err(corrupt("lock"))?;
            let lock = lock_from_record(record);
            catalog.locks.insert(lock.name.clone(), lock);
        }
        for (_, value) in self.scan_prefix(CF_META, &[meta::BOOKMARK])? {
            let record: pb::BookmarkRecord = codec::decode("bookmark", value).map_err(corrupt("bookmark"))?;
            let bookmark = bookmark_from_record(record);
            catalog.bookmarks.insert(bookmark.name.clone(), bookmark);
        }
        Ok(catalog)
    }

    pub fn load_applied(&self) -> Result<AppliedRecord, StorageError> {
        load_applied(&self.db, &self.path)
    }

    /// What the database at `path` (a checkpoint nothing else opens) last
    /// applied, read without writing to it.
    pub fn load_applied_read_only(path: &Path) -> Result<AppliedRecord, StorageError> {
        load_applied(&db::open_state_db_read_only(path)?, path)
    }

    /// Persists one applied entry: its writes, the applied id and, for a
    /// membership entry, the membership — in one atomic batch.
    pub fn write(
        &self,
        writes: Vec<Write>,
        applied: &pb::LogId,
        membership: Option<&pb::StoredMembership>,
    ) -> Result<(), StorageError> {
        let mut batch = self.batch_of(writes)?;
        let meta_cf = self.cf(CF_META)?;
        batch.put_cf(meta_cf, meta::APPLIED, codec::encode(applied));
        if let Some(membership) = membership {
            batch.put_cf(meta_cf, meta::MEMBERSHIP, codec::encode(membership));
        }
        let mut options = WriteOptions::default();
        options.disable_wal(true);
        self.db.write_opt(batch, &options).map_err(StorageError::rocksdb("apply to state"))
    }

    /// Makes a copy of another cluster's state (a backup) this node's own:
    /// applies `writes` (the group's new voters, say) and records it as at
    /// the new cluster's entry `applied`, with `membership`; durably.
    pub fn rebase(
        &self,
        writes: Vec<Write>,
        applied: &pb::LogId,
        membership: &pb::StoredMembership,
    ) -> Result<(), StorageError> {
        let mut batch = self.batch_of(writes)?;
        let meta_cf = self.cf(CF_META)?;
        batch.put_cf(meta_cf, meta::APPLIED, codec::encode(applied));
        batch.put_cf(meta_cf, meta::MEMBERSHIP, codec::encode(membership));
        self.db.write(batch).map_err(StorageError::rocksdb("rebase the state"))?;
        self.flush()
    }

    /// The batch that makes `writes`.
    fn batch_of(&self, writes: Vec<Write>) -> Result<WriteBatch, StorageError> {
        let (meta_cf, messages_cf, acks_cf) = (self.cf(CF_META)?, self.cf(CF_MESSAGES)?, self.cf(CF_ACKS)?);
        let mut batch = WriteBatch::default();
        for write in writes {
            match write {
                Write::PutTopic(topic) => {
                    batch.put_cf(meta_cf, meta::topic(topic.id), codec::encode(&topic_to_record(&topic)))
                }
                Write::PutPartition { topic_id, partition, state } => batch.put_cf(
                    meta_cf,
                    meta::partition(topic_id, partition),
                    codec::encode(&partition_to_record(&state)),
                ),
                Write::DeleteTopic { id, .. } => {
                    batch.delete_cf(meta_cf, meta::topic(id));
                    for tag in [meta::PARTITION, meta::PRODUCER, meta::HOUR_START] {
                        let (start, end) = meta::id_range(tag, id);
                        batch.delete_range_cf(meta_cf, start, end);
                    }
                    let (start, end) = offset::owner_range(id);
                    batch.delete_range_cf(messages_cf, start, end);
                }
                Write::PutSubscription(subscription) => batch.put_cf(
                    meta_cf,
                    meta::subscription(subscription.id),
                    codec::encode(&subscription_to_record(&subscription)),
                ),
                Write::PutAckState { subscription_id, partition, state } => batch.put_cf(
                    meta_cf,
                    meta::ack_floor(subscription_id, partition),
                    codec::encode(&ack_state_to_record(&state)),
                ),
                Write::DeleteSubscription { id, .. } => {
                    batch.delete_cf(meta_cf, meta::subscription(id));
                    let (start, end) = meta::id_range(meta::ACK_FLOOR, id);
                    batch.delete_range_cf(meta_cf, start, end);
                    let (start, end) = offset::owner_range(id);
                    batch.delete_range_cf(acks_cf, start, end);
                }
                Write::PutMessages { topic_id, partition, first_offset, publish_time_us, bytes_before, bodies } => {
                    let record = batches::encode(publish_time_us, bytes_before, bodies);
                    batch.put_cf(messages_cf, offset::key(topic_id, partition, first_offset), record);
                }
                Write::DeleteMessages { topic_id, partition, below } => batch.delete_range_cf(
                    messages_cf,
                    offset::key(topic_id, partition, 0),
                    offset::key(topic_id, partition, below),
                ),
                Write::PutAckedRange { subscription_id, partition, range } => batch.put_cf(
                    acks_cf,
                    offset::key(subscription_id, partition, range.start),
                    acked_ranges::encode(&range),
                ),
                Write::DeleteAckedRange { subscription_id, partition, start } => {
                    batch.delete_cf(acks_cf, offset::key(subscription_id, partition, start))
                }
                Write::DeleteAckedRanges { subscription_id, partition, from, to } => {
                    let (start, end) = offset::partition_range(subscription_id, partition);
                    let from = offset::key(subscription_id, partition, from).max(start);
                    let to = if to == u64::MAX { end } else { offset::key(subscription_id, partition, to) };
                    batch.delete_range_cf(acks_cf, from, to)
                }
                Write::PutProducer { key, state } => batch.put_cf(
                    meta_cf,
                    meta::producer(key.topic_id, key.partition, key.producer_id),
                    codec::encode(&producer_to_record(&state)),
                ),
                Write::DeleteProducer { key } => {
                    batch.delete_cf(meta_cf, meta::producer(key.topic_id, key.partition, key.producer_id))
                }
                Write::PutLayout(layout) => {
                    batch.put_cf(meta_cf, meta::LAYOUT, codec::encode(&layout_to_record(&layout)))
                }
                Write::PutMetaIndex(index) => {
                    batch.put_cf(meta_cf, meta::META_INDEX, codec::encode(&pb::MetaIndex { index }))
                }
                Write::PutLeaving(nodes) => batch.put_cf(
                    meta_cf,
                    meta::LEAVING,
                    codec::encode(&pb::LeavingNodes { node_ids: nodes.into_iter().collect() }),
                ),
                Write::PutIdCounters { last_topic_id, last_subscription_id, last_lock_epoch } => batch.put_cf(
                    meta_cf,
                    meta::ID_COUNTERS,
                    codec::encode(&pb::IdCounters {
                        next_topic_id: last_topic_id,
                        next_subscription_id: last_subscription_id,
                        last_lock_epoch,
                    }),
                ),
                Write::PutHourStart { topic_id, partition, hour_start_us, first_offset } => {
                    let key = meta::hour_start(topic_id, partition, hour_start_us);
                    batch.put_cf(meta_cf, key, codec::encode(&pb::HourStart { first_offset }));
                    // Drop boundaries past a week, with a range tombstone only
                    // when there is one to drop (tombstones cost later scans).
                    let oldest_kept = hour_start_us - hours::HOUR_STARTS_KEPT * hours::HOUR_US;
                    let oldest = self.hour_boundary_from(topic_id, partition, 0)?;
                    if oldest.is_some_and(|(hour, _)| hour < oldest_kept) {
                        let start = meta::hour_start(topic_id, partition, 0);
                        let end = meta::hour_start(topic_id, partition, oldest_kept);
                        batch.delete_range_cf(meta_cf, start, end);
                    }
                }
                Write::PutLock(lock) => {
                    batch.put_cf(meta_cf, meta::lock(&lock.name), codec::encode(&lock_to_record(&lock)))
                }
                Write::DeleteLock { name } => batch.delete_cf(meta_cf, meta::lock(&name)),
                Write::PutBookmark(bookmark) => {
                    batch.put_cf(meta_cf, meta::bookmark(&bookmark.name), codec::encode(&bookmark_to_record(&bookmark)))
                }
                Write::DeleteBookmark { name } => batch.delete_cf(meta_cf, meta::bookmark(&name)),
            }
        }
        Ok(batch)
    }

    /// Up to `count_max` messages of a partition from offset `from` on, stopping
    /// once `bytes_max` is reached (at least one message is returned if any exists).
    pub fn read_messages(
        &self,
        topic_id: u64,
        partition: u32,
        from: u64,
        count_max: usize,
        bytes_max: usize,
    ) -> Result<Vec<StoredMessage>, StorageError> {
        let mut batches = self.batches(topic_id, partition)?;
        batches.seek(from);
        let (mut messages, mut bytes) = (Vec::<StoredMessage>::new(), 0);
        'batches: while let Some((first, record)) = batches.current()? {
            let decoded = batches::decode(partition, first, record, from, count_max - messages.len())?;
            messages.reserve(decoded.len());
            let batch_start = messages.len();
            for message in decoded {
                if bytes >= bytes_max && !messages.is_empty() {
                    // What this batch's read keeps shares one buffer with
                    // the bodies dropped here (a whole batch, when a
                    // byte-limited stream takes one large message at a
                    // time): it gets data of its own.
                    for kept in &mut messages[batch_start..] {
                        kept.body.data = Bytes::copy_from_slice(&kept.body.data);
                    }
                    break 'batches;
                }
                bytes += message.body.size_bytes();
                messages.push(message);
            }
            // Full: stop before the iterator loads the next batch's record.
            if messages.len() >= count_max {
                break;
            }
            batches.next();
        }
        Ok(messages)
    }

    pub fn read_message(&self, topic_id: u64, partition: u32, at: u64) -> Result<Option<StoredMessage>, StorageError> {
        let mut batches = self.batches(topic_id, partition)?;
        batches.seek(at);
        let Some((first, record)) = batches.current()? else { return Ok(None) };
        if at < first {
            return Ok(None);
        }
        Ok(batches::decode(partition, first, record, at, 1)?.pop().filter(|message| message.offset == at))
    }

    fn batches(&self, topic_id: u64, partition: u32) -> Result<Batches<'_>, StorageError> {
        Ok(Batches::new(&self.db, self.cf(CF_MESSAGES)?, topic_id, partition))
    }

    /// Offsets in `from..to` acked above `floor`, ascending. Ranges that
    /// start below `floor` are not looked for: it must be at most the ack
    /// floor (an older floor is, unless a seek moved the floor down since;
    /// then an ack may be missed, and its message delivered again).
    pub fn acked_offsets(
        &self,
        subscription_id: u64,
        partition: u32,
        floor: u64,
        from: u64,
        to: u64,
    ) -> Result<Vec<u64>, StorageError> {
        let acks = (subscription_id, partition);
        let ranges = acked_ranges::read(&self.db, self.cf(CF_ACKS)?, acks, floor.min(from), from..to)?;
        Ok(ranges.into_iter().flat_map(|range| range.start.max(from)..range.end.min(to)).collect())
    }

    /// The first offset in `start..end` whose message satisfies `reached`, or
    /// `end`. `reached` must be monotonic over the range (false, then true),
    /// as publish times and byte counts are within a partition.
    pub fn first_offset_where(
        &self,
        topic_id: u64,
        partition: u32,
        start: u64,
        end: u64,
        reached: impl Fn(&MessageExtent) -> bool,
    ) -> Result<u64, StorageError> {
        let (mut low, mut high) = (start, end);
        while low < high {
            let middle = low + (high - low) / 2;
            let hit = match self.message_extent(topic_id, partition, middle)? {
                Some(extent) => reached(&extent),
                // Trimmed while we looked: everything below the new start is gone.
                None => false,
            };
            if hit {
                high = middle;
            } else {
                low = middle + 1;
            }
        }
        Ok(low)
    }

    /// Reclaims the disk space of a partition's batches deleted below `below`
    /// now rather than whenever RocksDB compacts that range on its own.
    pub fn compact_messages(&self, topic_id: u64, partition: u32, below: u64) -> Result<(), StorageError> {
        let (start, end) = (offset::key(topic_id, partition, 0), offset::key(topic_id, partition, below));
        self.db.compact_range_cf(self.cf(CF_MESSAGES)?, Some(start), Some(end));
        Ok(())
    }

    /// Makes every write so far durable.
    pub fn flush(&self) -> Result<(), StorageError> {
        let mut options = FlushOptions::default();
        options.set_wait(true);
        let families: Vec<_> = STATE_FAMILIES.iter().map(|f| self.cf(f)).collect::<Result<_, _>>()?;
        self.db.flush_cfs_opt(&families, &options).map_err(StorageError::rocksdb("flush state"))
    }

    /// A consistent copy of the database in `dir` (hard links where possible).
    pub fn checkpoint(&self, dir: &Path) -> Result<(), StorageError> {
        let checkpoint = rocksdb::checkpoint::Checkpoint::new(&self.db).map_err(StorageError::rocksdb("checkpoint"))?;
        // A log size of 0 forces a flush first, so the copy holds every write.
        checkpoint
            .create_checkpoint_with_log_size(dir, 0)
            .map_err(StorageError::rocksdb(format!("checkpoint into {}", dir.display())))
    }

    fn get(&self, family: &str, key: &[u8]) -> Result<Option<Bytes>, StorageError> {
        get(&self.db, family, key)
    }

    fn scan_prefix(&self, family: &str, prefix: &[u8]) -> Result<Vec<(Bytes, Bytes)>, StorageError> {
        let iter = self.db.iterator_cf(self.cf(family)?, IteratorMode::From(prefix, Direction::Forward));
        let mut items = Vec::new();
        for item in iter {
            let (key, value) = item.map_err(StorageError::rocksdb("scan state"))?;
            if !key.starts_with(prefix) {
                break;
            }
            items.push((Bytes::from(key), Bytes::from(value)));
        }
        Ok(items)
    }
}

fn get(db: &DB, family: &str, key: &[u8]) -> Result<Option<Bytes>, StorageError> {
    let value = db.get_cf(db::handle(db, family)?, key).map_err(StorageError::rocksdb("read state"))?;
    Ok(value.map(Bytes::from))
}

fn load_applied(db: &DB, path: &Path) -> Result<AppliedRecord, StorageError> {
    let corrupt = |what: &str| StorageError::corrupt(format!("{what} in {}", path.display()));
    let last_applied = match get(db, CF_META, meta::APPLIED)? {
        Some(value) => Some(codec::decode("applied log id", value).map_err(corrupt("applied log id"))?),
        None => None,
    };
    let membership = match get(db, CF_META, meta::MEMBERSHIP)? {
        Some(value) => Some(codec::decode("membership", value).map_err(corrupt("membership"))?),
        None => None,
    };
    Ok(AppliedRecord { last_applied, membership })
}

/// A database's size on disk and compaction debt, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskUsage {
    pub table_bytes: u64,
    pub blob_bytes: u64,
    pub pending_compaction_bytes: u64,
}

impl StateRead for StateDb {
    type Error = StorageError;

    fn stored_acks(
        &self,
        subscription_id: u64,
        partition: u32,
        floor: u64,
        from: u64,
        to: u64,
    ) -> Result<Vec<AckedRange>, StorageError> {
        acked_ranges::read(&self.db, self.cf(CF_ACKS)?, (subscription_id, partition), floor, from..to)
    }

    fn stored_acks_total(
        &self,
        subscription_id: u64,
        partition: u32,
        floor: u64,
        to: u64,
    ) -> Result<AckedTotal, StorageError> {
        let mut total = AckedTotal::default();
        let acks = (subscription_id, partition);
        acked_ranges::for_each(&self.db, self.cf(CF_ACKS)?, acks, floor, floor..to, |range| total.add(&range))?;
        Ok(total)
    }

    fn message_extent(&self, topic_id: u64, partition: u32, at: u64) -> Result<Option<MessageExtent>, StorageError> {
        let mut batches = self.batches(topic_id, partition)?;
        batches.seek(at);
        Ok(batches.current_extent()?.and_then(|batch| batch.message(at)))
    }

    /// One cursor for the whole batch of offsets, which decodes each stored
    /// batch it lands on once.
    fn message_sizes(&self, topic_id: u64, partition: u32, offsets: &[u64]) -> Result<Vec<u64>, StorageError> {
        let mut batches = self.batches(topic_id, partition)?;
        let mut here: Option<BatchExtent> = None;
        let mut sizes = Vec::with_capacity(offsets.len());
        for &wanted in offsets {
            if !here.as_ref().is_some_and(|batch| batch.holds(wanted)) {
                batches.seek(wanted);
                here = batches.current_extent()?;
            }
            sizes.push(here.as_ref().and_then(|batch| batch.size(wanted)).unwrap_or(0));
        }
        Ok(sizes)
    }
}

#[cfg(test)]
#[path = "state_db_tests.rs"]
mod tests;
