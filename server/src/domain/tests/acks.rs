//! Acks: the floor, the ranges stored above it, and how trims and
//! redeliveries meet them.

use super::*;

/// A model with topic `t` of one partition and subscription `s` to it,
/// then `messages` messages published: (model, topic id, subscription id).
fn one_partition(messages: usize) -> (Model, u64, u64) {
    let mut model = Model::default();
    let topic = model.create_topic("t", 1);
    let sub = model.create_subscription("s", "t");
    model.publish(topic, 0, 1, messages);
    (model, topic, sub)
}

#[test]
fn acks_advance_the_floor_over_stored_acks() {
    let (mut model, _, sub) = one_partition(6);

    assert_eq!(model.ack(sub, 0, &[2, 4]), Response::Acknowledged { count: 2 });
    assert_eq!(model.floor(sub, 0), 0);
    assert_eq!(model.stored.acks.len(), 2);
    assert_eq!(model.ack_state(sub, 0).acked_above, 2);
    assert_eq!(model.ack_state(sub, 0).acked_above_bytes, 4, "two 2-byte messages");

    assert_eq!(model.ack(sub, 0, &[1, 0]), Response::Acknowledged { count: 2 });
    assert_eq!(model.floor(sub, 0), 3, "floor passes 0, 1 and the stored 2");
    assert_eq!(model.stored.acked_offsets(), BTreeSet::from([4]), "acks under the floor are deleted");
    assert_eq!(model.ack_state(sub, 0).acked_above, 1);

    // Acks below the floor, repeated, or past the end change nothing.
    assert_eq!(model.ack(sub, 0, &[0, 4, 4, 6, 100]), Response::Acknowledged { count: 0 });
    assert_eq!(model.ack(sub, 0, &[3, 5]), Response::Acknowledged { count: 2 });
    assert_eq!(model.floor(sub, 0), 6);
    assert!(model.stored.acks.is_empty());
    assert_eq!(*model.ack_state(sub, 0), AckState { floor: 6, acked_above: 0, acked_above_bytes: 0 });
}

#[test]
fn consecutive_acks_above_the_floor_are_stored_as_one_range() {
    let (mut model, _, sub) = one_partition(400);

    // Consumers taking turns on chunks: the second and third ack theirs
    // while the first still holds 0..100.
    assert_eq!(model.ack(sub, 0, &(100..200).rev().collect::<Vec<_>>()), Response::Acknowledged { count: 100 });
    assert_eq!(model.ack(sub, 0, &(200..300).collect::<Vec<_>>()), Response::Acknowledged { count: 100 });
    let keys: Vec<(u64, u32, u64)> = model.stored.acks.keys().copied().collect();
    assert_eq!(keys, vec![(sub, 0, 100), (sub, 0, 200)], "a record per ack request, not per offset");
    let bytes: usize = (100..200).map(|o| format!("m{o}").len()).sum();
    assert_eq!(model.stored.acks[&(sub, 0, 100)], AckedRange { start: 100, end: 200, bytes: bytes as u64 });

    // A redelivery's ack inside a range, or straddling two, counts only what is new.
    assert_eq!(model.ack(sub, 0, &[150, 199, 200, 300]), Response::Acknowledged { count: 1 });
    assert_eq!(model.ack_state(sub, 0).acked_above, 201);

    assert_eq!(model.ack(sub, 0, &(0..100).collect::<Vec<_>>()), Response::Acknowledged { count: 100 });
    assert_eq!(*model.ack_state(sub, 0), AckState { floor: 301, acked_above: 0, acked_above_bytes: 0 });
    assert!(model.stored.acks.is_empty());
    assert_eq!(model.ack_range_deletes, 0);
}

#[test]
fn a_batch_naming_a_partition_twice_acks_it_in_one_pass() {
    let (mut model, _, sub) = one_partition(10);
    let partitions =
        vec![PartitionAcks { partition: 0, offsets: vec![5, 6] }, PartitionAcks { partition: 0, offsets: vec![6, 7] }];
    let (response, _) = model.run(Command::Acknowledge(AckBatch { subscription_id: sub, partitions }));
    assert_eq!(response, Response::Acknowledged { count: 3 });
    assert_eq!(model.stored.acked_offsets(), BTreeSet::from([5, 6, 7]), "one range, not two overlapping");
    assert_eq!(model.ack_state(sub, 0).acked_above, 3);
    model.ack(sub, 0, &[0, 1, 2, 3, 4]);
    assert_eq!(*model.ack_state(sub, 0), AckState { floor: 8, acked_above: 0, acked_above_bytes: 0 });
    assert!(model.stored.acks.is_empty());
}

#[test]
fn a_dead_letter_of_an_offset_inside_a_stored_range_moves_nothing() {
    let mut model = Model::default();
    let topic = model.create_topic("t", 1);
    let dlq = model.create_topic("dlq", 1);
    let sub = model.create_subscription("s", "t");
    model.publish(topic, 0, 1, 10);
    model.ack(sub, 0, &[3, 4, 5, 6]);
    let dead = |offset| dead_letter(sub, offset, dlq, body("poison"));
    assert_eq!(model.run(dead(5)).0, Response::DeadLettered { position: None }, "acked already");
    assert_eq!(model.run(dead(6)).0, Response::DeadLettered { position: None }, "acked already");
    assert!(model.stored.messages.keys().all(|&(t, _, _)| t != dlq));
    assert_eq!(model.run(dead(7)).0, Response::DeadLettered { position: Some((0, 0)) });
    assert_eq!(model.stored.acked_offsets(), BTreeSet::from([3, 4, 5, 6, 7]));
}

#[test]
fn a_climbing_floor_deletes_few_stored_ranges_one_by_one_and_many_as_one() {
    let (mut model, _, sub) = one_partition(5000);

    // In order, as one consumer acks: nothing is stored, nothing deleted.
    for start in (0..1000).step_by(100) {
        model.ack(sub, 0, &(start..start + 100).collect::<Vec<_>>());
    }
    // Out of order, as several consumers ack: the floor passes a few stored ranges.
    model.ack(sub, 0, &(1001..1100).step_by(2).collect::<Vec<_>>());
    model.ack(sub, 0, &(1002..1100).step_by(2).collect::<Vec<_>>());
    model.ack(sub, 0, &[1000]);
    assert_eq!(model.floor(sub, 0), 1100);
    assert_eq!(model.ack_range_deletes, 0, "every ack commit moved a floor, none wrote a range tombstone");

    // A floor that jumps over thousands of stored ranges deletes them as one.
    model.ack(sub, 0, &(1101..5000).step_by(2).collect::<Vec<_>>());
    model.ack(sub, 0, &(1102..5000).step_by(2).collect::<Vec<_>>());
    assert_eq!(model.stored.acks.len(), 3899);
    model.ack(sub, 0, &[1100]);
    assert_eq!(model.floor(sub, 0), 5000);
    assert!(model.stored.acks.is_empty());
    assert_eq!(model.ack_range_deletes, 1);
}

#[test]
fn a_trim_that_reaches_stored_acks_carries_the_floor_over_them() {
    let (mut model, topic, sub) = one_partition(6);
    model.ack(sub, 0, &[3, 4]);
    model.run(Command::Trim(Trim { topic_id: topic, partition: 0, start_offset: 3 }));
    assert_eq!(*model.ack_state(sub, 0), AckState { floor: 5, acked_above: 0, acked_above_bytes: 0 });
    assert!(model.stored.acks.is_empty());
}

#[test]
fn a_trim_inside_a_stored_range_carries_the_floor_over_all_of_it() {
    let (mut model, topic, sub) = one_partition(30);
    model.ack(sub, 0, &[2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    model.ack(sub, 0, &[12, 13, 20, 21]);
    model.run(Command::Trim(Trim { topic_id: topic, partition: 0, start_offset: 5 }));
    let bytes: usize = (20..22).map(|o| format!("m{o}").len()).sum();
    assert_eq!(*model.ack_state(sub, 0), AckState { floor: 14, acked_above: 2, acked_above_bytes: bytes as u64 });
    assert_eq!(model.stored.acked_offsets(), BTreeSet::from([20, 21]));
}

/// Messages in the partition of the long-run property.
const PUBLISHED: u64 = 3000;

proptest! {
    /// Whatever order and repetition acks arrive in, the floor is the first
    /// offset never acked, every acked offset stays acked, and each offset is
    /// counted once.
    #[test]
    fn acks_in_any_order_keep_the_floor_exact(
        batches in prop::collection::vec(prop::collection::vec(0u64..40, 0..12), 0..20),
    ) {
        let mut model = Model::default();
        let topic = model.create_topic("t", 1);
        let sub = model.create_subscription("s", "t");
        model.publish(topic, 0, 1, 30);

        let mut acked = BTreeSet::new();
        let mut counted = 0;
        for offsets in &batches {
            let Response::Acknowledged { count } = model.ack(sub, 0, offsets) else { panic!("ack rejected") };
            counted += count;
            acked.extend(offsets.iter().copied().filter(|&o| o < 30));
            let floor = model.floor(sub, 0);
            let expected_floor = (0..30).find(|o| !acked.contains(o)).unwrap_or(30);
            prop_assert_eq!(floor, expected_floor);
            prop_assert_eq!(&model.floors[&(sub, 0)], model.ack_state(sub, 0), "the ack state is persisted");
            let stored = model.stored.acked_offsets();
            let expected: BTreeSet<u64> = acked.iter().copied().filter(|&o| o > floor).collect();
            prop_assert_eq!(model.ack_state(sub, 0).acked_above, expected.len() as u64);
            prop_assert_eq!(stored, expected);
        }
        prop_assert_eq!(counted, acked.len() as u64);
    }

    /// The same over long runs and far-apart offsets, where applying an ack
    /// reads stored acks in separate ranges and the floor climbs over more
    /// than one chunk of them: 0..3,000 cut into runs, acked in a shuffled
    /// order two runs per batch, until all are acked.
    #[test]
    fn acks_in_long_runs_and_far_apart_keep_the_floor_exact(
        runs in prop::collection::vec(1u64..1500, 1..12)
            .prop_map(|lengths| {
                let mut runs = Vec::new();
                let mut start = 0;
                for length in lengths.into_iter().chain([PUBLISHED]) {
                    let end = (start + length).min(PUBLISHED);
                    if start < end {
                        runs.push(start..end);
                    }
                    start = end;
                }
                runs
            })
            .prop_shuffle(),
    ) {
        let mut model = Model::default();
        let topic = model.create_topic("t", 1);
        let sub = model.create_subscription("s", "t");
        model.publish(topic, 0, 1, PUBLISHED as usize);

        let mut acked = BTreeSet::new();
        let mut counted = 0;
        for batch in runs.chunks(2) {
            let offsets: Vec<u64> = batch.iter().flat_map(|run| run.clone()).collect();
            let Response::Acknowledged { count } = model.ack(sub, 0, &offsets) else { panic!("ack rejected") };
            counted += count;
            // Acked again (a redelivery's ack): nothing changes.
            let state = model.ack_state(sub, 0).clone();
            prop_assert_eq!(model.ack(sub, 0, &offsets), Response::Acknowledged { count: 0 });
            prop_assert_eq!(model.ack_state(sub, 0), &state);
            acked.extend(offsets);
            let floor = model.floor(sub, 0);
            prop_assert_eq!(floor, (0..PUBLISHED).find(|o| !acked.contains(o)).unwrap_or(PUBLISHED));
            let stored = model.stored.acked_offsets();
            let expected: BTreeSet<u64> = acked.iter().copied().filter(|&o| o > floor).collect();
            prop_assert_eq!(model.ack_state(sub, 0).acked_above, expected.len() as u64);
            let bytes: usize = expected.iter().map(|o| format!("m{o}").len()).sum();
            prop_assert_eq!(model.ack_state(sub, 0).acked_above_bytes, bytes as u64);
            prop_assert_eq!(stored, expected);
        }
        prop_assert_eq!(model.floor(sub, 0), PUBLISHED, "everything acked");
        prop_assert_eq!(counted, acked.len() as u64);
    }

    /// Acks of runs in any order, repeated or overlapping, mixed with trims
    /// (retention) that land anywhere, inside stored ranges too, seeks back
    /// and forth (which forget every ack above the new floor) and dead
    /// letters (which ack the message they move): the floor is the first
    /// offset at or past the start that is not acked, the state counts
    /// exactly the offsets and bytes acked above it, which are exactly those
    /// stored, every ack counts only what it newly acked, and a dead letter
    /// moves a message only if it was not acked.
    #[test]
    fn acks_trims_seeks_and_dead_letters_in_any_order_keep_the_stored_ranges_exact(
        batches in prop::collection::vec(1usize..40, 1..10),
        steps in prop::collection::vec(
            prop_oneof![
                4 => (0u64..210, 1u64..30, any::<bool>()).prop_map(|(from, len, rev)| Step::Ack { from, len, rev }),
                1 => (0u64..210).prop_map(Step::Trim),
                1 => (0u64..210).prop_map(Step::Seek),
                1 => (0u64..210).prop_map(Step::DeadLetter),
            ],
            1..40,
        ),
    ) {
        let mut model = Model::default();
        let topic = model.create_topic("t", 1);
        let sub = model.create_subscription("s", "t");
        let dlq = model.create_topic("dlq", 1);
        for (i, &count) in batches.iter().enumerate() {
            model.publish(topic, 0, 1 + i as i64, count);
        }
        let end: u64 = batches.iter().map(|&count| count as u64).sum();
        let size = |o: u64| format!("m{}", o - first_of_batch(&batches, o)).len() as u64;

        let mut acked = BTreeSet::new();
        let (mut start, mut moved) = (0, 0);
        for step in steps {
            match step {
                Step::Ack { from, len, rev } => {
                    let mut offsets: Vec<u64> = (from..from + len).collect();
                    if rev {
                        offsets.reverse();
                    }
                    let Response::Acknowledged { count } = model.ack(sub, 0, &offsets) else { panic!("ack rejected") };
                    let new = offsets.iter().filter(|&&o| o < end && !acked.contains(&o)).count() as u64;
                    prop_assert_eq!(count, new, "counts what it newly acked");
                    acked.extend(offsets.into_iter().filter(|&o| o < end));
                }
                Step::Trim(to) => {
                    model.run(Command::Trim(Trim { topic_id: topic, partition: 0, start_offset: to }));
                    start = start.max(to.min(end));
                    acked.extend(0..start);
                }
                Step::Seek(to) => {
                    let seek = Seek { subscription_id: sub, floors: vec![to] };
                    prop_assert_eq!(model.run(Command::Seek(seek)).0, Response::Sought);
                    acked = (0..to.clamp(start, end)).collect();
                }
                Step::DeadLetter(offset) => {
                    // The dispatcher dead-letters only what it delivered: offsets below the end.
                    let offset = offset % end;
                    let (response, _) = model.run(dead_letter(sub, offset, dlq, body("poison")));
                    let position = (!acked.contains(&offset)).then_some((0, moved));
                    prop_assert_eq!(response, Response::DeadLettered { position });
                    moved += u64::from(acked.insert(offset));
                }
            }
            let floor = model.floor(sub, 0);
            prop_assert_eq!(floor, (0..end).find(|o| !acked.contains(o)).unwrap_or(end));
            let above: BTreeSet<u64> = acked.range(floor..).copied().collect();
            let state = model.ack_state(sub, 0).clone();
            prop_assert_eq!(&model.floors[&(sub, 0)], &state, "the ack state is persisted");
            prop_assert_eq!(state.acked_above, above.len() as u64);
            prop_assert_eq!(state.acked_above_bytes, above.iter().map(|&o| size(o)).sum::<u64>());
            prop_assert_eq!(model.stored.acked_offsets(), above.clone());
            for range in model.stored.acks.values() {
                prop_assert_eq!(range.bytes, (range.start..range.end).map(size).sum::<u64>(), "{:?}", range);
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Step {
    /// Acks of the `len` offsets from `from` (those past the end change
    /// nothing), in reverse order if `rev`.
    Ack { from: u64, len: u64, rev: bool },
    /// Retention's trim to this start.
    Trim(u64),
    /// A seek of the subscription's floor to this offset.
    Seek(u64),
    /// A dead letter of this offset (modulo the end).
    DeadLetter(u64),
}

/// The first offset of the publish batch (of `batches` sizes) holding `offset`.
fn first_of_batch(batches: &[usize], offset: u64) -> u64 {
    let mut first = 0;
    for &count in batches {
        if offset < first + count as u64 {
            return first;
        }
        first += count as u64;
    }
    first
}
