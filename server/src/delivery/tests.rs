//! Table-driven and property tests of leases against an in-memory message
//! source: nothing acked is delivered again, nothing unacked is lost.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use tokio::time::Instant;

use super::*;
use crate::domain::{MessageBody, StoredMessage};

const DEADLINE: Duration = Duration::from_secs(10);

/// Messages per partition and the stored individual acks.
#[derive(Default)]
struct Memory {
    partitions: Vec<Vec<StoredMessage>>,
    acked: RefCell<BTreeSet<(u32, u64)>>,
}

impl Memory {
    fn with(partitions: &[u64]) -> Self {
        let partitions = partitions
            .iter()
            .enumerate()
            .map(|(p, &count)| {
                (0..count)
                    .map(|offset| StoredMessage {
                        partition: p as u32,
                        offset,
                        publish_time_us: 0,
                        body: MessageBody { data: Bytes::from(format!("{p}-{offset}")), ..Default::default() },
                    })
                    .collect()
            })
            .collect();
        Self { partitions, acked: RefCell::default() }
    }
}

impl MessageSource for Memory {
    type Error = Infallible;

    fn read(&self, partition: u32, from: u64, count_max: usize, _: usize) -> Result<Vec<StoredMessage>, Infallible> {
        let messages = &self.partitions[partition as usize];
        Ok(messages.iter().filter(|m| m.offset >= from).take(count_max).cloned().collect())
    }

    fn read_one(&self, partition: u32, offset: u64) -> Result<Option<StoredMessage>, Infallible> {
        Ok(self.partitions[partition as usize].get(offset as usize).cloned())
    }

    fn acked(&self, partition: u32, from: u64, to: u64) -> Result<Vec<u64>, Infallible> {
        Ok(self.acked.borrow().iter().filter(|(p, o)| *p == partition && (from..to).contains(o)).map(|k| k.1).collect())
    }
}

struct Harness {
    source: Memory,
    leases: SubscriptionDelivery,
    floors: Vec<u64>,
    now: Instant,
    next_id: u64,
}

impl Harness {
    fn new(partitions: &[u64], outstanding_max: usize) -> Self {
        Self {
            source: Memory::with(partitions),
            leases: SubscriptionDelivery::new(7, partitions.len(), DEADLINE, outstanding_max),
            floors: vec![0; partitions.len()],
            now: Instant::now(),
            next_id: 1,
        }
    }

    fn pull(&mut self, max: usize) -> Vec<Delivery> {
        let next_id = &mut self.next_id;
        let mut ids = || {
            *next_id += 1;
            *next_id
        };
        let Ok(out) = self.leases.lease(&self.source, &self.floors, self.now, max, usize::MAX, &mut ids);
        out
    }

    /// What the replicated ack command does: store acks, advance floors.
    fn ack(&mut self, deliveries: &[Delivery]) -> AckPlan {
        let ids: Vec<AckId> = deliveries.iter().map(|d| d.ack_id).collect();
        let plan = self.leases.begin_ack(&ids);
        for &(partition, offset) in &plan.commit {
            self.source.acked.borrow_mut().insert((partition, offset));
        }
        for (p, floor) in self.floors.iter_mut().enumerate() {
            while self.source.acked.borrow().contains(&(p as u32, *floor)) {
                *floor += 1;
            }
        }
        self.leases.finish_ack(&plan.commit, true);
        plan
    }
}

fn offsets(deliveries: &[Delivery]) -> Vec<(u32, u64)> {
    deliveries.iter().map(|d| (d.message.partition, d.message.offset)).collect()
}

#[test]
fn new_messages_go_out_in_offset_order_with_attempt_one() {
    let mut h = Harness::new(&[5], 100);
    let first = h.pull(3);
    assert_eq!(offsets(&first), vec![(0, 0), (0, 1), (0, 2)]);
    assert!(first.iter().all(|d| d.attempt == 1));
    assert_eq!(offsets(&h.pull(10)), vec![(0, 3), (0, 4)]);
    assert!(h.pull(10).is_empty(), "everything is leased");
}

#[test]
fn an_expired_lease_is_redelivered_with_the_next_attempt_and_a_new_ack_id() {
    let mut h = Harness::new(&[2], 100);
    let first = h.pull(1);
    h.now += DEADLINE - Duration::from_millis(1);
    assert_eq!(offsets(&h.pull(1)), vec![(0, 1)], "offset 0 is still leased");
    h.now += Duration::from_millis(1);
    let again = h.pull(5);
    assert_eq!(offsets(&again), vec![(0, 0)], "only the first lease has expired");
    assert_eq!(again[0].attempt, 2);
    assert_ne!(again[0].ack_id, first[0].ack_id);
}

#[test]
fn an_ack_of_a_superseded_delivery_is_stale_and_changes_nothing() {
    let mut h = Harness::new(&[1], 100);
    let old = h.pull(1);
    h.now += DEADLINE;
    let new = h.pull(1);
    let plan = h.ack(&old);
    assert_eq!(plan, AckPlan { commit: vec![], stale: 1 });
    assert_eq!(h.floors, vec![0]);
    assert_eq!(h.ack(&new), AckPlan { commit: vec![(0, 0)], stale: 0 });
    assert_eq!(h.floors, vec![1]);
}

#[test]
fn acked_messages_are_never_delivered_again_even_after_deadlines() {
    let mut h = Harness::new(&[4], 100);
    let all = h.pull(4);
    h.ack(&all[1..3]);
    h.now += DEADLINE * 3;
    assert_eq!(offsets(&h.pull(10)), vec![(0, 0), (0, 3)]);
}

#[test]
fn a_nack_makes_a_message_ready_at_once_and_only_its_own_delivery_can_nack() {
    let mut h = Harness::new(&[2], 100);
    let all = h.pull(2);
    let ids: Vec<AckId> = all.iter().map(|d| d.ack_id).collect();
    let mut forged = ids[1];
    forged.delivery_id += 1000;
    assert_eq!(h.leases.modify_deadline(&[ids[0], forged], h.now, 0), (1, 1));
    let again = h.pull(5);
    assert_eq!(offsets(&again), vec![(0, 0)]);
    assert_eq!(again[0].attempt, 2);
}

#[test]
fn extending_a_lease_delays_its_redelivery() {
    let mut h = Harness::new(&[1], 100);
    let first = h.pull(1);
    assert_eq!(h.leases.modify_deadline(&[first[0].ack_id], h.now, 60), (1, 0));
    h.now += DEADLINE * 2;
    assert!(h.pull(1).is_empty());
    h.now += Duration::from_secs(60);
    assert_eq!(offsets(&h.pull(1)), vec![(0, 0)]);
}

#[test]
fn outstanding_leases_are_bounded() {
    let mut h = Harness::new(&[100], 10);
    assert_eq!(h.pull(50).len(), 10);
    assert!(h.pull(50).is_empty(), "no more leases until some are acked");
}

#[test]
fn each_pull_starts_at_the_next_partition() {
    let mut h = Harness::new(&[3, 3], 100);
    let first = offsets(&h.pull(2));
    let second = offsets(&h.pull(2));
    assert_eq!(first, vec![(0, 0), (0, 1)]);
    assert_eq!(second, vec![(1, 0), (1, 1)]);
    let rest: BTreeSet<(u32, u64)> = offsets(&h.pull(10)).into_iter().collect();
    assert_eq!(rest, BTreeSet::from([(0, 2), (1, 2)]));
}

#[test]
fn a_new_term_starts_from_the_floors_and_skips_stored_acks() {
    let mut h = Harness::new(&[5], 100);
    let all = h.pull(5);
    h.ack(&[all[0].clone(), all[2].clone()]);
    // A new leader: fresh leases, same replicated floors and acks.
    h.leases = SubscriptionDelivery::new(7, 1, DEADLINE, 100);
    assert_eq!(offsets(&h.pull(10)), vec![(0, 1), (0, 3), (0, 4)]);
}

#[derive(Debug, Clone)]
enum Step {
    Pull(usize),
    AckAll,
    AckSome(usize),
    Nack,
    Advance(u64),
    NewTerm,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1usize..8).prop_map(Step::Pull),
        Just(Step::AckAll),
        (0usize..8).prop_map(Step::AckSome),
        Just(Step::Nack),
        (0u64..25).prop_map(Step::Advance),
        Just(Step::NewTerm),
    ]
}

proptest! {
    /// Under any mix of pulls, acks, nacks, expiries and leader changes: no
    /// acked message is delivered again, and after acks stop and leases
    /// expire, every unacked message is delivered.
    #[test]
    fn nothing_acked_is_redelivered_and_nothing_unacked_is_lost(
        sizes in prop::collection::vec(0u64..12, 1..4),
        steps in prop::collection::vec(step(), 0..60),
    ) {
        let mut h = Harness::new(&sizes, 16);
        let mut held: Vec<Delivery> = Vec::new();
        let mut acked: BTreeSet<(u32, u64)> = BTreeSet::new();
        for step in steps {
            match step {
                Step::Pull(n) => {
                    let got = h.pull(n);
                    for d in &got {
                        prop_assert!(!acked.contains(&(d.message.partition, d.message.offset)), "redelivered after ack: {:?}", d);
                    }
                    held.extend(got);
                }
                Step::AckAll | Step::AckSome(_) => {
                    let take = if let Step::AckSome(n) = step { n.min(held.len()) } else { held.len() };
                    let batch: Vec<Delivery> = held.drain(..take).collect();
                    let plan = h.ack(&batch);
                    acked.extend(plan.commit);
                }
                Step::Nack => {
                    let ids: Vec<AckId> = held.drain(..).map(|d| d.ack_id).collect();
                    h.leases.modify_deadline(&ids, h.now, 0);
                }
                Step::Advance(seconds) => h.now += Duration::from_secs(seconds),
                Step::NewTerm => {
                    h.leases = SubscriptionDelivery::new(7, sizes.len(), DEADLINE, 16);
                    held.clear();
                }
            }
        }
        // Drain: let every lease expire and pull until nothing is left.
        let mut delivered: BTreeMap<(u32, u64), u32> = BTreeMap::new();
        for _ in 0..100 {
            h.now += DEADLINE;
            let got = h.pull(5);
            for d in &got {
                prop_assert!(!acked.contains(&(d.message.partition, d.message.offset)));
                *delivered.entry((d.message.partition, d.message.offset)).or_default() += 1;
            }
            h.ack(&got);
            acked.extend(offsets(&got));
        }
        let total: u64 = sizes.iter().sum();
        prop_assert_eq!(acked.len() as u64, total, "every message was eventually delivered and acked");
    }
}
