//! A node refuses the calls of another cluster's nodes: a cluster told to add
//! a member at an address where a node of another cluster serves does not
//! touch that node's log; nodes keep their cluster's id across restarts;
//! nodes that join a cluster take its id, and refuse other clusters until
//! they have.

use std::path::Path;
use std::time::Duration;

use ferry_client::{Client, ClusterStatus, Code, Error, Message, TopicSettings};
use ferry_tests::{eventually, free_addr, Cluster, Ferryd, Publisher};

fn cluster_id(data_dir: &Path) -> String {
    let path = data_dir.join("cluster-id");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())).trim().to_owned()
}

/// What member `id`'s status call answered: its status's cluster id, or the error.
fn member_answer(status: &ClusterStatus, id: u64) -> Result<Option<String>, String> {
    let member = status.members.iter().find(|m| m.node_id == id).unwrap_or_else(|| panic!("member {id}: {status:?}"));
    member.status.as_ref().map(|s| s.cluster_id.clone()).map_err(Clone::clone)
}

/// Waits until node `id` is a voter of the cluster `client` reaches.
async fn wait_voter(client: &Client, id: u64) {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status = client.cluster_status().await;
        if status.is_ok_and(|status| status.members.iter().any(|m| m.node_id == id && m.voter)) {
            return;
        }
        assert!(tokio::time::Instant::now() < give_up, "node {id} did not become a voter");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_another_clusters_leader_and_keeps_its_log() {
    let mut a = Cluster::start(3, &[]);
    let client = Client::connect(&a.addrs()).await.expect("connect to A");
    client.create_topic("events", TopicSettings::default()).await.expect("create topic");
    let publisher = Publisher::start(client.clone(), "events", "v", 10);
    publisher.wait_for(200, Duration::from_secs(60)).await;
    let a_id = cluster_id(&a.data_dir(1));
    assert!((2..=3).all(|id| cluster_id(&a.data_dir(id)) == a_id), "A's nodes derive one id");

    // Cluster B: one node, with the same node id as A's first.
    let b_dir = tempfile::tempdir().expect("temp dir");
    let b = Ferryd::start_with(&b_dir.path().join("node1"), &["--node-id", "1"]);
    let b_id = cluster_id(&b_dir.path().join("node1"));
    assert_ne!(a_id, b_id);
    let b_client = Client::connect(b.addr()).await.expect("connect to B");
    let refusal = format!("this node is a member of cluster {a_id}, and the call came from a node of cluster {b_id}");

    // Told to add a member at A's node 2's address, B asks it first, and is
    // refused before it changes its membership.
    let added = tokio::time::timeout(Duration::from_secs(10), b_client.add_node(2, a.addr(2))).await;
    let refused = added.expect("refused at once").expect_err("B added a node of cluster A");
    assert!(
        matches!(&refused, Error::Status { code: Code::FailedPrecondition, message, .. } if message.contains(&refusal)),
        "{refused:?}"
    );
    let b_status = b_client.cluster_status().await.expect("B's status");
    assert!(b_status.members.iter().all(|m| m.node_id == 1), "{b_status:?}");

    // Added while A's node 3 is down, it becomes B's learner, and B's Raft
    // calls it once it is back: it refuses them, and stays A's. It comes
    // back with a peer list written otherwise (a fourth, unused entry): its
    // kept id, not the list, says which cluster it is in.
    a.kill9(3);
    let added = tokio::time::timeout(Duration::from_secs(5), b_client.add_node(3, a.addr(3))).await;
    assert!(!matches!(added, Ok(Ok(_))), "B added a node of cluster A: {added:?}");
    let peers = format!("1={},2={},3={},9=127.0.0.1:1", a.addr(1), a.addr(2), a.addr(3));
    a.nodes.get_mut(&3).expect("node 3").set_arg("--peers", &peers);
    a.restart(3);
    publisher.wait_for(400, Duration::from_secs(60)).await;
    let published = publisher.stop().await;
    let end = published.confirmed.iter().map(|(_, position)| position.offset + 1).max().expect("confirmed");
    a.wait_replicated("events", 0, end, Duration::from_secs(30)).await;
    a.assert_replicas_hold("events", &published.confirmed).await;
    assert_eq!(cluster_id(&a.data_dir(3)), a_id);
    assert!(
        a.nodes[&3].log_text().lines().any(|line| line.contains("/ferry.internal.v1.Raft/") && line.contains(&refusal)),
        "A's node 3 refused B's calls:\n{}",
        a.nodes[&3].log_tail(4_000)
    );

    // B still has its leader, and its status shows the refusal, naming A.
    let b_status = b_client.cluster_status().await.expect("B's status");
    assert_eq!(b_status.leader_id, Some(1), "B still led by its own node: {b_status:?}");
    assert_eq!(member_answer(&b_status, 1), Ok(Some(b_id.clone())));
    let answer = member_answer(&b_status, 3);
    assert!(answer.as_ref().is_err_and(|e| e.contains(&refusal)), "{answer:?}");
    let a_status = client.cluster_status().await.expect("A's status");
    assert!((1..=3).all(|id| member_answer(&a_status, id) == Ok(Some(a_id.clone()))), "{a_status:?}");

    // A node restarted partway through joining A (it learnt and kept A's id,
    // but A does not add it: A's node 2 is at another address) and pointed
    // at B joins no cluster but A.
    let torn_dir = b_dir.path().join("torn");
    let mut torn = Ferryd::start_with(&torn_dir, &["--node-id", "2", "--join", a.addr(1)]);
    eventually(Duration::from_secs(30), "the node learns A's id", || async {
        torn_dir.join("cluster-id").exists().then_some(())
    })
    .await;
    torn.kill9();
    torn.set_arg("--join", b.addr());
    torn.restart();
    let mismatch =
        format!("this node belongs to cluster {a_id} (its data directory says so), and the seed's is {b_id}");
    eventually(Duration::from_secs(30), "the node refuses to join B", || async {
        torn.log_text().contains(&mismatch).then_some(())
    })
    .await;
    assert_eq!(cluster_id(&torn_dir), a_id);
    let b_status = b_client.cluster_status().await.expect("B's status");
    assert!(b_status.members.iter().all(|m| m.addr != torn.addr()), "{b_status:?}");

    // A node joining a cluster it cannot reach has no id yet: it refuses
    // the calls of another cluster, C, rather than letting C claim it.
    let stray_dir = b_dir.path().join("stray");
    let stray = Ferryd::start_with(&stray_dir, &["--node-id", "5", "--join", &free_addr()]);
    let c = Ferryd::start_with(&b_dir.path().join("c1"), &["--node-id", "1"]);
    let c_client = Client::connect(c.addr()).await.expect("connect to C");
    let added = tokio::time::timeout(Duration::from_secs(10), c_client.add_node(5, stray.addr())).await;
    let refused = added.expect("refused at once").expect_err("C added a node joining elsewhere");
    assert!(
        matches!(&refused, Error::Status { code: Code::FailedPrecondition, message, .. } if message.contains("has not learnt its id yet")),
        "{refused:?}"
    );
    assert!(!stray_dir.join("cluster-id").exists(), "the stray node took no id");

    // A node joining A takes A's id, though the first seed it is given (the
    // stray node) answers without a leader.
    let joiner_dir = b_dir.path().join("joiner");
    let seeds = format!("{},{}", stray.addr(), a.addr(1));
    let _joiner = Ferryd::start_with(&joiner_dir, &["--node-id", "4", "--join", &seeds]);
    wait_voter(&client, 4).await;
    assert_eq!(cluster_id(&joiner_dir), a_id, "the joined node keeps A's id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_from_before_cluster_ids_goes_on_and_takes_new_nodes() {
    let mut cluster = Cluster::start(3, &[]);
    let client = Client::connect(&cluster.addrs()).await.expect("connect");
    client.create_topic("events", TopicSettings::default()).await.expect("create topic");
    // Its data directories as a version without cluster ids left them.
    for id in 1..=3 {
        cluster.kill9(id);
        std::fs::remove_file(cluster.data_dir(id).join("cluster-id")).expect("remove the id");
    }
    for id in 1..=3 {
        cluster.restart(id);
    }
    client.publish("events", vec![Message::new("after the upgrade")]).await.expect("publish");

    cluster.join(4);
    wait_voter(&client, 4).await;
    let status = client.cluster_status().await.expect("status");
    assert!((1..=4).all(|id| member_answer(&status, id) == Ok(None)), "no node has an id: {status:?}");
    assert!((1..=4).all(|id| !cluster.data_dir(id).join("cluster-id").exists()), "none is made up");
}
