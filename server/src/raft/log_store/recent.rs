//! The entries a group appended last, kept decoded beside the log.
//!
//! openraft reads every entry back soon after appending it: to apply it (on
//! every node) and to send it (on the leader, to each follower). Read from
//! RocksDB, each was copied out of the memtable and decoded again, a batch of
//! a thousand bodies at a time: 8.1 % of a node's CPU publishing on one
//! node, against 0.9 % for reading kept entries and 1.6 % for keeping them.
//! A kept entry is cloned instead: its bodies' data are shared, the rest
//! (attributes, keys, event ids) copied.
//!
//! Bounded by [`RECENT_BYTES_MAX`] and [`RECENT_ENTRIES_MAX`] per group; the
//! oldest go first. What an entry holds is its own: its bodies' data are
//! copied out of the request they arrived in ([`Kept::new`]). A read the
//! kept entries do not wholly cover (a follower far behind, a range reaching
//! past the last kept) goes to RocksDB, which holds every entry kept here
//! too.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use openraft::EntryPayload;

use crate::domain::{Command, MessageBody};
use crate::raft::type_config::Entry;

/// Bytes kept per group, counted as the entries' records plus
/// [`BODY_OVERHEAD_BYTES`] a message: about 100 ms of appends to one of four
/// groups at 500,000 msgs/s of 128 B, while an entry is applied within a few
/// milliseconds of its append.
pub const RECENT_BYTES_MAX: u64 = 4 * 1024 * 1024;
/// Entries kept per group, whatever their size.
pub const RECENT_ENTRIES_MAX: usize = 4096;
/// What a decoded message holds beside its data and strings.
const BODY_OVERHEAD_BYTES: u64 = std::mem::size_of::<MessageBody>() as u64;

/// An entry as kept, with the bytes it counts for.
#[derive(Debug)]
pub struct Kept {
    entry: Entry,
    bytes: u64,
}

impl Kept {
    /// The entries of one append worth keeping (each given with its
    /// record's length), made [`Kept`]: only those the bounds leave, so an
    /// append larger than them (an AppendEntries of 20 MiB) copies its tail
    /// alone, not entries that would be dropped at once.
    pub fn tail_of(mut written: Vec<(u64, Entry)>) -> Vec<Self> {
        let (mut bytes, mut keepable) = (0, 0);
        for (record_bytes, entry) in written.iter_mut().rev() {
            bytes += counted(*record_bytes, bodies(entry).len());
            if bytes > RECENT_BYTES_MAX || keepable == RECENT_ENTRIES_MAX {
                break;
            }
            keepable += 1;
        }
        let dropped = written.len() - keepable;
        written.into_iter().skip(dropped).map(|(record_bytes, entry)| Self::new(entry, record_bytes)).collect()
    }

    /// Keeps `entry`, whose record is `record_bytes` long. Its bodies' data
    /// are copied into one buffer of its own: as appended, each is a slice
    /// of the request it arrived in (on a follower, an AppendEntries of up
    /// to 20 MiB), which would stay in memory while any entry of it is kept.
    fn new(mut entry: Entry, record_bytes: u64) -> Self {
        let bodies = bodies(&mut entry);
        let bytes = counted(record_bytes, bodies.len());
        let mut buffer = BytesMut::with_capacity(bodies.iter().map(|body| body.data.len()).sum());
        for body in bodies.iter() {
            buffer.extend_from_slice(&body.data);
        }
        let mut buffer: Bytes = buffer.freeze();
        for body in bodies.iter_mut() {
            body.data = buffer.split_to(body.data.len());
        }
        Self { entry, bytes }
    }
}

/// The message bodies an entry carries.
fn bodies(entry: &mut Entry) -> &mut [MessageBody] {
    match &mut entry.payload {
        EntryPayload::Normal(Command::Publish(batch)) => &mut batch.messages,
        EntryPayload::Normal(Command::DeadLetter(dead)) => std::slice::from_mut(&mut dead.message),
        _ => &mut [],
    }
}

/// The bytes an entry counts for against [`RECENT_BYTES_MAX`].
fn counted(record_bytes: u64, bodies: usize) -> u64 {
    record_bytes + BODY_OVERHEAD_BYTES * bodies as u64
}

/// Consecutive entries, the last ones appended.
#[derive(Debug, Default)]
pub struct Recent {
    entries: VecDeque<Kept>,
    bytes: u64,
}

impl Recent {
    /// Keeps `kept`. An entry that does not follow the last kept one starts
    /// the kept run over: they stay consecutive, so a range is either wholly
    /// kept or read from RocksDB.
    pub fn appended(&mut self, kept: Kept) {
        if self.next_index() != Some(kept.entry.log_id.index) {
            self.entries.clear();
            self.bytes = 0;
        }
        self.bytes += kept.bytes;
        self.entries.push_back(kept);
        while self.bytes > RECENT_BYTES_MAX || self.entries.len() > RECENT_ENTRIES_MAX {
            let Some(dropped) = self.entries.pop_front() else { break };
            self.bytes -= dropped.bytes;
        }
    }

    /// Forgets the entries from `index` on, as a truncation removes them.
    pub fn truncated(&mut self, index: u64) {
        while self.entries.back().is_some_and(|kept| kept.entry.log_id.index >= index) {
            if let Some(dropped) = self.entries.pop_back() {
                self.bytes -= dropped.bytes;
            }
        }
    }

    /// Forgets the entries up to and including `index`, as a purge removes them.
    pub fn purged(&mut self, index: u64) {
        while self.entries.front().is_some_and(|kept| kept.entry.log_id.index <= index) {
            if let Some(dropped) = self.entries.pop_front() {
                self.bytes -= dropped.bytes;
            }
        }
    }

    /// Entries `start..end`, if every one of them is kept.
    pub fn get(&self, start: u64, end: u64) -> Option<Vec<Entry>> {
        if start >= end {
            return Some(Vec::new());
        }
        let first = self.entries.front()?.entry.log_id.index;
        let next = self.next_index()?;
        if start < first || end > next {
            return None;
        }
        let from = usize::try_from(start - first).ok()?;
        let to = usize::try_from(end - first).ok()?;
        Some(self.entries.range(from..to).map(|kept| kept.entry.clone()).collect())
    }

    fn next_index(&self) -> Option<u64> {
        self.entries.back().map(|kept| kept.entry.log_id.index + 1)
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, LogId};

    use super::*;
    use crate::domain::PublishBatch;

    fn entry(term: u64, index: u64) -> Entry {
        Entry { log_id: LogId::new(CommittedLeaderId::new(term, 1), index), payload: EntryPayload::Blank }
    }

    fn kept(recent: &Recent, start: u64, end: u64) -> Option<Vec<(u64, u64)>> {
        let entries = recent.get(start, end)?;
        Some(entries.iter().map(|entry| (entry.log_id.index, entry.log_id.leader_id.term)).collect())
    }

    #[test]
    fn a_kept_publish_holds_its_bodies_in_a_buffer_of_its_own_and_counts_them() {
        // As a request arrives: every body a slice of one large buffer.
        let request = Bytes::from(vec![7u8; 1 << 20]);
        let messages: Vec<MessageBody> =
            (0..3).map(|i| MessageBody { data: request.slice(i * 100..i * 100 + 10), ..Default::default() }).collect();
        let batch = PublishBatch { topic_id: 1, partition: 0, publish_time_us: 5, messages, producer: None };
        let entry = Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), 1),
            payload: EntryPayload::Normal(Command::Publish(batch.clone())),
        };
        let kept = Kept::new(entry, 60);
        assert_eq!(kept.bytes, 60 + 3 * BODY_OVERHEAD_BYTES);
        let EntryPayload::Normal(Command::Publish(held)) = &kept.entry.payload else { panic!("not a publish") };
        assert_eq!(held, &batch, "the same messages");
        let request_range = request.as_ptr_range();
        for body in &held.messages {
            assert!(!request_range.contains(&body.data.as_ptr()), "a body still points into the request");
        }
    }

    #[test]
    fn an_append_larger_than_the_bounds_keeps_only_its_tail() {
        let big = RECENT_BYTES_MAX / 3;
        let written: Vec<(u64, Entry)> = (1..=5).map(|index| (big, entry(1, index))).collect();
        let kept = Kept::tail_of(written);
        let indexes: Vec<u64> = kept.iter().map(|kept| kept.entry.log_id.index).collect();
        assert_eq!(indexes, [3, 4, 5], "the bytes bound");
        let written: Vec<(u64, Entry)> =
            (1..=RECENT_ENTRIES_MAX as u64 + 2).map(|index| (1, entry(1, index))).collect();
        assert_eq!(Kept::tail_of(written).first().map(|kept| kept.entry.log_id.index), Some(3), "the count bound");
        assert!(Kept::tail_of(vec![(RECENT_BYTES_MAX + 1, entry(1, 1))]).is_empty());
    }

    #[test]
    fn a_range_is_served_only_when_every_entry_of_it_is_kept() {
        let mut recent = Recent::default();
        for index in 5..=9 {
            recent.appended(Kept::new(entry(1, index), 10));
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
            recent.appended(Kept::new(entry(1, index), 10));
        }
        recent.truncated(4);
        assert_eq!(kept(&recent, 4, 5), None);
        recent.appended(Kept::new(entry(2, 4), 10));
        assert_eq!(kept(&recent, 3, 5), Some(vec![(3, 1), (4, 2)]));
        assert_eq!(kept(&recent, 5, 6), None, "the old 5 is gone with the truncation");
    }

    #[test]
    fn an_entry_not_following_the_last_starts_the_run_over() {
        let mut recent = Recent::default();
        recent.appended(Kept::new(entry(1, 1), 10));
        recent.appended(Kept::new(entry(1, 2), 10));
        recent.appended(Kept::new(entry(2, 7), 10));
        assert_eq!(kept(&recent, 1, 3), None);
        assert_eq!(kept(&recent, 7, 8), Some(vec![(7, 2)]));
    }

    #[test]
    fn the_oldest_entries_go_past_either_bound() {
        let mut recent = Recent::default();
        let big = RECENT_BYTES_MAX / 4;
        for index in 1..=6 {
            recent.appended(Kept::new(entry(1, index), big));
        }
        assert_eq!(recent.bytes, 4 * big);
        assert_eq!(kept(&recent, 2, 3), None);
        assert!(kept(&recent, 3, 7).is_some());

        let mut recent = Recent::default();
        let count = RECENT_ENTRIES_MAX as u64 + 10;
        for index in 1..=count {
            recent.appended(Kept::new(entry(1, index), 1));
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
