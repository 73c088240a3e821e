//! The entries a group appended last, kept decoded beside the log.
//!
//! openraft reads every entry back soon after appending it: to apply it (on
//! every node) and to send it (on the leader, to each follower). Read from
//! RocksDB, each was copied out of the memtable and decoded again, a batch of
//! a thousand bodies at a time: 8 % of a node's CPU publishing on one node.
//! A kept entry is cloned instead, which shares its bodies' buffers.
//!
//! Bounded by [`RECENT_BYTES_MAX`] of records and [`RECENT_ENTRIES_MAX`]
//! entries per group; the oldest go first. A read the kept entries do not
//! wholly cover (a follower far behind, a range reaching past the last kept)
//! goes to RocksDB, which holds every entry kept here too.

use std::collections::VecDeque;

use crate::raft::type_config::Entry;

/// Bytes of encoded records kept per group: about 200 ms of appends to one
/// of four groups at 500,000 msgs/s of 128 B, while an entry is applied within
/// a few milliseconds of its append.
pub const RECENT_BYTES_MAX: u64 = 4 * 1024 * 1024;
/// Entries kept per group, whatever their size: an entry costs memory
/// beyond its record.
pub const RECENT_ENTRIES_MAX: usize = 4096;

/// Consecutive entries, the last ones appended, with their records' sizes.
#[derive(Debug, Default)]
pub struct Recent {
    entries: VecDeque<(Entry, u64)>,
    bytes: u64,
}

impl Recent {
    /// Keeps `entry`, whose record is `bytes` long. An entry that does not
    /// follow the last kept one starts the kept run over: they stay
    /// consecutive, so a range is either wholly kept or read from RocksDB.
    pub fn appended(&mut self, entry: Entry, bytes: u64) {
        if self.next_index() != Some(entry.log_id.index) {
            self.entries.clear();
            self.bytes = 0;
        }
        self.bytes += bytes;
        self.entries.push_back((entry, bytes));
        while self.bytes > RECENT_BYTES_MAX || self.entries.len() > RECENT_ENTRIES_MAX {
            let Some((_, dropped)) = self.entries.pop_front() else { break };
            self.bytes -= dropped;
        }
    }

    /// Forgets the entries from `index` on, as a truncation removes them.
    pub fn truncated(&mut self, index: u64) {
        while self.entries.back().is_some_and(|(entry, _)| entry.log_id.index >= index) {
            if let Some((_, dropped)) = self.entries.pop_back() {
                self.bytes -= dropped;
            }
        }
    }

    /// Forgets the entries up to and including `index`, as a purge removes them.
    pub fn purged(&mut self, index: u64) {
        while self.entries.front().is_some_and(|(entry, _)| entry.log_id.index <= index) {
            if let Some((_, dropped)) = self.entries.pop_front() {
                self.bytes -= dropped;
            }
        }
    }

    /// Entries `start..end`, if every one of them is kept.
    pub fn get(&self, start: u64, end: u64) -> Option<Vec<Entry>> {
        if start >= end {
            return Some(Vec::new());
        }
        let first = self.entries.front()?.0.log_id.index;
        let next = self.next_index()?;
        if start < first || end > next {
            return None;
        }
        let skip = usize::try_from(start - first).ok()?;
        let take = usize::try_from(end - start).ok()?;
        Some(self.entries.iter().skip(skip).take(take).map(|(entry, _)| entry.clone()).collect())
    }

    fn next_index(&self) -> Option<u64> {
        self.entries.back().map(|(entry, _)| entry.log_id.index + 1)
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload, LogId};

    use super::*;

    fn entry(term: u64, index: u64) -> Entry {
        Entry { log_id: LogId::new(CommittedLeaderId::new(term, 1), index), payload: EntryPayload::Blank }
    }

    fn kept(recent: &Recent, start: u64, end: u64) -> Option<Vec<(u64, u64)>> {
        let entries = recent.get(start, end)?;
        Some(entries.iter().map(|entry| (entry.log_id.index, entry.log_id.leader_id.term)).collect())
    }

    #[test]
    fn a_range_is_served_only_when_every_entry_of_it_is_kept() {
        let mut recent = Recent::default();
        for index in 5..=9 {
            recent.appended(entry(1, index), 10);
        }
        assert_eq!(kept(&recent, 5, 10), Some(vec![(5, 1), (6, 1), (7, 1), (8, 1), (9, 1)]));
        assert_eq!(kept(&recent, 7, 9), Some(vec![(7, 1), (8, 1)]));
        assert_eq!(kept(&recent, 4, 6), None, "4 was never kept");
        assert_eq!(kept(&recent, 9, 11), None, "10 is not appended yet");
        assert_eq!(kept(&recent, 8, 8), Some(vec![]));
    }

    #[test]
    fn truncated_entries_are_never_served_and_what_follows_replaces_them() {
        let mut recent = Recent::default();
        for index in 1..=5 {
            recent.appended(entry(1, index), 10);
        }
        recent.truncated(4);
        assert_eq!(kept(&recent, 4, 5), None);
        recent.appended(entry(2, 4), 10);
        assert_eq!(kept(&recent, 3, 5), Some(vec![(3, 1), (4, 2)]));
        assert_eq!(kept(&recent, 5, 6), None, "the old 5 is gone with the truncation");
    }

    #[test]
    fn an_entry_not_following_the_last_starts_the_run_over() {
        let mut recent = Recent::default();
        recent.appended(entry(1, 1), 10);
        recent.appended(entry(1, 2), 10);
        recent.appended(entry(2, 7), 10);
        assert_eq!(kept(&recent, 1, 3), None);
        assert_eq!(kept(&recent, 7, 8), Some(vec![(7, 2)]));
    }

    #[test]
    fn the_oldest_entries_go_past_either_bound() {
        let mut recent = Recent::default();
        let big = RECENT_BYTES_MAX / 4;
        for index in 1..=6 {
            recent.appended(entry(1, index), big);
        }
        assert_eq!(recent.bytes, 4 * big);
        assert_eq!(kept(&recent, 2, 3), None);
        assert!(kept(&recent, 3, 7).is_some());

        let mut recent = Recent::default();
        let count = RECENT_ENTRIES_MAX as u64 + 10;
        for index in 1..=count {
            recent.appended(entry(1, index), 1);
        }
        assert_eq!(recent.entries.len(), RECENT_ENTRIES_MAX);
        assert_eq!(kept(&recent, 10, 11), None);
        assert!(kept(&recent, 11, count + 1).is_some());
        recent.purged(count - 1);
        assert_eq!(kept(&recent, count - 1, count + 1), None);
        assert_eq!(kept(&recent, count, count + 1), Some(vec![(count, 1)]));
        assert_eq!(recent.bytes, 1);
    }
}
