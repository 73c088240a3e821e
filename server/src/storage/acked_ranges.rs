//! The `acks` column: acks above each floor, a record per [`AckedRange`].
//!
//! Key: subscription id, partition, the range's first offset
//! ([`offset::key`]). Value: the range's end and bytes, big-endian u64 each.
//! State format 2 stored an ack per offset, its value the acked message's
//! size (8 bytes, or none in format 1): a range of one.

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

/// The ranges of one subscription's partition holding an offset in
/// `from..to`, in offset order: the one that starts before `from` and
/// reaches into it, if any, then those starting in `from..to`.
pub fn read(
    db: &DB,
    acks: &ColumnFamily,
    subscription_id: u64,
    partition: u32,
    from: u64,
    to: u64,
) -> Result<Vec<AckedRange>, StorageError> {
    let mut ranges = Vec::new();
    if from >= to {
        return Ok(ranges);
    }
    let (start, _) = offset::partition_range(subscription_id, partition);
    let mut options = ReadOptions::default();
    options.set_iterate_lower_bound(start.to_vec());
    options.set_iterate_upper_bound(offset::key(subscription_id, partition, to).to_vec());
    let mut iter = db.raw_iterator_cf_opt(acks, options);
    let first = offset::key(subscription_id, partition, from);
    iter.seek_for_prev(first);
    match iter.item() {
        Some((key, value)) => {
            let range = decode(offset_of(key)?, value)?;
            if range.end > from {
                ranges.push(range);
            }
            iter.next();
        }
        None => iter.seek(first),
    }
    while let Some((key, value)) = iter.item() {
        ranges.push(decode(offset_of(key)?, value)?);
        iter.next();
    }
    iter.status().map_err(StorageError::rocksdb("read acks"))?;
    Ok(ranges)
}

fn offset_of(key: &[u8]) -> Result<u64, StorageError> {
    match offset::split(key) {
        Some((_, _, at)) => Ok(at),
        None => Err(StorageError::Invalid(format!("ack key of {} bytes", key.len()))),
    }
}
