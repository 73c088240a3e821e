//! `SubscriptionDelivery`: which messages of one subscription are leased to
//! consumers right now, by this leader.
//!
//! Leases are leader-local (SPEC contract 3): they are not replicated, so a new
//! leader starts from the replicated ack floors and redelivers whatever was
//! leased but unacked — redelivery, never loss.
//!
//! Architecture invariant: at most `outstanding_max` messages are tracked per
//! subscription; the backlog itself stays on disk and is read in order through
//! per-partition cursors.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use super::ack_id::AckId;
use crate::domain::StoredMessage;

/// Where a subscription's messages and stored acks are read from.
pub trait MessageSource {
    type Error;
    /// Messages of `partition` from `from` on, at most `count_max` of them and
    /// about `bytes_max` bytes (at least one if any exists).
    fn read(
        &self,
        partition: u32,
        from: u64,
        count_max: usize,
        bytes_max: usize,
    ) -> Result<Vec<StoredMessage>, Self::Error>;
    fn read_one(&self, partition: u32, offset: u64) -> Result<Option<StoredMessage>, Self::Error>;
    /// Offsets in `from..to` acked individually (above the floor).
    fn acked(&self, partition: u32, from: u64, to: u64) -> Result<Vec<u64>, Self::Error>;
}

/// One delivery handed to a consumer.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub ack_id: AckId,
    pub attempt: u32,
    pub message: StoredMessage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeaseState {
    /// Held by a consumer until the deadline.
    Leased,
    /// An ack is being committed; not redelivered meanwhile.
    Acking,
    /// Expired or nacked: next in line for redelivery.
    Ready,
}

#[derive(Debug, Clone, Copy)]
struct Lease {
    delivery_id: u64,
    attempt: u32,
    deadline: Instant,
    state: LeaseState,
}

/// What to do with a batch of ack ids.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AckPlan {
    /// (partition, offset) to commit as acked.
    pub commit: Vec<(u32, u64)>,
    /// Acks of a delivery superseded by a redelivery: ignored.
    pub stale: u32,
}

/// Leases of one subscription under one leadership term (the dispatcher
/// drops them all when the term changes).
#[derive(Debug)]
pub struct SubscriptionDelivery {
    pub subscription_id: u64,
    ack_deadline: Duration,
    outstanding_max: usize,
    /// Per partition: the next offset not yet delivered in this term.
    cursors: Vec<u64>,
    leases: BTreeMap<(u32, u64), Lease>,
    next_partition: usize,
}

impl SubscriptionDelivery {
    pub fn new(subscription_id: u64, partitions: usize, ack_deadline: Duration, outstanding_max: usize) -> Self {
        Self {
            subscription_id,
            ack_deadline,
            outstanding_max,
            cursors: vec![0; partitions],
            leases: BTreeMap::new(),
            next_partition: 0,
        }
    }

    /// Messages leased now (not expired, not being acked).
    pub fn outstanding(&self) -> usize {
        self.leases.values().filter(|l| l.state != LeaseState::Ready).count()
    }

    /// The earliest lease deadline, to wake a waiting pull.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.leases.values().filter(|l| l.state == LeaseState::Leased).map(|l| l.deadline).min()
    }

    /// Leases up to `count_max` messages (about `bytes_max` bytes): first
    /// redeliveries of expired or nacked ones, then new ones in offset order,
    /// taking partitions in turn. `floors` are the replicated ack floors.
    pub fn lease<S: MessageSource>(
        &mut self,
        source: &S,
        floors: &[u64],
        now: Instant,
        count_max: usize,
        bytes_max: usize,
        next_delivery_id: &mut impl FnMut() -> u64,
    ) -> Result<Vec<Delivery>, S::Error> {
        self.forget_below(floors);
        self.expire(now);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let ready: Vec<(u32, u64)> =
            self.leases.iter().filter(|(_, l)| l.state == LeaseState::Ready).map(|(k, _)| *k).take(count_max).collect();
        for (partition, offset) in ready {
            if bytes >= bytes_max && !out.is_empty() {
                break;
            }
            match source.read_one(partition, offset)? {
                Some(message) => {
                    bytes += message.body.size_bytes();
                    out.push(self.grant(message, now, next_delivery_id()));
                }
                // Deleted under us (topic deleted or data trimmed): nothing to redeliver.
                None => {
                    self.leases.remove(&(partition, offset));
                }
            }
        }
        let partitions = self.cursors.len();
        let mut idle = 0;
        while out.len() < count_max && (bytes < bytes_max || out.is_empty()) && idle < partitions {
            if self.leases.len() >= self.outstanding_max {
                break;
            }
            let partition = self.next_partition % partitions;
            self.next_partition = (self.next_partition + 1) % partitions;
            let cursor = self.cursors[partition].max(floors.get(partition).copied().unwrap_or(0));
            let room = (count_max - out.len()).min(self.outstanding_max - self.leases.len());
            let messages = source.read(partition as u32, cursor, room, bytes_max.saturating_sub(bytes).max(1))?;
            let Some(last) = messages.last().map(|m| m.offset) else {
                self.cursors[partition] = cursor;
                idle += 1;
                continue;
            };
            idle = 0;
            let acked: BTreeSet<u64> = source.acked(partition as u32, cursor, last + 1)?.into_iter().collect();
            for message in messages {
                if acked.contains(&message.offset) || self.leases.contains_key(&(message.partition, message.offset)) {
                    continue;
                }
                bytes += message.body.size_bytes();
                out.push(self.grant(message, now, next_delivery_id()));
            }
            self.cursors[partition] = last + 1;
        }
        Ok(out)
    }

    fn grant(&mut self, message: StoredMessage, now: Instant, delivery_id: u64) -> Delivery {
        let key = (message.partition, message.offset);
        let attempt = self.leases.get(&key).map_or(1, |l| l.attempt + 1);
        let deadline = now + self.ack_deadline;
        self.leases.insert(key, Lease { delivery_id, attempt, deadline, state: LeaseState::Leased });
        let ack_id = AckId {
            subscription_id: self.subscription_id,
            partition: message.partition,
            offset: message.offset,
            delivery_id,
        };
        Delivery { ack_id, attempt, message }
    }

    /// Leases past their deadline become ready for redelivery.
    fn expire(&mut self, now: Instant) {
        for lease in self.leases.values_mut() {
            if lease.state == LeaseState::Leased && lease.deadline <= now {
                lease.state = LeaseState::Ready;
            }
        }
    }

    /// Drops leases the replicated floors already cover (acked).
    fn forget_below(&mut self, floors: &[u64]) {
        self.leases
            .retain(|(partition, offset), _| floors.get(*partition as usize).is_none_or(|floor| offset >= floor));
    }

    /// Sorts ack ids into those to commit and stale ones, and marks the
    /// committed ones so they are not redelivered while the commit runs.
    pub fn begin_ack(&mut self, ids: &[AckId]) -> AckPlan {
        let mut plan = AckPlan::default();
        for id in ids {
            let key = (id.partition, id.offset);
            match self.leases.get_mut(&key) {
                Some(lease) if lease.delivery_id != id.delivery_id && lease.state != LeaseState::Ready => {
                    plan.stale += 1;
                }
                Some(lease) => {
                    lease.state = LeaseState::Acking;
                    plan.commit.push(key);
                }
                // Delivered by an earlier leader, or already acked: committing
                // again is harmless.
                None => plan.commit.push(key),
            }
        }
        plan
    }

    /// Completes [`begin_ack`](Self::begin_ack): committed acks drop their
    /// leases; failed ones are leased again until their old deadline.
    pub fn finish_ack(&mut self, keys: &[(u32, u64)], committed: bool) {
        for key in keys {
            if committed {
                self.leases.remove(key);
            } else if let Some(lease) = self.leases.get_mut(key) {
                if lease.state == LeaseState::Acking {
                    lease.state = LeaseState::Leased;
                }
            }
        }
    }

    /// Changes the deadline of current leases; 0 seconds is a nack. Returns
    /// (modified, stale).
    pub fn modify_deadline(&mut self, ids: &[AckId], now: Instant, seconds: u32) -> (u32, u32) {
        let (mut modified, mut stale) = (0, 0);
        for id in ids {
            match self.leases.get_mut(&(id.partition, id.offset)) {
                Some(lease) if lease.delivery_id == id.delivery_id && lease.state == LeaseState::Leased => {
                    if seconds == 0 {
                        lease.state = LeaseState::Ready;
                    } else {
                        lease.deadline = now + Duration::from_secs(u64::from(seconds));
                    }
                    modified += 1;
                }
                _ => stale += 1,
            }
        }
        (modified, stale)
    }
}
