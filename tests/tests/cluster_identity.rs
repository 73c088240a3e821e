//! A node refuses the calls of another cluster's nodes: a cluster told to add
//! a member at an address where a node of another cluster serves does not
//! touch that node's log, and nodes that join a cluster take its id.

use std::path::Path;
use std::time::Duration;

use ferry_client::{Client, TopicSettings};
use ferry_tests::{Cluster, Ferryd, Publisher};

fn cluster_id(data_dir: &Path) -> String {
    let path = data_dir.join("cluster-id");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_another_clusters_leader_and_keeps_its_log() {
    let mut a = Cluster::start(3, &[]);
    let client = Client::connect(&a.addrs()).await.expect("connect to A");
    client.create_topic("events", TopicSettings::default()).await.expect("create topic");
    let publisher = Publisher::start(client.clone(), "events", "v", 10);
    publisher.wait_for(200, Duration::from_secs(60)).await;

    // Cluster B: one node, with the same node id as A's first.
    let b_dir = tempfile::tempdir().expect("temp dir");
    let b = Ferryd::start_with(&b_dir.path().join("node1"), &["--node-id", "1"]);
    let b_client = Client::connect(b.addr()).await.expect("connect to B");
    // Told to add a member at A's node 2's address, B's leader calls it.
    let added = tokio::time::timeout(Duration::from_secs(10), b_client.add_node(2, a.addr(2))).await;
    assert!(!matches!(added, Ok(Ok(_))), "B added a node of cluster A: {added:?}");

    let ids = (cluster_id(&a.data_dir(1)), cluster_id(&a.data_dir(2)), cluster_id(&b_dir.path().join("node1")));
    assert_eq!(ids.0, ids.1, "A's nodes share an id");
    assert_ne!(ids.0, ids.2, "the clusters' ids differ");
    let refusals = a.nodes[&2].log_text().matches(&format!("came from a node of cluster {}", ids.2)).count();
    assert!(refusals > 0, "A's node 2 refused B's calls; its log:\n{}", a.nodes[&2].log_tail(4_000));

    // A goes on, its node 2 with it, and loses nothing.
    publisher.wait_for(400, Duration::from_secs(60)).await;
    let published = publisher.stop().await;
    let end = published.confirmed.iter().map(|(_, position)| position.offset + 1).max().expect("confirmed");
    a.wait_replicated("events", 0, end, Duration::from_secs(30)).await;
    a.assert_replicas_hold("events", &published.confirmed).await;
    let b_status = b_client.cluster_status().await.expect("B's status");
    assert_eq!(b_status.leader_id, Some(1), "B still led by its own node: {b_status:?}");

    // A node joining A takes A's id.
    a.join(4);
    let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
    while !client.cluster_status().await.expect("status").members.iter().any(|m| m.node_id == 4 && m.voter) {
        assert!(tokio::time::Instant::now() < give_up, "node 4 did not become a voter");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(cluster_id(&a.data_dir(4)), ids.0, "the joined node keeps A's id");
}
