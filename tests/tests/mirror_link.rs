//! The mirror (issue 9) across a cut link: `ferry-mirror` runs in its own
//! network namespace, the two clusters outside it; the link is cut (every
//! packet dropped, as on a WAN outage: no resets, open connections go
//! silent) for longer than the client takes to call a connection dead, and
//! restored, while the source takes publishes throughout. Afterwards the
//! destination holds every acknowledged source message once, in order.
//!
//! Needs root (a network namespace and iptables); skipped otherwise.

use std::time::Duration;

use ferry_client::Client;
use ferry_jepsen::cluster::net::namespaces::{namespaces_available, Namespaces};
use ferry_tests::mirror::{
    assert_once_in_order, clusters_on, publish, stored, wait_for_copies, wait_until_drained, Acked, Mirror, PARTITIONS,
};
use ferry_tests::{eventually, TempDir};
use tokio::sync::watch;
use tokio::time::Instant;

/// Longer than the client's HTTP/2 keepalive takes to declare a silent
/// connection dead (a ping after 20 s, 10 s for its answer), so the mirror
/// sees its connections fail, not only stall.
const CUT_FOR: Duration = Duration::from_secs(35);

/// How long after the heal the mirror must be copying again. It reconnects
/// within seconds, but the source still leases the messages it sent into
/// the stream the cut killed (the server has no keepalive of its own) until
/// the mirror's retransmitted close reaches it, TCP's backoff after the heal
/// (about 10 s here, at most the cut's length), or their deadline passes;
/// the mirror waits for them rather than skip a leased offset.
const RECOVERS_WITHIN: Duration = Duration::from_secs(60);

/// Namespace tags 250..=255 are this test's: the fault harness's runs take
/// theirs from 0..250, so neither removes the other's namespaces; the PID
/// keeps two concurrent test runs apart (mostly).
fn tag() -> u8 {
    250 + (std::process::id() % 6) as u8
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_whose_link_is_cut_and_restored_copies_every_acknowledged_message_once_in_order() {
    if !namespaces_available() {
        eprintln!("skipped: cutting the mirror's link needs root with ip and iptables (a network namespace)");
        return;
    }
    let net = Namespaces::create(tag(), 1).expect("a network namespace for the mirror");
    let dir = TempDir::new().expect("temp dir");
    let hub = net.hub_ip().into();
    let (source_node, destination_node, source, destination) = clusters_on(&dir, "dc1", "central", hub).await;
    let mut acked = publish(&source, "before", 0..300).await;
    let log = dir.path().join("mirror.log");
    let _mirror =
        Mirror::start_under(net.exec_prefix(1), log, source_node.addr(), destination_node.addr(), "dc1", "central");
    let (stop, stopped) = watch::channel(false);
    let publishing = tokio::spawn(publish_steadily(source.clone(), stopped));
    // The link works: what was published before arrives.
    eventually(Duration::from_secs(30), "the mirror copies before the cut", || async {
        (copies_from_source(&destination).await >= acked.len()).then_some(())
    })
    .await;

    net.isolate(1).expect("cut the mirror's link");
    // A request on the wire when the link went may still land; nothing after.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (copied_at_cut, published_at_cut) = (copies_from_source(&destination).await, published(&source).await);
    tokio::time::sleep(CUT_FOR).await;
    let (copied_at_heal, published_at_heal) = (copies_from_source(&destination).await, published(&source).await);
    net.heal().expect("restore the mirror's link");
    let healed = Instant::now();
    assert_eq!(copied_at_heal, copied_at_cut, "copies arrived while the link was cut: the cut is not a cut");
    assert!(published_at_heal > published_at_cut, "the source took no publishes during the cut");

    eventually(RECOVERS_WITHIN, "the mirror copies again after the heal", || async {
        (copies_from_source(&destination).await > copied_at_heal).then_some(())
    })
    .await;
    eprintln!("the mirror copied again {:?} after the link came back", healed.elapsed());
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.send(true).expect("the publisher is running");
    acked.extend(publishing.await.expect("publisher"));
    let copies = wait_for_copies(&destination, "dc1", acked.len()).await;
    eprintln!("{} copies, all there {:?} after the link came back", copies.len(), healed.elapsed());
    assert_once_in_order(&copies, "dc1", &acked);
    wait_until_drained(&source, "ferry-mirror.central.events").await;
}

/// Publishes 20 messages every 100 ms until `stop` turns true; returns what
/// the source acknowledged.
async fn publish_steadily(source: Client, stop: watch::Receiver<bool>) -> Acked {
    let mut acked = Acked::new();
    for round in 0.. {
        if *stop.borrow() {
            break;
        }
        acked.extend(publish(&source, &format!("during-{round}"), 0..20).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    acked
}

/// Copies at the destination that came from the source cluster `dc1`.
async fn copies_from_source(destination: &Client) -> usize {
    stored(destination).await.iter().filter(|c| c.origin.0 == "dc1").count()
}

/// Messages the source's `events` ever stored (the sum of its partitions'
/// ends: retention deletes what the mirror acked, so counting what is
/// stored would not do).
async fn published(source: &Client) -> u64 {
    let mut total = 0;
    for partition in 0..PARTITIONS {
        total += source.read_log("events", partition, 0, 1).await.expect("read the source").1;
    }
    total
}
