//! `Deadlines`: the leases whose deadline matters, in time order, for
//! [`Leases`](super::leases::Leases).
//!
//! Every lease granted by one lease call shares its deadline, so the index
//! holds cohorts: one map entry per deadline and a push per lease. An entry
//! names its lease's generation; a lease whose deadline changes gets a new
//! entry and generation rather than being looked for in its cohort, and its
//! old entry is stale. Stale entries are dropped when their cohort comes
//! due, when they come before a cohort's first live entry as the next
//! deadline is looked for, or all at once when they outnumber the live
//! ones, which keeps the index within about twice the leases.

use std::collections::BTreeMap;
use std::ops::Bound::{Excluded, Unbounded};

use tokio::time::Instant;

use super::leases::Position;

/// Stale entries are dropped all at once when they outnumber the live ones
/// and this many.
const STALE_SLACK: usize = 1024;

/// Whether the lease at a position still has a generation.
pub trait Generations {
    fn is_current(&self, position: &Position, generation: u64) -> bool;
}

#[derive(Debug, Default)]
pub struct Deadlines {
    cohorts: BTreeMap<Instant, Vec<(Position, u64)>>,
    live: usize,
    stale: usize,
    last_generation: u64,
}

impl Deadlines {
    /// Indexes the lease at `position` under `deadline`; returns the
    /// generation the lease must keep for the entry to stay live (never 0).
    pub fn add(&mut self, position: Position, deadline: Instant) -> u64 {
        self.last_generation += 1;
        let entry = (position, self.last_generation);
        match self.cohorts.last_entry() {
            Some(mut last) if *last.key() == deadline => last.get_mut().push(entry),
            _ => self.cohorts.entry(deadline).or_default().push(entry),
        }
        self.live += 1;
        self.last_generation
    }

    /// The entry of `generation` is stale from now on (0: there is none).
    pub fn drop_entry(&mut self, generation: u64) {
        if generation != 0 {
            self.live -= 1;
            self.stale += 1;
        }
    }

    /// Positions due at `now`, earliest deadline first (ties in position
    /// order); drops the stale entries of the cohorts it passes.
    pub fn due(&mut self, now: Instant, leases: &impl Generations) -> Vec<Position> {
        let mut due = Vec::new();
        let mut emptied = Vec::new();
        for (deadline, cohort) in self.cohorts.range_mut(..=now) {
            self.stale -= drop_stale(cohort, leases);
            let from = due.len();
            due.extend(cohort.iter().map(|(position, _)| *position));
            due[from..].sort_unstable();
            if cohort.is_empty() {
                emptied.push(*deadline);
            }
        }
        for deadline in emptied {
            self.cohorts.remove(&deadline);
        }
        due
    }

    /// The earliest deadline of a live entry after `now`. Exact: a waiter
    /// woken early by a stale cohort, and not in need of a lease call (a
    /// consumer without room), would wake again at once, and again. It
    /// drops the stale entries it passes, up to the first live one, so each
    /// is looked at once (a waiter asks this each time it waits).
    pub fn next_after(&mut self, now: Instant, leases: &impl Generations) -> Option<Instant> {
        let mut emptied = Vec::new();
        let mut next = None;
        for (deadline, cohort) in self.cohorts.range_mut((Excluded(now), Unbounded)) {
            let stale = cohort.iter().take_while(|(position, generation)| !leases.is_current(position, *generation));
            let stale = stale.count();
            cohort.drain(..stale);
            self.stale -= stale;
            shrink(cohort);
            if cohort.is_empty() {
                emptied.push(*deadline);
            } else {
                next = Some(*deadline);
                break;
            }
        }
        for deadline in emptied {
            self.cohorts.remove(&deadline);
        }
        next
    }

    /// Drops every stale entry once they outnumber the live ones (and
    /// [`STALE_SLACK`]): each entry is looked at about once per entry made
    /// stale.
    pub fn compact(&mut self, leases: &impl Generations) {
        if self.stale <= self.live.max(STALE_SLACK) {
            return;
        }
        self.cohorts.retain(|_, cohort| {
            drop_stale(cohort, leases);
            !cohort.is_empty()
        });
        self.stale = 0;
    }

    /// Entries held, live and stale (for tests of the bound).
    #[cfg(test)]
    pub fn entries(&self) -> usize {
        self.cohorts.values().map(Vec::len).sum()
    }
}

/// Drops a cohort's stale entries; returns how many.
fn drop_stale(cohort: &mut Vec<(Position, u64)>, leases: &impl Generations) -> usize {
    let before = cohort.len();
    cohort.retain(|(position, generation)| leases.is_current(position, *generation));
    shrink(cohort);
    before - cohort.len()
}

/// Gives back most of a cohort's room once most of its entries went stale:
/// a cohort of a thousand leases with one left would keep room for all.
fn shrink(cohort: &mut Vec<(Position, u64)>) {
    if cohort.len() < cohort.capacity() / 4 {
        cohort.shrink_to(cohort.len() * 2);
    }
}
