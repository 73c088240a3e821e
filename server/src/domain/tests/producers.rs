//! Idempotent producers: retried batches stored once, batches out of
//! sequence refused, idle producers forgotten.

use super::*;

#[test]
fn a_retried_idempotent_batch_is_stored_once_and_answered_with_its_first_offsets() {
    let mut model = Model::default();
    let topic = model.create_topic("t", 1);
    assert_eq!(model.publish_as(topic, 7, 0, 1_000, 3), published(0, 0, 3, 1_000));
    assert_eq!(model.publish(topic, 0, 1_100, 2), published(0, 3, 2, 1_100));
    assert_eq!(model.publish_as(topic, 7, 3, 1_200, 2), published(0, 5, 2, 1_200));
    let messages_before = model.stored.messages.len();

    // Both batches are retried (their answers were lost): nothing new is stored.
    for (sequence, count, first_offset, time) in [(0, 3, 0, 1_000), (3, 2, 5, 1_200)] {
        let response = model.publish_as(topic, 7, sequence, 5_000, count);
        let duplicate = Response::Published {
            partition: 0,
            first_offset,
            count: count as u32,
            publish_time_us: time,
            duplicate: true,
        };
        assert_eq!(response, duplicate);
    }
    assert_eq!(model.stored.messages.len(), messages_before);
    // Another producer's sequence numbers are its own.
    assert_eq!(model.publish_as(topic, 8, 0, 1_300, 1), published(0, 7, 1, 1_300));
    // What the writes persisted is what the catalog holds.
    for (key, state) in &model.producers {
        assert_eq!(model.catalog.producers.get(key), Some(state));
    }
    assert_eq!(model.producers.len(), model.catalog.producers.len());
}

#[test]
fn idempotent_batches_out_of_sequence_are_rejected_without_effect() {
    let mut model = Model::default();
    let topic = model.create_topic("t", 1);
    model.publish_as(topic, 7, 0, 1_000, 3);
    let before = (model.catalog.clone(), model.stored.messages.len());
    // A batch that overtook a new producer's first one is refused, not taken as a start.
    let overtaking = Rejection::UnknownProducer { producer_id: 8, partition: 0, got: 3 };
    assert_eq!(model.publish_as(topic, 8, 3, 2_000, 1), Response::Rejected(overtaking));
    let gap = Rejection::SequenceGap { producer_id: 7, partition: 0, expected: 3, got: 5 };
    assert_eq!(model.publish_as(topic, 7, 5, 2_000, 1), Response::Rejected(gap));
    // Sequence 1 was committed, but inside a batch that started at 0.
    let overlap = Rejection::SequenceCommitted { producer_id: 7, partition: 0, sequence: 1, next: 3 };
    assert_eq!(model.publish_as(topic, 7, 1, 2_000, 2), Response::Rejected(overlap));
    // The same start with another length is not a retry either.
    let resized = Rejection::SequenceCommitted { producer_id: 7, partition: 0, sequence: 0, next: 3 };
    assert_eq!(model.publish_as(topic, 7, 0, 2_000, 4), Response::Rejected(resized));
    assert_eq!((model.catalog.clone(), model.stored.messages.len()), before);
}

#[test]
fn idle_producers_are_forgotten_and_deleted_topics_take_theirs_along() {
    let mut model = Model::default();
    let topic = model.create_topic("t", 1);
    model.publish_as(topic, 7, 0, 1_000, 1);
    model.publish_as(topic, 8, 0, 1_000 + limits::PRODUCER_IDLE_US, 1);
    assert_eq!(model.catalog.producers.len(), 2, "idle for exactly the limit is still remembered");
    model.publish_as(topic, 8, 1, 1_001 + limits::PRODUCER_IDLE_US, 1);
    assert_eq!(model.catalog.producers.len(), 1);
    assert_eq!(model.producers.len(), 1, "the forgotten producer's record is deleted");
    // A forgotten producer is unknown: only a new one (starting at 0) is accepted.
    let unknown = Rejection::UnknownProducer { producer_id: 7, partition: 0, got: 1 };
    assert_eq!(model.publish_as(topic, 7, 1, 2_000 + limits::PRODUCER_IDLE_US, 1), Response::Rejected(unknown));
    let fresh = model.publish_as(topic, 7, 0, 2_000 + limits::PRODUCER_IDLE_US, 1);
    assert!(matches!(fresh, Response::Published { duplicate: false, .. }), "{fresh:?}");

    model.run(Command::DeleteTopic { name: "t".into() });
    assert!(model.catalog.producers.is_empty());
    assert!(model.producers.is_empty());
}
