//! `Dispatcher`: the leader's delivery state for every subscription, and the
//! lease, ack and lease-change operations the services run on it.
//!
//! Each subscription's leases sit behind their own lock, so consumers of
//! different subscriptions never wait on each other, and the consumers of one
//! subscription take turns at it — that is the load balancing. A leadership
//! change (a new term) drops every lease: the new term starts from the
//! replicated ack floors. A seek drops the leases of its subscription.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;

use super::ack_id::AckId;
use super::policy::DeliveryPolicy;
use super::subscription::{
    another_round, read_all, AckPlan, ConsumerId, Holding, Leased, Lessee, MessageSource, SubscriptionDelivery,
};
use crate::clock::Clock;
use crate::domain::{StoredMessage, SubscriptionState};
use crate::raft::{AppliedState, ArrivalWatch};
use crate::storage::state_db::StateDb;
use crate::storage::StorageError;

/// Leased messages per subscription, at most.
pub const OUTSTANDING_MAX_DEFAULT: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("subscription {0:?} does not exist")]
    SubscriptionNotFound(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// One subscription's leases in this term and seek epoch, and who waits on them.
#[derive(Debug)]
struct Slot {
    /// Outside the lock: finding the slot must not wait for a lease call.
    seek_epoch: u64,
    /// The policy `leases` follows, replaced when the subscription's
    /// settings change (only ever locked under the `leases` map's lock).
    policy: Mutex<DeliveryPolicy>,
    leases: Mutex<SubscriptionDelivery>,
    /// Per partition, held while a lease call reads it. Lease calls reading
    /// one partition read neighbouring offsets, most often of one stored
    /// batch: one after the other, the second finds the batch in the state
    /// block cache, whereas at the same time each would read it from disk.
    reading: Box<[Mutex<()>]>,
    /// Bumped whenever leases go away or become deliverable again (acks
    /// committed, a move finished, a nack): room under `outstanding_max` for
    /// every consumer of the subscription, not only the one that acked.
    released: watch::Sender<u64>,
}

impl Slot {
    fn lock(&self) -> parking_lot::MutexGuard<'_, SubscriptionDelivery> {
        self.leases.lock()
    }

    fn wake(&self) {
        self.released.send_modify(|count| *count = count.wrapping_add(1));
    }
}

type Shared = Arc<Slot>;

/// Every subscription's leases, all of one leadership term.
#[derive(Debug, Default)]
struct Terms {
    term: u64,
    by_subscription: HashMap<u64, Shared>,
}

#[derive(Debug)]
pub struct Dispatcher {
    state: Arc<AppliedState>,
    clock: Arc<dyn Clock>,
    outstanding_max: usize,
    leases: Mutex<Terms>,
    /// Starts at a random value per process, so delivery ids of different
    /// leaders do not collide.
    next_delivery_id: AtomicU64,
    next_consumer_id: AtomicU64,
}

/// What a consumer with nothing to take waits on: see [`Dispatcher::watch`].
#[derive(Debug)]
pub struct Wakeups {
    arrivals: ArrivalWatch,
    released: watch::Receiver<u64>,
}

impl Dispatcher {
    pub fn new(state: Arc<AppliedState>, clock: Arc<dyn Clock>, outstanding_max: usize) -> Self {
        Self {
            state,
            clock,
            outstanding_max,
            leases: Mutex::new(Terms::default()),
            next_delivery_id: AtomicU64::new(rand::random()),
            next_consumer_id: AtomicU64::new(1),
        }
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// A fresh consumer id for a stream.
    pub fn new_consumer(&self) -> ConsumerId {
        self.next_consumer_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The subscription as of the last applied entry.
    pub fn subscription(&self, name: &str) -> Result<SubscriptionState, DeliveryError> {
        let catalog = self.state.catalog();
        catalog.subscription(name).cloned().ok_or_else(|| DeliveryError::SubscriptionNotFound(name.to_owned()))
    }

    /// Leases what `lessee` can take now, without waiting. The subscription's
    /// lock is not held while new messages are read (see
    /// [`SubscriptionDelivery::start_lease`]); each partition's reading lock
    /// is.
    pub fn lease(&self, term: u64, name: &str, lessee: Lessee) -> Result<Leased, DeliveryError> {
        let shared = self.leases(term, &self.subscription(name)?);
        let db = self.state.db();
        let mut next_id = || self.next_delivery_id.fetch_add(1, Ordering::Relaxed);
        loop {
            // Each round reads the floors, ends and stored acks afresh.
            let subscription = self.subscription(name)?;
            let floors = subscription.floors();
            let source = DbSource {
                db: &db,
                topic_id: subscription.topic_id,
                subscription_id: subscription.id,
                stores_acks: subscription.acks.iter().map(|ack| ack.acked_above > 0).collect(),
                floors: &floors,
                ends: self.state.catalog().partition_ends(subscription.topic_id),
                reading: &shared.reading,
            };
            let now = self.clock.monotonic();
            let (mut leased, reads) = shared.lock().start_lease(&source, &floors, now, lessee, &mut next_id)?;
            let done = read_all(&source, reads)?;
            let read_some = done.iter().any(|d| !d.messages.is_empty());
            shared.lock().finish_lease(&mut leased, done, now, lessee, &mut next_id);
            if !another_round(&leased, read_some) {
                return Ok(leased);
            }
        }
    }

    /// Fires when messages are appended to the subscription's topic, a seek
    /// or snapshot is applied, or leases of the subscription are released;
    /// take it before leasing, then [`wait`](Self::wait) on it if nothing was
    /// there.
    pub fn watch(&self, term: u64, subscription: &SubscriptionState) -> Wakeups {
        let arrivals = self.state.watch_arrivals(subscription.topic_id);
        let mut released = self.leases(term, subscription).released.subscribe();
        released.borrow_and_update();
        Wakeups { arrivals, released }
    }

    /// Waits until new messages may be deliverable: what [`watch`](Self::watch)
    /// fires on, a lease or backoff of the subscription ran out, or `give_up`
    /// (real time) passed. Leases that ran out already are expired first,
    /// waking their consumers: a consumer without room makes no lease call
    /// that would expire them, and must not wait on a deadline passed.
    pub async fn wait(&self, term: u64, name: &str, wakeups: &mut Wakeups, give_up: Instant) {
        let next_deadline = self.subscription(name).ok().and_then(|subscription| {
            let slot = self.leases(term, &subscription);
            let advanced = slot.lock().advance(self.clock.monotonic());
            if advanced.expired > 0 {
                slot.wake();
            }
            advanced.next_deadline
        });
        let deadline = async {
            match next_deadline {
                Some(deadline) => self.clock.sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = wakeups.arrivals.changed() => {}
            _ = wakeups.released.changed() => {}
            () = deadline => {}
            () = tokio::time::sleep_until(give_up) => {}
        }
    }

    /// Leases up to `count_max` messages, waiting up to `wait` for a first one.
    pub async fn pull(&self, term: u64, name: &str, lessee: Lessee, wait: Duration) -> Result<Leased, DeliveryError> {
        let give_up = Instant::now() + wait;
        loop {
            let mut wakeups = self.watch(term, &self.subscription(name)?);
            let leased = self.lease(term, name, lessee)?;
            if !leased.deliveries.is_empty() || !leased.exhausted.is_empty() || Instant::now() >= give_up {
                return Ok(leased);
            }
            self.wait(term, name, &mut wakeups, give_up).await;
        }
    }

    /// What `consumer` holds of a subscription now.
    pub fn holding(&self, term: u64, subscription: &SubscriptionState, consumer: ConsumerId) -> Holding {
        self.leases(term, subscription).lock().holding(consumer)
    }

    /// Messages leased to consumers of a subscription right now.
    pub fn leased(&self, term: u64, subscription: &SubscriptionState) -> usize {
        self.leases(term, subscription).lock().leased()
    }

    /// Forgets a consumer whose stream ended; what it held goes to the others.
    pub fn drop_consumer(&self, term: u64, subscription: &SubscriptionState, consumer: ConsumerId) {
        let now = self.clock.monotonic();
        let slot = self.leases(term, subscription);
        let given_back = slot.lock().drop_consumer(consumer, now);
        if given_back > 0 {
            slot.wake();
        }
    }

    /// Marks acks as committing; the caller commits `plan.commit` through Raft
    /// and then calls [`finish_ack`](Self::finish_ack).
    pub fn begin_ack(&self, term: u64, subscription: &SubscriptionState, ids: &[AckId]) -> AckPlan {
        self.leases(term, subscription).lock().begin_ack(ids)
    }

    pub fn finish_ack(&self, term: u64, subscription: &SubscriptionState, keys: &[(u32, u64)], committed: bool) {
        let now = self.clock.monotonic();
        let slot = self.leases(term, subscription);
        slot.lock().finish_ack(keys, committed, now);
        slot.wake();
    }

    pub fn finish_dead_letter(&self, term: u64, subscription: &SubscriptionState, position: (u32, u64), moved: bool) {
        let now = self.clock.monotonic();
        let slot = self.leases(term, subscription);
        slot.lock().finish_dead_letter(position, moved, now);
        slot.wake();
    }

    /// Returns the ids that held no current lease.
    pub fn modify_deadline(
        &self,
        term: u64,
        subscription: &SubscriptionState,
        ids: &[AckId],
        seconds: u32,
    ) -> Vec<AckId> {
        let now = self.clock.monotonic();
        let slot = self.leases(term, subscription);
        let stale = slot.lock().modify_deadline(ids, now, seconds);
        if seconds == 0 {
            slot.wake();
        }
        stale
    }

    /// Drops the leases of a deleted subscription.
    pub fn forget(&self, subscription_id: u64) {
        self.leases.lock().by_subscription.remove(&subscription_id);
    }

    /// The leases of a subscription in this term and seek epoch, created on
    /// first use.
    fn leases(&self, term: u64, subscription: &SubscriptionState) -> Shared {
        let mut terms = self.leases.lock();
        if term < terms.term {
            // A call of a leadership this node has lost since (a stream
            // ending late): its leases are gone. A slot of its own keeps it
            // from starting that term afresh, which dropped the current
            // term's leases and redelivered what they held.
            return Arc::new(self.fresh_slot(subscription));
        }
        if terms.term != term {
            *terms = Terms { term, by_subscription: HashMap::new() };
        }
        let all = &mut terms.by_subscription;
        if all.len() > self.state.catalog().subscription_count() {
            let catalog = self.state.catalog();
            all.retain(|id, _| catalog.subscription_by_id(*id).is_some());
        }
        match all.get(&subscription.id).map(|slot| slot.seek_epoch) {
            // A caller's copy from before a seek (an ack waiting for its
            // commit): the leases it knew are gone. A slot of its own keeps
            // it from putting the old epoch back, which dropped the current
            // epoch's leases and redelivered what they held.
            Some(epoch) if subscription.seek_epoch < epoch => return Arc::new(self.fresh_slot(subscription)),
            Some(epoch) if subscription.seek_epoch > epoch => {
                all.remove(&subscription.id);
            }
            _ => {}
        }
        let entry = all.entry(subscription.id).or_insert_with(|| Arc::new(self.fresh_slot(subscription)));
        // From the catalog, not `subscription`: a caller may hold a copy
        // taken before an update (an ack waiting for its commit), which must
        // not put the old settings back.
        let policy = match self.state.catalog().subscription_by_id(subscription.id) {
            Some(current) => DeliveryPolicy::of(&current.config),
            None => DeliveryPolicy::of(&subscription.config),
        };
        let mut followed = entry.policy.lock();
        if *followed != policy {
            entry.leases.lock().set_policy(policy);
            *followed = policy;
        }
        drop(followed);
        Arc::clone(entry)
    }

    fn fresh_slot(&self, subscription: &SubscriptionState) -> Slot {
        Slot {
            seek_epoch: subscription.seek_epoch,
            policy: Mutex::new(DeliveryPolicy::of(&subscription.config)),
            leases: Mutex::new(SubscriptionDelivery::new(
                subscription.id,
                subscription.acks.len(),
                DeliveryPolicy::of(&subscription.config),
                self.outstanding_max,
            )),
            reading: (0..subscription.acks.len()).map(|_| Mutex::new(())).collect(),
            released: watch::Sender::new(0),
        }
    }
}

/// A subscription's view of the state database.
struct DbSource<'a> {
    db: &'a StateDb,
    topic_id: u64,
    subscription_id: u64,
    /// Per partition: whether any ack is stored above the floor. Most often
    /// none is (one consumer acks in order), and then looking costs a RocksDB
    /// iterator per read for nothing.
    stores_acks: Vec<bool>,
    /// Per partition: the ack floor, below which no stored ack is looked for.
    floors: &'a [u64],
    /// Per partition: the next offset, as of the last applied entry.
    ends: Vec<u64>,
    /// Per partition: the subscription's reading lock ([`Slot::reading`]).
    reading: &'a [Mutex<()>],
}

impl MessageSource for DbSource<'_> {
    type Error = StorageError;

    fn read(
        &self,
        partition: u32,
        from: u64,
        count_max: usize,
        bytes_max: usize,
    ) -> Result<Vec<StoredMessage>, StorageError> {
        // Waiting here mostly costs what reading the shared batch again
        // would, and spares the disk that read.
        let _one_at_a_time = self.reading.get(partition as usize).map(Mutex::lock);
        self.db.read_messages(self.topic_id, partition, from, count_max, bytes_max)
    }

    fn read_one(&self, partition: u32, offset: u64) -> Result<Option<StoredMessage>, StorageError> {
        self.db.read_message(self.topic_id, partition, offset)
    }

    fn acked(&self, partition: u32, from: u64, to: u64) -> Result<Vec<u64>, StorageError> {
        if !self.stores_acks.get(partition as usize).copied().unwrap_or(true) {
            return Ok(Vec::new());
        }
        let floor = self.floors.get(partition as usize).copied().unwrap_or(0);
        self.db.acked_offsets(self.subscription_id, partition, floor, from, to)
    }

    fn end(&self, partition: u32) -> u64 {
        self.ends.get(partition as usize).copied().unwrap_or(0)
    }
}

#[cfg(test)]
#[path = "dispatcher_tests.rs"]
mod tests;
