//! Delivery semantics against a real `ferryd` on a manual clock: retry
//! backoff, dead-lettering, ordering keys, seek and backlog figures.

use std::time::{Duration, SystemTime};

use ferry_client::{Client, Message, PartitionProgress, SubscriptionSettings, TopicSettings};
use ferry_tests::{advance_clock, Ferryd, TempDir};

async fn start() -> (TempDir, Ferryd, Client) {
    let dir = TempDir::new().expect("temp dir");
    let server = Ferryd::start_with(&dir.path().join("node"), &["--unsafe-manual-clock"]);
    let client = Client::connect(server.addr()).await.expect("connect");
    client.create_topic("jobs", TopicSettings::default()).await.expect("create topic");
    (dir, server, client)
}

fn text(message: &ferry_client::ReceivedMessage) -> String {
    String::from_utf8_lossy(&message.message.data).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nacked_message_waits_out_its_retry_backoff() {
    let (_dir, server, client) = start().await;
    let settings = SubscriptionSettings {
        retry_min_backoff: Duration::from_secs(20),
        retry_max_backoff: Duration::from_secs(60),
        ..Default::default()
    };
    client.create_subscription("workers", "jobs", settings).await.expect("sub");
    client.publish("jobs", vec![Message::new("job")]).await.expect("publish");

    let first = client.pull("workers", 1, Duration::from_secs(1)).await.expect("pull");
    client.modify_ack_deadline("workers", &[first[0].ack_id.clone()], 0).await.expect("nack");
    advance_clock(server.addr(), Duration::from_secs(19)).await;
    assert!(client.pull("workers", 1, Duration::ZERO).await.expect("pull").is_empty(), "inside the 20 s backoff");
    advance_clock(server.addr(), Duration::from_secs(1)).await;
    let second = client.pull("workers", 1, Duration::from_secs(1)).await.expect("pull");
    assert_eq!(second[0].delivery_attempt, 2);

    // The lease of the second delivery runs out (10 s), then 40 s of backoff.
    advance_clock(server.addr(), Duration::from_secs(10 + 39)).await;
    assert!(client.pull("workers", 1, Duration::ZERO).await.expect("pull").is_empty(), "backoff doubled to 40 s");
    advance_clock(server.addr(), Duration::from_secs(1)).await;
    assert_eq!(client.pull("workers", 1, Duration::from_secs(1)).await.expect("pull")[0].delivery_attempt, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_nacked_too_often_moves_to_the_dead_letter_topic_with_the_reason() {
    let (_dir, server, client) = start().await;
    client.create_topic("jobs-dead", TopicSettings::default()).await.expect("create dead-letter topic");
    client.create_subscription("dead-reader", "jobs-dead", SubscriptionSettings::default()).await.expect("sub");
    let settings =
        SubscriptionSettings { dead_letter_topic: "jobs-dead".into(), max_delivery_attempts: 5, ..Default::default() };
    client.create_subscription("workers", "jobs", settings).await.expect("sub");
    let poison = Message::new("poison").attribute("origin", "test");
    client.publish("jobs", vec![poison, Message::new("fine")]).await.expect("publish");

    for attempt in 1..=5 {
        let got = client.pull("workers", 10, Duration::from_secs(1)).await.expect("pull");
        let poison = got.iter().find(|m| text(m) == "poison").expect("poison delivered");
        assert_eq!(poison.delivery_attempt, attempt);
        client.modify_ack_deadline("workers", std::slice::from_ref(&poison.ack_id), 0).await.expect("nack");
        if let Some(fine) = got.iter().find(|m| text(m) == "fine") {
            client.acknowledge("workers", std::slice::from_ref(&fine.ack_id)).await.expect("ack");
        }
    }
    // The next pull finds it out of attempts and moves it instead of delivering it.
    let sixth = client.pull("workers", 10, Duration::from_millis(500)).await.expect("pull");
    assert!(sixth.iter().all(|m| text(m) != "poison"), "not delivered a sixth time");
    let dead = client.pull("dead-reader", 1, Duration::from_secs(5)).await.expect("pull dead letters");
    assert_eq!(dead.len(), 1);
    let attributes = &dead[0].message.attributes;
    assert_eq!(text(&dead[0]), "poison");
    assert_eq!(attributes["origin"], "test", "its own attributes are kept");
    assert_eq!(attributes["ferry.dead_letter.subscription"], "workers");
    assert_eq!(attributes["ferry.dead_letter.delivery_attempts"], "5");
    assert!(attributes["ferry.dead_letter.reason"].contains("5 times"));
    advance_clock(server.addr(), Duration::from_secs(3600)).await;
    assert!(client.pull("workers", 10, Duration::from_secs(1)).await.expect("pull").is_empty(), "gone from the source");
    let backlog = client.get_subscription("workers").await.expect("get").backlog.expect("backlog");
    assert_eq!(backlog.unacked_messages, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_with_one_ordering_key_are_delivered_one_after_another() {
    let (_dir, _server, client) = start().await;
    client.create_subscription("workers", "jobs", SubscriptionSettings::default()).await.expect("sub");
    let messages = vec![
        Message::new("a1").ordering_key("a"),
        Message::new("a2").ordering_key("a"),
        Message::new("b1").ordering_key("b"),
        Message::new("free"),
        Message::new("a3").ordering_key("a"),
    ];
    client.publish("jobs", messages).await.expect("publish");

    let mut order = Vec::new();
    loop {
        let got = client.pull("workers", 10, Duration::from_millis(300)).await.expect("pull");
        if got.is_empty() {
            break;
        }
        let names: Vec<String> = got.iter().map(text).collect();
        let keyed_a = names.iter().filter(|n| n.starts_with('a')).count();
        assert!(keyed_a <= 1, "two messages of key a out at once: {names:?}");
        order.push(names);
        let ids: Vec<String> = got.into_iter().map(|m| m.ack_id).collect();
        client.acknowledge("workers", &ids).await.expect("ack");
    }
    assert_eq!(order[0], vec!["a1", "b1", "free"], "keyless and other keys are not held up");
    let a_order: Vec<&String> = order.iter().flatten().filter(|n| n.starts_with('a')).collect();
    assert_eq!(a_order, ["a1", "a2", "a3"], "key a in publish order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seek_replays_from_a_time_and_skips_to_one() {
    let (_dir, server, client) = start().await;
    client.create_subscription("workers", "jobs", SubscriptionSettings::default()).await.expect("sub");
    client.publish("jobs", (0..5).map(|i| Message::new(format!("old{i}"))).collect()).await.expect("publish");
    let topic_time = |m: &ferry_client::ReceivedMessage| m.publish_time;
    advance_clock(server.addr(), Duration::from_secs(3600)).await;
    client.publish("jobs", (0..5).map(|i| Message::new(format!("new{i}"))).collect()).await.expect("publish");

    let drain = || async {
        let mut seen = Vec::new();
        loop {
            let got = client.pull("workers", 100, Duration::from_millis(300)).await.expect("pull");
            if got.is_empty() {
                return seen;
            }
            let ids: Vec<String> = got.iter().map(|m| m.ack_id.clone()).collect();
            seen.extend(got);
            client.acknowledge("workers", &ids).await.expect("ack");
        }
    };
    let all = drain().await;
    assert_eq!(all.len(), 10);
    let new_start = topic_time(&all[5]);

    // Back to half an hour before the new messages: they come again, the old ones do not.
    client.seek("workers", new_start - Duration::from_secs(1800)).await.expect("seek back");
    let replayed: Vec<String> = drain().await.iter().map(text).collect();
    assert_eq!(replayed, ["new0", "new1", "new2", "new3", "new4"]);

    // Back before everything: all ten again, in order.
    client.seek("workers", SystemTime::UNIX_EPOCH).await.expect("seek to the start");
    assert_eq!(drain().await.len(), 10);

    // Forward past everything: nothing left, without acking one by one.
    client.seek("workers", new_start + Duration::from_secs(3600)).await.expect("seek forward");
    client.seek("workers", new_start + Duration::from_secs(1)).await.expect("seek forward");
    assert!(drain().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_counts_unacked_bytes_leases_and_the_oldest_age() {
    let (_dir, server, client) = start().await;
    client.create_subscription("workers", "jobs", SubscriptionSettings::default()).await.expect("sub");
    let messages = (0..10).map(|i| Message::new(vec![b'x'; 100 + i])).collect();
    client.publish("jobs", messages).await.expect("publish");
    advance_clock(server.addr(), Duration::from_secs(90)).await;

    let leased = client.pull("workers", 3, Duration::from_secs(1)).await.expect("pull");
    // Ack the second and third: the first stays, so the oldest unacked is still offset 0.
    let ids: Vec<String> = leased[1..].iter().map(|m| m.ack_id.clone()).collect();
    client.acknowledge("workers", &ids).await.expect("ack");

    let backlog = client.get_subscription("workers").await.expect("get").backlog.expect("backlog");
    assert_eq!(backlog.unacked_messages, 8);
    let total: u64 = (0..10).map(|i| 100 + i).sum();
    assert_eq!(backlog.unacked_bytes, total - 101 - 102);
    assert_eq!(backlog.leased_messages, 1);
    assert!(backlog.oldest_unacked_age >= Duration::from_secs(90), "{:?}", backlog.oldest_unacked_age);
    assert!(backlog.oldest_unacked_age < Duration::from_secs(95));
    // `as_of` is the server's clock (90 s ahead of this one), the one publish
    // times are on: the ETL's watermark compares the two.
    let oldest = backlog.oldest_unacked_publish_time.expect("an oldest unacked message");
    let age = backlog.as_of.duration_since(oldest).expect("as_of is after the oldest publish");
    assert_eq!(age.as_millis(), backlog.oldest_unacked_age.as_millis());
    // Offset 0 holds the floor down; acked, the floor passes 1 and 2 too.
    let floor = PartitionProgress { partition: 0, ack_floor: 0, end_offset: 10 };
    assert_eq!(backlog.partitions, vec![floor]);
    client.acknowledge("workers", &[leased[0].ack_id.clone()]).await.expect("ack");
    let backlog = client.get_subscription("workers").await.expect("get").backlog.expect("backlog");
    assert_eq!(backlog.partitions, vec![PartitionProgress { ack_floor: 3, ..floor }]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscription_gets_every_message_published_after_it_was_created() {
    let (_dir, _server, client) = start().await;
    client.create_subscription("early", "jobs", SubscriptionSettings::default()).await.expect("sub");
    client.publish("jobs", vec![Message::new("first")]).await.expect("publish");
    client.create_subscription("late", "jobs", SubscriptionSettings::default()).await.expect("sub");
    client.create_subscription("also-late", "jobs", SubscriptionSettings::default()).await.expect("sub");
    client.publish("jobs", vec![Message::new("second"), Message::new("third")]).await.expect("publish");

    let read_all = |name: &'static str| {
        let client = client.clone();
        async move {
            let got = client.pull(name, 10, Duration::from_secs(1)).await.expect("pull");
            let ids: Vec<String> = got.iter().map(|m| m.ack_id.clone()).collect();
            // Lease changes work on many ack ids at once.
            assert_eq!(client.modify_ack_deadline(name, &ids, 60).await.expect("extend"), ids.len() as u32);
            client.acknowledge(name, &ids).await.expect("ack");
            got.iter().map(text).collect::<Vec<_>>()
        }
    };
    assert_eq!(read_all("early").await, ["first", "second", "third"]);
    assert_eq!(read_all("late").await, ["second", "third"]);
    assert_eq!(read_all("also-late").await, ["second", "third"], "acks of one subscription do not touch another");
}
