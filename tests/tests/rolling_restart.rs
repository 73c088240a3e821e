//! `ferry cluster rolling-restart` under load: a 3-node cluster with data
//! groups is restarted node by node (each stopped with SIGTERM, so it hands
//! its leaderships over first) while one client publishes and another
//! consumes through a stream. Every acknowledged publish arrives, the
//! publishing client never sees an error, and the consuming client never
//! has to be made again.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_client::{Client, SubscriberSettings, SubscriptionSettings, TopicSettings};
use ferry_tests::{binary, Cluster, Publisher, TempDir};

/// Stands in for systemd: restarts node N (SIGTERM, wait for a clean exit,
/// start again) whenever `restart-N` appears in `requests`, then removes
/// the file to say it is done. Returns the cluster when told to stop.
fn supervise(mut cluster: Cluster, requests: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Cluster> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            let ids: Vec<u64> = cluster.nodes.keys().copied().collect();
            for id in ids {
                let request = requests.join(format!("restart-{id}"));
                if request.exists() {
                    let node = cluster.nodes.get_mut(&id).expect("node");
                    node.stop(); // asserts a clean exit
                    node.restart();
                    std::fs::remove_file(&request).expect("answer the restart request");
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    })
}

/// The `--exec` command: ask the supervisor, wait until it is done.
fn restart_command(requests: &Path) -> String {
    let request = requests.join("restart-{id}");
    let request = request.display();
    format!("touch {request} && while [ -e {request} ]; do sleep 0.1; done")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_loses_nothing_and_clients_carry_on() {
    let cluster = Cluster::start_with_groups(3, 2).await;
    let addrs = cluster.addrs();
    let client = Client::connect(&addrs).await.expect("connect");
    client.create_topic("events", TopicSettings { partitions: 4, ..Default::default() }).await.expect("topic");
    let settings = SubscriptionSettings { ack_deadline: Duration::from_secs(10), ..Default::default() };
    client.create_subscription("audit", "events", settings).await.expect("subscription");

    let publisher = Publisher::start(client.clone(), "events", "m", 20);
    let received = Arc::new(Mutex::new(BTreeSet::new()));
    let consuming = {
        let (client, received) = (Client::connect(&addrs).await.expect("connect"), Arc::clone(&received));
        tokio::spawn(async move {
            let mut subscriber = client.subscribe("audit", SubscriberSettings::default()).await.expect("subscribe");
            while let Some(delivered) = subscriber.next().await {
                let delivered = delivered.expect("the subscriber carries on without errors");
                received
                    .lock()
                    .expect("lock")
                    .insert(String::from_utf8_lossy(&delivered.message.message.data).into_owned());
                delivered.ack();
            }
        })
    };
    publisher.wait_for(200, Duration::from_secs(30)).await;

    let requests = TempDir::new().expect("temp dir");
    let stop = Arc::new(AtomicBool::new(false));
    let supervisor = supervise(cluster, requests.path().to_owned(), Arc::clone(&stop));
    let command = restart_command(requests.path());
    let rolled = tokio::task::spawn_blocking(move || {
        Command::new(binary("ferry"))
            .args(["--server", &addrs, "cluster", "rolling-restart", "--exec", &command, "--timeout", "90s"])
            .output()
            .expect("run ferry")
    })
    .await
    .expect("rolling restart");
    let stdout = String::from_utf8_lossy(&rolled.stdout);
    stop.store(true, Ordering::SeqCst);
    let cluster = supervisor.join().expect("supervisor");
    assert!(
        rolled.status.success(),
        "rolling restart failed: {stdout}\n{}\nlogs:\n{}",
        String::from_utf8_lossy(&rolled.stderr),
        cluster.nodes.values().map(|n| n.log_tail(3000)).collect::<Vec<_>>().join("\n---\n")
    );
    for id in 1..=3 {
        assert!(stdout.contains(&format!("node {id}: back, serving and caught up")), "{stdout}");
    }
    assert!(stdout.contains("restarted 3 node(s)"), "{stdout}");
    println!("{stdout}");

    // The nodes stopped gracefully: SIGTERM handed leaderships over. How
    // many depends on where the balancer had moved leaders by then (group
    // 0's leader always leads something), and a handover may still fail
    // under load on this 2-core machine (a successor just restarted and
    // behind), which the design allows: the followers elect. What users rely
    // on is asserted below: no publish error, nothing lost, the consumer
    // carries on.
    let logs: Vec<String> = cluster.nodes.values().map(|n| n.log_text()).collect();
    let handed: usize = logs.iter().map(|log| log.matches("handed the group over before stopping").count()).sum();
    let failed: usize = logs.iter().map(|log| log.matches("could not hand the group over").count()).sum();
    println!("handovers on the way down: {handed} done, {failed} failed");
    assert!(handed >= 1, "leaderships were handed over on the way down ({handed} done, {failed} failed)");

    let before = publisher.confirmed();
    publisher.wait_for(before + 200, Duration::from_secs(30)).await;
    let published = publisher.stop().await;
    assert_eq!(published.errors, Vec::<String>::new(), "the publishing client saw no errors");
    let gaps = published.confirmed_at.windows(2).map(|w| w[1] - w[0]);
    println!("longest pause between confirmed publishes: {:?}", gaps.max().unwrap_or_default());

    let confirmed: BTreeSet<String> = published.confirmed.iter().map(|(value, _)| value.clone()).collect();
    let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let missing = confirmed.difference(&received.lock().expect("lock")).count();
        if missing == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < give_up, "{missing} acknowledged messages never arrived");
        assert!(!consuming.is_finished(), "the subscriber ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    consuming.abort();
    drop(cluster);
}
