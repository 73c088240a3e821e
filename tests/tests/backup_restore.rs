//! Backup and restore. `ferry cluster backup` copies a live node's state
//! (a RocksDB checkpoint per group) while a 3-node cluster with data groups
//! runs; `ferryd --restore-from` makes a new one-node cluster of the copy,
//! two new nodes join it, and the new cluster holds exactly what the backup
//! did: the topic, every message published before it, the subscription's
//! acks, and nothing published after it.

use std::collections::BTreeSet;
use std::time::Duration;

use ferry_client::{Client, Code, Error, Message, SubscriptionSettings, TopicSettings};
use ferry_tests::{ferry, ferry_ok, free_addr, Cluster, Ferryd, TempDir};

const PARTITIONS: u32 = 4;

fn values(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}-{i}")).collect()
}

/// Every message the subscription delivers until it has none left, acked.
async fn drain(client: &Client, subscription: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    loop {
        let pulled = client.pull(subscription, 500, Duration::from_secs(2)).await.expect("pull");
        if pulled.is_empty() {
            return seen;
        }
        let ack_ids: Vec<String> = pulled.iter().map(|m| m.ack_id.clone()).collect();
        seen.extend(pulled.into_iter().map(|m| String::from_utf8_lossy(&m.message.data).into_owned()));
        client.acknowledge(subscription, &ack_ids).await.expect("ack");
    }
}

/// Whether every member has applied each group as far as any member has.
async fn quiet(client: &Client) -> Option<()> {
    let status = client.cluster_status().await.ok()?;
    let nodes: Vec<_> = status.members.iter().map(|m| m.status.clone().ok()).collect::<Option<_>>()?;
    let applied =
        |node: &ferry_client::NodeStatus| -> Vec<u64> { node.groups.iter().map(|g| g.applied_index).collect() };
    let first = applied(&nodes[0]);
    nodes.iter().all(|n| applied(n) == first).then_some(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_a_live_node_restores_into_a_new_cluster_that_new_nodes_join() {
    let old = Cluster::start_with_groups(3, 2).await;
    let client = Client::connect(&old.addrs()).await.expect("connect");
    client.create_topic("orders", TopicSettings { partitions: PARTITIONS, ..Default::default() }).await.expect("topic");
    let settings = SubscriptionSettings { ack_deadline: Duration::from_secs(60), ..Default::default() };
    client.create_subscription("billing", "orders", settings).await.expect("subscription");
    let before = values("before", 0..400);
    for chunk in before.chunks(50) {
        client.publish("orders", chunk.iter().cloned().map(Message::new).collect()).await.expect("publish");
    }
    // Ack a hundred, then back up a follower at once.
    let mut acked = BTreeSet::new();
    while acked.len() < 100 {
        let pulled = client.pull("billing", (100 - acked.len()) as u32, Duration::from_secs(2)).await.expect("pull");
        let ack_ids: Vec<String> = pulled.iter().map(|m| m.ack_id.clone()).collect();
        client.acknowledge("billing", &ack_ids).await.expect("ack");
        acked.extend(pulled.into_iter().map(|m| String::from_utf8_lossy(&m.message.data).into_owned()));
    }
    let backlog = client.get_subscription("billing").await.expect("get").backlog.expect("backlog");
    assert_eq!(backlog.unacked_messages, 300, "the acks committed");
    // No waiting for the follower: the backup itself catches up with each
    // group's leader, so it holds every acknowledged publish and ack.
    let leader = old.leader(Duration::from_secs(5)).await;
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let dir = TempDir::new().expect("temp dir");
    let backup = dir.path().join("backup");
    let made = ferry_ok(old.addr(follower), &["cluster", "backup", "--dir", &backup.display().to_string()], b"");
    let made: serde_json::Value = serde_json::from_str(&made).expect("backup JSON");
    assert_eq!(made["node_id"], follower);
    assert_eq!(made["groups"].as_array().map(Vec::len), Some(3), "group 0 and both data groups: {made}");
    assert!(backup.join("ferry-backup.toml").is_file());

    // What comes after the backup is not in it.
    let after = values("after", 0..50);
    client.publish("orders", after.iter().cloned().map(Message::new).collect()).await.expect("publish");

    // Bad requests change nothing and say what is wrong.
    let again = ferry(old.addr(follower), &["cluster", "backup", "--dir", &backup.display().to_string()], b"");
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success() && said.contains("InvalidArgument") && said.contains("dir"), "{said}");
    let relative = client.backup("relative/dir").await.expect_err("relative");
    assert!(matches!(&relative, Error::Status { code: Code::InvalidArgument, .. }), "{relative:?}");

    // A new cluster from the backup: one node restores it, two join.
    let restored = dir.path().join("new1");
    let mut first =
        Ferryd::start_at(&restored, &free_addr(), &["--node-id", "1", "--restore-from", &backup.display().to_string()]);
    let mut joined = Vec::new();
    for id in [2u64, 3] {
        let args = ["--node-id", &id.to_string(), "--join", first.addr()].map(str::to_owned);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        joined.push(Ferryd::start_at(&dir.path().join(format!("new{id}")), &free_addr(), &args));
    }
    let addrs =
        [first.addr().to_owned()].into_iter().chain(joined.iter().map(|n| n.addr().to_owned())).collect::<Vec<_>>();
    let fresh = Client::connect(&addrs.join(",")).await.expect("connect to the new cluster");
    let give_up = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let status = fresh.cluster_status().await;
        let full = status.as_ref().is_ok_and(|status| {
            status.members.len() == 3
                && status.members.iter().all(|m| {
                    m.voter
                        && m.status
                            .as_ref()
                            .is_ok_and(|s| s.groups.len() == 3 && s.groups.iter().all(|g| g.voters.len() == 3))
                })
        });
        if full && quiet(&fresh).await.is_some() {
            break;
        }
        if tokio::time::Instant::now() >= give_up {
            let logs: Vec<String> = [&first].into_iter().chain(&joined).map(|n| n.log_tail(6000)).collect();
            panic!("three voters in every group, all caught up: {status:#?}\nlogs:\n{}", logs.join("\n---\n"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(fresh.get_topic("orders").await.expect("the topic is there").partitions.len(), PARTITIONS as usize);
    let backlog = fresh.get_subscription("billing").await.expect("get").backlog.expect("backlog");
    assert_eq!(backlog.unacked_messages, 300, "the backup's acks hold in the new cluster");

    // Each joined node got the data groups' messages by Raft snapshots.
    for partition in 0..PARTITIONS {
        let on_first = Client::connect_with(first.addr(), Duration::ZERO).await.expect("connect");
        let (records, end) = on_first.read_log("orders", partition, 0, 10_000).await.expect("read log");
        for node in &joined {
            let there = Client::connect_with(node.addr(), Duration::ZERO).await.expect("connect");
            let (theirs, their_end) = there.read_log("orders", partition, 0, 10_000).await.expect("read log");
            assert_eq!((theirs, their_end), (records.clone(), end), "partition {partition} is the same on every node");
        }
    }

    let delivered = drain(&fresh, "billing").await;
    let expected: BTreeSet<String> = before.iter().filter(|v| !acked.contains(*v)).cloned().collect();
    assert_eq!(delivered, expected, "every unacked message from before the backup, nothing after it");
    fresh.publish("orders", vec![Message::new("new")]).await.expect("the new cluster takes writes");
    // A new cluster: an id of its own, which the nodes that joined took.
    let cluster_id = |dir: &std::path::Path| std::fs::read_to_string(dir.join("cluster-id")).expect("a cluster id");
    let new_id = cluster_id(&restored);
    assert_ne!(new_id, cluster_id(&old.data_dir(1)), "the restored cluster is not the backed-up one");
    assert!((2..=3).all(|id| cluster_id(&dir.path().join(format!("new{id}"))) == new_id));

    // A second start with --restore-from refuses: the data directory is in use.
    first.stop();
    let refused = std::process::Command::new(ferry_tests::binary("ferryd"))
        .args(["--data-dir", &restored.display().to_string(), "--listen", &free_addr(), "--restore-from"])
        .arg(&backup)
        .output()
        .expect("run ferryd");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && said.contains("not empty"), "{said}");
}
