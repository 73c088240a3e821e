//! A cluster formed without data groups (`--data-groups 0`), as every
//! cluster formed before them was and stays: group 0 holds every partition,
//! and its leader serves publishes and deliveries. The rest of the suite
//! forms clusters with data groups (`ferry_tests::DATA_GROUPS`), so this is
//! where the single-group path keeps its contracts: keyless publishes through
//! any node fill every partition, a stream gets every message across a kill
//! of the leader, nothing confirmed is lost, and the acks empty the backlog.

use std::collections::BTreeSet;
use std::time::Duration;

use ferry_client::{Client, Message, SubscriberSettings, SubscriptionSettings, TopicSettings};
use ferry_proto::v1 as api;
use ferry_proto::v1::cluster_client::ClusterClient;
use ferry_tests::{ack_until_backlog_empty, eventually, receive_all_across_a_kill, Cluster, Stored};

const PARTITIONS: u32 = 4;
const MESSAGES: usize = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_data_groups_keeps_everything_in_group_0_across_a_leader_kill() {
    let mut cluster = Cluster::start(3, &["--data-groups", "0"]);
    let admin = Client::connect(&cluster.addrs()).await.expect("connect");
    admin.create_topic("t", TopicSettings { partitions: PARTITIONS, ..Default::default() }).await.expect("topic");
    let settings = SubscriptionSettings { ack_deadline: Duration::from_secs(10), ..Default::default() };
    admin.create_subscription("s", "t", settings).await.expect("subscription");

    // Every node hosts group 0 alone, and no partition is placed in a group.
    for id in 1..=3 {
        let mut client = ClusterClient::connect(format!("http://{}", cluster.addr(id))).await.expect("connect");
        let status = client.node_status(api::NodeStatusRequest {}).await.expect("status").into_inner();
        let groups: Vec<u32> = status.groups.iter().map(|g| g.group).collect();
        assert_eq!(groups, [0], "node {id} hosts only group 0");
        // A follower answers from its own copy of the catalog, which may
        // not hold the topic yet.
        let routes = eventually(Duration::from_secs(5), "the node knows the topic", || {
            let mut client = client.clone();
            async move { client.routes(api::RoutesRequest { topic: "t".into() }).await.ok() }
        })
        .await
        .into_inner();
        assert!(routes.partitions.is_empty(), "node {id} routes the topic to group 0: {routes:?}");
    }

    // Keyless requests through each node's client in turn fill every partition.
    let mut confirmed = Vec::new();
    let nodes = cluster.clients().await;
    for request in 0..MESSAGES / 50 {
        let values: Vec<String> = (0..50).map(|i| format!("m{request}-{i}")).collect();
        let messages = values.iter().cloned().map(Message::new).collect();
        let positions = nodes[request % 3].publish("t", messages).await.expect("publish");
        confirmed.extend(values.into_iter().zip(positions));
    }
    let partitions: BTreeSet<u32> = confirmed.iter().map(|(_, position)| position.partition).collect();
    assert_eq!(partitions.len(), PARTITIONS as usize, "keyless publishes fill every partition");
    let published: BTreeSet<String> = confirmed.iter().map(|(value, _)| value.clone()).collect();

    // A stream following the leader gets every message, across a kill of
    // the leader once a quarter has been acked.
    let settings = SubscriberSettings { max_outstanding_messages: 200, ..Default::default() };
    let mut subscriber = admin.subscribe("s", settings).await.expect("subscribe");
    let leader = cluster.leader(Duration::from_secs(10)).await;
    receive_all_across_a_kill(&mut subscriber, &published, &mut cluster, leader).await;

    // What the old leader took with it comes again; acking it empties the
    // backlog.
    ack_until_backlog_empty(&admin, &mut subscriber, "s", &published).await;
    subscriber.close().await;

    // Every replica holds every confirmed message, once, where it was confirmed.
    cluster.assert_topic_holds("t", PARTITIONS, &confirmed, Stored::ExactlyOnce).await;
}
