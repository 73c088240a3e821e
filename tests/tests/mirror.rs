//! The mirror (issue 9) against real processes: clusters with a
//! `ferry-mirror` between them, killed and restarted while the source takes
//! publishes; the destination ends with every acknowledged source message
//! once, in per-partition order, with its origin recorded. Two clusters
//! mirroring each other do not loop.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ferry_client::{Client, Message, SubscriptionSettings, TopicSettings};
use ferry_tests::{binary, Ferryd, TempDir};

const PARTITIONS: u32 = 3;

/// A `ferry-mirror` child process, killed (SIGKILL) when dropped.
struct Mirror {
    args: Vec<String>,
    child: Child,
}

impl Mirror {
    fn start(source: &str, destination: &str, from: &str, to: &str) -> Mirror {
        Mirror::start_with(source, destination, from, to, &["--batch-messages", "50"])
    }

    fn start_with(source: &str, destination: &str, from: &str, to: &str, extra: &[&str]) -> Mirror {
        let route = ["--source-cluster", from, "--destination-cluster", to, "--topic", "events"];
        let args: Vec<String> = ["--source", source, "--destination", destination]
            .iter()
            .chain(&route)
            .chain(extra)
            .map(|a| a.to_string())
            .collect();
        let child = spawn(&args);
        Mirror { args, child }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.kill();
        self.child = spawn(&self.args);
    }
}

fn spawn(args: &[String]) -> Child {
    Command::new(binary("ferry-mirror"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start ferry-mirror")
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Two one-node clusters named `one` and `two`, each with the topic
/// `events` of [`PARTITIONS`] partitions, and a client of each.
async fn clusters(dir: &TempDir, one: &str, two: &str) -> (Ferryd, Ferryd, Client, Client) {
    let nodes = (Ferryd::start(&dir.path().join(one)), Ferryd::start(&dir.path().join(two)));
    let settings = TopicSettings { partitions: PARTITIONS, ..Default::default() };
    let mut clients = Vec::new();
    for node in [&nodes.0, &nodes.1] {
        let client = Client::connect(node.addr()).await.expect("connect");
        client.create_topic("events", settings.clone()).await.expect("create topic");
        clients.push(client);
    }
    let second = clients.pop().expect("two clients");
    let first = clients.pop().expect("two clients");
    (nodes.0, nodes.1, first, second)
}

/// Publishes `count` messages `<prefix>-<n>` in requests of 20; returns each
/// acknowledged one's (partition, offset) and value.
async fn publish(client: &Client, prefix: &str, range: std::ops::Range<u32>) -> BTreeMap<(u32, u64), String> {
    let mut acked = BTreeMap::new();
    let values: Vec<String> = range.map(|n| format!("{prefix}-{n}")).collect();
    for chunk in values.chunks(20) {
        let messages = chunk.iter().map(|v| Message::new(v.clone())).collect();
        let positions = client.publish("events", messages).await.expect("publish");
        for (position, value) in positions.iter().zip(chunk) {
            acked.insert((position.partition, position.offset), value.clone());
        }
    }
    acked
}

/// A stored copy: its partition, and its origin's cluster, partition and offset.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Copy {
    partition: u32,
    origin: (String, u32, u64),
    value: String,
}

/// Every message of `events` on a one-node cluster, per partition in offset order.
async fn stored(client: &Client) -> Vec<Copy> {
    let mut copies = Vec::new();
    for partition in 0..PARTITIONS {
        let mut from = 0;
        loop {
            let (records, end) = client.read_log("events", partition, from, 1000).await.expect("read");
            for record in &records {
                let attribute = |key: &str| record.message.attributes.get(key).cloned().unwrap_or_default();
                let origin = (
                    attribute("ferry.origin.cluster"),
                    attribute("ferry.origin.partition").parse().unwrap_or(u32::MAX),
                    attribute("ferry.origin.offset").parse().unwrap_or(u64::MAX),
                );
                let value = String::from_utf8_lossy(&record.message.data).into_owned();
                copies.push(Copy { partition, origin, value });
                from = record.offset + 1;
            }
            if records.is_empty() || from >= end {
                break;
            }
        }
    }
    copies
}

/// Waits until the destination holds `count` copies from `origin`, then a
/// little longer, so that a duplicate would have had time to show.
async fn wait_for_copies(client: &Client, origin: &str, count: usize) -> Vec<Copy> {
    for _ in 0..600 {
        let copies = stored(client).await;
        if copies.iter().filter(|c| c.origin.0 == origin).count() >= count {
            tokio::time::sleep(Duration::from_secs(2)).await;
            return stored(client).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let copies = stored(client).await;
    let held = copies.iter().filter(|c| c.origin.0 == origin).count();
    panic!("the destination never held {count} copies from {origin}: {held} after a minute");
}

/// Every acknowledged source message is in the destination once, in its own
/// partition, in source offset order.
fn assert_once_in_order(copies: &[Copy], origin: &str, acked: &BTreeMap<(u32, u64), String>) {
    let mirrored: Vec<&Copy> = copies.iter().filter(|c| c.origin.0 == origin).collect();
    let mut seen = BTreeMap::new();
    for copy in &mirrored {
        let key = (copy.origin.1, copy.origin.2);
        assert_eq!(copy.partition, key.0, "{copy:?} is in another partition than its source");
        assert_eq!(acked.get(&key), Some(&copy.value), "{copy:?} does not match the source");
        assert!(seen.insert(key, ()).is_none(), "{copy:?} is stored twice");
    }
    assert_eq!(seen.len(), acked.len(), "every acknowledged source message arrives");
    for partition in 0..PARTITIONS {
        let offsets: Vec<u64> = mirrored.iter().filter(|c| c.partition == partition).map(|c| c.origin.2).collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "partition {partition} out of order: {offsets:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_killed_and_restarted_with_its_destination_copies_every_acknowledged_message_once_in_order() {
    let dir = TempDir::new().expect("temp dir");
    let (source_node, mut destination_node, source, destination) = clusters(&dir, "dc1", "central").await;
    let mut acked = publish(&source, "before", 0..600).await;

    // The source takes publishes throughout, while the mirror is killed
    // (SIGKILL) and restarted every 300 ms, so kills land between a
    // destination commit and the source ack, mid-batch and while idle; then
    // the destination is killed and restarted under it.
    let publishing = tokio::spawn({
        let source = source.clone();
        async move { publish(&source, "during", 0..6000).await }
    });
    let mut mirror = Mirror::start(source_node.addr(), destination_node.addr(), "dc1", "central");
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        mirror.restart();
    }
    destination_node.kill9();
    tokio::time::sleep(Duration::from_millis(500)).await;
    mirror.restart();
    destination_node.restart();
    acked.extend(publishing.await.expect("publisher"));
    acked.extend(publish(&source, "after", 0..600).await);

    let copies = wait_for_copies(&destination, "dc1", acked.len()).await;
    assert_once_in_order(&copies, "dc1", &acked);
    // And the source is told: its subscription drains.
    let mut backlog = None;
    for _ in 0..100 {
        let now = source.get_subscription("ferry-mirror.central.events").await.expect("get").backlog;
        if now.as_ref().is_some_and(|b| b.unacked_messages == 0) {
            return;
        }
        backlog = now;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the source still has unacked messages once all were stored: {backlog:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_mirroring_each_other_copy_each_sides_messages_once_without_a_loop() {
    let dir = TempDir::new().expect("temp dir");
    let (a_node, b_node, a, b) = clusters(&dir, "a", "b").await;
    let _a_to_b = Mirror::start(a_node.addr(), b_node.addr(), "a", "b");
    let _b_to_a = Mirror::start(b_node.addr(), a_node.addr(), "b", "a");
    let from_a = publish(&a, "from-a", 0..200).await;
    let from_b = publish(&b, "from-b", 0..200).await;

    let in_b = wait_for_copies(&b, "a", from_a.len()).await;
    let in_a = wait_for_copies(&a, "b", from_b.len()).await;
    // Each side holds its own messages (no origin) and the other's once;
    // nothing came back to where it started.
    assert_once_in_order(&in_b, "a", &from_a);
    assert_once_in_order(&in_a, "b", &from_b);
    assert_eq!(in_b.len(), from_a.len() + from_b.len(), "b: its own and a's, nothing else");
    assert_eq!(in_a.len(), from_a.len() + from_b.len(), "a: its own and b's, nothing else");
}

/// A source message leased to someone else (a mirror instance cut off but
/// not dead) is waited for, not skipped: once it comes back, it is copied
/// in its place, and nothing after it in its partition went first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_leased_elsewhere_are_waited_for_not_skipped() {
    let dir = TempDir::new().expect("temp dir");
    let (source_node, destination_node, source, destination) = clusters(&dir, "dc1", "central").await;
    let subscription = "ferry-mirror.central.events";
    let settings = SubscriptionSettings { ack_deadline: Duration::from_secs(600), ..Default::default() };
    source.create_subscription(subscription, "events", settings).await.expect("subscription");
    let acked = publish(&source, "m", 0..300).await;
    // Another consumer holds the first few messages, for ten minutes.
    let held = source.pull(subscription, 10, Duration::from_secs(5)).await.expect("pull");
    assert!(!held.is_empty());

    let _mirror = Mirror::start(source_node.addr(), destination_node.addr(), "dc1", "central");
    let waiting_at =
        |partition: u32| held.iter().filter(|m| m.position.partition == partition).map(|m| m.position.offset).min();
    tokio::time::sleep(Duration::from_secs(3)).await;
    for copy in stored(&destination).await {
        if let Some(lowest_held) = waiting_at(copy.partition) {
            assert!(copy.origin.2 < lowest_held, "{copy:?} went ahead of offset {lowest_held}, still leased elsewhere");
        }
    }
    // Given back, the held messages reach the mirror and everything follows.
    let ids: Vec<String> = held.iter().map(|m| m.ack_id.clone()).collect();
    source.modify_ack_deadline(subscription, &ids, 0).await.expect("nack");
    let copies = wait_for_copies(&destination, "dc1", acked.len()).await;
    assert_once_in_order(&copies, "dc1", &acked);
}

/// Bandwidth between datacenters is scarce: a route sends no more message
/// bytes per second than it is allowed, and still delivers everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_route_spreads_its_copies_over_time_and_loses_none() {
    let dir = TempDir::new().expect("temp dir");
    let (source_node, destination_node, source, destination) = clusters(&dir, "dc1", "central").await;
    // 150 copies of about 130 bytes each with their origin: about 20 KB, or
    // 9 s at 2 KB/s after a one-second burst; in the first 2 s, 6 KB and a
    // batch of 10 in debt, about 55 copies. The limit counts message bytes,
    // compressed on the link or not.
    let acked = publish(&source, "m", 0..150).await;
    let limit = ["--max-bytes-per-second", "2000", "--batch-messages", "10"];
    let _mirror = Mirror::start_with(source_node.addr(), destination_node.addr(), "dc1", "central", &limit);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let early = stored(&destination).await.len();
    assert!(early < acked.len() / 2, "{early} of {} copies after 2 s at 2 KB/s", acked.len());
    let copies = wait_for_copies(&destination, "dc1", acked.len()).await;
    assert_once_in_order(&copies, "dc1", &acked);
}
