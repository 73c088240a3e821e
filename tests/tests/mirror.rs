//! The mirror (issue 9) against real processes: clusters with a
//! `ferry-mirror` between them, killed and restarted while the source takes
//! publishes; the destination ends with every acknowledged source message
//! once, in per-partition order, with its origin recorded. Two sources fan
//! into one destination; two clusters mirroring each other do not loop.

use std::net::IpAddr;
use std::time::Duration;

use ferry_client::{Code, SubscriptionSettings, TopicSettings};
use ferry_tests::mirror::{
    assert_once_in_order, cluster_on, clusters, publish, publish_to, stored, wait_for_copies, wait_for_copies_in,
    wait_until_drained, Mirror, PARTITIONS,
};
use ferry_tests::{eventually, TempDir};

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
    wait_until_drained(&source, "ferry-mirror.central.events").await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sources_mirrored_into_one_destination_each_arrive_once_in_order() {
    let dir = TempDir::new().expect("temp dir");
    let (dc1_node, central_node, dc1, central) = clusters(&dir, "dc1", "central").await;
    let (dc2_node, dc2) = cluster_on(&dir, "dc2", IpAddr::from([127, 0, 0, 1])).await;
    let _from_dc1 = Mirror::start(dc1_node.addr(), central_node.addr(), "dc1", "central");
    let _from_dc2 = Mirror::start(dc2_node.addr(), central_node.addr(), "dc2", "central");
    let (from_dc1, from_dc2) = tokio::join!(publish(&dc1, "dc1", 0..1000), publish(&dc2, "dc2", 0..1000));
    let central_own = publish(&central, "central", 0..100).await;

    wait_for_copies(&central, "dc1", from_dc1.len()).await;
    let copies = wait_for_copies(&central, "dc2", from_dc2.len()).await;
    // Each source's messages once, in their partitions and order, among the
    // destination's own; each source is its own producer, so their
    // sequences (source offsets, overlapping) do not collide.
    assert_once_in_order(&copies, "dc1", &from_dc1);
    assert_once_in_order(&copies, "dc2", &from_dc2);
    assert_eq!(copies.len(), from_dc1.len() + from_dc2.len() + central_own.len());
}

/// A route by pattern copies every matching topic, one created after the
/// mirror started included, into destination topics it creates like the
/// source's; topics that do not match stay where they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pattern_copies_every_matching_topic_into_topics_it_creates_and_picks_up_new_ones() {
    let dir = TempDir::new().expect("temp dir");
    let (source_node, destination_node, source, destination) = clusters(&dir, "dc1", "central").await;
    let settings = TopicSettings { partitions: PARTITIONS, ..Default::default() };
    for topic in ["web.clicks", "web.views", "other"] {
        source.create_topic(topic, settings.clone()).await.expect("create topic");
    }
    let args = ["--topic", "web.*", "--create-destination-topics", "--topics-refresh-seconds", "1"];
    let _mirror = Mirror::start_with(source_node.addr(), destination_node.addr(), "dc1", "central", &args);
    let clicks = publish_to(&source, "web.clicks", "c", 0..300).await;
    let views = publish_to(&source, "web.views", "v", 0..300).await;
    source.create_topic("web.later", settings).await.expect("create topic");
    let later = publish_to(&source, "web.later", "l", 0..300).await;
    publish_to(&source, "other", "o", 0..10).await;

    for (topic, acked) in [("web.clicks", &clicks), ("web.views", &views), ("web.later", &later)] {
        let created = eventually(Duration::from_secs(30), topic, || async { destination.get_topic(topic).await.ok() });
        assert_eq!(created.await.settings.partitions, PARTITIONS, "{topic} is created like the source's");
        let copies = wait_for_copies_in(&destination, topic, "dc1", acked.len()).await;
        assert_once_in_order(&copies, "dc1", acked);
    }
    let error = destination.get_topic("other").await.expect_err("not mirrored");
    assert_eq!(error.code(), Some(Code::NotFound));
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
