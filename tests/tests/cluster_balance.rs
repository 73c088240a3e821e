//! Leader balance: a cluster formed with `--data-groups 6` on three nodes
//! starts with each group led by its preferred node, two per node; when a node dies its groups'
//! leaders end up evenly on the two left (three each), and when it returns
//! it leads two again, moved to it by group 0's leader through the handoff.
//! An operator can hand a group's leader to another node
//! (`Cluster.TransferLeader`), and the balancer evens the spread after it.
//! An idempotent publisher running throughout loses and duplicates nothing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferry_client::{Client, Message, Publisher, PublisherSettings, TopicSettings};
use ferry_tests::{eventually, Cluster, Stored};
use tonic::Code;

const DATA_GROUPS: u32 = 6;

/// Data groups led per node among `nodes`, once every one of `nodes` sees
/// the same leader, one of `nodes`, for every data group.
async fn spread(cluster: &Cluster, nodes: &[u64]) -> Option<BTreeMap<u64, usize>> {
    let mut views = Vec::new();
    for id in nodes {
        let mut leaders = cluster.group_leaders(*id).await?;
        leaders.remove(&0);
        views.push(leaders);
    }
    let agreed = views.iter().all(|view| view == &views[0] && view.len() == DATA_GROUPS as usize);
    if !agreed || views[0].values().any(|leader| !nodes.contains(leader)) {
        return None;
    }
    Some(nodes.iter().map(|id| (*id, views[0].values().filter(|leader| *leader == id).count())).collect())
}

/// Waits until `nodes` lead `each` data groups each.
async fn wait_for_spread(cluster: &Cluster, nodes: &[u64], each: usize, within: Duration) {
    let what = format!("nodes {nodes:?} lead {each} data groups each");
    eventually(within, &what, || async {
        let spread = spread(cluster, nodes).await?;
        spread.values().all(|led| *led == each).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_cluster_starts_with_each_data_group_led_by_its_preferred_node() {
    let cluster = Cluster::start(3, &["--data-groups", &DATA_GROUPS.to_string()]);
    // Voters take turns in id order: group g prefers node (g mod 3) + 1.
    let preferred: BTreeMap<u32, u64> = (1..=DATA_GROUPS).map(|group| (group, u64::from(group % 3) + 1)).collect();
    let first = eventually(Duration::from_secs(30), "every data group has a leader", || async {
        let mut leaders = cluster.group_leaders(1).await?;
        leaders.remove(&0);
        (leaders.len() == DATA_GROUPS as usize && leaders.values().all(|leader| *leader != 0)).then_some(leaders)
    })
    .await;
    // A group another node won would be moved to its preferred node by the
    // balancer seconds later: a handoff, writes paused in that group. With
    // the spread even from the start, the balancer moves nothing.
    assert_eq!(first, preferred, "the first leaders");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_clusters_data_groups_get_leaders_when_a_preferred_node_is_down_from_the_start() {
    // Node 2 is gone before the layout is set: the groups it would lead
    // first (1 and 4) are started by the others, which wait for its
    // leadership a while and then elect one of themselves.
    let mut cluster = Cluster::start(3, &["--data-groups", &DATA_GROUPS.to_string()]);
    cluster.kill9(2);
    wait_for_spread(&cluster, &[1, 3], 3, Duration::from_secs(40)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaders_spread_evenly_when_a_node_dies_and_when_it_returns_without_losing_a_publish() {
    let mut cluster = Cluster::start(3, &["--data-groups", &DATA_GROUPS.to_string()]);
    let all = [1, 2, 3];
    wait_for_spread(&cluster, &all, 2, Duration::from_secs(30)).await;

    let client = Client::connect(&cluster.addrs()).await.expect("connect");
    let partitions = 12;
    // Bad input changes nothing.
    let error = client.transfer_leader(0, 1).await.expect_err("group 0 is not moved");
    assert_eq!(error.code(), Some(Code::InvalidArgument), "{error}");
    assert!(error.to_string().contains("group"), "{error}");
    let error = client.transfer_leader(1, 9).await.expect_err("node 9 is no voter");
    assert_eq!(error.code(), Some(Code::InvalidArgument), "{error}");
    assert!(error.to_string().contains("node_id"), "{error}");
    let error = client.transfer_leader(DATA_GROUPS + 1, 1).await.expect_err("no such group");
    assert_eq!(error.code(), Some(Code::InvalidArgument), "{error}");
    client.create_topic("events", TopicSettings { partitions, ..Default::default() }).await.expect("create topic");
    let settings = PublisherSettings { batch_max_messages: 20, ..Default::default() };
    let publisher = Publisher::new(&client, "events", settings).await.expect("publisher");
    let stop = Arc::new(AtomicBool::new(false));
    let publishing = tokio::spawn({
        let stop = Arc::clone(&stop);
        async move {
            let mut handles = Vec::new();
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let value = format!("event-{i}");
                handles.push((value.clone(), publisher.publish(Message::new(value)).await.expect("enqueue")));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let mut confirmed = Vec::new();
            for (value, handle) in handles {
                confirmed.push((value, handle.await.expect("every message is confirmed")));
            }
            publisher.close().await;
            confirmed
        }
    });

    // An operator moves group 1's leader onto the node that leads group 2.
    // Through any node: the call goes to the group's leader.
    let leaders = cluster.group_leaders(1).await.expect("status");
    let to = leaders[&2];
    let from = leaders[&1];
    assert_ne!(from, to, "the spread starts even");
    let leader = client.transfer_leader(1, to).await.expect("transfer group 1");
    assert_eq!(leader, to, "the target won");
    eventually(Duration::from_secs(10), "every node sees group 1's new leader", || async {
        for id in all {
            (cluster.group_leaders(id).await?[&1] == to).then_some(())?;
        }
        Some(())
    })
    .await;
    // Three groups on one node, one on another: the balancer evens it.
    wait_for_spread(&cluster, &all, 2, Duration::from_secs(30)).await;

    // Node 3 dies: its groups elect among nodes 1 and 2, and the balancer
    // evens what the elections left.
    cluster.kill9(3);
    wait_for_spread(&cluster, &[1, 2], 3, Duration::from_secs(30)).await;

    // Node 3 returns leading nothing, and is handed two groups.
    cluster.restart(3);
    wait_for_spread(&cluster, &all, 2, Duration::from_secs(60)).await;

    stop.store(true, Ordering::Relaxed);
    let confirmed = publishing.await.expect("publisher task");
    assert!(confirmed.len() > 1_000, "the publisher ran throughout: {} messages", confirmed.len());
    cluster.assert_topic_holds("events", partitions, &confirmed, Stored::ExactlyOnce).await;
}
