//! Support for the mirror tests (issue 9): `ferry-mirror` processes between
//! two one-node clusters, and the check that the destination holds every
//! acknowledged source message once, in its partition, in order.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ferry_client::{Client, Message, TopicSettings};
use tempfile::TempDir;

use crate::{binary, free_addr, Ferryd};

/// Partitions of the topic `events` on both clusters.
pub const PARTITIONS: u32 = 3;

/// A `ferry-mirror` child process, killed (SIGKILL) when dropped.
pub struct Mirror {
    launch: Launch,
    child: Child,
}

/// How a mirror is started, and started again the same way on restart.
struct Launch {
    /// A command the mirror runs under (`ip netns exec NAME`), or nothing.
    prefix: Vec<String>,
    args: Vec<String>,
    /// Where its log goes (shown if the test fails); `None`: the test's stderr.
    log: Option<PathBuf>,
}

impl Mirror {
    /// Copies `events` from `source` (cluster `from`) to `destination`
    /// (cluster `to`) in batches of 50, so kills land mid-stream.
    pub fn start(source: &str, destination: &str, from: &str, to: &str) -> Mirror {
        Mirror::start_with(source, destination, from, to, &["--batch-messages", "50"])
    }

    pub fn start_with(source: &str, destination: &str, from: &str, to: &str, extra: &[&str]) -> Mirror {
        Mirror::launch(Launch { prefix: Vec::new(), args: route_args(source, destination, from, to, extra), log: None })
    }

    /// A mirror with default settings run under `prefix` (on a network
    /// namespace's network, for `ip netns exec NAME`), logging at info level
    /// to `log`, which is printed if the test fails.
    pub fn start_under(
        prefix: Vec<String>,
        log: PathBuf,
        source: &str,
        destination: &str,
        from: &str,
        to: &str,
    ) -> Mirror {
        Mirror::launch(Launch { prefix, args: route_args(source, destination, from, to, &[]), log: Some(log) })
    }

    fn launch(launch: Launch) -> Mirror {
        let child = spawn(&launch);
        Mirror { launch, child }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the mirror cleanly (SIGTERM) and waits for it to exit.
    pub fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(sent.success(), "kill -TERM {pid}");
        let status = self.child.wait().expect("wait for the mirror");
        assert!(status.success(), "the mirror stopped with {status}");
    }

    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn(&self.launch);
    }

    /// What the mirror logged so far, if it logs to a file.
    pub fn log_text(&self) -> Option<String> {
        self.launch.log.as_ref().map(|log| std::fs::read_to_string(log).unwrap_or_default())
    }
}

/// The route's flags, with an `--instance` id of its own unless `extra`
/// names one: restarted, a mirror keeps its id, so it renews the route's
/// lock at once rather than standing by until its earlier self's runs out.
fn route_args(source: &str, destination: &str, from: &str, to: &str, extra: &[&str]) -> Vec<String> {
    static STARTED: AtomicU32 = AtomicU32::new(0);
    let instance = format!("test-{from}-{to}-{}", STARTED.fetch_add(1, Ordering::Relaxed));
    let topic: &[&str] = if extra.contains(&"--topic") { &[] } else { &["--topic", "events"] };
    let route = ["--source-cluster", from, "--destination-cluster", to];
    let mut args: Vec<String> = ["--source", source, "--destination", destination]
        .iter()
        .chain(&route)
        .chain(topic)
        .chain(extra)
        .map(|a| a.to_string())
        .collect();
    if !extra.contains(&"--instance") {
        args.extend(["--instance".to_owned(), instance]);
    }
    args
}

/// Starts the mirror; with a prefix, the prefix is the program and the
/// mirror its argument (`ip netns exec` execs it, so the PID is the mirror's).
fn spawn(launch: &Launch) -> Child {
    let mirror = binary("ferry-mirror").to_string_lossy().into_owned();
    let mut words = launch.prefix.iter().chain([&mirror]).chain(&launch.args);
    let mut command = Command::new(words.next().expect("a program"));
    command.args(words).stdout(Stdio::null());
    match &launch.log {
        Some(log) => {
            let file = File::options().create(true).append(true).open(log).expect("open the mirror's log");
            command.env("RUST_LOG", "info").stderr(file)
        }
        None => command.stderr(Stdio::inherit()),
    };
    command.spawn().expect("start ferry-mirror")
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            if let Some(log) = self.log_text() {
                eprintln!("the mirror's log:\n{log}");
            }
        }
    }
}

/// Two one-node clusters on loopback named `one` and `two`, each with the
/// topic `events` of [`PARTITIONS`] partitions, and a client of each.
pub async fn clusters(dir: &TempDir, one: &str, two: &str) -> (Ferryd, Ferryd, Client, Client) {
    clusters_on(dir, one, two, IpAddr::from([127, 0, 0, 1])).await
}

/// [`clusters`] listening on `ip` (a bridge's address, say, for a mirror in
/// a network namespace to reach them).
pub async fn clusters_on(dir: &TempDir, one: &str, two: &str, ip: IpAddr) -> (Ferryd, Ferryd, Client, Client) {
    let (first_node, first) = cluster_on(dir, one, ip).await;
    let (second_node, second) = cluster_on(dir, two, ip).await;
    (first_node, second_node, first, second)
}

/// A one-node cluster named `name` listening on `ip`, with the topic `events`
/// of [`PARTITIONS`] partitions, and a client of it.
pub async fn cluster_on(dir: &TempDir, name: &str, ip: IpAddr) -> (Ferryd, Client) {
    cluster_with(dir, name, ip, &[]).await
}

/// [`cluster_on`] with more `ferryd` flags.
pub async fn cluster_with(dir: &TempDir, name: &str, ip: IpAddr, args: &[&str]) -> (Ferryd, Client) {
    // A port checked free as `free_addr` does, on `ip`.
    let loopback = free_addr();
    let port = loopback.rsplit_once(':').expect("host:port").1;
    let mut args = args.to_vec();
    if !ip.is_loopback() {
        // A bridge address private to this machine's test namespaces.
        args.push("--insecure-plaintext");
    }
    let node = Ferryd::start_at(&dir.path().join(name), &format!("{ip}:{port}"), &args);
    let client = Client::connect(node.addr()).await.expect("connect");
    let settings = TopicSettings { partitions: PARTITIONS, ..Default::default() };
    client.create_topic("events", settings).await.expect("create topic");
    (node, client)
}

/// Acknowledged source messages: (partition, offset) → value.
pub type Acked = BTreeMap<(u32, u64), String>;

/// Publishes messages `<prefix>-<n>` for each n of `range` to `events` in
/// requests of 20; returns each acknowledged one's position and value.
pub async fn publish(client: &Client, prefix: &str, range: std::ops::Range<u32>) -> Acked {
    publish_to(client, "events", prefix, range).await
}

/// [`publish`] to `topic`.
pub async fn publish_to(client: &Client, topic: &str, prefix: &str, range: std::ops::Range<u32>) -> Acked {
    let mut acked = BTreeMap::new();
    let values: Vec<String> = range.map(|n| format!("{prefix}-{n}")).collect();
    for chunk in values.chunks(20) {
        let messages = chunk.iter().map(|v| Message::new(v.clone())).collect();
        let positions = client.publish(topic, messages).await.expect("publish");
        for (position, value) in positions.iter().zip(chunk) {
            acked.insert((position.partition, position.offset), value.clone());
        }
    }
    acked
}

/// A stored copy: its partition, and its origin's cluster, partition and offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub partition: u32,
    pub origin: (String, u32, u64),
    pub value: String,
}

/// Every message of `events` on a one-node cluster, per partition in offset order.
pub async fn stored(client: &Client) -> Vec<Copy> {
    stored_in(client, "events").await
}

/// [`stored`] of `topic`.
pub async fn stored_in(client: &Client, topic: &str) -> Vec<Copy> {
    let mut copies = Vec::new();
    for partition in 0..PARTITIONS {
        let mut from = 0;
        loop {
            let (records, end) = client.read_log(topic, partition, from, 1000).await.expect("read");
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

/// Waits (up to a minute) until the destination holds `count` copies from
/// `origin`, then a little longer, so that a duplicate would have had time
/// to show.
pub async fn wait_for_copies(client: &Client, origin: &str, count: usize) -> Vec<Copy> {
    wait_for_copies_in(client, "events", origin, count).await
}

/// [`wait_for_copies`] in `topic`.
pub async fn wait_for_copies_in(client: &Client, topic: &str, origin: &str, count: usize) -> Vec<Copy> {
    for _ in 0..600 {
        let copies = stored_in(client, topic).await;
        if copies.iter().filter(|c| c.origin.0 == origin).count() >= count {
            tokio::time::sleep(Duration::from_secs(2)).await;
            return stored_in(client, topic).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let copies = stored_in(client, topic).await;
    let held = copies.iter().filter(|c| c.origin.0 == origin).count();
    panic!("the destination never held {count} copies from {origin}: {held} after a minute");
}

/// Every acknowledged source message is in the destination once, in its own
/// partition, in source offset order.
pub fn assert_once_in_order(copies: &[Copy], origin: &str, acked: &Acked) {
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

/// Waits until the source's route subscription has nothing unacked: the
/// mirror told the source about everything it stored.
pub async fn wait_until_drained(source: &Client, subscription: &str) {
    let mut backlog = None;
    for _ in 0..100 {
        let now = source.get_subscription(subscription).await.expect("get").backlog;
        if now.as_ref().is_some_and(|b| b.unacked_messages == 0) {
            return;
        }
        backlog = now;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the source still has unacked messages once all were stored: {backlog:?}");
}
