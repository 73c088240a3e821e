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
