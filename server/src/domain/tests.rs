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
    messages: BTreeMap<(u64, u32, u64), (i64, MessageBody)>,
    acks: BTreeSet<(u64, u32, u64)>,
    floors: BTreeMap<(u64, u32), u64>,
}

impl AckLookup for BTreeSet<(u64, u32, u64)> {
    type Error = Infallible;
    fn is_acked(&self, subscription_id: u64, partition: u32, offset: u64) -> Result<bool, Infallible> {
        Ok(self.contains(&(subscription_id, partition, offset)))
    }
}

impl Model {
    fn run(&mut self, command: Command) -> (Response, usize) {
        let Ok(applied) = apply(&mut self.catalog, command, &self.acks);
        let count = applied.writes.len();
        for write in applied.writes {
            self.persist(write);
        }
        (applied.response, count)
    }

    fn persist(&mut self, write: Write) {
        match write {
            Write::PutMessage { topic_id, partition, offset, publish_time_us, body } => {
                self.messages.insert((topic_id, partition, offset), (publish_time_us, body));
            }
            Write::PutAck { subscription_id, partition, offset } => {
                self.acks.insert((subscription_id, partition, offset));
            }
            Write::DeleteAcks { subscription_id, partition, from, to } => {
                self.acks.retain(|&(s, p, o)| !(s == subscription_id && p == partition && (from..to).contains(&o)));
            }
            Write::PutAckFloor { subscription_id, partition, floor } => {
                self.floors.insert((subscription_id, partition), floor);
            }
            Write::DeleteTopic { id, .. } => self.messages.retain(|&(t, _, _), _| t != id),
            Write::DeleteSubscription { id, .. } => {
                self.acks.retain(|&(s, _, _)| s != id);
                self.floors.retain(|&(s, _), _| s != id);
            }
            Write::PutTopic(_)
            | Write::PutPartition { .. }
            | Write::PutSubscription(_)
            | Write::PutIdCounters { .. } => {}
        }
    }

    fn create_topic(&mut self, name: &str, partitions: u32) -> u64 {
        let config = TopicConfig { partitions, max_message_bytes: 1024 };
        match self.run(Command::CreateTopic { name: name.into(), config, create_time_us: 1 }).0 {
            Response::TopicCreated(topic) => topic.id,
            other => panic!("create topic {name}: {other:?}"),
        }
    }

    fn create_subscription(&mut self, name: &str, topic: &str) -> u64 {
        let config = SubscriptionConfig { ack_deadline_seconds: 10 };
        let command = Command::CreateSubscription { name: name.into(), topic: topic.into(), config, create_time_us: 2 };
        match self.run(command).0 {
            Response::SubscriptionCreated(subscription) => subscription.id,
            other => panic!("create subscription {name}: {other:?}"),
        }
    }

    fn publish(&mut self, topic_id: u64, partition: u32, time_us: i64, count: usize) -> Response {
        let messages = (0..count).map(|i| body(&format!("m{i}"))).collect();
        self.run(Command::Publish(PublishBatch { topic_id, partition, publish_time_us: time_us, messages })).0
    }

    fn ack(&mut self, subscription_id: u64, partition: u32, offsets: &[u64]) -> Response {
        let partitions = vec![PartitionAcks { partition, offsets: offsets.to_vec() }];
        self.run(Command::Acknowledge(AckBatch { subscription_id, partitions })).0
    }

    fn floor(&self, subscription_id: u64, partition: u32) -> u64 {
        self.catalog.subscription_by_id(subscription_id).expect("subscription").ack_floors[partition as usize]
    }
}

fn body(data: &str) -> MessageBody {
    MessageBody { data: Bytes::copy_from_slice(data.as_bytes()), ..Default::default() }
}

#[test]
fn a_second_create_of_a_topic_is_rejected_and_writes_nothing() {
    let mut model = Model::default();
    model.create_topic("t", 1);
    let before = model.catalog.clone();
    let config = TopicConfig { partitions: 4, max_message_bytes: 1 };
    let (response, writes) = model.run(Command::CreateTopic { name: "t".into(), config, create_time_us: 9 });
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
    let config = SubscriptionConfig { ack_deadline_seconds: 10 };
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
            }),
            Rejection::PartitionOutOfRange { partition: 2, partitions: 2 },
        ),
        (
            Command::Publish(PublishBatch {
                topic_id: 99,
                partition: 0,
                publish_time_us: 0,
                messages: vec![body("x")],
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

#[test]
fn publish_assigns_consecutive_offsets_and_never_moves_time_backwards() {
    let mut model = Model::default();
    let topic = model.create_topic("t", 1);
    let first = model.publish(topic, 0, 1_000, 3);
    assert_eq!(first, Response::Published { partition: 0, first_offset: 0, count: 3, publish_time_us: 1_000 });
    // A new leader whose clock is behind still stamps a time that is not earlier.
    let second = model.publish(topic, 0, 500, 2);
    assert_eq!(second, Response::Published { partition: 0, first_offset: 3, count: 2, publish_time_us: 1_000 });
    let third = model.publish(topic, 0, 2_000, 1);
    assert_eq!(third, Response::Published { partition: 0, first_offset: 5, count: 1, publish_time_us: 2_000 });
    let stored: Vec<(u64, i64)> = model.messages.iter().map(|(k, v)| (k.2, v.0)).collect();
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
fn acks_advance_the_floor_over_individually_stored_acks() {
    let mut model = Model::default();
    let topic = model.create_topic("t", 1);
    let sub = model.create_subscription("s", "t");
    model.publish(topic, 0, 1, 6);

    assert_eq!(model.ack(sub, 0, &[2, 4]), Response::Acknowledged { count: 2 });
    assert_eq!(model.floor(sub, 0), 0);
    assert_eq!(model.acks.len(), 2);

    assert_eq!(model.ack(sub, 0, &[1, 0]), Response::Acknowledged { count: 2 });
    assert_eq!(model.floor(sub, 0), 3, "floor passes 0, 1 and the stored 2");
    assert_eq!(model.acks, BTreeSet::from([(sub, 0, 4)]), "acks under the floor are deleted");

    // Acks below the floor, repeated, or past the end change nothing.
    assert_eq!(model.ack(sub, 0, &[0, 4, 4, 6, 100]), Response::Acknowledged { count: 0 });
    assert_eq!(model.ack(sub, 0, &[3, 5]), Response::Acknowledged { count: 2 });
    assert_eq!(model.floor(sub, 0), 6);
    assert!(model.acks.is_empty());
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
    assert!(model.messages.keys().all(|k| k.0 == other));
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
            prop_assert_eq!(model.floors[&(sub, 0)], floor, "the floor is persisted");
            let stored: BTreeSet<u64> = model.acks.iter().map(|k| k.2).collect();
            let expected: BTreeSet<u64> = acked.iter().copied().filter(|&o| o > floor).collect();
            prop_assert_eq!(stored, expected);
        }
        prop_assert_eq!(counted, acked.len() as u64);
    }
}
