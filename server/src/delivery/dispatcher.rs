//! `Dispatcher`: the leader's delivery state for every subscription, and the
//! Pull / Acknowledge / ModifyAckDeadline operations on it.
//!
//! Each subscription's leases sit behind their own lock, so consumers of
//! different subscriptions never wait on each other. A leadership change
//! (a new term) drops every lease: the new term starts from the replicated
//! ack floors.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::sleep_until;

use super::ack_id::AckId;
use super::subscription::{AckPlan, Delivery, MessageSource, SubscriptionDelivery};
use crate::clock::Clock;
use crate::domain::limits::PULL_BYTES_MAX;
use crate::domain::{StoredMessage, SubscriptionState};
use crate::raft::AppliedState;
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

type Shared = Arc<Mutex<SubscriptionDelivery>>;

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
}

impl Dispatcher {
    pub fn new(state: Arc<AppliedState>, clock: Arc<dyn Clock>, outstanding_max: usize) -> Self {
        Self {
            state,
            clock,
            outstanding_max,
            leases: Mutex::new(Terms::default()),
            next_delivery_id: AtomicU64::new(rand::random()),
        }
    }

    /// Leases up to `count_max` messages, waiting up to `wait` for a first one.
    pub async fn pull(
        &self,
        term: u64,
        name: &str,
        count_max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, DeliveryError> {
        let give_up = self.clock.monotonic() + wait;
        let mut publishes = self.state.watch_publishes();
        loop {
            publishes.borrow_and_update();
            let (deliveries, next_deadline) = self.try_pull(term, name, count_max)?;
            let now = self.clock.monotonic();
            if !deliveries.is_empty() || now >= give_up {
                return Ok(deliveries);
            }
            let wake = next_deadline.map_or(give_up, |d| d.min(give_up));
            tokio::select! {
                changed = publishes.changed() => {
                    if changed.is_err() {
                        return Ok(deliveries);
                    }
                }
                () = sleep_until(wake) => {}
            }
        }
    }

    fn try_pull(
        &self,
        term: u64,
        name: &str,
        count_max: usize,
    ) -> Result<(Vec<Delivery>, Option<tokio::time::Instant>), DeliveryError> {
        let subscription = self.subscription(name)?;
        let shared = self.leases(term, &subscription);
        let db = self.state.db();
        let source = DbSource { db: &db, topic_id: subscription.topic_id, subscription_id: subscription.id };
        let mut leases = shared.lock();
        let now = self.clock.monotonic();
        let mut next_id = || self.next_delivery_id.fetch_add(1, Ordering::Relaxed);
        let deliveries =
            leases.lease(&source, &subscription.ack_floors, now, count_max, PULL_BYTES_MAX, &mut next_id)?;
        Ok((deliveries, leases.next_deadline()))
    }

    /// Marks acks as committing; the caller commits `plan.commit` through Raft
    /// and then calls [`finish_ack`](Self::finish_ack).
    pub fn begin_ack(&self, term: u64, subscription: &SubscriptionState, ids: &[AckId]) -> AckPlan {
        self.leases(term, subscription).lock().begin_ack(ids)
    }

    pub fn finish_ack(&self, term: u64, subscription: &SubscriptionState, keys: &[(u32, u64)], committed: bool) {
        self.leases(term, subscription).lock().finish_ack(keys, committed);
    }

    /// Returns (modified, stale).
    pub fn modify_deadline(
        &self,
        term: u64,
        subscription: &SubscriptionState,
        ids: &[AckId],
        seconds: u32,
    ) -> (u32, u32) {
        let now = self.clock.monotonic();
        self.leases(term, subscription).lock().modify_deadline(ids, now, seconds)
    }

    /// Drops the leases of a deleted subscription.
    pub fn forget(&self, subscription_id: u64) {
        self.leases.lock().by_subscription.remove(&subscription_id);
    }

    fn subscription(&self, name: &str) -> Result<SubscriptionState, DeliveryError> {
        let catalog = self.state.catalog();
        catalog.subscription(name).cloned().ok_or_else(|| DeliveryError::SubscriptionNotFound(name.to_owned()))
    }

    /// The leases of a subscription in this term, created on first use.
    fn leases(&self, term: u64, subscription: &SubscriptionState) -> Shared {
        let mut terms = self.leases.lock();
        if terms.term != term {
            *terms = Terms { term, by_subscription: HashMap::new() };
        }
        let all = &mut terms.by_subscription;
        if all.len() > self.state.catalog().subscription_count() {
            let catalog = self.state.catalog();
            all.retain(|id, _| catalog.subscription_by_id(*id).is_some());
        }
        let entry = all.entry(subscription.id).or_insert_with(|| {
            Arc::new(Mutex::new(SubscriptionDelivery::new(
                subscription.id,
                subscription.ack_floors.len(),
                Duration::from_secs(u64::from(subscription.config.ack_deadline_seconds)),
                self.outstanding_max,
            )))
        });
        Arc::clone(entry)
    }
}

/// A subscription's view of the state database.
struct DbSource<'a> {
    db: &'a StateDb,
    topic_id: u64,
    subscription_id: u64,
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
        self.db.read_messages(self.topic_id, partition, from, count_max, bytes_max)
    }

    fn read_one(&self, partition: u32, offset: u64) -> Result<Option<StoredMessage>, StorageError> {
        self.db.read_message(self.topic_id, partition, offset)
    }

    fn acked(&self, partition: u32, from: u64, to: u64) -> Result<Vec<u64>, StorageError> {
        self.db.acked_offsets(self.subscription_id, partition, from, to)
    }
}
