//! How many bytes the Raft log holds, and where: the figures that let the log
//! be snapshotted and purged by size rather than by entry count.
//!
//! An entry may hold one message or a thousand, so a count says little about
//! the bytes behind it. The log keeps its recent entries in a RocksDB
//! memtable; purged before the memtable is flushed, they are written to disk
//! once (the WAL) instead of three times (WAL, table, compaction). Purging by
//! size is what keeps them there.

use std::collections::VecDeque;

use parking_lot::Mutex;

/// A new mark is started once the last one covers this many bytes, so purge
/// points are at most this coarse and marks cost nothing per entry.
const MARK_BYTES: u64 = 1024 * 1024;
/// Marks kept at most; past it the last mark grows instead (coarser purge
/// points, never unbounded memory, whatever the log's size).
const MARKS_MAX: usize = 16 * 1024;

/// The log's size at its last index so far, coarsely: one mark per
/// [`MARK_BYTES`] of appends. Shared by the log store (which records) and
/// the purge task (which plans).
#[derive(Debug, Default)]
pub struct LogSizes {
    inner: Mutex<Marks>,
}

#[derive(Debug, Default)]
struct Marks {
    /// Bytes appended before the oldest mark still held (purged or unknown).
    base: u64,
    /// (last index covered, bytes appended up to and including it), both ascending.
    marks: VecDeque<(u64, u64)>,
}

impl Marks {
    fn end(&self) -> u64 {
        self.marks.back().map_or(self.base, |&(_, end)| end)
    }

    /// Bytes appended up to and including `index`, as far as marks tell:
    /// those of the last mark at or before it.
    fn at(&self, index: u64) -> u64 {
        let after = self.marks.partition_point(|&(last, _)| last <= index);
        after.checked_sub(1).map_or(self.base, |i| self.marks[i].1)
    }
}

impl LogSizes {
    /// Records entries up to `last_index` appended, `bytes` of them.
    pub fn appended(&self, last_index: u64, bytes: u64) {
        let mut inner = self.inner.lock();
        let end = inner.end() + bytes;
        let previous = inner.marks.len().checked_sub(2).map_or(inner.base, |i| inner.marks[i].1);
        let full = inner.marks.len() >= MARKS_MAX;
        match inner.marks.back_mut() {
            Some(last) if end - previous <= MARK_BYTES || full => *last = (last_index, end),
            _ => inner.marks.push_back((last_index, end)),
        }
    }

    /// Records entries from `index` on removed (a follower's conflicting
    /// tail). Bytes of a mark cut in two stay counted, a small overcount.
    pub fn truncated(&self, index: u64) {
        let mut inner = self.inner.lock();
        while inner.marks.back().is_some_and(|&(last, _)| last >= index) {
            inner.marks.pop_back();
        }
    }

    /// Records entries up to and including `index` purged.
    pub fn purged(&self, index: u64) {
        let mut inner = self.inner.lock();
        while let Some(&(last, end)) = inner.marks.front() {
            if last > index {
                break;
            }
            inner.base = end;
            inner.marks.pop_front();
        }
    }

    /// Bytes appended after `index`.
    pub fn bytes_after(&self, index: u64) -> u64 {
        let inner = self.inner.lock();
        inner.end() - inner.at(index)
    }

    /// The lowest index up to which the log can be purged while keeping at
    /// most `kept` bytes of it before `upto` (and everything after): a mark's
    /// last index, or `upto` itself when nothing before it has to be kept.
    pub fn purge_point(&self, upto: u64, kept: u64) -> Option<u64> {
        let inner = self.inner.lock();
        let at_upto = inner.at(upto);
        if at_upto - inner.base <= kept {
            // Everything held before `upto` fits: nothing to purge by size.
            return None;
        }
        let first = inner.marks.partition_point(|&(last, end)| last < upto && at_upto - end > kept);
        inner.marks.get(first).map(|&(last, _)| last.min(upto))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn small_appends_share_a_mark_and_large_ones_start_new_marks() {
        let sizes = LogSizes::default();
        for index in 1..=100 {
            sizes.appended(index, 1024);
        }
        assert_eq!(sizes.inner.lock().marks.len(), 1);
        sizes.appended(101, 2 * MIB);
        sizes.appended(102, 2 * MIB);
        assert_eq!(sizes.inner.lock().marks.len(), 3);
        assert_eq!(sizes.bytes_after(0), 100 * 1024 + 4 * MIB);
        assert_eq!(sizes.bytes_after(101), 2 * MIB);
        assert_eq!(sizes.bytes_after(102), 0);
    }

    #[test]
    fn purge_point_keeps_at_most_the_bytes_asked_for_before_the_snapshot() {
        let sizes = LogSizes::default();
        for index in 1..=100 {
            sizes.appended(index, 2 * MIB);
        }
        // 8 MiB kept before index 80: entries 77..=80, so purge up to 76.
        assert_eq!(sizes.purge_point(80, 8 * MIB), Some(76));
        // Keeping nothing purges up to the snapshot itself.
        assert_eq!(sizes.purge_point(80, 0), Some(80));
        // Everything fits: no purge by size.
        assert_eq!(sizes.purge_point(3, 8 * MIB), None);
        sizes.purged(76);
        assert_eq!(sizes.purge_point(80, 8 * MIB), None);
        assert_eq!(sizes.bytes_after(80), 40 * MIB);
    }

    #[test]
    fn truncation_forgets_the_tail_and_purging_the_head() {
        let sizes = LogSizes::default();
        for index in 1..=10 {
            sizes.appended(index, 2 * MIB);
        }
        sizes.truncated(8);
        assert_eq!(sizes.bytes_after(0), 14 * MIB);
        sizes.appended(8, 2 * MIB);
        sizes.purged(5);
        assert_eq!(sizes.bytes_after(5), 6 * MIB);
        assert_eq!(sizes.bytes_after(0), 6 * MIB, "purged bytes are gone");
    }

    #[test]
    fn marks_stay_bounded_whatever_the_log_holds() {
        let sizes = LogSizes::default();
        for index in 1..=(MARKS_MAX as u64 + 1000) {
            sizes.appended(index, 2 * MIB);
        }
        assert_eq!(sizes.inner.lock().marks.len(), MARKS_MAX);
        assert_eq!(sizes.bytes_after(0), (MARKS_MAX as u64 + 1000) * 2 * MIB);
    }
}
