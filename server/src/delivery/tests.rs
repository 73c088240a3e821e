//! Table-driven and property tests of leases against an in-memory message
//! source: nothing acked is delivered again, nothing unacked is lost.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use tokio::time::Instant;

use super::subscription::{another_round, read_all, OWNER_IDLE};
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
        Self::keyed(partitions, |_, _| String::new())
    }

    /// Messages whose ordering key is `key(partition, offset)`.
    fn keyed(partitions: &[u64], key: impl Fn(u32, u64) -> String) -> Self {
        let partitions = partitions
            .iter()
            .enumerate()
            .map(|(p, &count)| {
                (0..count)
                    .map(|offset| StoredMessage {
                        partition: p as u32,
                        offset,
                        publish_time_us: 0,
                        body: MessageBody {
                            data: Bytes::from(format!("{p}-{offset}")),
                            ordering_key: key(p as u32, offset),
                            ..Default::default()
                        },
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

    fn end(&self, partition: u32) -> u64 {
        self.partitions[partition as usize].last().map_or(0, |m| m.offset + 1)
    }
}

struct Harness {
    source: Memory,
    leases: SubscriptionDelivery,
    floors: Vec<u64>,
    now: Instant,
    next_id: u64,
}

fn policy() -> DeliveryPolicy {
    DeliveryPolicy {
        ack_deadline: DEADLINE,
        retry_min_backoff: Duration::ZERO,
        retry_max_backoff: Duration::ZERO,
        max_delivery_attempts: None,
    }
}

impl Harness {
    fn new(partitions: &[u64], outstanding_max: usize) -> Self {
        Self::with(Memory::with(partitions), partitions.len(), policy(), outstanding_max)
    }

    fn with(source: Memory, partitions: usize, policy: DeliveryPolicy, outstanding_max: usize) -> Self {
        Self {
            source,
            leases: SubscriptionDelivery::new(7, partitions, policy, outstanding_max),
            floors: vec![0; partitions],
            now: Instant::now(),
            next_id: 1,
        }
    }

    fn lease(&mut self, lessee: Lessee) -> Leased {
        let next_id = &mut self.next_id;
        let mut ids = || {
            *next_id += 1;
            *next_id
        };
        // What `Dispatcher::lease` does, minus the lock between the halves.
        loop {
            let Ok((mut leased, reads)) =
                self.leases.start_lease(&self.source, &self.floors, self.now, lessee, &mut ids);
            let Ok(done) = read_all(&self.source, reads);
            let read_some = done.iter().any(|d| !d.messages.is_empty());
            self.leases.finish_lease(&mut leased, done, self.now, lessee, &mut ids);
            if !another_round(&leased, read_some) {
                return leased;
            }
        }
    }

    fn pull(&mut self, max: usize) -> Vec<Delivery> {
        self.lease(Lessee { consumer: UNARY_CONSUMER, count_max: max, bytes_max: usize::MAX }).deliveries
    }

    /// What the replicated ack command does: store acks, advance floors.
    fn ack(&mut self, deliveries: &[Delivery]) -> AckPlan {
        let ids: Vec<AckId> = deliveries.iter().map(|d| d.ack_id).collect();
        let plan = self.leases.begin_ack(&ids);
        self.replicate_acks(&plan.commit);
        self.leases.finish_ack(&plan.commit, true, self.now);
        plan
    }

    /// What a committed DeadLetter command does here: the message is acked.
    fn dead_letter(&mut self, position: (u32, u64)) {
        self.replicate_acks(&[position]);
        self.leases.finish_dead_letter(position, true, self.now);
    }

    fn replicate_acks(&mut self, positions: &[(u32, u64)]) {
        self.source.acked.borrow_mut().extend(positions.iter().copied());
        for (p, floor) in self.floors.iter_mut().enumerate() {
            while self.source.acked.borrow().contains(&(p as u32, *floor)) {
                *floor += 1;
            }
        }
    }
}

/// A stream consumer with room for `count_max` messages.
fn stream(consumer: ConsumerId, count_max: usize) -> Lessee {
    Lessee { consumer, count_max, bytes_max: usize::MAX }
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
fn two_lease_calls_reading_at_once_never_lease_a_message_twice() {
    let mut h = Harness::new(&[10], 100);
    let lessee = |consumer, count_max| Lessee { consumer, count_max, bytes_max: usize::MAX };
    let mut ids = 0..;
    let mut next_id = || ids.next().unwrap_or_default();
    // Both plan their reads before either leases: they read the same offsets.
    let Ok((mut first, first_reads)) = h.leases.start_lease(&h.source, &h.floors, h.now, lessee(1, 6), &mut next_id);
    let Ok((mut second, second_reads)) = h.leases.start_lease(&h.source, &h.floors, h.now, lessee(2, 6), &mut next_id);
    assert_eq!(first_reads, second_reads);
    let Ok(first_done) = read_all(&h.source, first_reads);
    let Ok(second_done) = read_all(&h.source, second_reads);
    h.leases.finish_lease(&mut first, first_done, h.now, lessee(1, 6), &mut next_id);
    h.leases.finish_lease(&mut second, second_done, h.now, lessee(2, 6), &mut next_id);
    assert_eq!(offsets(&first.deliveries), (0..6).map(|o| (0, o)).collect::<Vec<_>>());
    assert!(second.deliveries.is_empty(), "the first call took all the second one read");
    assert!(another_round(&second, true), "so it reads on");
    assert_eq!(offsets(&h.pull(10)), (6..10).map(|o| (0, o)).collect::<Vec<_>>());
}

#[test]
fn a_lease_call_reads_on_past_messages_acked_above_the_floor() {
    let mut h = Harness::new(&[3000], 10_000);
    // Acked individually (by consumers of an earlier leader), all but 0 and the last.
    h.source.acked.borrow_mut().extend((1..2999).map(|o| (0, o)));
    assert_eq!(offsets(&h.pull(1000)), vec![(0, 0)]);
    // Two reads of a thousand find nothing to lease; the call reads on.
    assert_eq!(offsets(&h.pull(1000)), vec![(0, 2999)]);
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
fn an_ack_stored_though_its_commit_was_reported_failed_is_not_redelivered() {
    let mut h = Harness::new(&[2], 100);
    let first = h.pull(2);
    let ids: Vec<AckId> = first.iter().map(|d| d.ack_id).collect();
    // Offset 1, above the floor: only the stored ack says it is done.
    let plan = h.leases.begin_ack(&ids[1..]);
    // The commit timed out on its way back, but the entry was applied.
    h.replicate_acks(&[(0, 1)]);
    h.leases.finish_ack(&plan.commit, false, h.now);
    h.now += DEADLINE;
    assert_eq!(offsets(&h.pull(5)), vec![(0, 0)], "only the unacked message comes back");
    assert_eq!(h.leases.leased(), 1, "the acked message's lease is gone");
}

#[test]
fn an_ack_of_a_superseded_delivery_is_stale_and_changes_nothing() {
    let mut h = Harness::new(&[1], 100);
    let old = h.pull(1);
    h.now += DEADLINE;
    let new = h.pull(1);
    let plan = h.ack(&old);
    assert_eq!(plan, AckPlan { commit: vec![], stale: vec![old[0].ack_id] });
    assert_eq!(h.floors, vec![0]);
    assert_eq!(h.ack(&new), AckPlan { commit: vec![(0, 0)], stale: vec![] });
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
    assert_eq!(h.leases.modify_deadline(&[ids[0], forged], h.now, 0), vec![forged]);
    let again = h.pull(5);
    assert_eq!(offsets(&again), vec![(0, 0)]);
    assert_eq!(again[0].attempt, 2);
}

#[test]
fn extending_a_lease_delays_its_redelivery() {
    let mut h = Harness::new(&[1], 100);
    let first = h.pull(1);
    assert!(h.leases.modify_deadline(&[first[0].ack_id], h.now, 60).is_empty());
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
fn each_stream_consumer_reads_its_own_partitions_first_so_their_acks_come_in_order() {
    let mut h = Harness::new(&[6, 6, 6], 100);
    let (a, b) = (stream(1, 2), stream(2, 2));
    let mut taken = Vec::new();
    for _ in 0..3 {
        // Consumer 1 came first: it owns partitions 0 and 2, consumer 2 owns 1.
        taken.push((1, offsets(&h.lease(a).deliveries)));
        taken.push((2, offsets(&h.lease(b).deliveries)));
    }
    for (consumer, offsets) in &taken {
        let owns = |p: u32| if *consumer == 1 { p != 1 } else { p == 1 };
        assert!(offsets.iter().all(|&(p, _)| owns(p)), "consumer {consumer} got {offsets:?}");
    }
    let of_1: Vec<u64> = taken.iter().flat_map(|(_, o)| o).filter(|(p, _)| *p == 1).map(|(_, o)| *o).collect();
    assert_eq!(of_1, (0..6).collect::<Vec<_>>(), "partition 1 went to one consumer, in offset order");
}

#[test]
fn a_consumer_whose_partitions_ran_dry_reads_the_others() {
    let mut h = Harness::new(&[1, 5], 100);
    let (a, b) = (stream(1, 2), stream(2, 2));
    assert_eq!(offsets(&h.lease(a).deliveries), vec![(0, 0), (1, 0)], "its own first, then the others");
    assert_eq!(offsets(&h.lease(b).deliveries), vec![(1, 1), (1, 2)]);
    assert_eq!(offsets(&h.lease(a).deliveries), vec![(1, 3), (1, 4)], "its own is empty: it reads the others");
}

#[test]
fn an_idle_owners_partitions_go_to_the_others_however_busy_their_own() {
    let mut h = Harness::new(&[10, 10], 100);
    let (a, b) = (stream(1, 1), stream(2, 1));
    assert_eq!(offsets(&h.lease(a).deliveries), vec![(0, 0)]);
    // Consumer 1 is full from here on (stuck): it makes no lease call.
    let mut of_b: Vec<(u32, u64)> = (0..4).flat_map(|_| offsets(&h.lease(b).deliveries)).collect();
    assert!(of_b.iter().all(|&(p, _)| p == 1), "its own partition has plenty: {of_b:?}");
    h.now += OWNER_IDLE;
    of_b = (0..2).flat_map(|_| offsets(&h.lease(b).deliveries)).collect();
    assert!(of_b.contains(&(0, 1)), "partition 0 goes on without its owner: {of_b:?}");
}

#[test]
fn a_departed_consumers_partitions_pass_to_those_that_remain() {
    let mut h = Harness::new(&[4, 4], 100);
    let (a, b, c) = (stream(1, 1), stream(2, 1), stream(3, 1));
    assert_eq!(offsets(&h.lease(a).deliveries), vec![(0, 0)]);
    assert_eq!(offsets(&h.lease(b).deliveries), vec![(1, 0)]);
    h.leases.drop_consumer(1, h.now);
    assert_eq!(offsets(&h.lease(c).deliveries), vec![(0, 0)], "what consumer 1 held goes again first");
    // Consumers 2 and 3 remain, in that order: 2 owns partition 0 now.
    assert_eq!(offsets(&h.lease(b).deliveries), vec![(0, 1)]);
    assert_eq!(offsets(&h.lease(c).deliveries), vec![(1, 1)]);
}

#[test]
fn a_new_term_starts_from_the_floors_and_skips_stored_acks() {
    let mut h = Harness::new(&[5], 100);
    let all = h.pull(5);
    h.ack(&[all[0].clone(), all[2].clone()]);
    // A new leader: fresh leases, same replicated floors and acks.
    h.leases = SubscriptionDelivery::new(7, 1, policy(), 100);
    assert_eq!(offsets(&h.pull(10)), vec![(0, 1), (0, 3), (0, 4)]);
}

#[test]
fn redelivery_waits_out_an_exponential_backoff() {
    let policy = DeliveryPolicy {
        retry_min_backoff: Duration::from_secs(4),
        retry_max_backoff: Duration::from_secs(10),
        ..policy()
    };
    let mut h = Harness::with(Memory::with(&[1]), 1, policy, 100);
    let first = h.pull(1);
    h.leases.modify_deadline(&[first[0].ack_id], h.now, 0);
    h.now += Duration::from_secs(3);
    assert!(h.pull(1).is_empty(), "nacked, but inside the 4 s backoff");
    h.now += Duration::from_secs(1);
    let second = h.pull(1);
    assert_eq!(second[0].attempt, 2);
    // Expired after the second delivery: 8 s of backoff.
    h.now += DEADLINE + Duration::from_secs(7);
    assert!(h.pull(1).is_empty());
    h.now += Duration::from_secs(1);
    assert_eq!(h.pull(1)[0].attempt, 3);
}

#[test]
fn a_message_out_of_attempts_is_handed_back_for_dead_lettering_not_delivered() {
    let policy = DeliveryPolicy { max_delivery_attempts: Some(2), ..policy() };
    let mut h = Harness::with(Memory::with(&[2]), 1, policy, 100);
    for attempt in 1..=2 {
        let got = h.pull(1);
        assert_eq!((got[0].message.offset, got[0].attempt), (0, attempt));
        h.leases.modify_deadline(&[got[0].ack_id], h.now, 0);
    }
    let leased = h.lease(Lessee { consumer: UNARY_CONSUMER, count_max: 5, bytes_max: usize::MAX });
    assert_eq!(leased.exhausted.len(), 1);
    assert_eq!((leased.exhausted[0].message.offset, leased.exhausted[0].attempts), (0, 2));
    assert_eq!(offsets(&leased.deliveries), vec![(0, 1)], "the next message is not held up");
    assert!(h.pull(5).is_empty(), "not delivered while it is being moved");
    h.leases.finish_dead_letter((0, 0), false, h.now);
    assert_eq!(h.lease(Lessee { consumer: UNARY_CONSUMER, count_max: 5, bytes_max: usize::MAX }).exhausted.len(), 1);
    h.dead_letter((0, 0));
    h.now += DEADLINE * 2;
    assert_eq!(offsets(&h.pull(5)), vec![(0, 1)], "moved: gone for good");
}

#[test]
fn messages_of_one_key_go_one_at_a_time_in_order_and_keyless_ones_pass() {
    // Offsets 0, 2, 4 have key "a"; 1, 3 have none.
    let source = Memory::keyed(&[5], |_, offset| if offset % 2 == 0 { "a".into() } else { String::new() });
    let mut h = Harness::with(source, 1, policy(), 100);
    let first = h.pull(10);
    assert_eq!(offsets(&first), vec![(0, 0), (0, 1), (0, 3)], "2 and 4 wait behind 0");
    h.now += DEADLINE;
    let again = h.pull(10);
    assert_eq!(offsets(&again), vec![(0, 0), (0, 1), (0, 3)], "an expired head goes again, still first");
    h.ack(&again[..1]);
    assert_eq!(offsets(&h.pull(10)), vec![(0, 2)], "acking the head releases the next");
    let rest = h.pull(10);
    assert!(rest.is_empty(), "4 waits behind 2");
}

#[test]
fn flow_control_counts_what_each_consumer_holds() {
    let mut h = Harness::new(&[10], 100);
    let a = Lessee { consumer: 1, count_max: 3, bytes_max: usize::MAX };
    let got = h.lease(a).deliveries;
    assert_eq!(h.leases.holding(1), Holding { messages: 3, bytes: 9 });
    h.ack(&got[..2]);
    assert_eq!(h.leases.holding(1).messages, 1);
    h.now += DEADLINE;
    h.lease(Lessee { consumer: 2, count_max: 1, bytes_max: usize::MAX });
    assert_eq!(h.leases.holding(1).messages, 0, "an expired lease no longer counts");
    assert_eq!(h.leases.holding(2).messages, 1);
}

#[test]
fn a_consumer_that_goes_away_gives_back_at_once_what_it_held_but_not_what_it_acked() {
    let mut h = Harness::new(&[4], 100);
    let got = h.lease(Lessee { consumer: 1, count_max: 4, bytes_max: usize::MAX }).deliveries;
    let acking = h.leases.begin_ack(&[got[0].ack_id]);
    h.ack(&got[1..2]);
    assert_eq!(h.leases.drop_consumer(1, h.now), 2, "the two neither acked nor being acked");
    assert_eq!(h.leases.holding(1), Holding::default());
    let again = h.lease(Lessee { consumer: 2, count_max: 10, bytes_max: usize::MAX }).deliveries;
    assert_eq!(offsets(&again), vec![(0, 2), (0, 3)], "long before their deadline");
    assert!(again.iter().all(|d| d.attempt == 2));
    h.leases.finish_ack(&acking.commit, true, h.now);
    assert_eq!(h.leases.leased(), 2);
}

#[test]
fn a_failed_ack_of_a_consumer_gone_meanwhile_makes_its_message_ready_at_once() {
    let mut h = Harness::new(&[2], 100);
    let got = h.lease(stream(1, 2)).deliveries;
    let acking = h.leases.begin_ack(&[got[0].ack_id]);
    h.leases.drop_consumer(1, h.now);
    h.leases.finish_ack(&acking.commit, false, h.now);
    assert_eq!(h.leases.holding(1), Holding::default(), "the gone consumer holds nothing");
    let again = h.lease(stream(2, 10)).deliveries;
    assert_eq!(offsets(&again), vec![(0, 0), (0, 1)], "both at once, long before their deadline");
}

#[test]
fn an_ack_frees_the_consumers_room_before_its_commit_and_a_failed_commit_takes_it_back() {
    let mut h = Harness::new(&[10], 100);
    let a = Lessee { consumer: 1, count_max: 3, bytes_max: usize::MAX };
    let got = h.lease(a).deliveries;
    let ids: Vec<AckId> = got.iter().map(|d| d.ack_id).collect();
    let plan = h.leases.begin_ack(&ids[..2]);
    assert_eq!(h.leases.holding(1), Holding { messages: 1, bytes: 3 }, "acked, though not committed yet");
    assert_eq!(h.leases.leased(), 3, "the acking leases stay until the commit");
    let room = Lessee { count_max: 3 - h.leases.holding(1).messages, ..a };
    assert_eq!(offsets(&h.lease(room).deliveries), vec![(0, 3), (0, 4)], "the freed room takes new messages");
    h.leases.finish_ack(&plan.commit, false, h.now);
    assert_eq!(h.leases.holding(1).messages, 5, "a failed commit: held again until the old deadline");
    h.now += DEADLINE;
    h.pull(0);
    assert_eq!(h.leases.holding(1).messages, 0, "and released when that deadline passes");
}

#[test]
fn a_consumer_without_room_waits_for_the_next_live_deadline_and_gets_room_when_its_leases_run_out() {
    let mut h = Harness::new(&[10], 100);
    let t0 = h.now;
    let secs = Duration::from_secs;
    let full = Lessee { consumer: 1, count_max: 3, bytes_max: usize::MAX };
    let got = h.lease(full).deliveries;
    // It acks one and extends the others: no lease keeps the first deadline.
    h.ack(&got[..1]);
    let extended: Vec<AckId> = got[1..].iter().map(|d| d.ack_id).collect();
    assert!(h.leases.modify_deadline(&extended, h.now, 60).is_empty());
    h.now = t0 + secs(1);
    h.lease(Lessee { count_max: 1, ..full });
    assert_eq!(h.leases.holding(1).messages, 3, "it holds its maximum: it waits, making no lease call");
    // Past the first deadline, it waits for the next one a lease has, not
    // for one passed (it would wake at once, and again, while it is full).
    h.now = t0 + secs(10) + Duration::from_millis(500);
    assert_eq!(h.leases.advance(h.now), Advanced { expired: 0, next_deadline: Some(t0 + secs(11)) });
    h.now = t0 + secs(11);
    assert_eq!(h.leases.advance(h.now), Advanced { expired: 1, next_deadline: Some(t0 + secs(60)) });
    assert_eq!(h.leases.holding(1).messages, 2, "the lease that ran out gave its room back");
    h.now = t0 + secs(60);
    assert_eq!(h.leases.advance(h.now), Advanced { expired: 2, next_deadline: None });
    assert_eq!(h.leases.holding(1).messages, 0);
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
    /// Under any mix of pulls, acks, nacks, expiries and leader changes, with
    /// ordering keys and dead-lettering in play: no acked message is delivered
    /// again, two messages of one key are never out at once, and once acks
    /// stop failing every message ends up acked or dead-lettered.
    #[test]
    fn nothing_acked_is_redelivered_and_every_message_is_acked_or_dead_lettered(
        sizes in prop::collection::vec(0u64..12, 1..4),
        keys in 0u64..4,
        dead_letter_after in prop::option::of(2u32..5),
        steps in prop::collection::vec(step(), 0..60),
    ) {
        let key = move |p: u32, o: u64| if keys == 0 || o % 2 == 1 { String::new() } else { format!("k{}-{}", p, o % keys) };
        let policy = DeliveryPolicy { max_delivery_attempts: dead_letter_after, ..policy() };
        let mut h = Harness::with(Memory::keyed(&sizes, key), sizes.len(), policy, 16);
        let mut held: Vec<Delivery> = Vec::new();
        let mut acked: BTreeSet<(u32, u64)> = BTreeSet::new();
        let mut dead: BTreeSet<(u32, u64)> = BTreeSet::new();
        let everyone = Lessee { consumer: UNARY_CONSUMER, count_max: 0, bytes_max: usize::MAX };
        let check = |got: &Leased, h: &mut Harness, held: &[Delivery], acked: &BTreeSet<(u32, u64)>,
                         dead: &mut BTreeSet<(u32, u64)>| -> Result<(), TestCaseError> {
            for d in &got.deliveries {
                let position = (d.message.partition, d.message.offset);
                prop_assert!(!acked.contains(&position), "redelivered after ack: {:?}", d);
                prop_assert!(!dead.contains(&position), "delivered after dead-lettering: {:?}", d);
                let k = &d.message.body.ordering_key;
                if !k.is_empty() {
                    let busy = held.iter().any(|o| o.message.body.ordering_key == *k && o.message.offset != d.message.offset);
                    prop_assert!(!busy, "two messages of key {} out at once", k);
                }
            }
            for e in &got.exhausted {
                let position = (e.message.partition, e.message.offset);
                prop_assert!(policy.exhausted(e.attempts));
                h.dead_letter(position);
                dead.insert(position);
            }
            Ok(())
        };
        for step in steps {
            match step {
                Step::Pull(n) => {
                    let got = h.lease(Lessee { count_max: n, ..everyone });
                    check(&got, &mut h, &held, &acked, &mut dead)?;
                    held.extend(got.deliveries);
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
                Step::Advance(seconds) => {
                    h.now += Duration::from_secs(seconds);
                    // Their leases may have expired: stop acking them.
                    held.clear();
                }
                Step::NewTerm => {
                    h.leases = SubscriptionDelivery::new(7, sizes.len(), policy, 16);
                    held.clear();
                }
            }
        }
        // Drain: let every lease expire, pull and ack until nothing is left.
        for _ in 0..200 {
            h.now += DEADLINE;
            let got = h.lease(Lessee { count_max: 5, ..everyone });
            check(&got, &mut h, &[], &acked, &mut dead)?;
            let plan = h.ack(&got.deliveries);
            acked.extend(plan.commit);
        }
        let total: u64 = sizes.iter().sum();
        prop_assert!(acked.is_disjoint(&dead));
        prop_assert_eq!((acked.len() + dead.len()) as u64, total, "every message was acked or dead-lettered");
    }
}
