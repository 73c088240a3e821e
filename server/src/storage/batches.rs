//! The `messages` column family: each publish batch is one `BatchRecord`
//! under the key of its first offset. One record per batch rather than per
//! message makes a publish one write-batch entry and a read of a thousand
//! messages a couple of iterator steps.
//!
//! [`Batches`] walks one partition's batches; [`BatchExtent`] is a batch read
//! without its bodies, for sizes, byte counts and publish times.

use bytes::Bytes;
use ferry_proto::internal as pb;
// prost's wire-format helpers, which its generated code calls too (hidden
// from its docs, so a minor version could move them; the lock file pins it).
use prost::encoding::{self, DecodeContext, WireType};
use prost::Message;
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

/// The messages of the batch stored at `first`, from offset `from` on and
/// at most `count_max` of them.
///
/// Only their bodies are copied out of `record`, into one buffer their data
/// are slices of, and only they are decoded. Why: a lease call often wants a
/// few hundred messages of a thousand-message batch, and each call decoded
/// and copied the whole batch; and a message on its way to a consumer holds
/// its buffer, so a buffer of the whole batch (up to 16 MiB) would stay for
/// as long as the message waits in a stream's queues.
pub fn decode(
    partition: u32,
    first: u64,
    record: &[u8],
    from: u64,
    count_max: usize,
) -> Result<Vec<StoredMessage>, StorageError> {
    let decode_error = |source| corrupt(partition, first)(codec::CodecError::Decode { what: "batch record", source });
    let skip = from.saturating_sub(first);
    let record = codec::unframe("batch record", record).map_err(corrupt(partition, first))?;
    let wanted = Wanted::find(record, skip, count_max).map_err(decode_error)?;
    let mut bodies = Bytes::copy_from_slice(wanted.span);
    let mut messages = Vec::with_capacity(wanted.count);
    let mut offset = first + skip;
    while !bodies.is_empty() {
        let (tag, wire_type) = encoding::decode_key(&mut bodies).map_err(decode_error)?;
        if tag != BODIES_FIELD || wire_type != WireType::LengthDelimited {
            encoding::skip_field(wire_type, tag, &mut bodies, DecodeContext::default()).map_err(decode_error)?;
            continue;
        }
        let body = pb::MessageBody::decode_length_delimited(&mut bodies).map_err(decode_error)?;
        messages.push(StoredMessage {
            partition,
            offset,
            publish_time_us: wanted.publish_time_us,
            body: body_from_record(body),
        });
        offset += 1;
    }
    Ok(messages)
}

/// `BatchRecord`'s field numbers, as `storage.proto` has them.
const PUBLISH_TIME_FIELD: u32 = 1;
const BODIES_FIELD: u32 = 2;

/// Where a read's bodies sit in an encoded `BatchRecord`, found without
/// decoding any body.
struct Wanted<'a> {
    /// From the key of the first body wanted to the end of the last.
    span: &'a [u8],
    count: usize,
    publish_time_us: i64,
}

impl<'a> Wanted<'a> {
    /// The `count_max` bodies after the first `skip`.
    fn find(record: &'a [u8], skip: u64, count_max: usize) -> Result<Self, prost::DecodeError> {
        let mut rest = record;
        let (mut start, mut end) = (0, 0);
        let (mut index, mut count) = (0u64, 0usize);
        let mut publish_time_us = None;
        // prost writes fields in number order, so the publish time comes
        // first and the walk stops after the last body wanted. A record
        // written otherwise, or with a zero publish time (which proto3
        // leaves out), is walked until the time is found or to its end:
        // skipping a body costs a length read.
        while !rest.is_empty() && (count < count_max || publish_time_us.is_none()) {
            let at = record.len() - rest.len();
            let (tag, wire_type) = encoding::decode_key(&mut rest)?;
            if tag == PUBLISH_TIME_FIELD && wire_type == WireType::Varint {
                publish_time_us = Some(encoding::decode_varint(&mut rest)? as i64);
                continue;
            }
            encoding::skip_field(wire_type, tag, &mut rest, DecodeContext::default())?;
            let is_body = tag == BODIES_FIELD && wire_type == WireType::LengthDelimited;
            if is_body && index >= skip && count < count_max {
                if count == 0 {
                    start = at;
                }
                end = record.len() - rest.len();
                count += 1;
            }
            index += u64::from(is_body);
        }
        // proto3 leaves a zero publish time out.
        Ok(Wanted { span: &record[start..end], count, publish_time_us: publish_time_us.unwrap_or(0) })
    }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn body(index: usize, size: usize) -> MessageBody {
        let attributes: BTreeMap<String, String> =
            if index.is_multiple_of(3) { [("k".to_owned(), format!("v{index}"))].into() } else { BTreeMap::new() };
        MessageBody {
            data: Bytes::from(vec![index as u8; size]),
            attributes,
            ordering_key: if index.is_multiple_of(2) { String::new() } else { format!("key-{index}") },
            event_id: format!("event-{index}"),
        }
    }

    proptest! {
        #[test]
        fn a_read_decodes_and_copies_just_the_messages_it_wants(
            sizes in proptest::collection::vec(0usize..300, 0..40),
            first in 0u64..1_000,
            skip in 0u64..50,
            count_max in 0usize..50,
            publish_time_us in prop_oneof![Just(0i64), any::<i64>()],
        ) {
            let bodies: Vec<MessageBody> = sizes.iter().enumerate().map(|(i, &size)| body(i, size)).collect();
            let record = encode(publish_time_us, 7, bodies.clone());
            let messages = decode(3, first, &record, first + skip, count_max).expect("decodes");

            let wanted: Vec<MessageBody> = bodies.into_iter().skip(skip as usize).take(count_max).collect();
            let expected: Vec<StoredMessage> = wanted
                .iter()
                .zip(first + skip..)
                .map(|(body, offset)| StoredMessage { partition: 3, offset, publish_time_us, body: body.clone() })
                .collect();
            prop_assert_eq!(&messages, &expected);

            // The buffer copied holds the wanted bodies' fields and nothing else.
            let span = Wanted::find(&record[1..], skip, count_max).expect("walks").span;
            let fields: usize = wanted
                .into_iter()
                .map(|body| body_to_record(body).encoded_len())
                .map(|len| 1 + encoding::encoded_len_varint(len as u64) + len)
                .sum();
            prop_assert_eq!(span.len(), fields);
        }
    }

    #[test]
    fn a_mangled_record_is_reported_corrupt() {
        let record = encode(5, 0, vec![body(0, 10), body(1, 10)]);
        // Into the second body (the sizes' field is the last 4 bytes).
        let cut = &record[..record.len() - 8];
        assert!(matches!(decode(0, 0, cut, 0, 10), Err(StorageError::Corrupt { .. })));
    }
}
