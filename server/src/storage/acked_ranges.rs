//! The `acks` column: acks above each floor, a record per [`AckedRange`].
//!
//! Key: subscription id, partition, the range's first offset
//! ([`offset::key`]). Value: the range's end and bytes, big-endian u64 each.
//! State format 2 stored an ack per offset, its value the acked message's
//! size (8 bytes, or none in format 1): a range of one.

use std::ops::Range;

use rocksdb::{ColumnFamily, ReadOptions, DB};

use super::keys::offset;
use super::StorageError;
use crate::domain::AckedRange;

/// The stored value of `range`.
pub fn encode(range: &AckedRange) -> [u8; 16] {
    let mut value = [0u8; 16];
    value[..8].copy_from_slice(&range.end.to_be_bytes());
    value[8..].copy_from_slice(&range.bytes.to_be_bytes());
    value
}

/// The range a record starting at `start` with `value` stands for.
pub fn decode(start: u64, value: &[u8]) -> Result<AckedRange, StorageError> {
    let word = |bytes: &[u8]| u64::from_be_bytes(bytes.try_into().expect("8 bytes"));
    let (end, bytes) = match value.len() {
        16 => (word(&value[..8]), word(&value[8..])),
        8 => (start + 1, word(value)),
        0 => (start + 1, 0),
        len => return Err(StorageError::Invalid(format!("acked range at offset {start}: value of {len} bytes"))),
    };
    if end <= start {
        return Err(StorageError::Invalid(format!("acked range at offset {start} ends at {end}")));
    }
    Ok(AckedRange { start, end, bytes })
}

/// The ranges of a (subscription, partition) holding an offset in
/// `offsets`, in offset order: one that starts in `floor..offsets.start` and
/// reaches into them, if any, then those starting among them.
///
/// `floor` (at most `offsets.start`) bounds the look back: below the ack
/// floor lie the deletes of every range it passed, and a backward seek walks
/// over each of them (it was 8% of a node's CPU looking back from the
/// partition's start).
pub fn read(
    db: &DB,
    acks: &ColumnFamily,
    owner: (u64, u32),
    floor: u64,
    offsets: Range<u64>,
) -> Result<Vec<AckedRange>, StorageError> {
    let mut ranges = Vec::new();
    for_each(db, acks, owner, floor, offsets, |range| ranges.push(range))?;
    Ok(ranges)
}

/// Calls `each` with every range [`read`] returns, without holding them.
pub fn for_each(
    db: &DB,
    acks: &ColumnFamily,
    (subscription_id, partition): (u64, u32),
    floor: u64,
    offsets: Range<u64>,
    mut each: impl FnMut(AckedRange),
) -> Result<(), StorageError> {
    if offsets.is_empty() {
        return Ok(());
    }
    let mut options = ReadOptions::default();
    options.set_iterate_lower_bound(offset::key(subscription_id, partition, floor).to_vec());
    options.set_iterate_upper_bound(offset::key(subscription_id, partition, offsets.end).to_vec());
    let mut iter = db.raw_iterator_cf_opt(acks, options);
    let first = offset::key(subscription_id, partition, offsets.start);
    if floor < offsets.start {
        iter.seek_for_prev(first);
        match iter.item() {
            Some((key, value)) => {
                let range = decode(offset_of(key)?, value)?;
                // One starting at `offsets.start` is the forward seek's.
                if range.start < offsets.start && range.end > offsets.start {
                    each(range);
                }
            }
            // Nothing there, or an error, which the forward seek would clear.
            None => iter.status().map_err(StorageError::rocksdb("read acks"))?,
        }
    }
    iter.seek(first);
    while let Some((key, value)) = iter.item() {
        each(decode(offset_of(key)?, value)?);
        iter.next();
    }
    iter.status().map_err(StorageError::rocksdb("read acks"))
}

fn offset_of(key: &[u8]) -> Result<u64, StorageError> {
    match offset::split(key) {
        Some((_, _, at)) => Ok(at),
        None => Err(StorageError::Invalid(format!("ack key of {} bytes", key.len()))),
    }
}
