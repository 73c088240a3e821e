//! `Leases`: one subscription's leases by position, with the deadlines that
//! matter indexed in time order.
//!
//! A subscription holds up to `outstanding_max` (10,000 by default) leases,
//! and every lease call must find the ones whose deadline passed. Scanning
//! them all per call made a consumer's cost grow with everything in flight;
//! the index makes finding what is due cost only what is due. Every change
//! goes through [`Leases::modify`], which keeps the index in step.

use std::collections::{BTreeMap, BTreeSet};

use tokio::time::Instant;

use super::subscription::ConsumerId;

/// (partition, offset).
pub type Position = (u32, u64);

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

#[derive(Debug, Default)]
pub struct Leases {
    by_position: BTreeMap<Position, Lease>,
    /// (deadline, position) of every timed lease.
    deadlines: BTreeSet<(Instant, Position)>,
}

impl Leases {
    pub fn len(&self) -> usize {
        self.by_position.len()
    }

    pub fn get(&self, position: &Position) -> Option<&Lease> {
        self.by_position.get(position)
    }

    pub fn contains(&self, position: &Position) -> bool {
        self.by_position.contains_key(position)
    }

    /// Leases held by consumers (for the backlog figures).
    pub fn held(&self) -> usize {
        self.by_position.values().filter(|lease| lease.held()).count()
    }

    pub fn insert(&mut self, position: Position, lease: Lease) {
        let deadline = lease.timed().then_some(lease.deadline);
        if let Some(old) = self.by_position.insert(position, lease) {
            if old.timed() {
                self.deadlines.remove(&(old.deadline, position));
            }
        }
        if let Some(deadline) = deadline {
            self.deadlines.insert((deadline, position));
        }
    }

    pub fn remove(&mut self, position: &Position) -> Option<Lease> {
        let lease = self.by_position.remove(position)?;
        if lease.timed() {
            self.deadlines.remove(&(lease.deadline, *position));
        }
        Some(lease)
    }

    /// Changes a lease in place (state, deadline, anything) and re-indexes it.
    pub fn modify<R>(&mut self, position: &Position, change: impl FnOnce(&mut Lease) -> R) -> Option<R> {
        let lease = self.by_position.get_mut(position)?;
        if lease.timed() {
            self.deadlines.remove(&(lease.deadline, *position));
        }
        let result = change(lease);
        if lease.timed() {
            self.deadlines.insert((lease.deadline, *position));
        }
        Some(result)
    }

    /// Timed leases whose deadline is `now` or earlier, earliest first (ties
    /// in position order).
    pub fn due(&self, now: Instant) -> Vec<Position> {
        self.deadlines.iter().take_while(|(deadline, _)| *deadline <= now).map(|(_, position)| *position).collect()
    }

    /// When time alone next changes a lease.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(deadline, _)| *deadline)
    }

    /// Positions of the `Leased` leases of `consumer`.
    pub fn leased_to(&self, consumer: ConsumerId) -> Vec<Position> {
        let mine = |lease: &Lease| lease.consumer == consumer && lease.state == LeaseState::Leased;
        self.by_position.iter().filter(|(_, lease)| mine(lease)).map(|(position, _)| *position).collect()
    }

    /// Positions of `partition` below `floor`, in offset order.
    pub fn below(&self, partition: u32, floor: u64) -> Vec<Position> {
        self.by_position.range((partition, 0)..(partition, floor)).map(|(position, _)| *position).collect()
    }
}
