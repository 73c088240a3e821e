//! End to end through a real `ferryd`: publish, pull and ack, by client and CLI.

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_client::{Client, Message, SubscriptionSettings, TopicSettings};
use ferry_tests::{ferry_ok, Ferryd, TempDir};

const TOTAL: usize = 10_000;
const BATCH: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_are_each_delivered_once_in_order_and_none_remain() {
    let dir = TempDir::new().expect("temp dir");
    // Port 0: the kernel picks the port and ferryd reports the one it got.
    let mut server = Ferryd::start_at(&dir.path().join("node"), "127.0.0.1:0", &[]);
    assert_ne!(server.addr(), "127.0.0.1:0", "ferryd reports the port it was given");
    let client = Client::connect(server.addr()).await.expect("connect");
    client.create_topic("events", TopicSettings::default()).await.expect("create topic");
    client.create_subscription("all", "events", SubscriptionSettings::default()).await.expect("create subscription");

    for batch in 0..TOTAL / BATCH {
        let messages = (0..BATCH).map(|i| Message::new(format!("m{}", batch * BATCH + i))).collect();
        let positions = client.publish("events", messages).await.expect("publish");
        let offsets: Vec<u64> = positions.iter().map(|p| p.offset).collect();
        let first = (batch * BATCH) as u64;
        assert_eq!(offsets, (first..first + BATCH as u64).collect::<Vec<_>>(), "offsets of batch {batch}");
    }

    let mut seen = Vec::with_capacity(TOTAL);
    loop {
        let received = client.pull("all", 1000, Duration::from_millis(200)).await.expect("pull");
        if received.is_empty() {
            break;
        }
        assert!(received.iter().all(|m| m.delivery_attempt == 1), "no redelivery happened");
        let ids: Vec<String> = received.iter().map(|m| m.ack_id.clone()).collect();
        seen.extend(
            received.into_iter().map(|m| (m.position.offset, String::from_utf8_lossy(&m.message.data).into_owned())),
        );
        let outcome = client.acknowledge("all", &ids).await.expect("ack");
        assert_eq!(outcome.acknowledged as usize, ids.len());
    }
    let expected: Vec<(u64, String)> = (0..TOTAL).map(|i| (i as u64, format!("m{i}"))).collect();
    assert_eq!(seen.len(), TOTAL, "every message delivered exactly once");
    assert_eq!(seen, expected, "in publish order");

    // Leases die with the process, so after a restart only unacked messages
    // could come back: none may.
    server.stop();
    server.restart_at("127.0.0.1:0");
    let client = Client::connect(server.addr()).await.expect("reconnect");
    let left = client.pull("all", 1000, Duration::from_millis(500)).await.expect("pull after restart");
    assert!(left.is_empty(), "{} messages were delivered again after being acked", left.len());
    let topic = client.get_topic("events").await.expect("get topic");
    assert_eq!(topic.partitions[0].end_offset, TOTAL as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_batches_alternating_between_two_topics_fill_every_partition_of_each() {
    let dir = TempDir::new().expect("temp dir");
    let server = Ferryd::start_at(&dir.path().join("node"), "127.0.0.1:0", &[]);
    let client = Client::connect(server.addr()).await.expect("connect");
    for topic in ["a", "b"] {
        client.create_topic(topic, TopicSettings { partitions: 2, ..Default::default() }).await.expect("create topic");
    }
    // The node picks each keyless batch's partition in the topic's own
    // turn: one turn for both topics would give each topic every other
    // turn, so one partition of each.
    let mut batches_per_partition = BTreeMap::<(&str, u32), usize>::new();
    for batch in 0..8 {
        let topic = ["a", "b"][batch % 2];
        let positions = client.publish(topic, vec![Message::new(format!("m{batch}")); 10]).await.expect("publish");
        assert!(positions.iter().all(|p| p.partition == positions[0].partition), "a keyless batch stays together");
        *batches_per_partition.entry((topic, positions[0].partition)).or_default() += 1;
    }
    let expected = BTreeMap::from([(("a", 0), 2), (("a", 1), 2), (("b", 0), 2), (("b", 1), 2)]);
    assert_eq!(batches_per_partition, expected);
}

#[test]
fn the_cli_publishes_stdin_lines_and_pulls_them_back_in_order() {
    let dir = TempDir::new().expect("temp dir");
    let server = Ferryd::start(&dir.path().join("node"));
    let addr = server.addr();
    ferry_ok(addr, &["topic", "create", "logs"], b"");
    ferry_ok(addr, &["sub", "create", "reader", "--topic", "logs", "--ack-deadline", "30s"], b"");
    assert_eq!(ferry_ok(addr, &["topic", "list"], b""), "logs\n");
    let sub: serde_json::Value = serde_json::from_str(&ferry_ok(addr, &["sub", "get", "reader"], b"")).expect("json");
    assert_eq!(sub["ack_deadline_seconds"], 30);
    assert_eq!(sub["topic"], "logs");

    let lines: Vec<String> = (0..2500).map(|i| format!("line {i}")).collect();
    let input = lines.join("\n") + "\n";
    assert_eq!(ferry_ok(addr, &["publish", "logs"], input.as_bytes()).trim(), "2500");

    let first = ferry_ok(addr, &["pull", "reader", "--max", "2", "--json", "--ack"], b"");
    let records: Vec<serde_json::Value> = first.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["data"], "line 0");
    assert_eq!(records[1]["offset"], 1);
    for field in ["ack_id", "publish_time", "attributes", "delivery_attempt", "partition"] {
        assert!(records[0].get(field).is_some(), "--json has {field}: {}", records[0]);
    }

    let rest = ferry_ok(addr, &["pull", "reader", "--max", "5000", "--ack"], b"");
    let expected = lines[2..].join("\n") + "\n";
    assert_eq!(rest, expected);
    assert_eq!(ferry_ok(addr, &["pull", "reader", "--max", "10"], b""), "", "everything was acked");
}
