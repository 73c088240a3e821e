//! Data groups: a cluster formed with `--data-groups 4` runs five Raft groups
//! on every node (group 0 and four data groups), each with every node as a
//! voter and a leader, spread over the nodes; a killed node's groups elect
//! new leaders; the layout stays as the cluster was formed; a removed node
//! leaves every group and a joining one enters every group.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ferry_client::Client;
use ferry_proto::v1 as api;
use ferry_proto::v1::cluster_client::ClusterClient;
use ferry_tests::{eventually, Cluster};

/// Group → (leader, voters) as node `addr` sees its groups; `None` if it
/// does not answer.
async fn groups_seen_by(addr: &str) -> Option<BTreeMap<u32, (u64, Vec<u64>)>> {
    let mut client = ClusterClient::connect(format!("http://{addr}")).await.ok()?;
    let status = client.node_status(api::NodeStatusRequest {}).await.ok()?.into_inner();
    Some(status.groups.into_iter().map(|g| (g.group, (g.leader_id, g.voters))).collect())
}

/// The leader of every group, once all of `nodes` host `groups` groups with
/// `voters` and agree on a leader among `nodes` for each.
async fn agreed_leaders(cluster: &Cluster, nodes: &[u64], groups: u32, voters: &[u64]) -> Option<Vec<u64>> {
    let mut views = Vec::new();
    for id in nodes {
        views.push(groups_seen_by(cluster.addr(*id)).await?);
    }
    let first = &views[0];
    let all: BTreeSet<u32> = (0..groups).collect();
    let agreed = views.iter().all(|view| view.keys().copied().collect::<BTreeSet<_>>() == all && view == first);
    let led = first.values().all(|(leader, group_voters)| nodes.contains(leader) && group_voters == voters);
    (agreed && led).then(|| first.values().map(|(leader, _)| *leader).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_data_group_runs_on_every_node_with_a_leader_and_follows_membership() {
    let mut cluster = Cluster::start(3, &["--data-groups", "4"]);
    let all = [1, 2, 3];
    let leaders = eventually(Duration::from_secs(30), "5 groups with 3 voters and a leader", || {
        agreed_leaders(&cluster, &all, 5, &all)
    })
    .await;
    let leading: BTreeSet<u64> = leaders[1..].iter().copied().collect();
    assert!(leading.len() >= 2, "data group leaders are spread over the nodes: {leaders:?}");

    let killed = leaders[1];
    cluster.kill9(killed);
    let alive: Vec<u64> = all.into_iter().filter(|id| *id != killed).collect();
    eventually(Duration::from_secs(10), "every group leads again without the killed node", || {
        agreed_leaders(&cluster, &alive, 5, &all)
    })
    .await;

    // Restarted with another number of data groups, the node still runs the
    // cluster's four.
    cluster.nodes.get_mut(&killed).expect("node").set_arg("--data-groups", "2");
    cluster.restart(killed);
    eventually(Duration::from_secs(30), "the restarted node hosts the cluster's 5 groups", || {
        agreed_leaders(&cluster, &all, 5, &all)
    })
    .await;
    let restarted = groups_seen_by(cluster.addr(killed)).await.expect("status");
    assert_eq!(restarted.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);

    // Removing a node takes it out of every group before the call returns;
    // a fresh node that joins becomes a voter of every group.
    let client = Client::connect(&cluster.addrs()).await.expect("connect");
    let status = client.remove_node(3).await.expect("remove node 3");
    let voters: Vec<(u32, Vec<u64>)> = status.groups.iter().map(|g| (g.group, g.voters.clone())).collect();
    assert_eq!(voters, (0..5).map(|g| (g, vec![1, 2])).collect::<Vec<_>>(), "{status:?}");
    cluster.forget(3);
    cluster.join(4);
    eventually(Duration::from_secs(90), "node 4 is a voter of all 5 groups", || {
        agreed_leaders(&cluster, &[1, 2, 4], 5, &[1, 2, 4])
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_group_0s_own_leader_takes_it_out_of_every_group() {
    // The leader cannot see data groups drop itself (they stop sending it
    // entries), so it hands group 0 over and the removal finishes there.
    let cluster = Cluster::start_with_groups(3, 2).await;
    let leader = cluster.leader(Duration::from_secs(20)).await;
    let client = Client::connect(&cluster.addrs()).await.expect("connect");
    let status = client.remove_node(leader).await.expect("remove group 0's leader");
    let rest: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let voters: Vec<(u32, Vec<u64>)> = status.groups.iter().map(|g| (g.group, g.voters.clone())).collect();
    assert_eq!(voters, (0..3).map(|g| (g, rest.clone())).collect::<Vec<_>>(), "{status:?}");
    eventually(Duration::from_secs(30), "the other two lead every group", || agreed_leaders(&cluster, &rest, 3, &rest))
        .await;
}
