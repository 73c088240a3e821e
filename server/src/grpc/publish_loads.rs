//! `PublishLoads`: the partition batches this node has in flight per group,
//! whichever service or node they came from (Ferry and Pub/Sub publishes,
//! dead letters moved to another group, batches forwarded here). Keyless requests weigh them when
//! they pick a partition (see [`keyless`](super::keyless)).

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::domain::limits::DATA_GROUPS_MAX;
use crate::raft::GroupId;

#[derive(Debug)]
pub struct PublishLoads {
    /// By group id: group 0 and every data group a cluster may have.
    in_flight: Box<[AtomicUsize]>,
}

impl Default for PublishLoads {
    fn default() -> Self {
        Self { in_flight: (0..=DATA_GROUPS_MAX).map(|_| AtomicUsize::new(0)).collect() }
    }
}

impl PublishLoads {
    /// Batches of `group` in flight now.
    pub fn of(&self, group: GroupId) -> usize {
        self.counter(group).map_or(0, |counter| counter.load(Ordering::Relaxed))
    }

    /// Counts a batch of `group` in flight until the guard is dropped.
    pub fn track(&self, group: GroupId) -> InFlight<'_> {
        let counter = self.counter(group);
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        InFlight { counter }
    }

    /// `None` for an id past any group's (which no route leads to).
    fn counter(&self, group: GroupId) -> Option<&AtomicUsize> {
        self.in_flight.get(group as usize)
    }
}

/// A batch in flight, counted against its group while it lives.
#[derive(Debug)]
pub struct InFlight<'a> {
    counter: Option<&'a AtomicUsize>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(counter) = self.counter {
            counter.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_counts_against_its_own_group_while_its_guard_lives() {
        let loads = PublishLoads::default();
        let first = loads.track(3);
        let second = loads.track(3);
        let other = loads.track(DATA_GROUPS_MAX);
        assert_eq!((loads.of(3), loads.of(DATA_GROUPS_MAX), loads.of(0)), (2, 1, 0));
        drop(first);
        assert_eq!(loads.of(3), 1);
        drop((second, other));
        assert_eq!((loads.of(3), loads.of(DATA_GROUPS_MAX)), (0, 0));
    }

    #[test]
    fn an_id_past_every_group_counts_nothing() {
        let loads = PublishLoads::default();
        let _past = loads.track(DATA_GROUPS_MAX + 1);
        assert_eq!(loads.of(DATA_GROUPS_MAX + 1), 0);
        assert!((0..=DATA_GROUPS_MAX).all(|group| loads.of(group) == 0), "no group took its count");
    }
}
