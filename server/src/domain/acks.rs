//! Acks above the floor: how they are stored, and how the floor climbs.
//!
//! A subscription's partition has a floor (every offset below it is acked)
//! and, above it, the offsets acked out of order. Those are stored as
//! [`AckedRange`]s, a record per run of consecutive offsets acked together,
//! not a record per offset: consumers sharing a partition take turns on
//! chunks of it, so most of their acks land above the floor, and an ack
//! request of a thousand offsets is nearly always one run. A record per
//! offset made applying such acks a fifth of a node's CPU (a put each, a
//! read each when the floor reached it, then a delete each).
//!
//! Invariants: stored ranges are non-empty, disjoint, and lie at or
//! above the floor (the floor never stops inside one: it climbs over a range
//! whole). Neighbouring ranges are not merged; that would cost a read and a
//! delete per ack for little.

use std::collections::{BTreeSet, VecDeque};

use super::apply::StateRead;
use super::catalog::{AckState, SubscriptionState};
use super::outcome::Write;

/// Offsets `start..end` acked above the floor, stored as one record with the
/// bytes of the messages they ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckedRange {
    pub start: u64,
    pub end: u64,
    pub bytes: u64,
}

impl AckedRange {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// What some stored ranges add up to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AckedTotal {
    pub offsets: u64,
    pub bytes: u64,
    /// The end of the last of them (0 for none).
    pub end: u64,
}

impl AckedTotal {
    pub fn add(&mut self, range: &AckedRange) {
        self.offsets += range.len();
        self.bytes += range.bytes;
        self.end = self.end.max(range.end);
    }
}

/// Offsets further apart than this are looked up in separate ranges, so a
/// batch acking two distant offsets does not scan everything between them.
const READ_GAP_MAX: u64 = 64;
/// Offsets above the floor whose stored ranges are read at a time while the
/// floor climbs over them.
const FLOOR_CHUNK: u64 = 1024;
/// Stored ranges a climbing floor deletes one by one, at most; past this it
/// deletes them all as one range of keys. Every ack commit moves a floor, and
/// a range tombstone costs every later iterator over the acks column (RocksDB
/// fragments all of the memtable's range tombstones when one is created), so
/// the common case must not write one; a floor jumping over thousands of
/// stored ranges is rare, and one tombstone beats thousands of deletes there.
const POINT_DELETES_MAX: usize = 1024;

/// Records acks of `offsets` in one partition and advances the floor over
/// every contiguous ack. Returns how many offsets became acked.
pub(super) fn ack_partition<R: StateRead>(
    subscription: &SubscriptionState,
    partition: u32,
    ack: &mut AckState,
    end: u64,
    offsets: impl IntoIterator<Item = u64>,
    reads: &R,
    writes: &mut Vec<Write>,
) -> Result<u64, R::Error> {
    let (id, topic_id) = (subscription.id, subscription.topic_id);
    // Offsets below the floor are acked already; at or past the end they were
    // never published. Neither changes anything.
    let mut fresh: BTreeSet<u64> = offsets.into_iter().filter(|offset| (ack.floor..end).contains(offset)).collect();
    if ack.acked_above > 0 {
        let wanted: Vec<u64> = fresh.iter().copied().collect();
        for (from, to) in read_ranges(&wanted) {
            for range in reads.stored_acks(id, partition, ack.floor, from, to)? {
                remove_range(&mut fresh, range.start, range.end);
            }
        }
    }
    let count = fresh.len() as u64;
    let old = ack.clone();
    let passed = advance_floor(id, partition, ack, end, &mut fresh, reads)?;
    // What the floor did not reach is stored, with its size so the backlog's
    // bytes stay exact. In-order acks rarely get here.
    let above: Vec<u64> = fresh.into_iter().collect();
    let sizes = if above.is_empty() { Vec::new() } else { reads.message_sizes(topic_id, partition, &above)? };
    for range in consecutive(&above, &sizes) {
        ack.acked_above += range.len();
        ack.acked_above_bytes += range.bytes;
        writes.push(Write::PutAckedRange { subscription_id: id, partition, range });
    }
    delete_passed(id, partition, passed, (old.floor, ack.floor), writes);
    if *ack != old {
        writes.push(Write::PutAckState { subscription_id: id, partition, state: ack.clone() });
    }
    Ok(count)
}

/// Moves a floor up to `start` (a trim deleted the messages below it), and on
/// over whatever is acked from there.
pub(super) fn raise_floor<R: StateRead>(
    subscription_id: u64,
    partition: u32,
    ack: &mut AckState,
    start: u64,
    end: u64,
    reads: &R,
    writes: &mut Vec<Write>,
) -> Result<(), R::Error> {
    if ack.floor >= start {
        return Ok(());
    }
    // Summed as they are read: a floor stuck below a backlog acked out of
    // order may have as many ranges above it as acks.
    let below = if ack.acked_above == 0 {
        AckedTotal::default()
    } else {
        reads.stored_acks_total(subscription_id, partition, ack.floor, start)?
    };
    if below.offsets > 0 {
        writes.push(Write::DeleteAckedRanges { subscription_id, partition, from: ack.floor, to: start });
    }
    // A range reaching past `start` goes whole: the floor climbs over the
    // rest of it anyway.
    ack.floor = start.max(below.end);
    ack.acked_above -= below.offsets;
    ack.acked_above_bytes -= below.bytes;
    let from = ack.floor;
    let passed = advance_floor(subscription_id, partition, ack, end, &mut BTreeSet::new(), reads)?;
    delete_passed(subscription_id, partition, passed, (from, ack.floor), writes);
    writes.push(Write::PutAckState { subscription_id, partition, state: ack.clone() });
    Ok(())
}

/// Whether `offset` is acked, below the floor or above it.
pub(super) fn is_acked<R: StateRead>(
    subscription_id: u64,
    partition: u32,
    ack: &AckState,
    offset: u64,
    reads: &R,
) -> Result<bool, R::Error> {
    Ok(offset < ack.floor
        || (ack.acked_above > 0
            && !reads.stored_acks(subscription_id, partition, ack.floor, offset, offset.saturating_add(1))?.is_empty()))
}

/// Deletes the stored ranges a floor climbed over (`passed`, their starts,
/// all in `climbed`): one by one, or all at once when there are many.
fn delete_passed(subscription_id: u64, partition: u32, passed: Vec<u64>, climbed: (u64, u64), writes: &mut Vec<Write>) {
    if passed.len() > POINT_DELETES_MAX {
        writes.push(Write::DeleteAckedRanges { subscription_id, partition, from: climbed.0, to: climbed.1 });
    } else {
        writes.extend(passed.into_iter().map(|start| Write::DeleteAckedRange { subscription_id, partition, start }));
    }
}

/// Splits ascending offsets into half-open ranges to read stored acks in,
/// starting a new one where the gap exceeds [`READ_GAP_MAX`].
fn read_ranges(offsets: &[u64]) -> Vec<(u64, u64)> {
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for &offset in offsets {
        match ranges.last_mut() {
            Some((_, to)) if offset < *to + READ_GAP_MAX => *to = offset + 1,
            _ => ranges.push((offset, offset + 1)),
        }
    }
    ranges
}

/// Ascending offsets, with each one's message size, as ranges of
/// consecutive offsets.
fn consecutive(offsets: &[u64], sizes: &[u64]) -> Vec<AckedRange> {
    let mut ranges: Vec<AckedRange> = Vec::new();
    for (&offset, &size) in offsets.iter().zip(sizes) {
        match ranges.last_mut() {
            Some(range) if range.end == offset => {
                range.end += 1;
                range.bytes += size;
            }
            _ => ranges.push(AckedRange { start: offset, end: offset + 1, bytes: size }),
        }
    }
    ranges
}

/// Takes `start..end` out of `set`.
fn remove_range(set: &mut BTreeSet<u64>, start: u64, end: u64) {
    let mut from_start = set.split_off(&start);
    let mut from_end = from_start.split_off(&end);
    set.append(&mut from_end);
}

/// Moves the floor up over offsets acked now (`fresh`, consumed) or before
/// (stored ranges, uncounted from `acked_above`); returns the starts of the
/// stored ranges it passed, which are no longer needed.
fn advance_floor<R: StateRead>(
    subscription_id: u64,
    partition: u32,
    ack: &mut AckState,
    end: u64,
    fresh: &mut BTreeSet<u64>,
    reads: &R,
) -> Result<Vec<u64>, R::Error> {
    let mut passed = Vec::new();
    // Stored ranges from `ack.floor` on, read a chunk at a time up to `read_to`.
    let mut stored = VecDeque::new();
    let mut read_to = ack.floor;
    while ack.floor < end {
        if fresh.remove(&ack.floor) {
            ack.floor += 1;
            continue;
        }
        if ack.acked_above == 0 {
            break;
        }
        if ack.floor >= read_to {
            read_to = ack.floor.saturating_add(FLOOR_CHUNK).min(end);
            stored = reads.stored_acks(subscription_id, partition, ack.floor, ack.floor, read_to)?.into();
        }
        while stored.front().is_some_and(|range: &AckedRange| range.start < ack.floor) {
            stored.pop_front();
        }
        match stored.pop_front() {
            Some(range) if range.start == ack.floor => {
                passed.push(range.start);
                ack.acked_above -= range.len();
                ack.acked_above_bytes -= range.bytes;
                ack.floor = range.end;
            }
            _ => break,
        }
    }
    Ok(passed)
}
