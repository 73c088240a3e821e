//! Topic and subscription admin against a real `ferryd`: listings page through
//! many objects in name order, filters apply, deletes cascade.

use std::time::Duration;

use ferry_client::{Client, Code, Message, SubscriptionSettings, TopicSettings};
use ferry_tests::{Ferryd, TempDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_page_through_hundreds_of_objects_in_name_order() {
    let dir = TempDir::new().expect("temp dir");
    let server = Ferryd::start(&dir.path().join("node"));
    let client = Client::connect(server.addr()).await.expect("connect");
    let names: Vec<String> = (0..250).map(|i| format!("topic-{i:03}")).collect();
    for name in names.iter().rev() {
        client.create_topic(name, TopicSettings::default()).await.expect("create topic");
    }
    let listed: Vec<String> = client.list_topics().await.expect("list").into_iter().map(|t| t.name).collect();
    assert_eq!(listed, names, "all 250, across three pages, sorted");

    for i in 0..120 {
        let topic = if i % 2 == 0 { "topic-000" } else { "topic-001" };
        client.create_subscription(&format!("sub-{i:03}"), topic, SubscriptionSettings::default()).await.expect("sub");
    }
    assert_eq!(client.list_subscriptions(None).await.expect("list").len(), 120);
    let of_first = client.list_subscriptions(Some("topic-000")).await.expect("list");
    assert_eq!(of_first.len(), 60);
    assert!(of_first.iter().all(|s| s.topic == "topic-000"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_topic_deletes_its_subscriptions_and_a_new_topic_of_that_name_starts_empty() {
    let dir = TempDir::new().expect("temp dir");
    let server = Ferryd::start(&dir.path().join("node"));
    let client = Client::connect(server.addr()).await.expect("connect");
    client.create_topic("t", TopicSettings { partitions: 3, ..Default::default() }).await.expect("create");
    client.create_subscription("s", "t", SubscriptionSettings::default()).await.expect("sub");
    client.publish("t", vec![Message::new("old")]).await.expect("publish");

    client.delete_topic("t").await.expect("delete topic");
    assert_eq!(client.get_subscription("s").await.expect_err("gone").code(), Some(Code::NotFound));
    assert_eq!(client.pull("s", 1, Duration::ZERO).await.expect_err("gone").code(), Some(Code::NotFound));

    let topic = client.create_topic("t", TopicSettings::default()).await.expect("re-create");
    assert_eq!(topic.partitions.len(), 1);
    assert_eq!(topic.partitions[0].end_offset, 0, "nothing of the old topic remains");
    client.create_subscription("s", "t", SubscriptionSettings::default()).await.expect("sub again");
    client.publish("t", vec![Message::new("new")]).await.expect("publish");
    let received = client.pull("s", 10, Duration::from_secs(1)).await.expect("pull");
    let data: Vec<&[u8]> = received.iter().map(|m| m.message.data.as_ref()).collect();
    assert_eq!(data, vec![b"new".as_slice()]);
}
