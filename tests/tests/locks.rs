//! Named locks (`ferry.v1.Locks`) on a 3-node cluster: one holder at a time,
//! kept through a leader's death, taken over once they expire or are
//! released, with epochs that only grow; bad input is refused and changes
//! nothing.

use std::time::Duration;

use ferry_client::{Client, Code, LockGrant};
use ferry_tests::{eventually, Cluster};

const TTL: Duration = Duration::from_secs(10);

async fn acquire(client: &Client, holder: &str, ttl: Duration) -> LockGrant {
    client.acquire_lock("route", holder, ttl).await.expect("acquire")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_has_one_holder_through_a_leader_failover_and_passes_on_when_it_expires_or_is_released() {
    let mut cluster = Cluster::start(3, &[]);
    let client = Client::connect(&cluster.addrs()).await.expect("connect");

    let first = acquire(&client, "a", TTL).await;
    assert!(first.granted);
    let standby = acquire(&client, "b", TTL).await;
    assert!(!standby.granted, "b asked while a holds the lock");
    assert_eq!(standby.lock.holder, "a", "the refusal names the holder");

    // The lock is replicated state: the new leader knows who holds it.
    let leader = cluster.leader(Duration::from_secs(10)).await;
    cluster.kill9(leader);
    let standby = acquire(&client, "b", TTL).await;
    assert!(!standby.granted, "a's lock outlived the leader that granted it");
    let renewed = acquire(&client, "a", Duration::from_secs(3)).await;
    assert!(renewed.granted);
    assert_eq!(renewed.lock.epoch, first.lock.epoch, "a renewal keeps the epoch");

    // a stops renewing: b gets the lock once it runs out, with a new epoch.
    let taken = eventually(Duration::from_secs(20), "b takes the expired lock", || async {
        Some(acquire(&client, "b", TTL).await).filter(|grant| grant.granted)
    })
    .await;
    assert!(taken.lock.epoch > first.lock.epoch, "{taken:?} after {first:?}");
    let late = acquire(&client, "a", TTL).await;
    assert!(!late.granted, "a cannot renew a lock b took");
    assert_eq!(client.list_locks().await.expect("list"), vec![taken.lock.clone()]);

    // A release hands it on at once.
    assert!(!client.release_lock("route", "a").await.expect("release by a non-holder"));
    assert!(client.release_lock("route", "b").await.expect("release"));
    let next = acquire(&client, "a", TTL).await;
    assert!(next.granted, "released, the lock is free at once");
    assert!(next.lock.epoch > taken.lock.epoch);
    cluster.restart(leader);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lock_requests_are_refused_naming_the_field_and_change_nothing() {
    let cluster = Cluster::start(1, &[]);
    let client = Client::connect(&cluster.addrs()).await.expect("connect");
    let cases = [
        ("route", "", Duration::from_secs(10), "holder"),
        ("route", &*"h".repeat(256), Duration::from_secs(10), "holder"),
        ("route", "a", Duration::from_secs(301), "ttl_seconds"),
        ("no spaces", "a", Duration::from_secs(10), "name"),
        ("", "a", Duration::from_secs(10), "name"),
    ];
    for (name, holder, ttl, field) in cases {
        let error = client.acquire_lock(name, holder, ttl).await.expect_err("refused");
        assert_eq!(error.code(), Some(Code::InvalidArgument), "{error}");
        assert!(error.to_string().contains(field), "{error} should name {field}");
    }
    assert_eq!(client.list_locks().await.expect("list"), vec![], "nothing was taken");
    let error = client.release_lock("route", "").await.expect_err("refused");
    assert_eq!(error.code(), Some(Code::InvalidArgument), "{error}");
}
