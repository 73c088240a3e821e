//! Changing a topic's or a subscription's settings on a running 3-node
//! cluster with data groups: the change is answered once every group
//! holding a partition has taken it up, so delivery follows it at once.

use std::time::Duration;

use ferry_client::{Client, Code, Message, SubscriptionSettings, TopicSettings};
use ferry_tests::{ferry, ferry_ok, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updated_settings_are_kept_shown_and_followed_by_every_group() {
    let cluster = Cluster::start_with_groups(3, 2).await;
    let client = Client::connect(&cluster.addrs()).await.expect("connect");
    let labels = [("team".to_owned(), "data".to_owned())].into();
    let created = client
        .create_topic("orders", TopicSettings { partitions: 4, labels, ..Default::default() })
        .await
        .expect("create topic");
    client.create_topic("orders-dlq", TopicSettings::default()).await.expect("create the dead-letter topic");
    client.create_subscription("billing", "orders", SubscriptionSettings::default()).await.expect("subscribe");

    // Only the named settings change; the partitions never do.
    let asked = TopicSettings { retention: Duration::from_secs(3600), partitions: 99, ..Default::default() };
    let topic = client.update_topic("orders", asked, &["retention_seconds"]).await.expect("update topic");
    assert_eq!(topic.settings.retention, Duration::from_secs(3600));
    assert_eq!(topic.settings.partitions, 4);
    assert_eq!(topic.settings.labels, created.settings.labels, "labels were not named, so kept");
    assert_eq!(client.get_topic("orders").await.expect("get").settings, topic.settings);

    // Bad updates are refused naming the field, and change nothing.
    let refused = client.update_topic("orders", TopicSettings::default(), &["partitions"]).await;
    let error = refused.expect_err("partitions cannot change");
    assert_eq!(error.code(), Some(Code::InvalidArgument), "{error}");
    assert!(error.to_string().contains("update_mask"), "{error}");
    let bad_label = TopicSettings { labels: [("Team".to_owned(), "x".to_owned())].into(), ..Default::default() };
    let error = client.update_topic("orders", bad_label, &["labels"]).await.expect_err("an upper-case key");
    assert!(error.to_string().contains("settings.labels"), "{error}");
    let missing = client.update_subscription("nope", SubscriptionSettings::default(), &["ack_deadline_seconds"]);
    assert_eq!(missing.await.expect_err("no such subscription").code(), Some(Code::NotFound));
    assert_eq!(client.get_topic("orders").await.expect("get").settings, topic.settings);

    // The CLI: each flag given is a setting to change.
    let printed = ferry_ok(&cluster.addrs(), &["topic", "update", "orders", "--label", "team=ops"], b"");
    let printed: serde_json::Value = serde_json::from_str(&printed).expect("JSON");
    assert_eq!(printed["labels"], serde_json::json!({"team": "ops"}));
    assert_eq!(printed["retention_seconds"], 3600, "not given, so kept");
    let printed = ferry_ok(&cluster.addrs(), &["sub", "update", "billing", "--ack-deadline", "45s"], b"");
    let printed: serde_json::Value = serde_json::from_str(&printed).expect("JSON");
    assert_eq!(printed["ack_deadline_seconds"], 45);
    let refused = ferry(&cluster.addrs(), &["topic", "update", "orders"], b"");
    assert!(!refused.status.success(), "nothing to change");
    let labels = client.get_topic("orders").await.expect("get").settings.labels;
    assert_eq!(labels, [("team".to_owned(), "ops".to_owned())].into());

    // A dead-letter policy added later is followed by the data group
    // delivering the partition (which has leases of the subscription
    // already: one ordering key puts both messages in one partition): the
    // 5th nack moves the message.
    client.publish("orders", vec![Message::new("warm-up").ordering_key("k")]).await.expect("publish");
    let pulled = client.pull("billing", 10, Duration::from_secs(10)).await.expect("pull");
    let ids: Vec<String> = pulled.iter().map(|m| m.ack_id.clone()).collect();
    client.acknowledge("billing", &ids).await.expect("ack");
    let policy =
        SubscriptionSettings { dead_letter_topic: "orders-dlq".into(), max_delivery_attempts: 5, ..Default::default() };
    let updated = client.update_subscription("billing", policy, &["dead_letter_policy"]).await.expect("update");
    assert_eq!(updated.settings.dead_letter_topic, "orders-dlq");
    assert_eq!(updated.settings.ack_deadline, Duration::from_secs(45), "not named, so kept");
    client.create_subscription("dlq-reader", "orders-dlq", SubscriptionSettings::default()).await.expect("sub");
    client.publish("orders", vec![Message::new("poison").ordering_key("k")]).await.expect("publish");
    for attempt in 1..=5 {
        let pulled = client.pull("billing", 10, Duration::from_secs(10)).await.expect("pull");
        assert_eq!(pulled.len(), 1, "attempt {attempt}");
        assert_eq!(pulled[0].delivery_attempt, attempt);
        let ids: Vec<String> = pulled.iter().map(|m| m.ack_id.clone()).collect();
        client.modify_ack_deadline("billing", &ids, 0).await.expect("nack");
    }
    assert!(client.pull("billing", 10, Duration::from_secs(2)).await.expect("pull").is_empty(), "moved away");
    let dead = client.pull("dlq-reader", 10, Duration::from_secs(10)).await.expect("pull the dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(&dead[0].message.data[..], b"poison");
}
