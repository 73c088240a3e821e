//! Named locks that expire, held by one holder at a time.
//!
//! A process that must not run twice at once (one active `ferry-mirror` per
//! route) takes a lock and renews it well within its time to live; a standby
//! asking for the same lock is turned down until the holder releases it or
//! stops renewing it. Each new holder gets a larger epoch than every holder
//! before it, so an epoch can fence a holder that lost its lock.
//!
//! Expiry is judged on the leader's clock stamped into each command, so every
//! replica agrees; a leader change can stretch or shorten a lock by the skew
//! between the two leaders' clocks.

use super::catalog::Catalog;
use super::limits::LOCKS_MAX;
use super::outcome::{Applied, Rejection, Response, Write};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockState {
    pub name: String,
    /// Who holds it: an id its holder chose, unique among the contenders.
    pub holder: String,
    /// Grows with every change of holder, across all locks.
    pub epoch: u64,
    /// The holder's claim ends here (leader clock, µs since the epoch)
    /// unless it renews.
    pub expire_time_us: i64,
}

impl LockState {
    pub fn expired(&self, now_us: i64) -> bool {
        self.expire_time_us <= now_us
    }
}

/// Grants `name` to `holder` until `now_us + ttl_us` if nobody else holds it
/// now; a renewal by the holder keeps its epoch. Turned down, the answer names
/// the current holder and its expiry.
pub fn acquire(catalog: &mut Catalog, name: String, holder: String, ttl_us: u64, now_us: i64) -> Applied {
    let held = catalog.locks.get(&name);
    if let Some(held) = held.filter(|held| held.holder != holder && !held.expired(now_us)) {
        return Applied { response: Response::Lock { granted: false, lock: held.clone() }, writes: Vec::new() };
    }
    let mut writes = Vec::new();
    let epoch = match held {
        // Nobody can have held it in between: they would have replaced the holder.
        Some(held) if held.holder == holder => held.epoch,
        Some(_) => next_epoch(catalog, &mut writes),
        None => {
            if catalog.locks.len() >= LOCKS_MAX {
                let expired: Vec<String> =
                    catalog.locks.values().filter(|l| l.expired(now_us)).map(|l| l.name.clone()).collect();
                if expired.is_empty() {
                    return Applied::rejected(Rejection::TooManyLocks { limit: LOCKS_MAX });
                }
                for name in expired {
                    catalog.locks.remove(&name);
                    writes.push(Write::DeleteLock { name });
                }
            }
            next_epoch(catalog, &mut writes)
        }
    };
    let ttl_us = i64::try_from(ttl_us).unwrap_or(i64::MAX);
    let lock = LockState { name: name.clone(), holder, epoch, expire_time_us: now_us.saturating_add(ttl_us) };
    catalog.locks.insert(name, lock.clone());
    writes.push(Write::PutLock(lock.clone()));
    Applied { response: Response::Lock { granted: true, lock }, writes }
}

/// Ends `holder`'s lock on `name` at once, so a standby need not wait for it
/// to expire. Anyone else's release changes nothing.
pub fn release(catalog: &mut Catalog, name: &str, holder: &str) -> Applied {
    let released = catalog.locks.get(name).is_some_and(|held| held.holder == holder);
    let mut writes = Vec::new();
    if released {
        catalog.locks.remove(name);
        writes.push(Write::DeleteLock { name: name.to_owned() });
    }
    Applied { response: Response::LockReleased { released }, writes }
}

fn next_epoch(catalog: &mut Catalog, writes: &mut Vec<Write>) -> u64 {
    catalog.last_lock_epoch += 1;
    writes.push(super::apply::id_counters(catalog));
    catalog.last_lock_epoch
}
