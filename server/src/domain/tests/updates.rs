//! Updates of a topic's or a subscription's settings, in group 0 and as a
//! data group takes them up through its sync.

use super::*;
use crate::domain::sync::sync_for;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// A config whose every setting differs from `Model::create_topic`'s.
fn other_topic_config() -> TopicConfig {
    TopicConfig {
        partitions: 9,
        max_message_bytes: 7,
        retention_seconds: 3600,
        retention_bytes: 5,
        labels: labels(&[("team", "ops")]),
    }
}

#[test]
fn a_topic_update_changes_the_named_settings_only_and_never_the_partitions() {
    let mut model = Model::default();
    model.create_topic("t", 2);
    let settings = vec![TopicSetting::RetentionSeconds, TopicSetting::Labels];
    let (response, writes) =
        model.run(Command::UpdateTopic { name: "t".into(), config: other_topic_config(), settings });
    let config = &model.catalog.topic("t").expect("topic").config;
    assert!(matches!(response, Response::TopicUpdated(ref t) if t.config == *config), "{response:?}");
    assert_eq!(writes, 1);
    assert_eq!(config.retention_seconds, 3600);
    assert_eq!(config.labels, labels(&[("team", "ops")]));
    assert_eq!((config.partitions, config.max_message_bytes, config.retention_bytes), (2, 1024, 0), "kept");
}

#[test]
fn two_updates_of_different_settings_both_take_effect() {
    // Each leader proposes the config it read with one setting changed;
    // the second must not take back the first.
    let mut model = Model::default();
    model.create_topic("t", 1);
    let read = model.catalog.topic("t").expect("topic").config.clone();
    let first = TopicConfig { retention_seconds: 99, ..read.clone() };
    let second = TopicConfig { retention_bytes: 4096, ..read };
    model.run(Command::UpdateTopic { name: "t".into(), config: first, settings: vec![TopicSetting::RetentionSeconds] });
    model.run(Command::UpdateTopic { name: "t".into(), config: second, settings: vec![TopicSetting::RetentionBytes] });
    let config = &model.catalog.topic("t").expect("topic").config;
    assert_eq!((config.retention_seconds, config.retention_bytes), (99, 4096));
}

#[test]
fn a_subscription_update_moves_each_policy_whole() {
    let mut model = Model::default();
    model.create_topic("t", 1);
    model.create_topic("dlq", 1);
    model.create_subscription("s", "t");
    let config = SubscriptionConfig {
        ack_deadline_seconds: 60,
        retry_min_backoff_seconds: 1,
        retry_max_backoff_seconds: 8,
        dead_letter_topic: "dlq".into(),
        max_delivery_attempts: 7,
        labels: labels(&[("owner", "etl")]),
    };
    let settings = vec![SubscriptionSetting::RetryPolicy, SubscriptionSetting::DeadLetterPolicy];
    let (response, writes) = model.run(Command::UpdateSubscription { name: "s".into(), config, settings });
    assert!(matches!(response, Response::SubscriptionUpdated(_)), "{response:?}");
    assert_eq!(writes, 1);
    let config = &model.catalog.subscription("s").expect("subscription").config;
    assert_eq!((config.retry_min_backoff_seconds, config.retry_max_backoff_seconds), (1, 8));
    assert_eq!((config.dead_letter_topic.as_str(), config.max_delivery_attempts), ("dlq", 7));
    assert_eq!(config.ack_deadline_seconds, 10, "not named, so kept");
    assert!(config.labels.is_empty(), "not named, so kept");
}

#[test]
fn updates_of_missing_objects_or_to_a_missing_dead_letter_topic_change_nothing() {
    let mut model = Model::default();
    model.create_topic("t", 1);
    model.create_subscription("s", "t");
    let before = model.catalog.clone();
    let dead_letter =
        SubscriptionConfig { dead_letter_topic: "gone".into(), max_delivery_attempts: 5, ..Default::default() };
    let cases = [
        (
            Command::UpdateTopic {
                name: "nope".into(),
                config: other_topic_config(),
                settings: vec![TopicSetting::Labels],
            },
            Rejection::TopicNotFound { name: "nope".into() },
        ),
        (
            Command::UpdateSubscription {
                name: "nope".into(),
                config: SubscriptionConfig::default(),
                settings: vec![SubscriptionSetting::AckDeadline],
            },
            Rejection::SubscriptionNotFound { name: "nope".into() },
        ),
        (
            Command::UpdateSubscription {
                name: "s".into(),
                config: dead_letter,
                settings: vec![SubscriptionSetting::DeadLetterPolicy],
            },
            Rejection::TopicNotFound { name: "gone".into() },
        ),
    ];
    let cases = cases.into_iter().chain([(
        // Checked by the leader too; here for a subscription created again
        // on the dead-letter topic between that check and the update.
        Command::UpdateSubscription {
            name: "s".into(),
            config: SubscriptionConfig {
                dead_letter_topic: "t".into(),
                max_delivery_attempts: 5,
                ..Default::default()
            },
            settings: vec![SubscriptionSetting::DeadLetterPolicy],
        },
        Rejection::DeadLetterLoop { subscription: "s".into(), topic: "t".into() },
    )]);
    for (command, rejection) in cases {
        assert_eq!(model.run(command), (Response::Rejected(rejection), 0));
    }
    assert_eq!(model.catalog, before);
}

#[test]
fn a_data_group_takes_up_changed_settings_through_its_sync_and_keeps_its_partitions_and_floors() {
    // Group 0 holds "t" with partitions in groups 1 and 2, and "s" on it.
    let mut meta = Model::default();
    let config = TopicConfig { partitions: 2, ..other_topic_config() };
    let create = Command::CreateTopic { name: "t".into(), config, create_time_us: 1, groups: vec![1, 2] };
    assert!(matches!(meta.run(create).0, Response::TopicCreated(_)));
    meta.create_subscription("s", "t");
    let mut group = Model { catalog: Catalog::for_group(1), ..Model::default() };
    let install = sync_for(&meta.catalog, 5, &group.catalog).expect("a first sync");
    group.run(Command::SyncGroup(install));
    assert!(matches!(group.publish(1, 0, 3, 4), Response::Published { .. }));
    assert_eq!(sync_for(&meta.catalog, 5, &group.catalog), None, "in step");

    let settings = vec![TopicSetting::RetentionBytes];
    let changed = TopicConfig { retention_bytes: 1 << 20, ..other_topic_config() };
    meta.run(Command::UpdateTopic { name: "t".into(), config: changed, settings });
    let deadline = SubscriptionConfig { ack_deadline_seconds: 120, ..Default::default() };
    let settings = vec![SubscriptionSetting::AckDeadline];
    meta.run(Command::UpdateSubscription { name: "s".into(), config: deadline, settings });

    let sync = sync_for(&meta.catalog, 6, &group.catalog).expect("the changes");
    assert_eq!((sync.update_topics.len(), sync.update_subscriptions.len()), (1, 1));
    assert!(sync.install_topics.is_empty() && sync.remove_topics.is_empty());
    let (response, _) = group.run(Command::SyncGroup(sync));
    assert_eq!(response, Response::Synced { meta_index: 6 });
    let topic = group.catalog.topic("t").expect("topic");
    assert_eq!(topic.config, meta.catalog.topic("t").expect("topic").config);
    assert_eq!(topic.partitions[0].next_offset, 4, "its partition kept its messages");
    let subscription = group.catalog.subscription("s").expect("subscription");
    assert_eq!(subscription.config.ack_deadline_seconds, 120);
    assert_eq!(sync_for(&meta.catalog, 6, &group.catalog), None, "in step again");
}
