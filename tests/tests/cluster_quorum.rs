//! Without a majority, writes fail promptly with UNAVAILABLE; once nodes come
//! back the cluster serves again with nothing lost.

use std::time::Duration;

use ferry_client::{Client, Code, Message, TopicSettings};
use ferry_tests::{Cluster, Publisher};
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_of_three_down_publish_is_unavailable_and_then_recovers() {
    let mut cluster = Cluster::start(3, &[]);
    let client = Client::connect(&cluster.addrs()).await.expect("connect");
    client.create_topic("events", TopicSettings::default()).await.expect("create topic");
    let publisher = Publisher::start(client.clone(), "events", "before", 10);
    publisher.wait_for(300, Duration::from_secs(60)).await;
    let before = publisher.stop().await;

    let survivor = cluster.leader(Duration::from_secs(10)).await;
    let down: Vec<u64> = (1..=3).filter(|id| *id != survivor).collect();
    for id in &down {
        cluster.kill9(*id);
    }
    // A client that retries for one second: the call must end, with UNAVAILABLE.
    let impatient = Client::connect_with(cluster.addr(survivor), Duration::from_secs(1)).await.expect("connect");
    let started = Instant::now();
    let result = impatient.publish("events", vec![Message::new("lonely")]).await;
    let took = started.elapsed();
    let error = result.expect_err("no majority: the publish cannot be acknowledged");
    assert_eq!(error.code(), Some(Code::Unavailable), "{error}");
    assert!(took < Duration::from_secs(15), "failed after {took:?}");

    for id in &down {
        cluster.restart(*id);
    }
    let publisher = Publisher::start(client.clone(), "events", "after", 10);
    publisher.wait_for(300, Duration::from_secs(60)).await;
    let after = publisher.stop().await;
    let confirmed: Vec<_> = before.confirmed.into_iter().chain(after.confirmed).collect();
    cluster.assert_replicas_hold("events", &confirmed).await;
}

/// Found by the fault harness (every node losing power at once): a leader
/// that restarted resumed its old term at once, without an election, and
/// served pulls from a state machine that had not yet re-applied the acks it
/// committed before — acked messages came back. Now a restarted node serves
/// nothing until a majority has elected a leader in a new term.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_restarted_alone_serves_nothing_until_a_majority_elects_anew() {
    let mut cluster = Cluster::start(3, &[]);
    let client = Client::connect(&cluster.addrs()).await.expect("connect");
    client.create_topic("events", TopicSettings::default()).await.expect("create topic");
    client.create_subscription("readers", "events", Default::default()).await.expect("subscription");
    client.publish("events", vec![Message::new("acked")]).await.expect("publish");
    let pulled = client.pull("readers", 10, Duration::from_secs(5)).await.expect("pull");
    let ids: Vec<String> = pulled.iter().map(|m| m.ack_id.clone()).collect();
    client.acknowledge("readers", &ids).await.expect("ack");

    // The node that led the partition's group, which took the ack.
    let leader = cluster.partition_leader("events", 0, Duration::from_secs(10)).await;
    for id in 1..=3 {
        cluster.kill9(id);
    }
    cluster.restart(leader);
    let alone = Client::connect_with(cluster.addr(leader), Duration::from_secs(1)).await.expect("connect");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let error = alone.pull("readers", 10, Duration::ZERO).await.expect_err("no majority, no leader: nothing to serve");
    assert_eq!(error.code(), Some(Code::Unavailable), "{error}");

    for id in (1..=3).filter(|id| *id != leader) {
        cluster.restart(id);
    }
    let client = Client::connect(&cluster.addrs()).await.expect("connect");
    client.publish("events", vec![Message::new("after")]).await.expect("publish after the election");
    let pulled = client.pull("readers", 10, Duration::from_secs(5)).await.expect("pull");
    let texts: Vec<String> = pulled.iter().map(|m| String::from_utf8_lossy(&m.message.data).into_owned()).collect();
    assert_eq!(texts, ["after"], "the acked message stays acked");
}
