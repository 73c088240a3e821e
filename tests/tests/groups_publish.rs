//! Publishing to topics placed in data groups (a cluster formed with
//! `--data-groups 4`): any node takes a publish and forwards each partition's
//! batch to the leader of the group holding it; every replica of every group
//! holds the same log, each confirmed message once at its confirmed
//! position; idempotent producers stay exactly-once across a data group's
//! leader being killed; a topic created just before group 0's leader dies
//! takes publishes in every partition; a topic deleted and created again
//! under its name starts empty; one client's keyless batches go round
//! every partition of each topic, each straight to its leader; keyless
//! batches in flight together to many topics spread over the groups.

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_client::{Client, Message, Position, Publisher, PublisherSettings, TopicSettings};
use ferry_tests::{eventually, Cluster, Stored};

/// An ordering key for each partition of `partitions`.
fn key_per_partition(partitions: u32) -> Vec<String> {
    let mut keys = BTreeMap::new();
    for i in 0.. {
        let key = format!("key-{i}");
        keys.entry(ferry_proto::partition_of_key(&key, partitions)).or_insert(key);
        if keys.len() == partitions as usize {
            break;
        }
    }
    keys.into_values().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_through_every_node_reach_every_partition_once_on_every_replica() {
    let cluster = Cluster::start_with_groups(3, 4).await;
    let admin = Client::connect(&cluster.addrs()).await.expect("connect");
    let partitions = 8;
    admin.create_topic("events", TopicSettings { partitions, ..Default::default() }).await.expect("create topic");

    // 10,200 messages: from each node's own client, half keyed, half not.
    let keys = key_per_partition(partitions);
    let mut publishers = Vec::new();
    for node in 1..=3u64 {
        let client = Client::connect(cluster.addr(node)).await.expect("connect to one node");
        let keys = keys.clone();
        publishers.push(tokio::spawn(async move {
            let mut confirmed = Vec::new();
            for request in 0..34 {
                let values: Vec<String> = (0..100).map(|i| format!("n{node}-r{request}-m{i}")).collect();
                let messages = values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let message = Message::new(v.clone());
                        if i % 2 == 0 {
                            message.ordering_key(keys[(request + i) % keys.len()].clone())
                        } else {
                            message
                        }
                    })
                    .collect();
                let positions = client.publish("events", messages).await.expect("publish");
                confirmed.extend(values.into_iter().zip(positions));
            }
            confirmed
        }));
    }
    let mut confirmed = Vec::new();
    for publisher in publishers {
        confirmed.extend(publisher.await.expect("publisher"));
    }
    assert_eq!(confirmed.len(), 10_200);

    let logs = cluster.assert_topic_holds("events", partitions, &confirmed, Stored::ExactlyOnce).await;
    assert!(logs.iter().all(|log| !log.is_empty()), "every partition holds messages");
    // A key's messages sit in its partition, in the order they were published.
    for (request, i) in (0..34).flat_map(|r| (0..100).step_by(2).map(move |i| (r, i))) {
        let key = &keys[(request + i) % keys.len()];
        let partition = ferry_proto::partition_of_key(key, partitions);
        let (_, position) = &confirmed[request * 100 + i];
        assert_eq!(position.partition, partition, "keyed message {request}/{i} is in its key's partition");
    }
    for node in 1..=3 {
        let of_node: Vec<&Position> =
            confirmed.iter().filter(|(v, _)| v.starts_with(&format!("n{node}-"))).map(|(_, p)| p).collect();
        for partition in 0..partitions {
            let offsets: Vec<u64> = of_node.iter().filter(|p| p.partition == partition).map(|p| p.offset).collect();
            assert!(offsets.windows(2).all(|w| w[0] < w[1]), "node {node}'s publishes keep their order");
        }
    }
    // Every node's view of the topic counts them all (each partition's
    // offsets from the group that holds it).
    for node in 1..=3 {
        let client = Client::connect(cluster.addr(node)).await.expect("connect");
        eventually(Duration::from_secs(10), "the topic's offsets add up on every node", || async {
            let topic = client.get_topic("events").await.ok()?;
            let ends: u64 = topic.partitions.iter().map(|p| p.end_offset).sum();
            (ends == 10_200).then_some(())
        })
        .await;
    }

    // Deleted and created again, the name is a new, empty topic.
    admin.delete_topic("events").await.expect("delete topic");
    admin.create_topic("events", TopicSettings { partitions: 2, ..Default::default() }).await.expect("re-create");
    let values: Vec<String> = (0..10).map(|i| format!("again-{i}")).collect();
    let positions =
        admin.publish("events", values.iter().cloned().map(Message::new).collect()).await.expect("publish again");
    let confirmed: Vec<(String, Position)> = values.into_iter().zip(positions).collect();
    cluster.assert_topic_holds("events", 2, &confirmed, Stored::ExactlyOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_publishes_survive_a_data_group_leader_kill_and_a_new_topic_its_meta_leader_kill() {
    let mut cluster = Cluster::start_with_groups(3, 4).await;
    let client = Client::connect(&cluster.addrs()).await.expect("connect");
    let partitions = 4;
    client.create_topic("orders", TopicSettings { partitions, ..Default::default() }).await.expect("create topic");

    // An idempotent Publisher through any node; the leader of group 1 (which
    // holds a partition of the topic) is killed midway.
    let settings = PublisherSettings { batch_max_messages: 50, ..Default::default() };
    let publisher = Publisher::new(&client, "orders", settings).await.expect("publisher");
    let mut handles = Vec::new();
    for i in 0..4_000 {
        let value = format!("order-{i}");
        handles.push((value.clone(), publisher.publish(Message::new(value)).await.expect("enqueue")));
        if i == 1_500 {
            let group_1_leader = cluster.group_leaders(1).await.expect("status")[&1];
            cluster.kill9(group_1_leader);
            cluster.restart(group_1_leader);
        }
    }
    let mut confirmed = Vec::new();
    for (value, handle) in handles {
        confirmed.push((value, handle.await.expect("every message is confirmed")));
    }
    publisher.close().await;
    cluster.assert_topic_holds("orders", partitions, &confirmed, Stored::ExactlyOnce).await;

    // Group 0's leader dies right after a topic is created: publishes still
    // reach every partition through the nodes left.
    let meta_leader = cluster.leader(Duration::from_secs(10)).await;
    client.create_topic("fresh", TopicSettings { partitions: 8, ..Default::default() }).await.expect("create topic");
    cluster.kill9(meta_leader);
    let survivor = cluster.nodes.keys().copied().find(|id| *id != meta_leader).expect("a survivor");
    let client = Client::connect(cluster.addr(survivor)).await.expect("connect to a survivor");
    let keys = key_per_partition(8);
    let values: Vec<String> = (0..80).map(|i| format!("fresh-{i}")).collect();
    let messages = values.iter().enumerate().map(|(i, v)| Message::new(v.clone()).ordering_key(keys[i % 8].clone()));
    let positions = client.publish("fresh", messages.collect()).await.expect("publish without group 0's leader");
    let confirmed: Vec<(String, Position)> = values.into_iter().zip(positions).collect();
    // A plain publish: retried if a partition's group was still electing.
    let logs = cluster.assert_topic_holds("fresh", 8, &confirmed, Stored::AtLeastOnce).await;
    assert!(logs.iter().all(|log| log.len() >= 10), "every partition took its key's messages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_sends_each_partitions_batches_to_its_groups_leader() {
    let cluster = Cluster::start_with_groups(3, 4).await;
    let client = Client::connect(&cluster.addrs()).await.expect("connect");
    let partitions = 8;
    client.create_topic("routed", TopicSettings { partitions, ..Default::default() }).await.expect("create topic");
    let keys = key_per_partition(partitions);
    let settings = PublisherSettings { batch_max_messages: 20, ..Default::default() };
    let publisher = Publisher::new(&client, "routed", settings).await.expect("publisher");
    let before = cluster.forwarded_publishes().await;

    // Every partition, so every group: the client's node leads at most two
    // of the four, and a publish sent there for the others would hop.
    let mut confirmed = Vec::new();
    for i in 0..2_000 {
        let value = format!("routed-{i}");
        let message = Message::new(value.clone()).ordering_key(keys[i % keys.len()].clone());
        confirmed.push((value, publisher.publish(message).await.expect("enqueue")));
    }
    let mut positions = Vec::new();
    for (value, handle) in confirmed {
        positions.push((value, handle.await.expect("confirmed")));
    }
    publisher.close().await;
    assert_eq!(cluster.forwarded_publishes().await, before, "no batch took a hop: each went to its partition's leader");
    cluster.assert_topic_holds("routed", partitions, &positions, Stored::ExactlyOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_batches_from_one_client_go_round_every_partition_each_to_its_leader() {
    let cluster = Cluster::start_with_groups(3, 4).await;
    // Given one node's address only: the others it learns from the routes.
    let client = Client::connect(cluster.addr(1)).await.expect("connect");
    let partitions = 8;
    let topics = ["spread", "other"];
    for topic in topics {
        client.create_topic(topic, TopicSettings { partitions, ..Default::default() }).await.expect("create topic");
    }
    let before = cluster.forwarded_publishes().await;

    // Node 1 leads at most two of the four groups: a node picking among the
    // partitions it leads would fill at most half of them. Batches alternate
    // between two topics: each topic keeps its own turn.
    let mut confirmed: [Vec<(String, Position)>; 2] = Default::default();
    for batch in 0..partitions as usize * 6 {
        let values: Vec<String> = (0..10).map(|i| format!("b{batch}-m{i}")).collect();
        let topic = topics[batch % 2];
        let positions =
            client.publish(topic, values.iter().cloned().map(Message::new).collect()).await.expect("publish");
        assert!(positions.iter().all(|p| p.partition == positions[0].partition), "a keyless batch stays together");
        confirmed[batch % 2].extend(values.into_iter().zip(positions));
    }
    assert_eq!(cluster.forwarded_publishes().await, before, "no batch took a hop: each went to its partition's leader");
    for (topic, confirmed) in topics.into_iter().zip(confirmed) {
        let logs = cluster.assert_topic_holds(topic, partitions, &confirmed, Stored::ExactlyOnce).await;
        let sizes: Vec<usize> = logs.iter().map(Vec::len).collect();
        // Three batches each, unless a group's leader moved meanwhile.
        assert!(sizes.iter().all(|size| *size > 0), "every partition of {topic} took batches: {sizes:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_batches_in_flight_to_many_topics_at_one_turn_spread_over_the_groups() {
    let cluster = Cluster::start_with_groups(1, 4).await;
    let client = Client::connect(cluster.addr(1)).await.expect("connect");
    // Topics of four partitions on four groups: partition p of each is in
    // one group, so batches that all take their topic's first turn would
    // all go to one group, had the node no eye for what is in flight.
    let topics: Vec<String> = (0..8).map(|i| format!("type-{i}")).collect();
    for topic in &topics {
        client.create_topic(topic, TopicSettings { partitions: 4, ..Default::default() }).await.expect("create topic");
    }
    for round in 0..3 {
        let publishes = topics.iter().map(|topic| {
            let messages = (0..10).map(|i| Message::new(format!("{topic}-r{round}-m{i}"))).collect();
            client.publish(topic, messages)
        });
        let mut partitions = BTreeMap::<u32, usize>::new();
        for positions in futures::future::join_all(publishes).await {
            *partitions.entry(positions.expect("publish")[0].partition).or_default() += 1;
        }
        // In flight together, a batch's group is busy when the next chooses.
        assert!(partitions.len() >= 2, "round {round}: one batch per topic, all at one turn: {partitions:?}");
    }
}
