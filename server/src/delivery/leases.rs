//! `Leases`: one subscription's leases by position, with the deadlines that
//! matter indexed in time order.
//!
//! A drain touches every message here three times (granted, acking, gone),
//! and ordered maps of leases and deadlines cost a fifth of a node's CPU
//! while a consumer drained a backlog. So:
//! - leases sit in a slab, found through blocks of 16 offsets by position
//!   ([`ByPosition`]);
//! - their deadlines are indexed by cohort ([`Deadlines`]);
//! - the leases an ack floor passed are found by looking up the offsets the
//!   floor moved over since the last look: each offset once, however far the
//!   floor goes (after a jump longer than the leases are many, one scan).
//!
//! Every change goes through [`Leases::insert`], [`Leases::modify`] or
//! [`Leases::remove`] (which [`Leases::remove_below`] uses), which keep the
//! index in step.

use tokio::time::Instant;

use super::by_position::ByPosition;
pub use super::by_position::Position;
use super::deadlines::{Deadlines, Generations};
use super::subscription::ConsumerId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// Held by a consumer until the deadline.
    Leased,
    /// An ack is being committed; not redelivered meanwhile.
    Acking,
    /// Expired, nacked or promoted behind its key: delivered again once the
    /// deadline (the retry backoff) has passed.
    Ready,
    /// Being moved to the dead-letter topic.
    DeadLettering,
}

#[derive(Debug, Clone)]
pub struct Lease {
    pub delivery_id: u64,
    /// Deliveries so far.
    pub attempt: u32,
    pub state: LeaseState,
    /// `Leased`: when the lease ends. `Ready`: not before. Otherwise unused.
    pub deadline: Instant,
    pub consumer: ConsumerId,
    pub size: u64,
    pub key: Option<String>,
}

impl Lease {
    /// Out with a consumer and not yet settled by it.
    pub fn held(&self) -> bool {
        matches!(self.state, LeaseState::Leased | LeaseState::Acking)
    }

    /// Counts against its consumer's flow control: delivered and neither
    /// acked nor nacked. An ack frees the consumer's room at once, as in
    /// Pub/Sub, while its commit runs (a consumer whose room waited for the
    /// commit would consume at most its window per fsync); the lease itself
    /// stays until the commit, bounded by `outstanding_max`.
    pub fn counts_for_consumer(&self) -> bool {
        self.state == LeaseState::Leased
    }

    /// Whether time alone changes it: a lease expires, a backoff ends.
    fn timed(&self) -> bool {
        matches!(self.state, LeaseState::Leased | LeaseState::Ready)
    }
}

/// A lease and the generation of its deadline's index entry (0: none).
#[derive(Debug)]
struct Entry {
    lease: Lease,
    generation: u64,
}

impl Generations for ByPosition<Entry> {
    fn is_current(&self, position: &Position, generation: u64) -> bool {
        self.get(position).is_some_and(|entry| entry.generation == generation)
    }
}

#[derive(Debug, Default)]
pub struct Leases {
    by_position: ByPosition<Entry>,
    /// The deadlines of the timed leases.
    deadlines: Deadlines,
    /// Per partition: no lease lies below this offset (see [`Leases::remove_below`]).
    swept: Vec<u64>,
}

impl Leases {
    pub fn len(&self) -> usize {
        self.by_position.len()
    }

    pub fn get(&self, position: &Position) -> Option<&Lease> {
        self.by_position.get(position).map(|entry| &entry.lease)
    }

    pub fn contains(&self, position: &Position) -> bool {
        self.by_position.contains_key(position)
    }

    /// Leases held by consumers (for the backlog figures).
    pub fn held(&self) -> usize {
        self.by_position.values().filter(|entry| entry.lease.held()).count()
    }

    pub fn insert(&mut self, position: Position, lease: Lease) {
        let generation = if lease.timed() { self.deadlines.add(position, lease.deadline) } else { 0 };
        if let Some(old) = self.by_position.insert(position, Entry { lease, generation }) {
            self.deadlines.drop_entry(old.generation);
        }
        let (partition, offset) = position;
        if let Some(swept) = self.swept.get_mut(partition as usize) {
            *swept = (*swept).min(offset);
        }
        self.deadlines.compact(&self.by_position);
    }

    pub fn remove(&mut self, position: &Position) -> Option<Lease> {
        let entry = self.by_position.remove(position)?;
        self.deadlines.drop_entry(entry.generation);
        self.deadlines.compact(&self.by_position);
        Some(entry.lease)
    }

    /// Changes a lease in place (state, deadline, anything), and re-indexes
    /// it when the change moved its deadline or made it timed or untimed.
    pub fn modify<R>(&mut self, position: &Position, change: impl FnOnce(&mut Lease) -> R) -> Option<R> {
        let entry = self.by_position.get_mut(position)?;
        let timing = |lease: &Lease| lease.timed().then_some(lease.deadline);
        let before = timing(&entry.lease);
        let result = change(&mut entry.lease);
        let after = timing(&entry.lease);
        if after != before {
            self.deadlines.drop_entry(entry.generation);
            entry.generation = after.map_or(0, |deadline| self.deadlines.add(*position, deadline));
            self.deadlines.compact(&self.by_position);
        }
        Some(result)
    }

    /// Timed leases whose deadline is `now` or earlier, earliest first (ties
    /// in position order).
    pub fn due(&mut self, now: Instant) -> Vec<Position> {
        self.deadlines.due(now, &self.by_position)
    }

    /// The first deadline after `now` of a timed lease.
    pub fn next_deadline_after(&mut self, now: Instant) -> Option<Instant> {
        self.deadlines.next_after(now, &self.by_position)
    }

    /// Positions of the `Leased` leases of `consumer`, in position order.
    pub fn leased_to(&self, consumer: ConsumerId) -> Vec<Position> {
        let mine = |entry: &Entry| entry.lease.consumer == consumer && entry.lease.state == LeaseState::Leased;
        let mut positions: Vec<Position> =
            self.by_position.iter().filter(|(_, entry)| mine(entry)).map(|(position, _)| position).collect();
        positions.sort_unstable();
        positions
    }

    /// Removes and returns the leases of `partition` below `floor`, in offset
    /// order. Floors only rise, so it looks up the offsets from where the
    /// last call stopped; a jump longer than the leases are many (a trim, a
    /// first call) scans the leases instead.
    pub fn remove_below(&mut self, partition: u32, floor: u64) -> Vec<(Position, Lease)> {
        let p = partition as usize;
        if self.swept.len() <= p {
            self.swept.resize(p + 1, 0);
        }
        let from = self.swept[p];
        if floor <= from {
            return Vec::new();
        }
        self.swept[p] = floor;
        let mut positions: Vec<Position> = if floor - from <= self.by_position.len() as u64 {
            (from..floor).map(|offset| (partition, offset)).filter(|position| self.contains(position)).collect()
        } else {
            let below = |&(q, offset): &Position| q == partition && offset < floor;
            self.by_position.keys().filter(below).collect()
        };
        positions.sort_unstable();
        positions.into_iter().filter_map(|position| Some((position, self.remove(&position)?))).collect()
    }
}

#[cfg(test)]
#[path = "leases_tests.rs"]
mod tests;
