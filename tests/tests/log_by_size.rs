//! The Raft log is snapshotted and purged by its size, not only by its entry
//! count: a few dozen large entries already make every node purge, yet a
//! leader keeps what a follower that was down needs to catch up from the log.

use std::time::Duration;

use ferry_client::{Client, Message, Position, TopicSettings};
use ferry_tests::{eventually, Cluster};

/// 1,000 messages of 1,000 bytes: one Raft entry of about 1 MB.
const BATCH: usize = 1_000;
const MESSAGE_BYTES: usize = 1_000;
/// Entries per phase: 40 MB, past two size-driven snapshots (16 MiB each)
/// and far below the 10,000 entries of the count-driven policy.
const BATCHES: usize = 40;

/// Publishes `BATCHES` large batches; returns each message with its position.
async fn publish_batches(client: &Client, first: usize) -> Vec<(String, Position)> {
    let mut confirmed = Vec::new();
    for batch in 0..BATCHES {
        let values: Vec<String> = (0..BATCH)
            .map(|i| {
                let n = first + batch * BATCH + i;
                format!("{n:0>width$}", width = MESSAGE_BYTES)
            })
            .collect();
        let messages = values.iter().cloned().map(Message::new).collect();
        let positions = client.publish("events", messages).await.expect("publish");
        confirmed.extend(values.into_iter().zip(positions));
    }
    confirmed
}

/// (node, last log index, purged index) of `group`'s log on every member
/// that answered.
async fn log_extents(client: &Client, group: u32) -> Vec<(u64, u64, u64)> {
    let status = client.cluster_status().await.expect("status");
    let extents = status.members.iter().filter_map(|m| {
        let groups = &m.status.as_ref().ok()?.groups;
        let log = groups.iter().find(|g| g.group == group)?;
        Some((m.node_id, log.last_log_index, log.purged_index))
    });
    extents.collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_entries_are_purged_by_size_and_kept_for_a_follower_that_is_down() {
    let mut cluster = Cluster::start(3, &[]);
    let client = Client::connect(&cluster.addrs()).await.expect("connect");
    client.create_topic("events", TopicSettings::default()).await.expect("create topic");
    // The log of the group holding the topic's partition.
    let group = cluster.partition_group("events", 0).await;
    let mut confirmed = publish_batches(&client, 0).await;

    // Every node purged, and holds no more than a few dozen MB of log.
    eventually(Duration::from_secs(30), "every node purges its log by size", || async {
        let extents = log_extents(&client, group).await;
        let purged = extents.len() == 3 && extents.iter().all(|&(_, last, purged)| purged > 0 && last - purged <= 30);
        purged.then_some(())
    })
    .await;

    let leader = cluster.partition_leader("events", 0, Duration::from_secs(10)).await;
    let down = (1..=3).find(|id| *id != leader).expect("a follower");
    cluster.kill9(down);
    let follower_last = log_extents(&client, group).await.iter().map(|&(_, last, _)| last).max().expect("members");
    confirmed.extend(publish_batches(&client, BATCHES * BATCH).await);
    // Meanwhile the leader snapshotted, but kept the log from where the
    // follower stopped.
    let leader_purged = log_extents(&client, group)
        .await
        .iter()
        .find(|(id, ..)| *id == leader)
        .map(|&(_, _, purged)| purged)
        .expect("leader");
    assert!(
        leader_purged <= follower_last,
        "the leader purged up to {leader_purged}, past {follower_last}, which node {down} had not received"
    );

    cluster.restart(down);
    cluster.assert_replicas_hold("events", &confirmed).await;
    let log = cluster.nodes[&down].log_text();
    assert!(
        !log.contains("received a snapshot"),
        "node {down} caught up from the log, not a snapshot; its log:\n{log}"
    );
}
