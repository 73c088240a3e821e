//! The `messages` column family: each publish batch is one `BatchRecord`
//! under the key of its first offset. One record per batch rather than per
//! message makes a publish one write-batch entry and a read of a thousand
//! messages a couple of iterator steps.
//!
//! [`Batches`] walks one partition's batches; [`BatchExtent`] is a batch read
//! without its bodies, for sizes, byte counts and publish times.

use bytes::Bytes;
use ferry_proto::internal as pb;
use rocksdb::{ColumnFamily, DBRawIterator, ReadOptions, DB};

use super::keys::offset;
use super::records::{body_from_record, body_to_record};
use super::{codec, StorageError};
use crate::domain::{MessageBody, MessageExtent, StoredMessage};

/// The stored record of a batch of `bodies`.
pub fn encode(publish_time_us: i64, bytes_before: u64, bodies: Vec<MessageBody>) -> Vec<u8> {
    let sizes = bodies.iter().map(|body| body.size_bytes() as u64).collect();
    let bodies = bodies.into_iter().map(body_to_record).collect();
    codec::encode(&pb::BatchRecord { publish_time_unix_micros: publish_time_us, bodies, bytes_before, sizes })
}

/// The messages of the batch stored at `first`; their data are slices of
/// `record`.
pub fn decode(partition: u32, first: u64, record: Bytes) -> Result<Vec<StoredMessage>, StorageError> {
    let batch: pb::BatchRecord = codec::decode("batch record", record).map_err(corrupt(partition, first))?;
    let publish_time_us = batch.publish_time_unix_micros;
    let messages = batch.bodies.into_iter().zip(first..).map(|(body, offset)| StoredMessage {
        partition,
        offset,
        publish_time_us,
        body: body_from_record(body),
    });
    Ok(messages.collect())
}

/// The error of a batch that does not decode; its context is formatted only
/// then, not for every batch read.
fn corrupt(partition: u32, first: u64) -> impl FnOnce(codec::CodecError) -> StorageError {
    move |source| StorageError::Corrupt { context: format!("batch at partition {partition} offset {first}"), source }
}

/// A cursor over one partition's stored batches, in offset order.
pub struct Batches<'a> {
    iter: DBRawIterator<'a>,
    topic_id: u64,
    partition: u32,
}

impl<'a> Batches<'a> {
    pub fn new(db: &'a DB, messages: &ColumnFamily, topic_id: u64, partition: u32) -> Self {
        let (start, end) = offset::partition_range(topic_id, partition);
        let mut options = ReadOptions::default();
        options.set_iterate_lower_bound(start.to_vec());
        options.set_iterate_upper_bound(end.to_vec());
        Batches { iter: db.raw_iterator_cf_opt(messages, options), topic_id, partition }
    }

    /// Moves to the batch holding `at`. If none does, to the last batch
    /// before `at` or, when there is none, the first after it.
    pub fn seek(&mut self, at: u64) {
        let key = offset::key(self.topic_id, self.partition, at);
        self.iter.seek_for_prev(key);
        if !self.iter.valid() {
            self.iter.seek(key);
        }
    }

    pub fn next(&mut self) {
        self.iter.next();
    }

    /// The current batch: its first offset and its record.
    pub fn current(&self) -> Result<Option<(u64, &[u8])>, StorageError> {
        let (Some(key), Some(record)) = (self.iter.key(), self.iter.value()) else {
            return self.iter.status().map(|()| None).map_err(StorageError::rocksdb("read messages"));
        };
        match offset::split(key) {
            Some((_, _, first)) => Ok(Some((first, record))),
            None => Err(StorageError::Invalid(format!("message key of {} bytes", key.len()))),
        }
    }

    /// The current batch without its bodies.
    pub fn current_extent(&self) -> Result<Option<BatchExtent>, StorageError> {
        match self.current()? {
            Some((first, record)) => BatchExtent::decode(self.partition, first, record).map(Some),
            None => Ok(None),
        }
    }
}

/// A stored batch's sizes, byte count and publish time.
#[derive(Debug)]
pub struct BatchExtent {
    first: u64,
    publish_time_us: i64,
    bytes_before: u64,
    sizes: Vec<u64>,
}

impl BatchExtent {
    fn decode(partition: u32, first: u64, record: &[u8]) -> Result<Self, StorageError> {
        let extent: pb::BatchExtentRecord =
            codec::decode_slice("batch record", record).map_err(corrupt(partition, first))?;
        let mut sizes = extent.sizes;
        if sizes.is_empty() {
            // Storage format 1: one message, its size not stored beside it.
            let batch: pb::BatchRecord =
                codec::decode_slice("batch record", record).map_err(corrupt(partition, first))?;
            sizes = batch.bodies.into_iter().map(|body| body_from_record(body).size_bytes() as u64).collect();
        }
        Ok(BatchExtent {
            first,
            publish_time_us: extent.publish_time_unix_micros,
            bytes_before: extent.bytes_before,
            sizes,
        })
    }

    pub fn holds(&self, at: u64) -> bool {
        at >= self.first && at - self.first < self.sizes.len() as u64
    }

    /// The size of the message at `at`, if this batch holds it.
    pub fn size(&self, at: u64) -> Option<u64> {
        self.sizes.get(usize::try_from(at.checked_sub(self.first)?).ok()?).copied()
    }

    /// Where the message at `at` sits, if this batch holds it.
    pub fn message(&self, at: u64) -> Option<MessageExtent> {
        let size = self.size(at)?;
        let earlier: u64 = self.sizes[..(at - self.first) as usize].iter().sum();
        Some(MessageExtent {
            bytes_before: self.bytes_before + earlier,
            size,
            publish_time_us: self.publish_time_us,
            batch_first: self.first,
        })
    }
}
