//! A node that was down while the log was purged catches up through a
//! streamed snapshot, and ends with the same log as the others.

use std::time::Duration;

use ferry_client::{Client, TopicSettings};
use ferry_tests::{Cluster, Publisher};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_missed_purged_entries_catches_up_through_a_snapshot() {
    let mut cluster = Cluster::start(3, &["--snapshot-every-entries", "50"]);
    let client = Client::connect(&cluster.addrs()).await.expect("connect");
    client.create_topic("events", TopicSettings::default()).await.expect("create topic");
    let leader = cluster.partition_leader("events", 0, Duration::from_secs(10)).await;
    let lagging = (1..=3).find(|id| *id != leader).expect("a follower of the partition's group");
    cluster.kill9(lagging);

    // Hundreds of entries: the others snapshot every 50 and purge behind them.
    let publisher = Publisher::start(client.clone(), "events", "v", 5);
    publisher.wait_for(2_000, Duration::from_secs(120)).await;
    cluster.restart(lagging);
    publisher.wait_for(2_500, Duration::from_secs(60)).await;
    let published = publisher.stop().await;

    cluster.assert_replicas_hold("events", &published.confirmed).await;
    let log = cluster.nodes[&lagging].log_text();
    assert!(log.contains("received a snapshot"), "node {lagging} caught up from a snapshot; its log:\n{log}");
    // The partition's group, which took the entries, purged its log.
    let group = cluster.partition_group("events", 0).await;
    let status = client.cluster_status().await.expect("status");
    let member = status.members.iter().find(|m| m.node_id == lagging).expect("member");
    let groups = &member.status.as_ref().expect("status").groups;
    let purged = groups.iter().find(|g| g.group == group).expect("the partition's group").purged_index;
    assert!(purged > 0, "node {lagging} purged group {group}'s log behind the snapshot");
}
