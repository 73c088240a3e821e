//! Idempotent publishing (SPEC contract 5): what the replicated state remembers
//! of each producer so that a retried batch is stored once.
//!
//! A producer names itself with a random 64-bit id and numbers its messages
//! per partition: a batch carries the sequence number of its first message.
//! Per (topic, partition, producer) the state keeps the last few batches, so
//! a retry of any batch still in the client's in-flight window is recognised
//! and answered with the offsets the first copy got.
//!
//! A producer may skip sequences on purpose: a mirror numbers its batches by
//! source offset and leaves out what it filters or what the source trimmed.
//! Such a batch names where its predecessor ended (`skip_from`), so a batch
//! that overtook its predecessor is still refused as a gap, and a producer
//! may start anywhere by naming 0 as its predecessor's end.
//!
//! The table is bounded: a producer idle for [`PRODUCER_IDLE_US`] is forgotten,
//! and past [`PRODUCER_STATES_MAX`] the least recently used one is. A forgotten
//! producer's next batch is refused as unknown, and the client starts a new
//! producer id. Both happen in
//! `apply`, driven by the publish times in commands, so every replica forgets
//! the same producers at the same entry.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::command::ProducerSequence;
use super::limits::{PRODUCER_BATCHES_REMEMBERED, PRODUCER_IDLE_US, PRODUCER_STATES_MAX, PRODUCER_STORED_RUNS_MAX};
use super::outcome::{Rejection, Write};

/// One producer's sequence space: a partition of a topic incarnation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProducerKey {
    pub topic_id: u64,
    pub partition: u32,
    pub producer_id: u64,
}

/// A committed batch of a producer: sequences `first_sequence..+count` got
/// offsets `first_offset..+count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommittedBatch {
    pub first_sequence: u64,
    pub count: u32,
    pub first_offset: u64,
    pub publish_time_us: i64,
}

impl CommittedBatch {
    fn next_sequence(&self) -> u64 {
        self.first_sequence + u64::from(self.count)
    }
}

/// What the state remembers of one producer, oldest batch first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProducerState {
    pub batches: VecDeque<CommittedBatch>,
    pub stored: StoredSequences,
}

/// Which of a producer's sequences were stored rather than skipped: what a
/// mirror's gap check asks the destination (sequences are source offsets).
/// Runs `[start, end)` from `base` on, merged as batches follow each other;
/// past [`PRODUCER_STORED_RUNS_MAX`] runs the oldest is folded into
/// `stored_below_base`, and counts below `base` are no longer known.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredSequences {
    pub base: u64,
    pub stored_below_base: u64,
    pub runs: VecDeque<(u64, u64)>,
}

impl StoredSequences {
    /// What a record written before runs were kept knows: nothing below the
    /// producer's next sequence.
    pub fn unknown_below(next_sequence: u64) -> Self {
        Self { base: next_sequence, stored_below_base: 0, runs: VecDeque::new() }
    }

    fn add(&mut self, first: u64, count: u64) {
        match self.runs.back_mut() {
            Some(last) if last.1 == first => last.1 += count,
            _ => self.runs.push_back((first, first + count)),
        }
        while self.runs.len() > PRODUCER_STORED_RUNS_MAX {
            if let Some((start, end)) = self.runs.pop_front() {
                self.base = end;
                self.stored_below_base += end - start;
            }
        }
    }

    /// How many sequences below `bound` were stored; `None` below `base`.
    /// Differences of two answers count an interval, whatever the base count.
    pub fn stored_below(&self, bound: u64) -> Option<u64> {
        if bound < self.base {
            return None;
        }
        let in_runs: u64 = self.runs.iter().map(|&(start, end)| end.min(bound).saturating_sub(start)).sum();
        Some(self.stored_below_base + in_runs)
    }
}

impl ProducerState {
    fn last_publish_time_us(&self) -> i64 {
        self.batches.back().map_or(i64::MIN, |b| b.publish_time_us)
    }
}

/// The verdict on a batch's sequence numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceCheck {
    /// New messages: append them.
    Fresh,
    /// A retry of a committed batch: answer with its offsets, append nothing.
    Duplicate(CommittedBatch),
    Rejected(Rejection),
}

/// Every remembered producer, with an index by last use for expiry and eviction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Producers {
    states: BTreeMap<ProducerKey, ProducerState>,
    by_last_use: BTreeSet<(i64, ProducerKey)>,
}

impl Producers {
    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    pub fn get(&self, key: &ProducerKey) -> Option<&ProducerState> {
        self.states.get(key)
    }

    /// The sequence number a producer's next batch must start at, if the
    /// producer is known.
    pub fn next_sequence(&self, key: &ProducerKey) -> Option<u64> {
        self.states.get(key)?.batches.back().map(CommittedBatch::next_sequence)
    }

    /// Decides what a batch of `count` messages numbered from
    /// `sequence.first_sequence` is.
    pub fn check(&self, key: &ProducerKey, sequence: &ProducerSequence, count: u32) -> SequenceCheck {
        let first_sequence = sequence.first_sequence;
        let Some(last) = self.states.get(key).and_then(|state| state.batches.back()) else {
            // A new producer starts at 0, or says its predecessor ended at 0
            // (a skip to where it starts). Anything else is a batch that
            // overtook the producer's first one, or a producer forgotten
            // since: the client resends it after its earlier batches, or
            // under a new producer id.
            if sequence.covers_from() == 0 {
                return SequenceCheck::Fresh;
            }
            return SequenceCheck::Rejected(Rejection::UnknownProducer {
                producer_id: key.producer_id,
                partition: key.partition,
                got: first_sequence,
            });
        };
        let expected = last.next_sequence();
        // The batch starts at the next sequence, or skips to its start from
        // at most there (a skip from below `expected` claims sequences that
        // are stored already as skipped, which stores nothing twice).
        if first_sequence >= expected && sequence.covers_from() <= expected {
            return SequenceCheck::Fresh;
        }
        if first_sequence > expected {
            return SequenceCheck::Rejected(Rejection::SequenceGap {
                producer_id: key.producer_id,
                partition: key.partition,
                expected,
                got: first_sequence,
            });
        }
        let state = &self.states[key];
        match state.batches.iter().find(|b| b.first_sequence == first_sequence) {
            Some(batch) if batch.count == count => SequenceCheck::Duplicate(*batch),
            _ => SequenceCheck::Rejected(Rejection::SequenceCommitted {
                producer_id: key.producer_id,
                partition: key.partition,
                sequence: first_sequence,
                next: expected,
            }),
        }
    }

    /// Remembers a committed batch, then forgets what is too old or too many.
    pub fn record(&mut self, key: ProducerKey, batch: CommittedBatch, writes: &mut Vec<Write>) {
        let state = self.states.entry(key).or_default();
        self.by_last_use.remove(&(state.last_publish_time_us(), key));
        state.batches.push_back(batch);
        state.stored.add(batch.first_sequence, u64::from(batch.count));
        while state.batches.len() > PRODUCER_BATCHES_REMEMBERED {
            state.batches.pop_front();
        }
        self.by_last_use.insert((state.last_publish_time_us(), key));
        writes.push(Write::PutProducer { key, state: state.clone() });
        self.forget_stale(batch.publish_time_us, writes);
    }

    /// Forgets producers idle for longer than the expiry at `now_us`, and the
    /// least recently used beyond the bound.
    fn forget_stale(&mut self, now_us: i64, writes: &mut Vec<Write>) {
        let idle_before = now_us.saturating_sub(PRODUCER_IDLE_US);
        while let Some(&(last_use, key)) = self.by_last_use.first() {
            if last_use >= idle_before && self.states.len() <= PRODUCER_STATES_MAX {
                break;
            }
            self.by_last_use.pop_first();
            self.states.remove(&key);
            writes.push(Write::DeleteProducer { key });
        }
    }

    /// Forgets every producer of a topic incarnation (the topic was deleted).
    pub fn remove_topic(&mut self, topic_id: u64) {
        let doomed: Vec<ProducerKey> = self.states.keys().filter(|k| k.topic_id == topic_id).copied().collect();
        for key in doomed {
            if let Some(state) = self.states.remove(&key) {
                self.by_last_use.remove(&(state.last_publish_time_us(), key));
            }
        }
    }

    /// Restores one producer from storage.
    pub fn insert(&mut self, key: ProducerKey, state: ProducerState) {
        self.by_last_use.insert((state.last_publish_time_us(), key));
        self.states.insert(key, state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(producer_id: u64) -> ProducerKey {
        ProducerKey { topic_id: 1, partition: 0, producer_id }
    }

    fn batch(first_sequence: u64, publish_time_us: i64) -> CommittedBatch {
        CommittedBatch { first_sequence, count: 1, first_offset: first_sequence, publish_time_us }
    }

    #[test]
    fn past_the_bound_the_least_recently_used_producer_is_forgotten() {
        let mut producers = Producers::default();
        let mut writes = Vec::new();
        for id in 0..PRODUCER_STATES_MAX as u64 {
            producers.record(key(id), batch(0, id as i64), &mut writes);
        }
        // Producer 0 publishes again, so producer 1 is now the least recently used.
        producers.record(key(0), batch(1, PRODUCER_STATES_MAX as i64), &mut writes);
        writes.clear();
        producers.record(key(u64::MAX), batch(0, PRODUCER_STATES_MAX as i64 + 1), &mut writes);
        assert_eq!(producers.len(), PRODUCER_STATES_MAX);
        assert!(producers.get(&key(1)).is_none());
        assert!(producers.get(&key(0)).is_some());
        assert_eq!(writes.last(), Some(&Write::DeleteProducer { key: key(1) }));
    }

    #[test]
    fn only_the_last_batches_are_remembered() {
        let mut producers = Producers::default();
        let mut writes = Vec::new();
        for sequence in 0..20 {
            producers.record(key(1), batch(sequence, 0), &mut writes);
        }
        let oldest_kept = 20 - PRODUCER_BATCHES_REMEMBERED as u64;
        assert!(matches!(producers.check(&key(1), &at(oldest_kept, None), 1), SequenceCheck::Duplicate(_)));
        assert!(matches!(producers.check(&key(1), &at(oldest_kept - 1, None), 1), SequenceCheck::Rejected(_)));
        assert_eq!(producers.check(&key(1), &at(20, None), 1), SequenceCheck::Fresh);
    }

    fn at(first_sequence: u64, skip_from: Option<u64>) -> ProducerSequence {
        ProducerSequence { producer_id: 1, first_sequence, skip_from }
    }

    #[test]
    fn a_producer_skips_sequences_only_from_where_its_previous_batch_ended() {
        let mut producers = Producers::default();
        let mut writes = Vec::new();
        let unknown = |check| matches!(check, SequenceCheck::Rejected(Rejection::UnknownProducer { .. }));
        let gap_at = |check, at| matches!(check, SequenceCheck::Rejected(Rejection::SequenceGap { expected, .. }) if expected == at);

        // A new producer starts anywhere by naming 0 as its predecessor's end.
        assert!(unknown(producers.check(&key(1), &at(100, None), 5)));
        assert!(
            unknown(producers.check(&key(1), &at(100, Some(40)), 5)),
            "a skip from 40 needs the batch ending there"
        );
        assert_eq!(producers.check(&key(1), &at(100, Some(0)), 5), SequenceCheck::Fresh);
        producers.record(
            key(1),
            CommittedBatch { first_sequence: 100, count: 5, first_offset: 0, publish_time_us: 0 },
            &mut writes,
        );

        // 105 is next: a skip from there is fresh; a skip from 110 overtook a
        // batch 105..110 still on its way, and waits for it.
        assert_eq!(producers.check(&key(1), &at(120, Some(105)), 5), SequenceCheck::Fresh);
        assert!(gap_at(producers.check(&key(1), &at(120, Some(110)), 5), 105));
        assert!(gap_at(producers.check(&key(1), &at(120, None), 5), 105));
        // A restarted mirror's "from 0" skips only what is not stored yet.
        assert_eq!(producers.check(&key(1), &at(105, Some(0)), 5), SequenceCheck::Fresh);

        producers.record(
            key(1),
            CommittedBatch { first_sequence: 120, count: 5, first_offset: 5, publish_time_us: 0 },
            &mut writes,
        );
        // A retried skip batch is a duplicate; sequences skipped count as done.
        assert!(
            matches!(producers.check(&key(1), &at(120, Some(105)), 5), SequenceCheck::Duplicate(b) if b.first_offset == 5)
        );
        assert!(matches!(
            producers.check(&key(1), &at(110, None), 5),
            SequenceCheck::Rejected(Rejection::SequenceCommitted { next: 125, .. })
        ));
    }

    #[test]
    fn stored_sequences_count_what_was_stored_not_what_was_skipped() {
        let mut stored = StoredSequences::default();
        stored.add(0, 10);
        stored.add(10, 5); // follows on: one run 0..15
        stored.add(20, 5); // skipped 15..20
        assert_eq!(stored.runs, VecDeque::from([(0, 15), (20, 25)]));
        let below = |bound| stored.stored_below(bound);
        assert_eq!(
            (below(0), below(12), below(15), below(20), below(22), below(100)),
            (Some(0), Some(12), Some(15), Some(15), Some(17), Some(20))
        );

        for i in 0..PRODUCER_STORED_RUNS_MAX as u64 {
            stored.add(100 + 2 * i, 1); // each after a skip: a new run
        }
        assert_eq!(stored.runs.len(), PRODUCER_STORED_RUNS_MAX);
        assert_eq!((stored.base, stored.stored_below_base), (25, 20), "the two oldest runs folded into the count");
        assert_eq!(stored.stored_below(24), None, "below the base nothing is known");
        let (from, to) = (100, 100 + 2 * PRODUCER_STORED_RUNS_MAX as u64);
        let in_range = stored.stored_below(to).zip(stored.stored_below(from)).map(|(b, a)| b - a);
        assert_eq!(in_range, Some(PRODUCER_STORED_RUNS_MAX as u64));
    }

    #[test]
    fn a_producers_record_counts_its_batches_from_its_first_one() {
        let mut producers = Producers::default();
        let mut writes = Vec::new();
        producers.record(
            key(1),
            CommittedBatch { first_sequence: 5, count: 3, first_offset: 0, publish_time_us: 1 },
            &mut writes,
        );
        producers.record(
            key(1),
            CommittedBatch { first_sequence: 8, count: 2, first_offset: 3, publish_time_us: 2 },
            &mut writes,
        );
        let stored = &producers.get(&key(1)).expect("known").stored;
        assert_eq!((stored.stored_below(5), stored.stored_below(10)), (Some(0), Some(5)));
        assert_eq!(stored.stored_below(4), Some(0), "what it skipped before its first batch it did not store");
    }
}
