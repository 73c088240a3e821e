//! Table-driven and property tests of the state transition, against a model
//! store that applies `Write`s to plain maps.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

/// The durable view: what the writes of every applied command leave behind.
#[derive(Default)]
struct Model {
    catalog: Catalog,
    stored: Stored,
    floors: BTreeMap<(u64, u32), AckState>,
    producers: BTreeMap<ProducerKey, ProducerState>,
    /// `DeleteAckedRanges` written so far: each is a range tombstone in RocksDB.
    ack_range_deletes: usize,
    /// (topic, partition, hour start) → the hour's first offset.
    hour_starts: BTreeMap<(u64, u32, i64), u64>,
}

#[derive(Default)]
struct Stored {
    /// (topic, partition, first offset) → batch
    messages: BTreeMap<(u64, u32, u64), StoredBatch>,
    /// (subscription, partition, first offset) → acked range
    acks: BTreeMap<(u64, u32, u64), AckedRange>,
}

struct StoredBatch {
    publish_time_us: i64,
    bytes_before: u64,
    bodies: Vec<MessageBody>,
}

impl Stored {
    /// (offset, publish time, bytes before) of every stored message.
    fn each_message(&self) -> Vec<(u64, i64, u64)> {
        let mut each = Vec::new();
        for (&(_, _, first), batch) in &self.messages {
            let mut bytes_before = batch.bytes_before;
            for (body, offset) in batch.bodies.iter().zip(first..) {
                each.push((offset, batch.publish_time_us, bytes_before));
                bytes_before += body.size_bytes() as u64;
            }
        }
        each
    }

    /// The offsets of every stored acked range, after checking the ranges
    /// are non-empty and apart.
    fn acked_offsets(&self) -> BTreeSet<u64> {
        let mut offsets = BTreeSet::new();
        let mut last: Option<(u64, u32, u64)> = None;
        for (&(s, p, start), range) in &self.acks {
            assert_eq!(start, range.start, "keyed by its start");
            assert!(!range.is_empty(), "empty range at {start}");
            if let Some((ls, lp, end)) = last {
                assert!((ls, lp) != (s, p) || end <= start, "ranges overlap at {start}");
            }
            last = Some((s, p, range.end));
            offsets.extend(range.start..range.end);
        }
        offsets
    }
}

impl StateRead for Stored {
    type Error = Infallible;

    fn stored_acks(&self, s: u64, p: u32, floor: u64, from: u64, to: u64) -> Result<Vec<AckedRange>, Infallible> {
        assert!(floor <= from, "looks back from {from} to {floor}");
        let before = self.acks.range((s, p, floor)..(s, p, from)).next_back().map(|(_, range)| *range);
        let starting = self.acks.range((s, p, from)..(s, p, to)).map(|(_, range)| *range);
        Ok(before.filter(|range| range.end > from && from < to).into_iter().chain(starting).collect())
    }

    fn stored_acks_total(&self, s: u64, p: u32, floor: u64, to: u64) -> Result<AckedTotal, Infallible> {
        let mut total = AckedTotal::default();
        for range in self.acks.range((s, p, floor)..(s, p, to.max(floor))).map(|(_, range)| range) {
            total.add(range);
        }
        Ok(total)
    }

    fn message_extent(&self, topic_id: u64, partition: u32, offset: u64) -> Result<Option<MessageExtent>, Infallible> {
        let Some((&(_, _, first), batch)) =
            self.messages.range((topic_id, partition, 0)..=(topic_id, partition, offset)).next_back()
        else {
            return Ok(None);
        };
        let index = (offset - first) as usize;
        let Some(body) = batch.bodies.get(index) else { return Ok(None) };
        let earlier: u64 = batch.bodies[..index].iter().map(|b| b.size_bytes() as u64).sum();
        Ok(Some(MessageExtent {
            bytes_before: batch.bytes_before + earlier,
            size: body.size_bytes() as u64,
            publish_time_us: batch.publish_time_us,
            batch_first: first,
        }))
    }

    fn message_sizes(&self, topic_id: u64, partition: u32, offsets: &[u64]) -> Result<Vec<u64>, Infallible> {
        let size = |offset| self.message_extent(topic_id, partition, offset).map(|e| e.map_or(0, |e| e.size));
        offsets.iter().map(|&offset| size(offset)).collect()
    }
}

impl Model {
    fn run(&mut self, command: Command) -> (Response, usize) {
        let Ok(applied) = apply(&mut self.catalog, command, &self.stored);
        let count = applied.writes.len();
        for write in applied.writes {
            self.persist(write);
        }
        (applied.response, count)
    }

    fn persist(&mut self, write: Write) {
        let stored = &mut self.stored;
        match write {
            Write::PutMessages { topic_id, partition, first_offset, publish_time_us, bytes_before, bodies } => {
                let batch = StoredBatch { publish_time_us, bytes_before, bodies };
                stored.messages.insert((topic_id, partition, first_offset), batch);
            }
            Write::DeleteMessages { topic_id, partition, below } => {
                stored.messages.retain(|&(t, p, o), _| !(t == topic_id && p == partition && o < below));
            }
            Write::PutAckedRange { subscription_id, partition, range } => {
                stored.acks.insert((subscription_id, partition, range.start), range);
            }
            Write::DeleteAckedRange { subscription_id, partition, start } => {
                stored.acks.remove(&(subscription_id, partition, start));
            }
            Write::DeleteAckedRanges { subscription_id, partition, from, to } => {
                self.ack_range_deletes += 1;
                stored
                    .acks
                    .retain(|&(s, p, o), _| !(s == subscription_id && p == partition && (from..to).contains(&o)));
            }
            Write::PutAckState { subscription_id, partition, state } => {
                self.floors.insert((subscription_id, partition), state);
            }
            Write::DeleteTopic { id, .. } => {
                stored.messages.retain(|&(t, _, _), _| t != id);
                self.producers.retain(|k, _| k.topic_id != id);
            }
            Write::PutProducer { key, state } => {
                self.producers.insert(key, state);
            }
            Write::PutHourStart { topic_id, partition, hour_start_us, first_offset } => {
                self.hour_starts.insert((topic_id, partition, hour_start_us), first_offset);
            }
            Write::DeleteProducer { key } => {
                self.producers.remove(&key);
            }
            Write::DeleteSubscription { id, .. } => {
                stored.acks.retain(|&(s, _, _), _| s != id);
                self.floors.retain(|&(s, _), _| s != id);
            }
            Write::PutTopic(_)
            | Write::PutPartition { .. }
            | Write::PutSubscription(_)
            | Write::PutIdCounters { .. }
            | Write::PutLayout(_)
            | Write::PutLeaving(_)
            | Write::PutMetaIndex(_)
            | Write::PutLock(_)
            | Write::DeleteLock { .. }
            | Write::PutBookmark(_)
            | Write::DeleteBookmark { .. } => {}
        }
    }

    fn create_topic(&mut self, name: &str, partitions: u32) -> u64 {
        let config = TopicConfig {
            partitions,
            max_message_bytes: 1024,
            retention_seconds: 60,
            retention_bytes: 0,
            labels: Default::default(),
        };
        match self.run(Command::CreateTopic { name: name.into(), config, create_time_us: 1, groups: Vec::new() }).0 {
            Response::TopicCreated(topic) => topic.id,
            other => panic!("create topic {name}: {other:?}"),
        }
    }

    fn create_subscription(&mut self, name: &str, topic: &str) -> u64 {
        let config = SubscriptionConfig { ack_deadline_seconds: 10, ..Default::default() };
        let command = Command::CreateSubscription { name: name.into(), topic: topic.into(), config, create_time_us: 2 };
        match self.run(command).0 {
            Response::SubscriptionCreated(subscription) => subscription.id,
            other => panic!("create subscription {name}: {other:?}"),
        }
    }

    fn publish(&mut self, topic_id: u64, partition: u32, time_us: i64, count: usize) -> Response {
        let messages = (0..count).map(|i| body(&format!("m{i}"))).collect();
        let batch = PublishBatch { topic_id, partition, publish_time_us: time_us, messages, producer: None };
        self.run(Command::Publish(batch)).0
    }

    /// An idempotent publish of `count` messages by `producer_id` from `first_sequence`.
    fn publish_as(
        &mut self,
        topic_id: u64,
        producer_id: u64,
        first_sequence: u64,
        time_us: i64,
        count: usize,
    ) -> Response {
        let messages = (0..count).map(|i| body(&format!("p{producer_id}-{}", first_sequence + i as u64))).collect();
        let producer = Some(ProducerSequence { producer_id, first_sequence, skip_from: None });
        let batch = PublishBatch { topic_id, partition: 0, publish_time_us: time_us, messages, producer };
        self.run(Command::Publish(batch)).0
    }

    fn ack(&mut self, subscription_id: u64, partition: u32, offsets: &[u64]) -> Response {
        let partitions = vec![PartitionAcks { partition, offsets: offsets.to_vec() }];
        self.run(Command::Acknowledge(AckBatch { subscription_id, partitions })).0
    }

    fn ack_state(&self, subscription_id: u64, partition: u32) -> &AckState {
        &self.catalog.subscription_by_id(subscription_id).expect("subscription").acks[partition as usize]
    }

    fn floor(&self, subscription_id: u64, partition: u32) -> u64 {
        self.catalog.subscription_by_id(subscription_id).expect("subscription").acks[partition as usize].floor
    }
}

/// Moving `offset` of partition 0 of `subscription_id`'s topic, `message`,
/// to partition 0 of topic `dead_letter_topic_id`.
fn dead_letter(subscription_id: u64, offset: u64, dead_letter_topic_id: u64, message: MessageBody) -> Command {
    Command::DeadLetter(DeadLetter {
        subscription_id,
        partition: 0,
        offset,
        dead_letter_topic_id,
        dead_letter_partition: 0,
        publish_time_us: 5,
        message,
    })
}

fn body(data: &str) -> MessageBody {
    MessageBody { data: Bytes::copy_from_slice(data.as_bytes()), ..Default::default() }
}

#[test]
fn a_second_create_of_a_topic_is_rejected_and_writes_nothing() {
    let mut model = Model::default();
    model.create_topic("t", 1);
    let before = model.catalog.clone();
    let config = TopicConfig {
        partitions: 4,
        max_message_bytes: 1,
        retention_seconds: 1,
        retention_bytes: 0,
        labels: Default::default(),
    };
    let (response, writes) =
        model.run(Command::CreateTopic { name: "t".into(), config, create_time_us: 9, groups: Vec::new() });
    assert_eq!(response, Response::Rejected(Rejection::TopicExists { name: "t".into() }));
    assert_eq!(writes, 0);
    assert_eq!(model.catalog, before);
}

#[test]
fn ids_are_never_reused_after_a_delete() {
    let mut model = Model::default();
    let first = model.create_topic("t", 1);
    model.run(Command::DeleteTopic { name: "t".into() });
    let second = model.create_topic("t", 1);
    assert!(second > first, "{second} > {first}");
}

#[test]
fn rejections_of_missing_objects_change_nothing() {
    let mut model = Model::default();
    let topic = model.create_topic("t", 2);
    let before = model.catalog.clone();
    let config = SubscriptionConfig { ack_deadline_seconds: 10, ..Default::default() };
    let cases = [
        (
            Command::CreateSubscription { name: "s".into(), topic: "nope".into(), config, create_time_us: 0 },
            Rejection::TopicNotFound { name: "nope".into() },
        ),
        (Command::DeleteTopic { name: "nope".into() }, Rejection::TopicNotFound { name: "nope".into() }),
        (Command::DeleteSubscription { name: "s".into() }, Rejection::SubscriptionNotFound { name: "s".into() }),
        (
            Command::Publish(PublishBatch {
                topic_id: topic,
                partition: 2,
                publish_time_us: 0,
                messages: vec![body("x")],
                producer: None,
            }),
            Rejection::PartitionOutOfRange { partition: 2, partitions: 2 },
        ),
        (
            Command::Publish(PublishBatch {
                topic_id: 99,
                partition: 0,
                publish_time_us: 0,
                messages: vec![body("x")],
                producer: None,
            }),
            Rejection::TopicNotFound { name: "#99".into() },
        ),
        (
            Command::Acknowledge(AckBatch { subscription_id: 7, partitions: vec![] }),
            Rejection::SubscriptionNotFound { name: "#7".into() },
        ),
    ];
    for (command, rejection) in cases {
        let kind = command.kind();
        let (response, writes) = model.run(command);
        assert_eq!(response, Response::Rejected(rejection), "{kind}");
        assert_eq!(writes, 0, "{kind}");
        assert_eq!(model.catalog, before, "{kind}");
    }
}

fn published(partition: u32, first_offset: u64, count: u32, publish_time_us: i64) -> Response {
    Response::Published { partition, first_offset, count, publish_time_us, duplicate: false }
}

#[test]
fn publish_assigns_consecutive_offsets_and_never_moves_time_backwards() {
    let mut model = Model::default();
    let topic = model.create_topic("t", 1);
    let first = model.publish(topic, 0, 1_000, 3);
    assert_eq!(first, published(0, 0, 3, 1_000));
    // A new leader whose clock is behind still stamps a time that is not earlier.
    let second = model.publish(topic, 0, 500, 2);
    assert_eq!(second, published(0, 3, 2, 1_000));
    let third = model.publish(topic, 0, 2_000, 1);
    assert_eq!(third, published(0, 5, 1, 2_000));
    let stored: Vec<(u64, i64)> = model.stored.each_message().iter().map(|m| (m.0, m.1)).collect();
    assert_eq!(stored, vec![(0, 1000), (1, 1000), (2, 1000), (3, 1000), (4, 1000), (5, 2000)]);
}

#[test]
fn a_subscription_starts_at_the_end_of_each_partition() {
    let mut model = Model::default();
    let topic = model.create_topic("t", 2);
    model.publish(topic, 0, 1, 3);
    model.publish(topic, 1, 1, 5);
    let subscription = model.create_subscription("s", "t");
    assert_eq!(model.floor(subscription, 0), 3);
    assert_eq!(model.floor(subscription, 1), 5);
}

#[test]
fn deleting_a_topic_deletes_its_subscriptions_and_messages() {
    let mut model = Model::default();
    let topic = model.create_topic("t", 1);
    let other = model.create_topic("u", 1);
    model.create_subscription("s1", "t");
    model.create_subscription("s2", "t");
    model.create_subscription("keep", "u");
    model.publish(topic, 0, 1, 2);
    model.publish(other, 0, 1, 2);

    let (response, _) = model.run(Command::DeleteTopic { name: "t".into() });
    assert_eq!(response, Response::TopicDeleted { subscriptions_deleted: 2 });
    assert!(model.catalog.topic("t").is_none());
    assert!(model.catalog.subscription("s1").is_none());
    assert!(model.catalog.subscription("keep").is_some());
    assert!(model.stored.messages.keys().all(|k| k.0 == other));
}

#[test]
fn names_follow_the_topic_name_rules() {
    for good in ["a", "A.b_c-9", &"x".repeat(249)] {
        assert_eq!(validate::name("name", good), Ok(()), "{good}");
    }
    for bad in ["", ".", "..", "a b", "a/b", "ü", &"x".repeat(250)] {
        let err = validate::name("name", bad).expect_err(bad);
        assert_eq!(err.field, "name");
    }
}

#[test]
fn batches_are_checked_against_every_limit() {
    let ok = body("x");
    let mut too_big = body("");
    too_big.data = Bytes::from(vec![0u8; 101]);
    let mut bad_attribute = body("x");
    bad_attribute.attributes.insert(String::new(), "v".into());
    let cases: Vec<(Vec<MessageBody>, &str)> = vec![
        (vec![], "messages"),
        (vec![ok.clone(); limits::BATCH_MESSAGES_MAX + 1], "messages"),
        (vec![ok.clone(), MessageBody::default()], "messages[1]"),
        (vec![too_big], "messages[0]"),
        (vec![bad_attribute], "messages[0].attributes"),
    ];
    for (messages, field) in cases {
        let err = validate::batch(&messages, 100).expect_err(field);
        assert_eq!(err.field, field, "{err}");
    }
    assert_eq!(validate::batch(&[ok], 100), Ok(()));
}

#[test]
fn publishes_count_bytes_so_any_range_is_a_subtraction() {
    let mut model = Model::default();
    let topic = model.create_topic("t", 1);
    model.publish(topic, 0, 1, 12); // m0..m9 are 2 bytes, m10 and m11 are 3
    let state = &model.catalog.topic_by_id(topic).expect("topic").partitions[0];
    assert_eq!(state.total_bytes, 10 * 2 + 2 * 3);
    let befores: Vec<u64> = model.stored.each_message().iter().map(|m| m.2).collect();
    assert_eq!(befores[..3], [0, 2, 4]);
    assert_eq!(befores[11], 20 + 3);
}

#[test]
fn trimming_deletes_messages_and_moves_lagging_floors_past_them() {
    let mut model = Model::default();
    let topic = model.create_topic("t", 1);
    let lagging = model.create_subscription("lagging", "t");
    let ahead = model.create_subscription("ahead", "t");
    for count in [4, 3, 3] {
        model.publish(topic, 0, 1, count); // batches 0..4, 4..7 and 7..10, each message 2 bytes
    }
    model.ack(lagging, 0, &[2, 7]);
    model.ack(ahead, 0, &[0, 1, 2, 3, 4, 5, 6]);

    let (response, _) = model.run(Command::Trim(Trim { topic_id: topic, partition: 0, start_offset: 5 }));
    assert_eq!(response, Response::Trimmed { deleted: 5 });
    // Batches are stored whole: the one holding the new start stays.
    assert_eq!(model.stored.messages.keys().map(|k| k.2).collect::<Vec<_>>(), vec![4, 7]);
    let state = model.catalog.topic_by_id(topic).expect("topic").partitions[0].clone();
    assert_eq!((state.start_offset, state.start_bytes, state.stored_bytes()), (5, 10, 10));
    // The lagging subscription lost 0..5 (its ack of 2 with them); 7 stays acked.
    assert_eq!(*model.ack_state(lagging, 0), AckState { floor: 5, acked_above: 1, acked_above_bytes: 2 });
    assert_eq!(model.ack_state(ahead, 0).floor, 7, "a floor past the start is untouched");

    let (again, writes) = model.run(Command::Trim(Trim { topic_id: topic, partition: 0, start_offset: 3 }));
    assert_eq!((again, writes), (Response::Trimmed { deleted: 0 }, 0), "trims never move back");

    let (response, _) = model.run(Command::Trim(Trim { topic_id: topic, partition: 0, start_offset: 10 }));
    assert_eq!(response, Response::Trimmed { deleted: 5 });
    assert!(model.stored.messages.is_empty(), "a trim to the end leaves no batch");
}

#[test]
fn a_seek_sets_floors_within_the_stored_range_and_forgets_acks() {
    let mut model = Model::default();
    let topic = model.create_topic("t", 2);
    let sub = model.create_subscription("s", "t");
    model.publish(topic, 0, 1, 10);
    model.publish(topic, 1, 1, 4);
    model.ack(sub, 0, &[0, 1, 5]);
    model.run(Command::Trim(Trim { topic_id: topic, partition: 0, start_offset: 2 }));

    let (response, _) = model.run(Command::Seek(Seek { subscription_id: sub, floors: vec![0, 99] }));
    assert_eq!(response, Response::Sought);
    let subscription = model.catalog.subscription_by_id(sub).expect("sub").clone();
    assert_eq!(subscription.floors(), vec![2, 4], "clamped to start and end");
    assert_eq!(subscription.seek_epoch, 1);
    assert!(model.stored.acks.is_empty(), "the ack of 5 is forgotten: it will be delivered again");

    let (wrong, _) = model.run(Command::Seek(Seek { subscription_id: sub, floors: vec![0] }));
    assert!(matches!(wrong, Response::Rejected(_)), "one floor per partition");
}

#[test]
fn dead_lettering_moves_a_message_and_acks_it_in_one_step() {
    let mut model = Model::default();
    let topic = model.create_topic("t", 1);
    let dlq = model.create_topic("dlq", 1);
    let sub = model.create_subscription("s", "t");
    model.publish(topic, 0, 1, 3);
    let message = MessageBody { data: Bytes::from_static(b"poison"), ..Default::default() };
    let dead = |offset| dead_letter(sub, offset, dlq, message.clone());
    assert_eq!(model.run(dead(1)).0, Response::DeadLettered { position: Some((0, 0)) });
    assert_eq!(model.stored.messages[&(dlq, 0, 0)].bodies, vec![message.clone()]);
    assert_eq!(model.ack_state(sub, 0).acked_above, 1);
    model.ack(sub, 0, &[0]);
    assert_eq!(model.floor(sub, 0), 2, "the dead-lettered message counts as acked");
    assert_eq!(model.run(dead(1)).0, Response::DeadLettered { position: None }, "acked already: nothing moves");
}

mod acks;
mod bookmarks;
mod groups;
mod locks;
mod producers;
mod updates;

#[test]
fn a_partition_records_the_first_offset_of_each_hour_it_gets_messages_in() {
    let mut model = Model::default();
    let topic = model.create_topic("t", 2);
    let hour = hours::HOUR_US;
    model.publish(topic, 0, 10, 3); // offsets 0..3, hour 0
    model.publish(topic, 0, hour - 1, 2); // 3..5, still hour 0
    model.publish(topic, 0, 2 * hour + 7, 4); // 5..9, hour 2 (none in hour 1)
    model.publish(topic, 0, 2 * hour + 8, 1); // 9, hour 2
    model.publish(topic, 1, hour + 1, 1); // the other partition keeps its own
    let starts: Vec<((u64, u32, i64), u64)> = model.hour_starts.clone().into_iter().collect();
    assert_eq!(starts, [((topic, 0, 0), 0), ((topic, 0, 2 * hour), 5), ((topic, 1, hour), 0)]);
}
