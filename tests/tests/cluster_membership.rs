//! Membership under load: remove a node, add a brand-new one; nothing
//! confirmed is lost and the new node holds all data.

use std::time::Duration;

use ferry_client::{Client, TopicSettings};
use ferry_tests::{Cluster, Publisher};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_node_and_adding_a_fresh_one_under_load_loses_nothing() {
    let mut cluster = Cluster::start(3, &["--snapshot-every-entries", "200"]);
    let client = Client::connect(&cluster.addrs()).await.expect("connect");
    client.create_topic("events", TopicSettings::default()).await.expect("create topic");
    let publisher = Publisher::start(client.clone(), "events", "v", 10);
    publisher.wait_for(500, Duration::from_secs(60)).await;

    let leader = cluster.leader(Duration::from_secs(10)).await;
    let removed = (1..=3).find(|id| *id != leader).expect("a follower");
    let status = client.remove_node(removed).await.expect("remove node");
    assert!(status.members.iter().all(|m| m.node_id != removed), "node {removed} is gone: {status:?}");
    cluster.forget(removed);
    publisher.wait_for(1_500, Duration::from_secs(60)).await;

    cluster.join(4);
    let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status = client.cluster_status().await.expect("status");
        if status.members.iter().any(|m| m.node_id == 4 && m.voter) {
            break;
        }
        assert!(tokio::time::Instant::now() < give_up, "node 4 did not become a voter: {status:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    publisher.wait_for(2_500, Duration::from_secs(60)).await;
    let published = publisher.stop().await;

    let log = cluster.assert_replicas_hold("events", &published.confirmed).await;
    let on_new_node = cluster.read_log(4, "events", 0).await;
    assert_eq!(on_new_node, log, "the new node holds every message");
    let voters: Vec<u64> =
        client.cluster_status().await.expect("status").members.iter().filter(|m| m.voter).map(|m| m.node_id).collect();
    assert_eq!(voters.len(), 3, "three voters again: {voters:?}");
}
