//! One source partition's way into the destination: what was received, what
//! is proven done, and which batch may go next.
//!
//! The destination numbers the route's batches by source offset (they are an
//! idempotent producer's sequences), so it stores each source message once
//! however often it is sent. A lane sends runs of consecutive offsets, one
//! batch at a time, in offset order. Between two batches it may skip offsets
//! only when it can prove them done: filtered out by this mirror (and acked
//! at the source), or below the source subscription's ack floor (acked
//! before: mirrored, filtered or trimmed by retention). An offset above the
//! floor that has not arrived is leased elsewhere (a mirror that died) and
//! will be redelivered, so the lane waits for it.
//!
//! Pure logic over the items it holds (`T`: a delivered source message), so
//! every rule is tested without a server.

use std::collections::BTreeMap;
use std::ops::Range;

/// Where a batch sits in the producer's sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Source offsets, which are the batch's sequences.
    pub offsets: Range<u64>,
    /// Where the previous batch ended, when the offsets from there were
    /// skipped (proven done); `Some(0)` when the destination's position is
    /// unknown and everything before is proven.
    pub skip_from: Option<u64>,
}

/// What a lane can do now.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Send(Batch),
    /// Offsets before the next received one are not proven done: read the
    /// source's ack floor (again) before skipping them.
    NeedFloor,
    /// Nothing to send, or a batch is in flight.
    Idle,
}

/// How the destination refused a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Sequences below `next` are stored; the batch reached below it.
    Committed { next: u64 },
    /// The destination expects `next`, below the batch's start or skip.
    Gap { next: u64 },
    /// The destination does not know the producer (new, or forgotten).
    UnknownProducer,
}

#[derive(Debug)]
pub struct Lane<T> {
    /// Received and not yet stored at the destination, by offset.
    pending: BTreeMap<u64, T>,
    /// Offsets left out on purpose (acked at the source) and not yet passed,
    /// as runs `start -> end`: a partition whose messages all came from the
    /// destination cluster keeps one run, not one entry per message.
    filtered: BTreeMap<u64, u64>,
    /// The source ack floor last read: every offset below it is done.
    floor: u64,
    /// The destination's next expected sequence, as last learned; `None`
    /// until the first answer of this run.
    stored_end: Option<u64>,
    in_flight: Option<Range<u64>>,
}

impl<T> Default for Lane<T> {
    fn default() -> Self {
        Self { pending: BTreeMap::new(), filtered: BTreeMap::new(), floor: 0, stored_end: None, in_flight: None }
    }
}

impl<T> Lane<T> {
    /// Takes a received message. Returns it back when it is stored at the
    /// destination already (ack it), or the copy it replaces (a redelivery).
    pub fn receive(&mut self, offset: u64, item: T) -> Option<T> {
        if self.stored_end.is_some_and(|end| offset < end) {
            return Some(item);
        }
        self.pending.insert(offset, item)
    }

    /// Records an offset left out on purpose (the caller acks it).
    pub fn filter(&mut self, offset: u64) {
        if self.stored_end.is_some_and(|end| offset < end) || offset < self.floor {
            return;
        }
        // Extend the run ending at `offset`, or start one; join the run after.
        let start = match self.filtered.range(..=offset).next_back() {
            Some((&start, &end)) if end >= offset => start,
            _ => offset,
        };
        let mut end = (offset + 1).max(self.filtered.get(&start).copied().unwrap_or(0));
        if let Some(after) = self.filtered.remove(&end) {
            end = after;
        }
        self.filtered.insert(start, end);
    }

    /// A fresh read of the source subscription's ack floor.
    pub fn set_floor(&mut self, floor: u64) {
        self.floor = self.floor.max(floor);
        self.forget_filtered_below(self.floor);
    }

    /// The next batch: up to `max_messages` consecutive received offsets
    /// from the lowest, if what lies before them is stored or proven done.
    pub fn next(&self, max_messages: usize) -> Next {
        if self.in_flight.is_some() {
            return Next::Idle;
        }
        let Some(&first) = self.pending.keys().next() else { return Next::Idle };
        let skip_from = match self.stored_end {
            Some(end) if end == first => None,
            Some(end) if self.proven(end, first) => Some(end),
            None if self.proven(0, first) => Some(0),
            _ => return Next::NeedFloor,
        };
        let mut end = first;
        for &offset in self.pending.keys() {
            if offset != end || (end - first) as usize >= max_messages {
                break;
            }
            end += 1;
        }
        Next::Send(Batch { offsets: first..end, skip_from })
    }

    /// Marks a batch from [`next`](Self::next) as sent.
    pub fn sending(&mut self, batch: &Batch) {
        self.in_flight = Some(batch.offsets.clone());
    }

    /// The held items of `offsets`, to build the batch from.
    pub fn items(&self, offsets: Range<u64>) -> impl Iterator<Item = (u64, &T)> {
        self.pending.range(offsets).map(|(offset, item)| (*offset, item))
    }

    /// The batch in flight was stored (now or before): returns its items to ack.
    pub fn stored(&mut self) -> Vec<T> {
        let Some(offsets) = self.in_flight.take() else { return Vec::new() };
        self.stored_through(offsets.end)
    }

    /// The batch in flight was refused: returns the items found stored.
    pub fn refused(&mut self, refusal: Refusal) -> Vec<T> {
        self.in_flight = None;
        match refusal {
            Refusal::Committed { next } => self.stored_through(next),
            Refusal::Gap { next } => {
                self.stored_end = Some(next);
                Vec::new()
            }
            Refusal::UnknownProducer => {
                self.stored_end = None;
                Vec::new()
            }
        }
    }

    /// The batch in flight failed otherwise (unreachable, timed out): it
    /// will be sent again.
    pub fn failed(&mut self) {
        self.in_flight = None;
    }

    /// Messages received and not yet stored.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Everything below `end` is stored at the destination.
    fn stored_through(&mut self, end: u64) -> Vec<T> {
        self.stored_end = Some(self.stored_end.map_or(end, |known| known.max(end)));
        let kept = self.pending.split_off(&end);
        let done = std::mem::replace(&mut self.pending, kept);
        self.forget_filtered_below(end);
        done.into_values().collect()
    }

    /// Drops the filtered runs below `end`, which need no proof any more.
    fn forget_filtered_below(&mut self, end: u64) {
        let mut kept = self.filtered.split_off(&end);
        if let Some((_, &last_end)) = self.filtered.iter().next_back() {
            if last_end > end {
                kept.insert(end, last_end);
            }
        }
        self.filtered = kept;
    }

    /// Whether every offset in `from..to` is done without being stored:
    /// below the floor, or filtered out.
    fn proven(&self, from: u64, to: u64) -> bool {
        let mut covered = from.max(self.floor);
        // Runs are disjoint and not adjacent: the one holding `covered` must
        // reach `to`.
        if covered < to {
            if let Some((_, &end)) = self.filtered.range(..=covered).next_back() {
                covered = covered.max(end);
            }
        }
        covered >= to
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(offsets: Range<u64>, skip_from: Option<u64>) -> Next {
        Next::Send(Batch { offsets, skip_from })
    }

    fn lane(offsets: impl IntoIterator<Item = u64>) -> Lane<u64> {
        let mut lane = Lane::default();
        for offset in offsets {
            assert_eq!(lane.receive(offset, offset), None);
        }
        lane
    }

    fn sent(lane: &mut Lane<u64>, max: usize) -> Batch {
        match lane.next(max) {
            Next::Send(batch) => {
                lane.sending(&batch);
                batch
            }
            other => panic!("expected a batch, got {other:?}"),
        }
    }

    #[test]
    fn a_first_run_starts_at_the_floor_and_then_follows_on_in_runs() {
        let mut lane = lane(10..25);
        assert_eq!(lane.next(10), Next::NeedFloor, "0..10 may be leased elsewhere");
        lane.set_floor(10);
        assert_eq!(sent(&mut lane, 10), Batch { offsets: 10..20, skip_from: Some(0) });
        assert_eq!(lane.next(10), Next::Idle, "one batch in flight");
        assert_eq!(lane.stored(), (10..20).collect::<Vec<_>>());
        assert_eq!(sent(&mut lane, 10), Batch { offsets: 20..25, skip_from: None });
    }

    #[test]
    fn an_offset_not_yet_received_above_the_floor_is_waited_for() {
        let mut lane = lane([5, 6, 7]);
        lane.set_floor(3);
        assert_eq!(lane.next(10), Next::NeedFloor, "3 and 4 are unacked: leased to a mirror that died");
        assert_eq!(lane.receive(4, 4), None);
        assert_eq!(lane.receive(3, 3), None);
        assert_eq!(lane.next(10), send(3..8, Some(0)));
    }

    #[test]
    fn filtered_offsets_are_skipped_from_where_the_last_batch_ended() {
        let mut lane = lane(0..3);
        assert_eq!(sent(&mut lane, 10), Batch { offsets: 0..3, skip_from: Some(0) });
        lane.stored();
        lane.filter(3);
        lane.filter(4);
        assert_eq!(lane.receive(6, 6), None);
        assert_eq!(lane.next(10), Next::NeedFloor, "5 is neither filtered nor acked");
        lane.filter(5);
        assert_eq!(lane.next(10), send(6..7, Some(3)));
    }

    #[test]
    fn a_long_stream_of_filtered_offsets_is_kept_as_one_run() {
        let mut lane = lane([]);
        for offset in (0..10_000).rev().filter(|o| o % 2 == 0).chain((0..10_000).filter(|o| o % 2 == 1)) {
            lane.filter(offset);
        }
        assert_eq!(lane.filtered.len(), 1, "{:?}", lane.filtered.iter().take(3).collect::<Vec<_>>());
        assert_eq!(lane.receive(10_000, 10_000), None);
        assert_eq!(lane.next(10), send(10_000..10_001, Some(0)), "0..10,000 filtered: proven");
        lane.filter(10_002);
        lane.filter(10_001);
        assert_eq!(lane.receive(10_003, 10_003), None);
        sent(&mut lane, 10);
        lane.stored();
        assert_eq!(lane.next(10), send(10_003..10_004, Some(10_001)), "10,001 and 10,002 skipped");
        assert!(lane.filtered.iter().all(|(_, &end)| end > 10_001), "runs below what is stored are dropped");
    }

    #[test]
    fn a_batch_found_partly_stored_acks_that_part_and_resends_the_rest() {
        // A mirror died after the destination stored 10..15 but before the
        // source had their acks: the next run gets them again.
        let mut lane = lane(10..20);
        lane.set_floor(10);
        assert_eq!(sent(&mut lane, 100).offsets, 10..20);
        assert_eq!(lane.refused(Refusal::Committed { next: 15 }), (10..15).collect::<Vec<_>>());
        assert_eq!(lane.next(100), send(15..20, None));
        assert_eq!(lane.receive(12, 12), Some(12), "a late redelivery of a stored offset is acked at once");
    }

    #[test]
    fn a_gap_or_a_forgotten_producer_makes_the_lane_prove_what_it_skips() {
        let mut lane = lane(20..30);
        lane.set_floor(20);
        sent(&mut lane, 100);
        // The destination is at 12: 12..20 must be proven again (they are,
        // below the floor), and the skip now names 12.
        assert!(lane.refused(Refusal::Gap { next: 12 }).is_empty());
        assert_eq!(lane.next(100), send(20..30, Some(12)));
        sent(&mut lane, 100);
        assert!(lane.refused(Refusal::UnknownProducer).is_empty());
        assert_eq!(lane.next(100), send(20..30, Some(0)));
        sent(&mut lane, 100);
        lane.failed();
        assert_eq!(lane.next(100), send(20..30, Some(0)), "a failed batch goes again as it was");
    }

    #[test]
    fn a_redelivery_replaces_the_held_copy() {
        let mut lane = lane([4]);
        assert_eq!(lane.receive(4, 40), Some(4));
        assert_eq!(lane.items(0..10).collect::<Vec<_>>(), vec![(4, &40)]);
        assert_eq!(lane.pending(), 1);
    }
}
