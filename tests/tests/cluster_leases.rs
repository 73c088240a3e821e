//! Leases live on the partition's leader: after it is killed, the new leader
//! redelivers what was leased but unacked — and never what was acked.

use std::collections::BTreeSet;
use std::time::Duration;

use ferry_client::{Client, Message, SubscriptionSettings, TopicSettings};
use ferry_tests::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_on_a_killed_leader_are_redelivered_and_acks_are_not_undone() {
    let mut cluster = Cluster::start(3, &[]);
    let client = Client::connect(&cluster.addrs()).await.expect("connect");
    client.create_topic("jobs", TopicSettings::default()).await.expect("create topic");
    let settings = SubscriptionSettings { ack_deadline: Duration::from_secs(600), ..Default::default() };
    client.create_subscription("workers", "jobs", settings).await.expect("create sub");
    let messages = (0..20).map(|i| Message::new(format!("job-{i}"))).collect();
    client.publish("jobs", messages).await.expect("publish");

    let leased = client.pull("workers", 20, Duration::from_secs(2)).await.expect("pull");
    assert_eq!(leased.len(), 20);
    let (acked, unacked) = leased.split_at(10);
    let ids: Vec<String> = acked.iter().map(|m| m.ack_id.clone()).collect();
    assert_eq!(client.acknowledge("workers", &ids).await.expect("ack").acknowledged, 10);

    let leader = cluster.partition_leader("jobs", 0, Duration::from_secs(10)).await;
    cluster.kill9(leader);

    // The leases (10 minutes long) died with the leader: the new one delivers
    // the unacked messages at once, and only those.
    let mut redelivered = BTreeSet::new();
    let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
    while redelivered.len() < unacked.len() && tokio::time::Instant::now() < give_up {
        for message in client.pull("workers", 20, Duration::from_secs(1)).await.expect("pull after failover") {
            redelivered.insert(String::from_utf8_lossy(&message.message.data).into_owned());
        }
    }
    let expected: BTreeSet<String> =
        unacked.iter().map(|m| String::from_utf8_lossy(&m.message.data).into_owned()).collect();
    assert_eq!(redelivered, expected, "exactly the unacked messages come back");
    assert!(client.pull("workers", 20, Duration::from_secs(1)).await.expect("pull").is_empty());
}
