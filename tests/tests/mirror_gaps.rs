//! The mirror's hourly gap check (issue 9): for each closed hour of each
//! source partition it compares the source's message count with what the
//! destination stored of it, and reports a mismatch. The source runs on a
//! manual clock so its hours pass in a second.

use std::net::IpAddr;
use std::time::Duration;

use ferry_client::SubscriptionSettings;
use ferry_tests::mirror::{cluster_on, cluster_with, publish, wait_for_copies, Mirror};
use ferry_tests::{advance_clock, eventually, free_addr, http_get, TempDir};

const HOUR: Duration = Duration::from_secs(3600);

/// The sum over partitions of the mirror's metric `name`.
async fn metric(addr: &str, name: &str) -> f64 {
    let scrape = http_get(addr, "/metrics").await;
    let prefix = format!("{name}{{");
    scrape.lines().filter(|l| l.starts_with(&prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_missing_messages_at_the_destination_is_reported_and_a_complete_one_is_not() {
    let dir = TempDir::new().expect("temp dir");
    let localhost = IpAddr::from([127, 0, 0, 1]);
    let (source_node, source) = cluster_with(&dir, "dc1", localhost, &["--unsafe-manual-clock"]).await;
    let (destination_node, destination) = cluster_on(&dir, "central", localhost).await;

    // The route's subscription exists before anything is published, and a
    // stray consumer acks ten messages of the first hour on it: the mirror
    // never sees them, so that hour arrives ten short.
    let subscription = "ferry-mirror.central.events";
    source.create_subscription(subscription, "events", SubscriptionSettings::default()).await.expect("subscription");
    // Hours are checked from the first that begins after the subscription.
    advance_clock(source_node.addr(), HOUR).await;
    let first_hour = publish(&source, "first", 0..300).await;
    let stray = source.pull(subscription, 10, Duration::from_secs(5)).await.expect("pull");
    assert_eq!(stray.len(), 10);
    let ids: Vec<String> = stray.iter().map(|m| m.ack_id.clone()).collect();
    source.acknowledge(subscription, &ids).await.expect("ack");
    advance_clock(source_node.addr(), HOUR).await;
    let second_hour = publish(&source, "second", 0..300).await;
    // Both hours are over at the source.
    advance_clock(source_node.addr(), 2 * HOUR).await;

    let metrics = free_addr();
    let args = ["--gap-check-seconds", "1", "--metrics-listen", &metrics];
    let _mirror = Mirror::start_with(source_node.addr(), destination_node.addr(), "dc1", "central", &args);
    wait_for_copies(&destination, "dc1", first_hour.len() + second_hour.len() - 10).await;

    let missing = eventually(Duration::from_secs(30), "the gap check counts the missing ten", || async {
        let missing = metric(&metrics, "ferry_mirror_gap_messages_total").await;
        (missing > 0.0).then_some(missing)
    })
    .await;
    assert_eq!(missing, 10.0, "exactly the messages the stray consumer took");
    let hours = metric(&metrics, "ferry_mirror_gap_hours_total").await;
    let checked = metric(&metrics, "ferry_mirror_gap_hours_checked_total").await;
    assert!((1.0..=3.0).contains(&hours), "only first-hour partitions fall short: {hours} of {checked}");
    assert!(checked >= 2.0 * 3.0, "both hours of the 3 partitions were checked: {checked}");
}
