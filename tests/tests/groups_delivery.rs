//! Delivering from a topic placed in data groups (a cluster formed with
//! `--data-groups 4`): any node serves Pull, Acknowledge, ModifyAckDeadline,
//! Seek and GetSubscription of such a subscription, asking the leader of
//! every group that holds a partition and merging the answers; each message
//! is delivered once per lease, a nack redelivers it, a seek replays every
//! group, the backlog adds up the groups, and an ordering key's messages go
//! out one at a time, in order.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use ferry_client::{Client, Code, Message, ReceivedMessage, SubscriptionSettings, TopicSettings};
use ferry_tests::{eventually, Cluster};

const PARTITIONS: u32 = 4;

/// Pulls through the nodes in turn until `count` messages came, or fails.
async fn pull_all(clients: &[Client], count: usize) -> Vec<ReceivedMessage> {
    let mut received = Vec::new();
    let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
    for turn in 0.. {
        if received.len() >= count {
            break;
        }
        assert!(tokio::time::Instant::now() < give_up, "only {} of {count} delivered", received.len());
        let client = &clients[turn % clients.len()];
        received.extend(client.pull("s", 100, Duration::from_millis(500)).await.expect("pull"));
    }
    received
}

fn values(received: &[ReceivedMessage]) -> BTreeSet<String> {
    received.iter().map(|m| String::from_utf8_lossy(&m.message.data).into_owned()).collect()
}

fn ack_ids(received: &[ReceivedMessage]) -> Vec<String> {
    received.iter().map(|m| m.ack_id.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_pulls_acks_nacks_and_seeks_a_placed_subscription_across_its_groups() {
    let cluster = Cluster::start_with_groups(3, 4).await;
    let clients = cluster.clients().await;
    let admin = Client::connect(&cluster.addrs()).await.expect("connect");
    admin.create_topic("t", TopicSettings { partitions: PARTITIONS, ..Default::default() }).await.expect("topic");
    let settings = SubscriptionSettings {
        ack_deadline: Duration::from_secs(60),
        retry_min_backoff: Duration::ZERO,
        retry_max_backoff: Duration::ZERO,
        ..Default::default()
    };
    admin.create_subscription("s", "t", settings).await.expect("subscription");
    let before_publishing = SystemTime::now();

    // 400 messages without ordering keys (which would be delivered one at a
    // time per key), 10 per request through each node's client in turn:
    // each client's requests take the partitions in turn, so together they
    // fill every partition (every data group).
    let mut published = BTreeSet::new();
    let mut partitions = BTreeSet::new();
    for request in 0..40 {
        let values: Vec<String> = (0..10).map(|i| format!("m{request}-{i}")).collect();
        let messages = values.iter().cloned().map(Message::new).collect();
        let positions = clients[request % 3].publish("t", messages).await.expect("publish");
        partitions.extend(positions.iter().map(|p| p.partition));
        published.extend(values);
    }
    assert_eq!(partitions.len(), PARTITIONS as usize, "every partition holds messages");

    // Every message once, through whichever node pulls.
    let received = pull_all(&clients, 400).await;
    assert_eq!(received.len(), 400, "nothing is delivered twice while leased");
    assert_eq!(values(&received), published);
    assert!(received.iter().all(|m| m.delivery_attempt == 1));
    let backlog = clients[1].get_subscription("s").await.expect("get").backlog.expect("backlog");
    assert_eq!((backlog.unacked_messages, backlog.leased_messages), (400, 400), "{backlog:?}");
    assert!(backlog.oldest_unacked_publish_time.is_some());
    // Each partition once, from whichever group holds it, nothing acked yet.
    let progress: Vec<(u32, u64)> = backlog.partitions.iter().map(|p| (p.partition, p.ack_floor)).collect();
    assert_eq!(progress, (0..PARTITIONS).map(|p| (p, 0)).collect::<Vec<_>>());
    assert_eq!(backlog.partitions.iter().map(|p| p.end_offset).sum::<u64>(), 400);

    // Ack all but 40 (through different nodes), nack those: they come back.
    let (nacked, acked) = received.split_at(40);
    for (i, chunk) in acked.chunks(90).enumerate() {
        let outcome = clients[i % 3].acknowledge("s", &ack_ids(chunk)).await.expect("ack");
        assert_eq!(outcome.acknowledged as usize, chunk.len());
    }
    let modified = clients[2].modify_ack_deadline("s", &ack_ids(nacked), 0).await.expect("nack");
    assert_eq!(modified, 40);
    let again = pull_all(&clients, 40).await;
    assert_eq!(values(&again), values(nacked), "only the nacked messages come back");
    assert!(again.iter().all(|m| m.delivery_attempt == 2), "counted as a second delivery");
    clients[0].acknowledge("s", &ack_ids(&again)).await.expect("ack the rest");
    eventually(Duration::from_secs(10), "nothing is left unacked", || async {
        let backlog = clients[2].get_subscription("s").await.ok()?.backlog?;
        (backlog.unacked_messages == 0 && backlog.leased_messages == 0).then_some(())
    })
    .await;
    assert!(clients[0].pull("s", 100, Duration::ZERO).await.expect("pull").is_empty());

    // A seek to before the publish replays every group.
    clients[1].seek("s", before_publishing).await.expect("seek");
    let replayed = pull_all(&clients, 400).await;
    assert_eq!(values(&replayed), published, "every partition replays");

    // A pull that waits gets a message published while it waits.
    admin.acknowledge("s", &ack_ids(&replayed)).await.expect("ack the replay");
    let waiting = {
        let client = clients[2].clone();
        tokio::spawn(async move { client.pull("s", 10, Duration::from_secs(10)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    admin.publish("t", vec![Message::new("late")]).await.expect("publish while waiting");
    let late = waiting.await.expect("task").expect("pull");
    assert_eq!(values(&late), BTreeSet::from(["late".to_owned()]));

    // Bad ack ids are refused whole, naming the id.
    let refused = clients[0].acknowledge("s", &["not-an-ack-id".to_owned()]).await.expect_err("a bad ack id");
    assert_eq!(refused.code(), Some(Code::InvalidArgument), "{refused:?}");
    assert!(refused.to_string().contains("ack_ids[0]"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_messages_move_to_a_dead_letter_partition_in_another_group() {
    // One node leading 4 data groups: "work" takes groups 1-4 (a partition
    // each), "dead" (one partition) then the least loaded, group 1. So the
    // messages of partitions 1-3 move to another group's partition.
    let dir = ferry_tests::TempDir::new().expect("temp dir");
    let server = ferry_tests::Ferryd::start_with(&dir.path().join("node"), &["--data-groups", "4"]);
    let client = Client::connect(server.addr()).await.expect("connect");
    client.create_topic("work", TopicSettings { partitions: PARTITIONS, ..Default::default() }).await.expect("topic");
    client.create_topic("dead", TopicSettings::default()).await.expect("dead-letter topic");
    client.create_subscription("dead-reader", "dead", SubscriptionSettings::default()).await.expect("sub");
    let settings = SubscriptionSettings {
        dead_letter_topic: "dead".into(),
        max_delivery_attempts: 5,
        retry_min_backoff: Duration::ZERO,
        retry_max_backoff: Duration::ZERO,
        ..Default::default()
    };
    client.create_subscription("workers", "work", settings).await.expect("sub");
    // Value → the partition it went to: keyless requests take the
    // partitions in turn, so four fill all four.
    let mut published = BTreeMap::new();
    for request in 0..PARTITIONS {
        let values: Vec<String> = (0..5).map(|i| format!("poison-{request}-{i}")).collect();
        let positions = client.publish("work", values.iter().cloned().map(Message::new).collect()).await.expect("pub");
        published.extend(values.into_iter().zip(positions.iter().map(|p| p.partition)));
    }
    let partitions: BTreeSet<u32> = published.values().copied().collect();
    assert_eq!(partitions.len(), PARTITIONS as usize, "one request per partition");

    // Nacked five times each; the pulls after that move them instead.
    let mut deliveries = 0;
    for _ in 0..8 {
        let got = client.pull("workers", 100, Duration::from_millis(300)).await.expect("pull");
        deliveries += got.len();
        if !got.is_empty() {
            client.modify_ack_deadline("workers", &ack_ids(&got), 0).await.expect("nack");
        }
    }
    assert_eq!(deliveries, 5 * published.len(), "each delivered five times, then no more");
    let mut dead = Vec::new();
    let give_up = tokio::time::Instant::now() + Duration::from_secs(20);
    while dead.len() < published.len() && tokio::time::Instant::now() < give_up {
        let got = client.pull("dead-reader", 100, Duration::from_millis(500)).await.expect("pull dead letters");
        client.acknowledge("dead-reader", &ack_ids(&got)).await.expect("ack");
        dead.extend(got);
    }
    assert_eq!(dead.len(), published.len(), "each moved once");
    assert_eq!(values(&dead), published.keys().cloned().collect());
    for moved in &dead {
        let attributes = &moved.message.attributes;
        assert_eq!(attributes["ferry.dead_letter.subscription"], "workers");
        assert_eq!(attributes["ferry.dead_letter.delivery_attempts"], "5");
        // Each came from the partition it was published to.
        let value = String::from_utf8_lossy(&moved.message.data).into_owned();
        let partition = published[&value];
        assert!(attributes["ferry.dead_letter.source_position"].starts_with(&format!("{partition}:")), "{value}");
    }
    eventually(Duration::from_secs(10), "the moved messages leave the source's backlog", || async {
        let backlog = client.get_subscription("workers").await.ok()?.backlog?;
        (backlog.unacked_messages == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordering_keys_messages_go_out_one_at_a_time_in_order_through_any_node() {
    let cluster = Cluster::start_with_groups(3, 4).await;
    let clients = cluster.clients().await;
    clients[0]
        .create_topic("keyed", TopicSettings { partitions: PARTITIONS, ..Default::default() })
        .await
        .expect("topic");
    clients[0].create_subscription("k", "keyed", SubscriptionSettings::default()).await.expect("subscription");

    // 12 keys × 6 messages, interleaved, each key's in order, through every
    // node; the keys hash to every partition, so to every group.
    let keys: Vec<String> = (0..12).map(|k| format!("key-{k}")).collect();
    let partitions: BTreeSet<u32> = keys.iter().map(|k| ferry_proto::partition_of_key(k, PARTITIONS)).collect();
    assert_eq!(partitions.len(), PARTITIONS as usize, "the keys cover every partition");
    for round in 0..6 {
        let messages = keys.iter().map(|k| Message::new(format!("{k}/{round}")).ordering_key(k.clone())).collect();
        clients[round % 3].publish("keyed", messages).await.expect("publish");
    }

    // Pulled through the nodes in turn and acked after each pull: no pull
    // holds two messages of a key, and each key's come in publish order.
    let mut order: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
    for turn in 0.. {
        if order.values().map(Vec::len).sum::<usize>() == 72 {
            break;
        }
        assert!(tokio::time::Instant::now() < give_up, "delivered so far: {order:?}");
        let got = clients[turn % 3].pull("k", 100, Duration::from_millis(300)).await.expect("pull");
        let mut out = BTreeSet::new();
        for message in &got {
            assert!(out.insert(message.message.ordering_key.clone()), "two of one key out at once: {got:?}");
            let text = String::from_utf8_lossy(&message.message.data).into_owned();
            let (key, round) = text.split_once('/').expect("key/round");
            order.entry(key.to_owned()).or_default().push(round.parse().expect("round"));
        }
        if !got.is_empty() {
            clients[(turn + 1) % 3].acknowledge("k", &ack_ids(&got)).await.expect("ack");
        }
    }
    for (key, rounds) in order {
        assert_eq!(rounds, (0..6).collect::<Vec<_>>(), "key {key} in publish order, each once");
    }
}
