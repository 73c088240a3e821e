//! Killing a partition's leader under a steady publish load: a new leader serves within
//! seconds, the same client carries on, and every confirmed publish is on
//! every node, at its confirmed position.

use std::time::Duration;

use ferry_client::{Client, SubscriptionSettings, TopicSettings};
use ferry_tests::{Cluster, Publisher};
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_under_load_loses_no_acknowledged_publish() {
    let mut cluster = Cluster::start(3, &[]);
    let client = Client::connect(&cluster.addrs()).await.expect("connect");
    client.create_topic("events", TopicSettings::default()).await.expect("create topic");
    client.create_subscription("all", "events", SubscriptionSettings::default()).await.expect("create sub");

    let publisher = Publisher::start(client.clone(), "events", "v", 10);
    publisher.wait_for(1_000, Duration::from_secs(60)).await;
    let leader = cluster.partition_leader("events", 0, Duration::from_secs(10)).await;
    let before = publisher.confirmed();
    let killed_at = Instant::now();
    cluster.kill9(leader);

    // The same client, never recreated, keeps publishing through the failover.
    publisher.wait_for(before + 1, Duration::from_secs(30)).await;
    let outage = killed_at.elapsed();
    publisher.wait_for(before + 1_000, Duration::from_secs(60)).await;
    let published = publisher.stop().await;
    assert!(outage < Duration::from_secs(10), "publishing resumed {outage:?} after the leader was killed");
    let new_leader = cluster.partition_leader("events", 0, Duration::from_secs(10)).await;
    assert_ne!(new_leader, leader);

    cluster.restart(leader);
    let log = cluster.assert_replicas_hold("events", &published.confirmed).await;
    assert!(log.len() >= published.confirmed.len());
    eprintln!(
        "failover: {} confirmed, {} stored, publishing resumed after {outage:?}, {} retried errors",
        published.confirmed.len(),
        log.len(),
        published.errors.len()
    );
}
