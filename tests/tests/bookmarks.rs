//! Bookmarks on a 3-node cluster with data groups: a subscription sought
//! back to a bookmark gets again everything it had not acked when the
//! bookmark was made, and nothing below the floors it saved.

use std::collections::BTreeSet;
use std::time::Duration;

use ferry_client::{Client, Code, Message, ReceivedMessage, SubscriptionSettings, TopicSettings};
use ferry_tests::{ferry_ok, Cluster};

/// Pulls until `count` messages came (or fails), acking each.
async fn pull_and_ack(client: &Client, subscription: &str, count: usize) -> Vec<ReceivedMessage> {
    let mut got = Vec::new();
    let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
    while got.len() < count {
        assert!(tokio::time::Instant::now() < give_up, "only {} of {count}", got.len());
        let pulled = client.pull(subscription, (count - got.len()) as u32, Duration::from_secs(5)).await.expect("pull");
        let ids: Vec<String> = pulled.iter().map(|m| m.ack_id.clone()).collect();
        if !ids.is_empty() {
            client.acknowledge(subscription, &ids).await.expect("ack");
        }
        got.extend(pulled);
    }
    got
}

fn data(messages: &[ReceivedMessage]) -> BTreeSet<String> {
    messages.iter().map(|m| String::from_utf8_lossy(&m.message.data).into_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeking_to_a_bookmark_brings_back_what_was_unacked_when_it_was_made() {
    let cluster = Cluster::start_with_groups(3, 2).await;
    let client = Client::connect(&cluster.addrs()).await.expect("connect");
    client.create_topic("orders", TopicSettings { partitions: 4, ..Default::default() }).await.expect("topic");
    client.create_topic("other", TopicSettings::default()).await.expect("topic");
    client.create_subscription("billing", "orders", SubscriptionSettings::default()).await.expect("sub");
    client.create_subscription("audit", "other", SubscriptionSettings::default()).await.expect("sub");

    let first: Vec<Message> = (0..40).map(|i| Message::new(format!("a{i}"))).collect();
    client.publish("orders", first).await.expect("publish");
    let acked_before = pull_and_ack(&client, "billing", 40).await;
    let second: Vec<Message> = (0..40).map(|i| Message::new(format!("b{i}"))).collect();
    client.publish("orders", second).await.expect("publish");

    let labels = [("why".to_owned(), "replay".to_owned())].into();
    let bookmark = client.create_bookmark("before-b", "billing", labels).await.expect("bookmark");
    assert_eq!(bookmark.topic, "orders");
    assert_eq!(bookmark.floors.len(), 4, "one floor per partition, from both data groups");
    assert_eq!(bookmark.floors.iter().sum::<u64>(), 40, "every a was acked, so each floor is above them");
    let again = client.create_bookmark("before-b", "billing", Default::default()).await;
    assert_eq!(again.expect_err("the name is taken").code(), Some(Code::AlreadyExists));
    assert_eq!(client.get_bookmark("before-b").await.expect("get"), bookmark);
    let listed: Vec<String> =
        client.list_bookmarks(Some("orders")).await.expect("list").into_iter().map(|b| b.name).collect();
    assert_eq!(listed, ["before-b"]);

    let unacked_then = pull_and_ack(&client, "billing", 40).await;
    assert!(client.pull("billing", 10, Duration::from_millis(500)).await.expect("pull").is_empty());
    client.seek_to_bookmark("billing", "before-b").await.expect("seek");
    let replayed = pull_and_ack(&client, "billing", 40).await;
    assert_eq!(data(&replayed), data(&unacked_then), "every b again, and no a");
    assert!(data(&replayed).is_disjoint(&data(&acked_before)));

    // A bookmark of another topic, or none, is refused; the CLI seeks too.
    let foreign = client.create_bookmark("of-other", "audit", Default::default()).await.expect("bookmark");
    let refused = client.seek_to_bookmark("billing", &foreign.name).await.expect_err("another topic's");
    assert_eq!(refused.code(), Some(Code::InvalidArgument), "{refused}");
    let missing = client.seek_to_bookmark("billing", "nope").await.expect_err("no such bookmark");
    assert_eq!(missing.code(), Some(Code::NotFound));
    ferry_ok(&cluster.addrs(), &["sub", "seek", "billing", "--bookmark", "before-b"], b"");
    assert_eq!(pull_and_ack(&client, "billing", 40).await.len(), 40, "the CLI's seek replays them again");

    client.delete_bookmark("before-b").await.expect("delete");
    assert_eq!(client.get_bookmark("before-b").await.expect_err("deleted").code(), Some(Code::NotFound));
    client.delete_topic("other").await.expect("delete topic");
    assert!(client.list_bookmarks(None).await.expect("list").is_empty(), "gone with its topic");
}
