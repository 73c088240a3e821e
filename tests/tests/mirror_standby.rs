//! High availability of a mirror route (issue 9): several instances run it,
//! the one holding the route's lock in the destination copies and the others
//! stand by; a standby takes over when the active one is killed (once its
//! lock runs out) or stops cleanly (at once), and the destination still holds
//! every acknowledged source message once, in order.

use std::time::Duration;

use ferry_client::Client;
use ferry_tests::mirror::{assert_once_in_order, clusters, publish, wait_for_copies, Mirror};
use ferry_tests::{eventually, free_addr, http_get, TempDir};

const LOCK: &str = "ferry-mirror.dc1.events.events";

/// The route lock's holder in the destination, if any.
async fn holder(destination: &Client) -> Option<String> {
    let locks = destination.list_locks().await.expect("list locks");
    locks.into_iter().find(|lock| lock.name == LOCK).map(|lock| lock.holder)
}

/// Whether the instance serving metrics at `addr` says it is the active one.
async fn active(addr: &str) -> bool {
    let scrape = http_get(addr, "/metrics").await;
    assert!(scrape.contains("ferry_mirror_behind_messages{"), "no lag gauge in:\n{scrape}");
    scrape.contains("ferry_mirror_active{source_cluster=\"dc1\",topic=\"events\",destination_topic=\"events\"} 1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_when_the_active_instance_dies_or_stops_and_nothing_is_copied_twice() {
    let dir = TempDir::new().expect("temp dir");
    let (source_node, destination_node, source, destination) = clusters(&dir, "dc1", "central").await;
    let (a_metrics, b_metrics) = (free_addr(), free_addr());
    let start = |instance: &str, lock_seconds: &str, metrics: &str| {
        let args = ["--instance", instance, "--lock-seconds", lock_seconds, "--metrics-listen", metrics];
        Mirror::start_with(source_node.addr(), destination_node.addr(), "dc1", "central", &args)
    };
    let mut acked = publish(&source, "before", 0..300).await;

    // a takes the lock first, so which instance is active is known.
    let mut a = start("a", "3", &a_metrics);
    let held = eventually(Duration::from_secs(20), "a holds the route's lock", || holder(&destination)).await;
    assert_eq!(held, "a");
    let mut b = start("b", "30", &b_metrics);
    wait_for_copies(&destination, "dc1", acked.len()).await;
    eventually(Duration::from_secs(10), "b serves metrics", || async {
        tokio::net::TcpStream::connect(&b_metrics).await.ok().map(drop)
    })
    .await;
    assert!(active(&a_metrics).await && !active(&b_metrics).await, "only the lock's holder copies");

    // Killed, a stops renewing: b takes over once a's 3 s lock runs out.
    let publishing = tokio::spawn({
        let source = source.clone();
        async move { publish(&source, "during", 0..3000).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.kill();
    eventually(Duration::from_secs(20), "b takes over", || async {
        (holder(&destination).await.as_deref() == Some("b")).then_some(())
    })
    .await;
    acked.extend(publishing.await.expect("publisher"));
    wait_for_copies(&destination, "dc1", acked.len()).await;
    assert!(active(&b_metrics).await);

    // Stopped cleanly, b releases its 30 s lock at once, and a (restarted)
    // copies what is published after.
    b.terminate();
    eventually(Duration::from_secs(10), "b's lock is released", || async {
        holder(&destination).await.is_none().then_some(())
    })
    .await;
    a.restart();
    acked.extend(publish(&source, "after", 0..300).await);
    let copies = wait_for_copies(&destination, "dc1", acked.len()).await;
    assert_once_in_order(&copies, "dc1", &acked);
}
