//! Conversions between domain types and their persistent protobuf records.

use ferry_proto::internal as pb;

use super::codec::CodecError;
use crate::domain::{
    AckBatch, AckState, BookmarkState, Command, CommittedBatch, DeadLetter, Layout, LockState, MessageBody,
    PartitionAcks, PartitionState, ProducerSequence, ProducerState, PublishBatch, Seek, StoredSequences,
    SubscriptionConfig, SubscriptionSetting, SubscriptionState, SyncGroup, TopicConfig, TopicSetting, TopicState, Trim,
};

pub fn topic_config_to_record(config: &TopicConfig) -> pb::TopicConfig {
    pb::TopicConfig {
        partitions: config.partitions,
        max_message_bytes: config.max_message_bytes,
        retention_seconds: config.retention_seconds,
        retention_bytes: config.retention_bytes,
        labels: config.labels.clone(),
    }
}

pub fn topic_config_from_record(record: Option<pb::TopicConfig>) -> Result<TopicConfig, CodecError> {
    let record = record.ok_or(CodecError::Missing("topic config"))?;
    Ok(TopicConfig {
        partitions: record.partitions,
        max_message_bytes: record.max_message_bytes,
        retention_seconds: record.retention_seconds,
        retention_bytes: record.retention_bytes,
        labels: record.labels,
    })
}

pub fn subscription_config_to_record(config: &SubscriptionConfig) -> pb::SubscriptionConfig {
    pb::SubscriptionConfig {
        ack_deadline_seconds: config.ack_deadline_seconds,
        retry_min_backoff_seconds: config.retry_min_backoff_seconds,
        retry_max_backoff_seconds: config.retry_max_backoff_seconds,
        dead_letter_topic: config.dead_letter_topic.clone(),
        max_delivery_attempts: config.max_delivery_attempts,
        labels: config.labels.clone(),
    }
}

pub fn subscription_config_from_record(
    record: Option<pb::SubscriptionConfig>,
) -> Result<SubscriptionConfig, CodecError> {
    let record = record.ok_or(CodecError::Missing("subscription config"))?;
    Ok(SubscriptionConfig {
        ack_deadline_seconds: record.ack_deadline_seconds,
        retry_min_backoff_seconds: record.retry_min_backoff_seconds,
        retry_max_backoff_seconds: record.retry_max_backoff_seconds,
        dead_letter_topic: record.dead_letter_topic,
        max_delivery_attempts: record.max_delivery_attempts,
        labels: record.labels,
    })
}

pub fn body_to_record(body: MessageBody) -> pb::MessageBody {
    pb::MessageBody {
        data: body.data,
        attributes: body.attributes,
        ordering_key: body.ordering_key,
        event_id: body.event_id,
    }
}

pub fn body_from_record(record: pb::MessageBody) -> MessageBody {
    MessageBody {
        data: record.data,
        attributes: record.attributes,
        ordering_key: record.ordering_key,
        event_id: record.event_id,
    }
}

/// A publish batch as the log stores it (and as a forwarded publish carries it).
pub fn publish_to_record(batch: &PublishBatch) -> pb::Publish {
    pb::Publish {
        topic_id: batch.topic_id,
        partition: batch.partition,
        publish_time_unix_micros: batch.publish_time_us,
        // `Bytes` clones share the buffer; only attribute strings are copied.
        messages: batch.messages.iter().cloned().map(body_to_record).collect(),
        producer_id: batch.producer.map_or(0, |p| p.producer_id),
        first_sequence: batch.producer.map_or(0, |p| p.first_sequence),
        skip_from: batch.producer.and_then(|p| p.skip_from),
    }
}

pub fn publish_from_record(record: pb::Publish) -> PublishBatch {
    PublishBatch {
        topic_id: record.topic_id,
        partition: record.partition,
        publish_time_us: record.publish_time_unix_micros,
        messages: record.messages.into_iter().map(body_from_record).collect(),
        producer: (record.producer_id != 0).then_some(ProducerSequence {
            producer_id: record.producer_id,
            first_sequence: record.first_sequence,
            skip_from: record.skip_from,
        }),
    }
}

pub fn topic_to_record(topic: &TopicState) -> pb::TopicRecord {
    pb::TopicRecord {
        id: topic.id,
        name: topic.name.clone(),
        config: Some(topic_config_to_record(&topic.config)),
        create_time_unix_micros: topic.create_time_us,
        groups: topic.groups.clone(),
    }
}

/// A topic without its partitions, which are stored under their own keys.
pub fn topic_from_record(record: pb::TopicRecord) -> Result<TopicState, CodecError> {
    Ok(TopicState {
        id: record.id,
        name: record.name,
        config: topic_config_from_record(record.config)?,
        create_time_us: record.create_time_unix_micros,
        partitions: Vec::new(),
        groups: record.groups,
    })
}

pub fn partition_to_record(state: &PartitionState) -> pb::PartitionRecord {
    pb::PartitionRecord {
        start_offset: state.start_offset,
        next_offset: state.next_offset,
        last_publish_time_unix_micros: state.last_publish_time_us,
        start_bytes: state.start_bytes,
        total_bytes: state.total_bytes,
    }
}

pub fn partition_from_record(record: pb::PartitionRecord) -> PartitionState {
    PartitionState {
        start_offset: record.start_offset,
        next_offset: record.next_offset,
        last_publish_time_us: record.last_publish_time_unix_micros,
        start_bytes: record.start_bytes,
        total_bytes: record.total_bytes,
    }
}

pub fn ack_state_to_record(state: &AckState) -> pb::AckFloorRecord {
    pb::AckFloorRecord {
        floor: state.floor,
        acked_above: state.acked_above,
        acked_above_bytes: state.acked_above_bytes,
    }
}

pub fn ack_state_from_record(record: pb::AckFloorRecord) -> AckState {
    AckState { floor: record.floor, acked_above: record.acked_above, acked_above_bytes: record.acked_above_bytes }
}

pub fn subscription_to_record(subscription: &SubscriptionState) -> pb::SubscriptionRecord {
    pb::SubscriptionRecord {
        id: subscription.id,
        name: subscription.name.clone(),
        topic: subscription.topic.clone(),
        topic_id: subscription.topic_id,
        config: Some(subscription_config_to_record(&subscription.config)),
        create_time_unix_micros: subscription.create_time_us,
        seek_epoch: subscription.seek_epoch,
    }
}

/// A subscription without its ack states, which are stored under their own keys.
pub fn subscription_from_record(record: pb::SubscriptionRecord) -> Result<SubscriptionState, CodecError> {
    Ok(SubscriptionState {
        id: record.id,
        name: record.name,
        topic: record.topic,
        topic_id: record.topic_id,
        config: subscription_config_from_record(record.config)?,
        create_time_us: record.create_time_unix_micros,
        seek_epoch: record.seek_epoch,
        acks: Vec::new(),
    })
}

pub fn command_to_record(command: &Command) -> pb::Command {
    use pb::command::Kind;
    let kind = match command {
        Command::CreateTopic { name, config, create_time_us, groups } => Kind::CreateTopic(pb::CreateTopic {
            name: name.clone(),
            config: Some(topic_config_to_record(config)),
            create_time_unix_micros: *create_time_us,
            groups: groups.clone(),
        }),
        Command::DeleteTopic { name } => Kind::DeleteTopic(pb::DeleteTopic { name: name.clone() }),
        Command::CreateSubscription { name, topic, config, create_time_us } => {
            Kind::CreateSubscription(pb::CreateSubscription {
                name: name.clone(),
                topic: topic.clone(),
                config: Some(subscription_config_to_record(config)),
                create_time_unix_micros: *create_time_us,
            })
        }
        Command::DeleteSubscription { name } => Kind::DeleteSubscription(pb::DeleteSubscription { name: name.clone() }),
        Command::UpdateTopic { name, config, settings } => Kind::UpdateTopic(pb::UpdateTopic {
            name: name.clone(),
            config: Some(topic_config_to_record(config)),
            settings: settings.iter().map(|s| s.name().to_owned()).collect(),
        }),
        Command::UpdateSubscription { name, config, settings } => Kind::UpdateSubscription(pb::UpdateSubscription {
            name: name.clone(),
            config: Some(subscription_config_to_record(config)),
            settings: settings.iter().map(|s| s.name().to_owned()).collect(),
        }),
        Command::Publish(batch) => Kind::Publish(publish_to_record(batch)),
        Command::Acknowledge(batch) => Kind::Acknowledge(pb::Acknowledge {
            subscription_id: batch.subscription_id,
            partitions: batch
                .partitions
                .iter()
                .map(|p| pb::PartitionAcks { partition: p.partition, offsets: p.offsets.clone() })
                .collect(),
        }),
        Command::Trim(trim) => {
            Kind::Trim(pb::Trim { topic_id: trim.topic_id, partition: trim.partition, start_offset: trim.start_offset })
        }
        Command::Seek(seek) => {
            Kind::Seek(pb::Seek { subscription_id: seek.subscription_id, floors: seek.floors.clone() })
        }
        Command::DeadLetter(dead) => Kind::DeadLetter(pb::DeadLetter {
            subscription_id: dead.subscription_id,
            partition: dead.partition,
            offset: dead.offset,
            dead_letter_topic_id: dead.dead_letter_topic_id,
            dead_letter_partition: dead.dead_letter_partition,
            publish_time_unix_micros: dead.publish_time_us,
            message: Some(body_to_record(dead.message.clone())),
        }),
        Command::SetLayout(layout) => Kind::SetLayout(layout_to_record(layout)),
        Command::SetLeaving { node_id, leaving } => {
            Kind::SetLeaving(pb::SetLeaving { node_id: *node_id, leaving: *leaving })
        }
        Command::SyncGroup(sync) => Kind::SyncGroup(pb::SyncGroup {
            expect_meta_index: sync.expect_meta_index,
            meta_index: sync.meta_index,
            install_topics: sync.install_topics.iter().map(topic_to_record).collect(),
            remove_topics: sync.remove_topics.clone(),
            install_subscriptions: sync.install_subscriptions.iter().map(subscription_to_record).collect(),
            remove_subscriptions: sync.remove_subscriptions.clone(),
            update_topics: sync.update_topics.iter().map(topic_to_record).collect(),
            update_subscriptions: sync.update_subscriptions.iter().map(subscription_to_record).collect(),
        }),
        Command::AcquireLock { name, holder, ttl_us, now_us } => Kind::AcquireLock(pb::AcquireLock {
            name: name.clone(),
            holder: holder.clone(),
            ttl_micros: *ttl_us,
            now_unix_micros: *now_us,
        }),
        Command::ReleaseLock { name, holder } => {
            Kind::ReleaseLock(pb::ReleaseLock { name: name.clone(), holder: holder.clone() })
        }
        Command::CreateBookmark(bookmark) => Kind::CreateBookmark(bookmark_to_record(bookmark)),
        Command::DeleteBookmark { name } => Kind::DeleteBookmark(pb::DeleteBookmark { name: name.clone() }),
    };
    pb::Command { kind: Some(kind) }
}

/// The settings an update names, each known to this version.
fn settings_from_record<S>(names: &[String], named: fn(&str) -> Option<S>) -> Result<Vec<S>, CodecError> {
    names.iter().map(|name| named(name).ok_or_else(|| CodecError::UnknownSetting(name.clone()))).collect()
}

pub fn command_from_record(record: pb::Command) -> Result<Command, CodecError> {
    use pb::command::Kind;
    Ok(match record.kind.ok_or(CodecError::Missing("command"))? {
        Kind::CreateTopic(c) => Command::CreateTopic {
            name: c.name,
            config: topic_config_from_record(c.config)?,
            create_time_us: c.create_time_unix_micros,
            groups: c.groups,
        },
        Kind::DeleteTopic(c) => Command::DeleteTopic { name: c.name },
        Kind::CreateSubscription(c) => Command::CreateSubscription {
            name: c.name,
            topic: c.topic,
            config: subscription_config_from_record(c.config)?,
            create_time_us: c.create_time_unix_micros,
        },
        Kind::DeleteSubscription(c) => Command::DeleteSubscription { name: c.name },
        Kind::UpdateTopic(c) => Command::UpdateTopic {
            name: c.name,
            config: topic_config_from_record(c.config)?,
            settings: settings_from_record(&c.settings, TopicSetting::named)?,
        },
        Kind::UpdateSubscription(c) => Command::UpdateSubscription {
            name: c.name,
            config: subscription_config_from_record(c.config)?,
            settings: settings_from_record(&c.settings, SubscriptionSetting::named)?,
        },
        Kind::Publish(c) => Command::Publish(publish_from_record(c)),
        Kind::Acknowledge(c) => Command::Acknowledge(AckBatch {
            subscription_id: c.subscription_id,
            partitions: c
                .partitions
                .into_iter()
                .map(|p| PartitionAcks { partition: p.partition, offsets: p.offsets })
                .collect(),
        }),
        Kind::Trim(c) => {
            Command::Trim(Trim { topic_id: c.topic_id, partition: c.partition, start_offset: c.start_offset })
        }
        Kind::Seek(c) => Command::Seek(Seek { subscription_id: c.subscription_id, floors: c.floors }),
        Kind::DeadLetter(c) => Command::DeadLetter(DeadLetter {
            subscription_id: c.subscription_id,
            partition: c.partition,
            offset: c.offset,
            dead_letter_topic_id: c.dead_letter_topic_id,
            dead_letter_partition: c.dead_letter_partition,
            publish_time_us: c.publish_time_unix_micros,
            message: body_from_record(c.message.ok_or(CodecError::Missing("dead-lettered message"))?),
        }),
        Kind::SetLayout(c) => Command::SetLayout(layout_from_record(c)),
        Kind::SetLeaving(c) => Command::SetLeaving { node_id: c.node_id, leaving: c.leaving },
        Kind::SyncGroup(c) => Command::SyncGroup(SyncGroup {
            expect_meta_index: c.expect_meta_index,
            meta_index: c.meta_index,
            install_topics: c.install_topics.into_iter().map(topic_from_record).collect::<Result<_, _>>()?,
            remove_topics: c.remove_topics,
            install_subscriptions: c
                .install_subscriptions
                .into_iter()
                .map(subscription_from_record)
                .collect::<Result<_, _>>()?,
            remove_subscriptions: c.remove_subscriptions,
            update_topics: c.update_topics.into_iter().map(topic_from_record).collect::<Result<_, _>>()?,
            update_subscriptions: c
                .update_subscriptions
                .into_iter()
                .map(subscription_from_record)
                .collect::<Result<_, _>>()?,
        }),
        Kind::AcquireLock(c) => {
            Command::AcquireLock { name: c.name, holder: c.holder, ttl_us: c.ttl_micros, now_us: c.now_unix_micros }
        }
        Kind::ReleaseLock(c) => Command::ReleaseLock { name: c.name, holder: c.holder },
        Kind::CreateBookmark(c) => Command::CreateBookmark(bookmark_from_record(c)),
        Kind::DeleteBookmark(c) => Command::DeleteBookmark { name: c.name },
    })
}

pub fn lock_to_record(lock: &LockState) -> pb::LockRecord {
    pb::LockRecord {
        name: lock.name.clone(),
        holder: lock.holder.clone(),
        epoch: lock.epoch,
        expire_time_unix_micros: lock.expire_time_us,
    }
}

pub fn lock_from_record(record: pb::LockRecord) -> LockState {
    LockState {
        name: record.name,
        holder: record.holder,
        epoch: record.epoch,
        expire_time_us: record.expire_time_unix_micros,
    }
}

pub fn bookmark_to_record(bookmark: &BookmarkState) -> pb::BookmarkRecord {
    pb::BookmarkRecord {
        name: bookmark.name.clone(),
        topic: bookmark.topic.clone(),
        topic_id: bookmark.topic_id,
        floors: bookmark.floors.clone(),
        create_time_unix_micros: bookmark.create_time_us,
        expire_time_unix_micros: bookmark.expire_time_us,
        labels: bookmark.labels.clone(),
    }
}

pub fn bookmark_from_record(record: pb::BookmarkRecord) -> BookmarkState {
    BookmarkState {
        name: record.name,
        topic: record.topic,
        topic_id: record.topic_id,
        floors: record.floors,
        create_time_us: record.create_time_unix_micros,
        expire_time_us: record.expire_time_unix_micros,
        labels: record.labels,
    }
}

pub fn layout_to_record(layout: &Layout) -> pb::SetLayout {
    pb::SetLayout { data_groups: layout.data_groups, voters: layout.voters.clone().into_iter().collect() }
}

pub fn layout_from_record(record: pb::SetLayout) -> Layout {
    Layout { data_groups: record.data_groups, voters: record.voters.into_iter().collect() }
}

pub fn producer_to_record(state: &ProducerState) -> pb::ProducerRecord {
    let batches = state
        .batches
        .iter()
        .map(|b| pb::CommittedBatch {
            first_sequence: b.first_sequence,
            count: b.count,
            first_offset: b.first_offset,
            publish_time_unix_micros: b.publish_time_us,
        })
        .collect();
    let stored = &state.stored;
    let stored = pb::StoredSequences {
        base: stored.base,
        stored_below_base: stored.stored_below_base,
        run_starts: stored.runs.iter().map(|r| r.0).collect(),
        run_ends: stored.runs.iter().map(|r| r.1).collect(),
    };
    pb::ProducerRecord { batches, stored: Some(stored) }
}

pub fn producer_from_record(record: pb::ProducerRecord) -> ProducerState {
    let batches = record
        .batches
        .into_iter()
        .map(|b| CommittedBatch {
            first_sequence: b.first_sequence,
            count: b.count,
            first_offset: b.first_offset,
            publish_time_us: b.publish_time_unix_micros,
        })
        .collect::<std::collections::VecDeque<_>>();
    let stored = match record.stored {
        Some(s) => StoredSequences {
            base: s.base,
            stored_below_base: s.stored_below_base,
            runs: s.run_starts.into_iter().zip(s.run_ends).collect(),
        },
        None => StoredSequences::unknown_below(batches.back().map_or(0, |b| b.first_sequence + u64::from(b.count))),
    };
    ProducerState { batches, stored }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::storage::codec;

    #[test]
    fn a_producers_stored_runs_survive_its_record_and_an_older_record_knows_nothing_before_its_next_sequence() {
        let state = ProducerState {
            batches: [CommittedBatch { first_sequence: 20, count: 5, first_offset: 7, publish_time_us: 3 }].into(),
            stored: StoredSequences { base: 4, stored_below_base: 3, runs: [(10, 15), (20, 25)].into() },
        };
        let record =
            codec::decode("producer", Bytes::from(codec::encode(&producer_to_record(&state)))).expect("decode");
        assert_eq!(producer_from_record(record), state);

        let older = pb::ProducerRecord { stored: None, ..producer_to_record(&state) };
        let read = producer_from_record(older);
        assert_eq!((read.stored.stored_below(24), read.stored.stored_below(25)), (None, Some(0)));
    }

    #[test]
    fn every_command_round_trips_through_its_record() {
        let body = MessageBody {
            data: Bytes::from_static(b"payload"),
            attributes: [("k".to_owned(), "v".to_owned())].into(),
            ordering_key: "key".into(),
            event_id: "e-1".into(),
        };
        let commands = [
            Command::CreateTopic {
                name: "t".into(),
                config: TopicConfig {
                    partitions: 3,
                    max_message_bytes: 99,
                    retention_seconds: 60,
                    retention_bytes: 7,
                    labels: Default::default(),
                },
                create_time_us: 5,
                groups: vec![2, 4, 1],
            },
            Command::DeleteTopic { name: "t".into() },
            Command::SetLeaving { node_id: 3, leaving: true },
            Command::AcquireLock { name: "route".into(), holder: "host-1".into(), ttl_us: 10_000_000, now_us: 42 },
            Command::ReleaseLock { name: "route".into(), holder: "host-1".into() },
            Command::CreateBookmark(BookmarkState {
                name: "p.before-deploy".into(),
                topic: "p.orders".into(),
                topic_id: 4,
                floors: vec![10, 0, 7],
                create_time_us: 100,
                expire_time_us: 200,
                labels: [("why".to_owned(), "deploy".to_owned())].into(),
            }),
            Command::DeleteBookmark { name: "p.before-deploy".into() },
            Command::SyncGroup(SyncGroup {
                expect_meta_index: 7,
                meta_index: 12,
                install_topics: vec![TopicState {
                    id: 4,
                    name: "t".into(),
                    config: TopicConfig {
                        partitions: 2,
                        max_message_bytes: 9,
                        retention_seconds: 6,
                        retention_bytes: 0,
                        labels: [("team".to_owned(), "data".to_owned())].into(),
                    },
                    create_time_us: 5,
                    partitions: Vec::new(),
                    groups: vec![3, 1],
                }],
                remove_topics: vec![2],
                install_subscriptions: vec![SubscriptionState {
                    id: 8,
                    name: "s".into(),
                    topic: "t".into(),
                    topic_id: 4,
                    config: SubscriptionConfig {
                        ack_deadline_seconds: 10,
                        retry_min_backoff_seconds: 0,
                        retry_max_backoff_seconds: 0,
                        dead_letter_topic: String::new(),
                        max_delivery_attempts: 0,
                        labels: Default::default(),
                    },
                    create_time_us: 6,
                    seek_epoch: 0,
                    acks: Vec::new(),
                }],
                remove_subscriptions: vec![5, 6],
                update_topics: vec![TopicState {
                    id: 3,
                    name: "u".into(),
                    config: TopicConfig {
                        partitions: 1,
                        max_message_bytes: 8,
                        retention_seconds: 60,
                        retention_bytes: 1,
                        labels: Default::default(),
                    },
                    create_time_us: 1,
                    partitions: Vec::new(),
                    groups: vec![2],
                }],
                update_subscriptions: vec![SubscriptionState {
                    id: 9,
                    name: "v".into(),
                    topic: "u".into(),
                    topic_id: 3,
                    config: SubscriptionConfig { ack_deadline_seconds: 60, ..Default::default() },
                    create_time_us: 2,
                    seek_epoch: 0,
                    acks: Vec::new(),
                }],
            }),
            Command::UpdateTopic {
                name: "t".into(),
                config: TopicConfig {
                    partitions: 2,
                    max_message_bytes: 9,
                    retention_seconds: 6,
                    retention_bytes: 0,
                    labels: [("team".to_owned(), "ops".to_owned())].into(),
                },
                settings: vec![TopicSetting::RetentionSeconds, TopicSetting::Labels],
            },
            Command::UpdateSubscription {
                name: "s".into(),
                config: SubscriptionConfig {
                    dead_letter_topic: "dlq".into(),
                    max_delivery_attempts: 7,
                    ..Default::default()
                },
                settings: vec![SubscriptionSetting::DeadLetterPolicy],
            },
            Command::SetLayout(Layout {
                data_groups: 4,
                voters: [(1, "a:1".to_owned()), (3, "c:1".to_owned())].into(),
            }),
            Command::CreateSubscription {
                name: "s".into(),
                topic: "t".into(),
                config: SubscriptionConfig {
                    ack_deadline_seconds: 30,
                    retry_min_backoff_seconds: 1,
                    retry_max_backoff_seconds: 9,
                    dead_letter_topic: "dlq".into(),
                    max_delivery_attempts: 5,
                    labels: [("owner".to_owned(), "etl".to_owned())].into(),
                },
                create_time_us: -1,
            },
            Command::DeleteSubscription { name: "s".into() },
            Command::Publish(PublishBatch {
                topic_id: 4,
                partition: 2,
                publish_time_us: 77,
                messages: vec![body.clone()],
                producer: None,
            }),
            Command::Publish(PublishBatch {
                topic_id: 4,
                partition: 2,
                publish_time_us: 77,
                messages: vec![body],
                producer: Some(ProducerSequence { producer_id: 9, first_sequence: 12, skip_from: Some(4) }),
            }),
            Command::Acknowledge(AckBatch {
                subscription_id: 9,
                partitions: vec![PartitionAcks { partition: 1, offsets: vec![3, 1, 2] }],
            }),
            Command::Trim(Trim { topic_id: 4, partition: 1, start_offset: 77 }),
            Command::Seek(Seek { subscription_id: 9, floors: vec![1, 2, 3] }),
            Command::DeadLetter(DeadLetter {
                subscription_id: 9,
                partition: 1,
                offset: 5,
                dead_letter_topic_id: 6,
                dead_letter_partition: 0,
                publish_time_us: 123,
                message: MessageBody { data: Bytes::from_static(b"x"), ..Default::default() },
            }),
        ];
        for command in commands {
            let bytes = codec::encode(&command_to_record(&command));
            let record: pb::Command = codec::decode("command", Bytes::from(bytes)).expect("decode");
            assert_eq!(command_from_record(record).expect("convert"), command);
        }
    }

    #[test]
    fn a_command_without_a_kind_is_an_error_not_a_panic() {
        assert!(matches!(command_from_record(pb::Command { kind: None }), Err(CodecError::Missing(_))));
    }
}
