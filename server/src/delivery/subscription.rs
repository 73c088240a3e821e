//! `SubscriptionDelivery`: which messages of one subscription are leased to
//! which consumer right now, by this leader.
//!
//! Leases are leader-local (SPEC contract 3): they are not replicated, so a new
//! leader starts from the replicated ack floors and redelivers whatever was
//! leased but unacked — redelivery, never loss.
//!
//! Messages with an ordering key go out one at a time per key: the next
//! waits (as a bare offset) until the one before it is acked or
//! dead-lettered. Messages without a key never wait behind a key.
//!
//! Architecture invariant: at most `outstanding_max` leases and
//! `WAITING_MAX` waiting offsets per subscription; the backlog itself stays on
//! disk and is read in order through per-partition cursors.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use foldhash::fast::RandomState;
use tokio::time::Instant;

use super::ack_id::AckId;
use super::leases::{Lease, LeaseState, Leases, Position};
use super::policy::DeliveryPolicy;
use crate::domain::StoredMessage;

/// Offsets held back behind an earlier message of their ordering key, at most.
pub const WAITING_MAX: usize = 100_000;

/// Identifies one consumer (a stream, or all unary pulls) for flow control.
pub type ConsumerId = u64;

/// Unary pulls share this consumer id; they have no flow control.
pub const UNARY_CONSUMER: ConsumerId = 0;

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
    /// Offsets in `from..to` acked above the floor, ascending.
    fn acked(&self, partition: u32, from: u64, to: u64) -> Result<Vec<u64>, Self::Error>;
    /// The offset the next message of `partition` will get.
    fn end(&self, partition: u32) -> u64;
}

/// New messages a lease call reads: see [`SubscriptionDelivery::start_lease`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    pub partition: u32,
    pub from: u64,
    pub count_max: usize,
    pub bytes_max: usize,
}

/// What a [`Read`] found: its messages, and which of them are acked.
#[derive(Debug)]
pub struct Done {
    pub partition: u32,
    pub messages: Vec<StoredMessage>,
    /// Ascending.
    pub acked: Vec<u64>,
}

/// Whether a lease call should run another round: when the last one read
/// messages but leased none (all acked already, waiting behind their key, or
/// taken by another call meanwhile), it moved the cursors past them and the
/// next may find some. A call that returned nothing while more was there
/// would leave its consumer waiting for a wakeup that may never come. Each
/// round reads on from where the last one stopped, so the rounds end.
pub fn another_round(leased: &Leased, read_some: bool) -> bool {
    leased.deliveries.is_empty() && leased.exhausted.is_empty() && read_some
}

/// An owner that made no lease call for this long (it is full: stuck, or
/// slow) shares its partitions with every consumer.
pub const OWNER_IDLE: Duration = Duration::from_secs(1);

/// A stream consumer, for partition ownership (see [`read_order`]).
#[derive(Debug, Clone, Copy)]
struct Owner {
    consumer: ConsumerId,
    last_lease: Instant,
}

/// The partitions a lease call tries, in order: first those it reads as its
/// own (`own[p]`), then the rest; each group in turn from `turn`.
///
/// Partition `p` belongs to the `p mod n`-th of the subscription's `n`
/// stream consumers, and to everyone while that one is idle. A partition
/// read by one consumer while it keeps up goes out in offset order and its
/// acks come back in order, so the ack floor climbs without storing acks
/// one by one. Consumers that took turns on every partition acked far out
/// of order: four of them draining four partitions cost the node 2.0 µs of
/// CPU per message, 1.7 µs this way. Reading the rest when its own run dry,
/// and sharing the partitions of an idle owner, keep every partition moving
/// while some consumer has room.
fn read_order(own: &[bool], turn: usize) -> impl Iterator<Item = usize> + '_ {
    let partitions = own.len();
    let in_turn = (0..partitions).map(move |k| (turn + k) % partitions);
    in_turn.clone().filter(|&p| own[p]).chain(in_turn.filter(|&p| !own[p]))
}

/// Makes `reads` against `source`.
pub fn read_all<S: MessageSource>(source: &S, reads: Vec<Read>) -> Result<Vec<Done>, S::Error> {
    let mut done = Vec::with_capacity(reads.len());
    for Read { partition, from, count_max, bytes_max } in reads {
        let messages = source.read(partition, from, count_max, bytes_max)?;
        let acked = match messages.last() {
            Some(last) => source.acked(partition, from, last.offset + 1)?,
            None => Vec::new(),
        };
        done.push(Done { partition, messages, acked });
    }
    Ok(done)
}

/// One delivery handed to a consumer.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub ack_id: AckId,
    pub attempt: u32,
    pub message: StoredMessage,
}

/// A message delivered as often as the policy allows, to be moved to the
/// dead-letter topic by the caller (then [`SubscriptionDelivery::finish_dead_letter`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Exhausted {
    pub message: StoredMessage,
    pub attempts: u32,
}

/// What one call to [`SubscriptionDelivery::lease`] hands out.
#[derive(Debug, Default)]
pub struct Leased {
    pub deliveries: Vec<Delivery>,
    pub exhausted: Vec<Exhausted>,
}

/// Who asks for messages, and how many (and bytes) it can take now.
#[derive(Debug, Clone, Copy)]
pub struct Lessee {
    pub consumer: ConsumerId,
    pub count_max: usize,
    pub bytes_max: usize,
}

impl Lessee {
    /// Whether `count` messages of `bytes` fill its room (one message
    /// always fits, whatever its size).
    fn full(&self, count: usize, bytes: usize) -> bool {
        count >= self.count_max || (bytes >= self.bytes_max && count > 0)
    }
}

/// What [`SubscriptionDelivery::advance`] did and found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advanced {
    /// Leases that ran out: their consumers have room again.
    pub expired: usize,
    /// When time alone next changes a lease, if it will.
    pub next_deadline: Option<Instant>,
}

/// What one consumer holds: flow control counts against it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Holding {
    pub messages: usize,
    pub bytes: usize,
}

/// What to do with a batch of ack ids.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AckPlan {
    /// (partition, offset) to commit as acked.
    pub commit: Vec<Position>,
    /// Acks of a delivery superseded by a redelivery: ignored.
    pub stale: Vec<AckId>,
}

/// Leases of one subscription under one leadership term and seek epoch (the
/// dispatcher starts afresh when either changes).
#[derive(Debug)]
pub struct SubscriptionDelivery {
    pub subscription_id: u64,
    policy: DeliveryPolicy,
    outstanding_max: usize,
    /// Per partition: the next offset not yet read in this term.
    cursors: Vec<u64>,
    leases: Leases,
    /// Per ordering key with a message in flight: the offsets waiting behind it.
    keys: HashMap<String, VecDeque<Position>>,
    waiting: usize,
    /// Looked up twice per message (lease and ack), so hashed with foldhash
    /// (seeded per map): SipHash here was 2% of a drain's CPU. The ids are
    /// the server's own, so foldhash's weaker resistance to chosen keys does
    /// not matter here (it would for `keys`, which clients choose). An entry
    /// is made by a consumer's first lease and goes only with
    /// [`drop_consumer`](Self::drop_consumer), never when its holding falls
    /// to nothing: `finish_ack` takes a missing one for a consumer gone.
    consumers: HashMap<ConsumerId, Holding, RandomState>,
    /// Stream consumers in the order they first leased: partition `p` is
    /// read first by `owners[p % owners.len()]` (see [`read_order`]).
    owners: Vec<Owner>,
    next_partition: usize,
}

impl SubscriptionDelivery {
    /// Takes up a subscription's changed settings: leases granted from now
    /// on, and backoffs begun from now on, follow them.
    pub fn set_policy(&mut self, policy: DeliveryPolicy) {
        self.policy = policy;
    }

    pub fn new(subscription_id: u64, partitions: usize, policy: DeliveryPolicy, outstanding_max: usize) -> Self {
        Self {
            subscription_id,
            policy,
            outstanding_max,
            cursors: vec![0; partitions],
            leases: Leases::default(),
            keys: HashMap::new(),
            waiting: 0,
            consumers: HashMap::default(),
            owners: Vec::new(),
            next_partition: 0,
        }
    }

    /// Messages leased now (not expired, not waiting for redelivery).
    pub fn leased(&self) -> usize {
        self.leases.held()
    }

    /// What `consumer` holds now.
    pub fn holding(&self, consumer: ConsumerId) -> Holding {
        self.consumers.get(&consumer).copied().unwrap_or_default()
    }

    /// Forgets a consumer whose stream ended, and gives back what it still
    /// held: ready for redelivery at once, as a nack would. A closing
    /// subscriber nacks what it holds, but messages still on their way to it
    /// would otherwise wait out their ack deadline (ten minutes, say) while
    /// other consumers idle. Returns how many it gave back.
    pub fn drop_consumer(&mut self, consumer: ConsumerId, now: Instant) -> usize {
        self.consumers.remove(&consumer);
        self.owners.retain(|owner| owner.consumer != consumer);
        let held = self.leases.leased_to(consumer);
        for position in &held {
            self.leases.modify(position, |lease| {
                lease.state = LeaseState::Ready;
                lease.deadline = now;
            });
        }
        held.len()
    }

    /// For a consumer about to wait: expires the leases that ran out by
    /// `now` (their consumers have room again: wake them), and says when time
    /// alone next changes a lease. Redeliveries due already are not waited
    /// for: a consumer with room takes them in its lease call, and one
    /// without room has nothing to do until room is made.
    pub fn advance(&mut self, now: Instant) -> Advanced {
        let expired = self.expire(now);
        Advanced { expired, next_deadline: self.leases.next_deadline_after(now) }
    }

    /// The first half of a lease call: leases redeliveries whose backoff has
    /// passed (reading them here: they are few), and plans the reads of new
    /// messages, in offset order, from the lessee's own partitions first
    /// (see [`read_order`]). The caller makes
    /// those reads without holding this subscription's lock, then calls
    /// [`finish_lease`](Self::finish_lease): a read of a thousand messages
    /// takes about half a millisecond, and the acks of every consumer of the
    /// subscription must not wait for it. Messages that used up their
    /// delivery attempts come back as `exhausted` instead. `floors` are the
    /// replicated ack floors.
    pub fn start_lease<S: MessageSource>(
        &mut self,
        source: &S,
        floors: &[u64],
        now: Instant,
        lessee: Lessee,
        next_delivery_id: &mut impl FnMut() -> u64,
    ) -> Result<(Leased, Vec<Read>), S::Error> {
        self.forget_below(floors, now);
        self.expire(now);
        let mut out = Leased::default();
        let mut bytes = 0usize;

        // Expired leases are `Ready` now, so whatever is due is a redelivery.
        let ready = self.leases.due(now);
        for (partition, offset) in ready {
            if lessee.full(out.deliveries.len(), bytes) {
                break;
            }
            let Some(message) = source.read_one(partition, offset)? else {
                // Deleted under us (retention, or the topic is gone).
                self.remove((partition, offset), now);
                continue;
            };
            // An ack whose commit was reported failed (a timeout, say) may
            // still have been stored: the acks are the truth, not the lease.
            if !source.acked(partition, offset, offset + 1)?.is_empty() {
                self.remove((partition, offset), now);
                continue;
            }
            let attempts = self.leases.get(&(partition, offset)).map_or(0, |l| l.attempt);
            if self.policy.exhausted(attempts) {
                self.leases.modify(&(partition, offset), |lease| lease.state = LeaseState::DeadLettering);
                out.exhausted.push(Exhausted { message, attempts });
                continue;
            }
            bytes += message.body.size_bytes();
            out.deliveries.push(self.grant(message, lessee.consumer, now, next_delivery_id()));
        }

        // New messages: as many as the lessee and `outstanding_max` have room
        // for, from each partition with some past its cursor, its own first.
        let own = self.own_partitions(lessee.consumer, now);
        let mut reads = Vec::new();
        let mut room = (lessee.count_max.saturating_sub(out.deliveries.len()))
            .min(self.outstanding_max.saturating_sub(self.leases.len()));
        if lessee.full(out.deliveries.len(), bytes) || self.waiting >= WAITING_MAX {
            room = 0;
        }
        let partitions = self.cursors.len();
        let turn = self.next_partition;
        self.next_partition = (turn + 1) % partitions.max(1);
        for partition in read_order(&own, turn) {
            if room == 0 {
                break;
            }
            let cursor = self.cursors[partition].max(floors.get(partition).copied().unwrap_or(0));
            self.cursors[partition] = cursor;
            let available = source.end(partition as u32).saturating_sub(cursor);
            if available == 0 {
                continue;
            }
            let count_max = room.min(usize::try_from(available).unwrap_or(usize::MAX));
            let bytes_max = lessee.bytes_max.saturating_sub(bytes).max(1);
            reads.push(Read { partition: partition as u32, from: cursor, count_max, bytes_max });
            room -= count_max;
        }
        Ok((out, reads))
    }

    /// Notes that stream consumer `consumer` leases now (the first time:
    /// it becomes an owner) and says which partitions it reads as its own.
    fn own_partitions(&mut self, consumer: ConsumerId, now: Instant) -> Vec<bool> {
        if consumer != UNARY_CONSUMER {
            match self.owners.iter_mut().find(|owner| owner.consumer == consumer) {
                Some(owner) => owner.last_lease = now,
                None => self.owners.push(Owner { consumer, last_lease: now }),
            }
        }
        let owner_of = |p: usize| self.owners.get(p % self.owners.len().max(1));
        let own = |owner: &Owner| owner.consumer == consumer || now.duration_since(owner.last_lease) >= OWNER_IDLE;
        (0..self.cursors.len()).map(|p| owner_of(p).is_some_and(own)).collect()
    }

    /// The second half of a lease call: leases what the reads found, up to
    /// the lessee's room. Messages another lease call took since the reads
    /// were planned are skipped.
    pub fn finish_lease(
        &mut self,
        out: &mut Leased,
        reads: Vec<Done>,
        now: Instant,
        lessee: Lessee,
        next_delivery_id: &mut impl FnMut() -> u64,
    ) {
        let mut bytes: usize = out.deliveries.iter().map(|d| d.message.body.size_bytes()).sum();
        // Room for what was read up front: growing a thousand deliveries
        // step by step copied them over and over.
        let read: usize = reads.iter().map(|done| done.messages.len()).sum();
        out.deliveries.reserve(read.min(lessee.count_max.saturating_sub(out.deliveries.len())));
        'reads: for Done { partition, messages, acked } in reads {
            let partition = partition as usize;
            for message in messages {
                let room = self.leases.len() < self.outstanding_max && self.waiting < WAITING_MAX;
                if !room || lessee.full(out.deliveries.len(), bytes) {
                    break 'reads;
                }
                if message.offset < self.cursors[partition] {
                    continue;
                }
                let position = (message.partition, message.offset);
                self.cursors[partition] = message.offset + 1;
                if acked.binary_search(&message.offset).is_ok() || self.leases.contains(&position) {
                    continue;
                }
                let key = &message.body.ordering_key;
                if !key.is_empty() {
                    if let Some(waiting) = self.keys.get_mut(key) {
                        waiting.push_back(position);
                        self.waiting += 1;
                        continue;
                    }
                    self.keys.insert(key.clone(), VecDeque::new());
                }
                bytes += message.body.size_bytes();
                out.deliveries.push(self.grant(message, lessee.consumer, now, next_delivery_id()));
            }
        }
    }

    fn grant(&mut self, message: StoredMessage, consumer: ConsumerId, now: Instant, delivery_id: u64) -> Delivery {
        let position = (message.partition, message.offset);
        let attempt = self.leases.get(&position).map_or(0, |l| l.attempt) + 1;
        let size = message.body.size_bytes() as u64;
        let key = (!message.body.ordering_key.is_empty()).then(|| message.body.ordering_key.clone());
        let lease = Lease {
            delivery_id,
            attempt,
            state: LeaseState::Leased,
            deadline: now + self.policy.ack_deadline,
            consumer,
            size,
            key,
        };
        Self::hold(&mut self.consumers, &lease);
        self.leases.insert(position, lease);
        let ack_id = AckId {
            subscription_id: self.subscription_id,
            partition: message.partition,
            offset: message.offset,
            delivery_id,
        };
        Delivery { ack_id, attempt, message }
    }

    fn hold(consumers: &mut HashMap<ConsumerId, Holding, RandomState>, lease: &Lease) {
        let holding = consumers.entry(lease.consumer).or_default();
        holding.messages += 1;
        holding.bytes += lease.size as usize;
    }

    fn release(consumers: &mut HashMap<ConsumerId, Holding, RandomState>, lease: &Lease) {
        if let Some(holding) = consumers.get_mut(&lease.consumer) {
            holding.messages = holding.messages.saturating_sub(1);
            holding.bytes = holding.bytes.saturating_sub(lease.size as usize);
        }
    }

    /// Leases past their deadline wait out the retry backoff, then go
    /// again. Returns how many expired.
    fn expire(&mut self, now: Instant) -> usize {
        let mut expired = 0;
        for position in self.leases.due(now) {
            self.leases.modify(&position, |lease| {
                if lease.state == LeaseState::Leased {
                    Self::release(&mut self.consumers, lease);
                    lease.state = LeaseState::Ready;
                    // The backoff runs from when the lease ran out, not from when we noticed.
                    lease.deadline += self.policy.backoff(lease.attempt);
                    expired += 1;
                }
            });
        }
        expired
    }

    /// Drops a lease for good (acked, dead-lettered or deleted) and lets the
    /// next message of its ordering key go.
    fn remove(&mut self, position: Position, now: Instant) {
        if let Some(lease) = self.leases.remove(&position) {
            self.settle(lease, now);
        }
    }

    /// What goes with a lease dropped for good: its consumer's room, and the
    /// next message of its ordering key.
    fn settle(&mut self, lease: Lease, now: Instant) {
        if lease.counts_for_consumer() {
            Self::release(&mut self.consumers, &lease);
        }
        let Some(key) = lease.key else { return };
        let next = self.keys.get_mut(&key).and_then(VecDeque::pop_front);
        match next {
            Some(next) => {
                self.waiting -= 1;
                // Never delivered yet: no backoff.
                let lease = Lease {
                    delivery_id: 0,
                    attempt: 0,
                    state: LeaseState::Ready,
                    deadline: now,
                    consumer: UNARY_CONSUMER,
                    size: 0,
                    key: Some(key),
                };
                self.leases.insert(next, lease);
            }
            None => {
                self.keys.remove(&key);
            }
        }
    }

    /// Drops leases the replicated floors already cover (acked elsewhere, or
    /// trimmed by retention).
    fn forget_below(&mut self, floors: &[u64], now: Instant) {
        for (partition, floor) in floors.iter().enumerate() {
            for (_, lease) in self.leases.remove_below(partition as u32, *floor) {
                self.settle(lease, now);
            }
        }
    }

    /// Sorts ack ids into those to commit and stale ones, and marks the
    /// committed ones so they are not redelivered while the commit runs.
    pub fn begin_ack(&mut self, ids: &[AckId]) -> AckPlan {
        let mut plan = AckPlan::default();
        for id in ids {
            let key = (id.partition, id.offset);
            let current = self.leases.modify(&key, |lease| {
                if lease.delivery_id != id.delivery_id && lease.state != LeaseState::Ready {
                    return false;
                }
                match lease.state {
                    LeaseState::Ready => lease.consumer = UNARY_CONSUMER,
                    LeaseState::Leased => Self::release(&mut self.consumers, lease),
                    LeaseState::Acking | LeaseState::DeadLettering => {}
                }
                lease.state = LeaseState::Acking;
                true
            });
            match current {
                Some(false) => plan.stale.push(*id),
                // Without a lease it was delivered by an earlier leader, or
                // already acked: committing again is harmless.
                Some(true) | None => plan.commit.push(key),
            }
        }
        plan
    }

    /// Completes [`begin_ack`](Self::begin_ack): committed acks drop their
    /// leases; failed ones are leased again until their old deadline, or
    /// are ready at once if their stream's consumer went meanwhile (held
    /// again, they would wait out that deadline for a consumer that is
    /// gone, which would count as holding them for good).
    pub fn finish_ack(&mut self, keys: &[Position], committed: bool, now: Instant) {
        for key in keys {
            if committed {
                self.remove(*key, now);
            } else {
                self.leases.modify(key, |lease| {
                    if lease.state != LeaseState::Acking {
                        return;
                    }
                    let gone = lease.consumer != UNARY_CONSUMER && !self.consumers.contains_key(&lease.consumer);
                    if gone {
                        lease.state = LeaseState::Ready;
                        lease.deadline = now;
                    } else {
                        lease.state = LeaseState::Leased;
                        Self::hold(&mut self.consumers, lease);
                    }
                });
            }
        }
    }

    /// Completes a dead-lettering: moved messages are gone from here; a failed
    /// move is retried after the backoff.
    pub fn finish_dead_letter(&mut self, position: Position, moved: bool, now: Instant) {
        if moved {
            self.remove(position, now);
        } else {
            self.leases.modify(&position, |lease| {
                lease.state = LeaseState::Ready;
                lease.deadline = now + self.policy.backoff(lease.attempt);
            });
        }
    }

    /// Changes the deadline of current leases; 0 seconds is a nack (redeliver
    /// after the retry backoff). Returns the ids that held no current lease.
    pub fn modify_deadline(&mut self, ids: &[AckId], now: Instant, seconds: u32) -> Vec<AckId> {
        let mut stale = Vec::new();
        for id in ids {
            let changed = self.leases.modify(&(id.partition, id.offset), |lease| {
                if lease.delivery_id != id.delivery_id || lease.state != LeaseState::Leased {
                    return false;
                }
                if seconds == 0 {
                    Self::release(&mut self.consumers, lease);
                    lease.state = LeaseState::Ready;
                    lease.deadline = now + self.policy.backoff(lease.attempt);
                } else {
                    lease.deadline = now + std::time::Duration::from_secs(u64::from(seconds));
                }
                true
            });
            if changed != Some(true) {
                stale.push(*id);
            }
        }
        stale
    }
}
