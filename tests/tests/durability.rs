//! Durability through `kill -9`: every publish that returned OK survives, acks
//! that returned OK stay acked, leases that were never acked come back.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_client::{Client, Message, SubscriptionSettings, TopicSettings};
use ferry_tests::{Ferryd, TempDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_mid_stream_loses_no_acknowledged_publish_and_undoes_no_ack() {
    let dir = TempDir::new().expect("temp dir");
    let mut server = Ferryd::start(&dir.path().join("node"));
    let client = Client::connect(server.addr()).await.expect("connect");
    client.create_topic("orders", TopicSettings::default()).await.expect("create topic");
    let settings = SubscriptionSettings { ack_deadline: Duration::from_secs(10), ..Default::default() };
    client.create_subscription("billing", "orders", settings).await.expect("create subscription");

    // Ten messages that are acked before the kill, and five leased but not acked.
    let early: Vec<Message> = (0..15).map(|i| Message::new(format!("early-{i}"))).collect();
    client.publish("orders", early).await.expect("publish early");
    let leased = client.pull("billing", 15, Duration::from_secs(1)).await.expect("pull");
    assert_eq!(leased.len(), 15);
    let (to_ack, unacked) = leased.split_at(10);
    let ids: Vec<String> = to_ack.iter().map(|m| m.ack_id.clone()).collect();
    client.acknowledge("billing", &ids).await.expect("ack");
    let acked: BTreeSet<String> = to_ack.iter().map(|m| data(&m.message)).collect();
    let unacked: BTreeSet<String> = unacked.iter().map(|m| data(&m.message)).collect();

    // Publish in a loop; kill -9 the server while batches are in flight.
    let confirmed = Arc::new(Mutex::new(Vec::<String>::new()));
    let publisher = {
        let (client, confirmed) = (client.clone(), Arc::clone(&confirmed));
        tokio::spawn(async move {
            for batch in 0u64.. {
                let values: Vec<String> = (0..20).map(|i| format!("v-{batch}-{i}")).collect();
                let messages = values.iter().cloned().map(Message::new).collect();
                match client.publish("orders", messages).await {
                    Ok(_) => confirmed.lock().expect("lock").extend(values),
                    Err(_) => return batch,
                }
            }
            unreachable!("the publisher stops at the first error")
        })
    };
    while confirmed.lock().expect("lock").len() < 2_000 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill9();
    let batches = publisher.await.expect("publisher task");
    let confirmed = confirmed.lock().expect("lock").clone();
    assert!(batches >= 100, "the publisher ran until the kill ({batches} batches)");

    server.restart();
    let client = Client::connect(server.addr()).await.expect("reconnect");
    let mut delivered = BTreeSet::new();
    loop {
        let received = client.pull("billing", 1000, Duration::from_millis(500)).await.expect("pull after restart");
        if received.is_empty() {
            break;
        }
        let ids: Vec<String> = received.iter().map(|m| m.ack_id.clone()).collect();
        delivered.extend(received.iter().map(|m| data(&m.message)));
        client.acknowledge("billing", &ids).await.expect("ack after restart");
    }

    let missing: Vec<&String> = confirmed.iter().filter(|v| !delivered.contains(*v)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged publishes lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let redelivered: Vec<&String> = acked.iter().filter(|v| delivered.contains(*v)).collect();
    assert!(redelivered.is_empty(), "acked before the kill yet delivered again: {redelivered:?}");
    assert!(unacked.is_subset(&delivered), "leased but unacked messages are delivered again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacked_lease_is_redelivered_after_its_deadline_and_not_before() {
    let dir = TempDir::new().expect("temp dir");
    let server = Ferryd::start(&dir.path().join("node"));
    let client = Client::connect(server.addr()).await.expect("connect");
    client.create_topic("jobs", TopicSettings::default()).await.expect("create topic");
    let settings = SubscriptionSettings { ack_deadline: Duration::from_secs(10), ..Default::default() };
    client.create_subscription("workers", "jobs", settings).await.expect("create subscription");
    client.publish("jobs", vec![Message::new("a"), Message::new("b")]).await.expect("publish");

    // Taken before the pull, so the server's deadline is at least 10 s after it.
    let started = tokio::time::Instant::now();
    let first = client.pull("workers", 2, Duration::from_secs(1)).await.expect("pull");
    assert_eq!(first.len(), 2);
    // A nack makes "b" available at once; "a" stays leased.
    assert_eq!(client.modify_ack_deadline("workers", &[first[1].ack_id.clone()], 0).await.expect("nack"), 1);
    let after_nack = client.pull("workers", 2, Duration::ZERO).await.expect("pull");
    assert_eq!(after_nack.iter().map(|m| data(&m.message)).collect::<Vec<_>>(), vec!["b"]);
    assert_eq!(after_nack[0].delivery_attempt, 2);
    let acked = client.acknowledge("workers", &[after_nack[0].ack_id.clone()]).await.expect("ack b");
    assert_eq!(acked.acknowledged, 1);

    // Nothing else until the deadline of "a" passes.
    let early = client.pull("workers", 2, Duration::from_secs(8)).await.expect("pull");
    assert!(early.is_empty() || started.elapsed() >= Duration::from_secs(10), "redelivered before its deadline");
    let late = client.pull("workers", 2, Duration::from_secs(5)).await.expect("pull");
    let late: Vec<_> = early.into_iter().chain(late).collect();
    assert_eq!(late.len(), 1, "only \"a\" is delivered again");
    assert_eq!(data(&late[0].message), "a");
    assert_eq!(late[0].delivery_attempt, 2);
    assert!(started.elapsed() >= Duration::from_secs(10), "not before the 10 s deadline");

    // The first delivery's ack id is stale now: it must not ack the redelivery.
    let stale = client.acknowledge("workers", &[first[0].ack_id.clone()]).await.expect("stale ack");
    assert_eq!((stale.acknowledged, stale.stale), (0, 1));
    let current = client.acknowledge("workers", &[late[0].ack_id.clone()]).await.expect("ack a");
    assert_eq!(current.acknowledged, 1);
    assert!(client.pull("workers", 2, Duration::from_secs(1)).await.expect("pull").is_empty());
}

fn data(message: &Message) -> String {
    String::from_utf8_lossy(&message.data).into_owned()
}
