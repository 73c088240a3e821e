//! `ferry-etl` end to end: a real `ferryd` on a manual clock (so hours pass
//! in a moment), the real `ferry-etl` binary writing to a local directory,
//! killed and restarted. What is checked is what downstream jobs rely on:
//! every closed hour holds each of its events exactly once, closes exactly
//! once, and never changes after.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use ferry_client::{Client, Message, SubscriptionSettings, TopicSettings};
use ferry_etl::avro::read_file;
use ferry_etl::closer::read_manifest;
use ferry_etl::hour::Hour;
use ferry_etl::manifest::Manifest;
use ferry_etl::naming::in_hour;
use ferry_etl::store::Output;
use ferry_tests::{advance_clock, binary, eventually, Ferryd, TempDir};

const TOPIC: &str = "clicks";
const HOUR: Duration = Duration::from_secs(3600);

struct World {
    dir: TempDir,
    server: Ferryd,
    client: Client,
    output: Output,
}

impl World {
    async fn new() -> Self {
        let dir = TempDir::new().expect("temp dir");
        let server = Ferryd::start_with(&dir.path().join("node"), &["--unsafe-manual-clock"]);
        let client = Client::connect(server.addr()).await.expect("connect");
        let settings = TopicSettings { partitions: 2, ..TopicSettings::default() };
        client.create_topic(TOPIC, settings).await.expect("topic");
        client.create_subscription("etl", TOPIC, SubscriptionSettings::default()).await.expect("subscription");
        let output = Output::open(&url(&dir.path().join("out")), &[]).expect("output");
        Self { dir, server, client, output }
    }

    /// Starts `ferry-etl run` (with `env`, e.g. a crash point).
    fn etl(&self, env: &[(&str, &str)]) -> Etl {
        let log = self.dir.path().join("etl.log");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("etl log");
        let child = Command::new(binary("ferry-etl"))
            .args(["--server", self.server.addr(), "run", "--topic", TOPIC, "--subscription", "etl"])
            .args(["--output", &url(&self.dir.path().join("out"))])
            .args(["--file-age", "100ms", "--grace", "1m", "--quiet", "0s", "--close-check", "100ms"])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("ferry-etl starts");
        Etl { child }
    }

    fn etl_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etl.log")).unwrap_or_default()
    }

    async fn now(&self) -> SystemTime {
        self.client.get_subscription("etl").await.expect("subscription").backlog.expect("backlog").as_of
    }

    async fn advance(&self, by: Duration) {
        advance_clock(self.server.addr(), by).await;
    }

    /// Publishes `count` messages, `<prefix>-<i>`; with `event_ids`, each
    /// carries its text as its producer event id.
    async fn publish(&self, prefix: &str, range: std::ops::Range<usize>, event_ids: bool) {
        let messages = range
            .map(|i| {
                let mut message = Message::new(format!("{prefix}-{i}"));
                if event_ids {
                    message.event_id = format!("{prefix}-{i}");
                }
                message
            })
            .collect();
        self.client.publish(TOPIC, messages).await.expect("publish");
    }

    async fn unacked(&self) -> u64 {
        self.client.get_subscription("etl").await.expect("subscription").backlog.expect("backlog").unacked_messages
    }

    async fn wait_until_acked(&self) {
        let backlog = self.client.get_subscription("etl").await.expect("subscription").backlog;
        let what = format!("the ETL acks everything ({backlog:?}); its log so far:\n{}", self.etl_log());
        eventually(Duration::from_secs(30), &what, || async { (self.unacked().await == 0).then_some(()) }).await;
    }

    async fn manifest(&self, hour: Hour) -> Option<Manifest> {
        read_manifest(&self.output, TOPIC, hour).await.expect("a readable manifest")
    }

    async fn wait_closed(&self, hour: Hour) -> Manifest {
        let what = format!("hour {hour} closes; ETL log:\n{}", self.etl_log());
        eventually(Duration::from_secs(60), &what, || self.manifest(hour)).await
    }

    /// Waits until every hour from `from` whose end and grace have passed
    /// is closed; returns the oldest open hour.
    async fn wait_until_due_hours_closed(&self, from: Hour) -> Hour {
        let now = ferry_etl::hour::micros(self.now().await);
        let mut open = from;
        while open.end_micros() + 60_000_000 <= now {
            self.wait_closed(open).await;
            open = open.next();
        }
        open
    }

    /// Every event of a closed hour: (payload text, skewed, event id).
    async fn events(&self, hour: Hour) -> Vec<(String, bool, String)> {
        let manifest = self.manifest(hour).await.expect("closed");
        let mut events = Vec::new();
        for file in &manifest.files {
            let bytes = self.output.get(&in_hour(TOPIC, hour, &file.name)).await.expect("get").expect("a part");
            for event in read_file(&bytes).expect("a valid part") {
                assert_eq!(event.topic, TOPIC);
                if !event.skewed {
                    assert_eq!(Hour::of_micros(event.publish_time_micros), hour, "an event in another hour's bucket");
                }
                events.push((String::from_utf8_lossy(&event.payload).into_owned(), event.skewed, event.event_id));
            }
        }
        events
    }

    /// `ferry-etl verify` says the hour matches its manifest.
    fn verify(&self, hour: Hour) -> String {
        let output = Command::new(binary("ferry-etl"))
            .args(["verify", &hour.to_string(), "--topic", TOPIC, "--output", &url(&self.dir.path().join("out"))])
            .output()
            .expect("ferry-etl verify runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "verify {hour} failed:\n{stdout}{}", String::from_utf8_lossy(&output.stderr));
        stdout
    }

    /// Every file of an hour with its bytes: what "never changes" compares.
    fn snapshot(&self, hour: Hour) -> BTreeMap<PathBuf, Vec<u8>> {
        let dir = self.dir.path().join("out").join(TOPIC).join(hour.dir());
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).expect("the hour's dir") {
            let path = entry.expect("entry").path();
            if path.is_file() {
                files.insert(path.clone(), std::fs::read(&path).expect("read"));
            }
        }
        files
    }
}

struct Etl {
    child: Child,
}

impl Etl {
    /// SIGTERM, then the exit status: a clean stop writes, acks, exits 0.
    fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
        self.child.wait().expect("wait")
    }

    /// Waits for the process to end by itself (a crash point).
    async fn crashed(mut self) {
        eventually(Duration::from_secs(30), "ferry-etl reaches its crash point", || {
            let ended = self.child.try_wait().expect("try_wait").is_some();
            async move { ended.then_some(()) }
        })
        .await;
    }
}

impl Drop for Etl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn url(dir: &Path) -> String {
    std::fs::create_dir_all(dir).expect("output dir");
    format!("file://{}", dir.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hours_close_once_each_holding_its_events_exactly_once() {
    let world = World::new().await;
    let first = Hour::of(world.now().await);
    let etl = world.etl(&[]);

    // Hour 0: 50 events, 10 of them published twice by a retrying producer.
    world.publish("a", 0..50, true).await;
    world.publish("a", 0..10, true).await;
    world.advance(HOUR).await;
    world.publish("b", 0..30, false).await;
    world.advance(HOUR).await;
    world.publish("c", 0..20, false).await;
    world.wait_until_acked().await;
    // Two idle hours and the grace: hours 0..=3 close, 3 and 4 empty.
    world.advance(HOUR * 3).await;

    let expected = [("a", 50, 10), ("b", 30, 0), ("c", 20, 0), ("", 0, 0), ("", 0, 0)];
    let mut hour = first;
    for (prefix, count, duplicates) in expected {
        let manifest = world.wait_closed(hour).await;
        let mut texts: Vec<String> = world.events(hour).await.into_iter().map(|(text, _, _)| text).collect();
        texts.sort();
        let mut want: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
        want.sort();
        assert_eq!(texts, want, "hour {hour}: each event exactly once");
        assert_eq!(manifest.records, count as u64);
        assert_eq!(manifest.duplicates_dropped, duplicates, "hour {hour}");
        assert!(world.verify(hour).contains("ok"));
        hour = hour.next();
    }
    assert_eq!(world.manifest(hour).await, None, "the current hour stays open");
    assert!(etl.stop().success(), "a SIGTERM ends ferry-etl cleanly:\n{}", world.etl_log());
}

/// Each crash point, then a restart: no event lost or doubled, one marker
/// per hour, and a closed hour never changes after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_at_any_step_of_a_write_loses_and_doubles_nothing() {
    for point in ferry_etl::crash::POINTS {
        let world = World::new().await;
        let first = Hour::of(world.now().await);
        let crashing = world.etl(&[("FERRY_ETL_CRASH_AT", point)]);
        world.publish("x", 0..40, false).await;
        if *point != "staged" {
            world.wait_until_acked().await;
            world.advance(HOUR * 2).await;
        }
        crashing.crashed().await;
        assert!(world.etl_log().contains(&format!("crashing at {point}")), "{}", world.etl_log());
        // The staged-but-unacked events come back once their leases lapse.
        world.advance(HOUR * 2).await;
        let etl = world.etl(&[]);
        world.wait_closed(first).await;
        let events = world.events(first).await;
        let mut texts: Vec<String> = events.into_iter().map(|(text, _, _)| text).collect();
        texts.sort();
        let mut want: Vec<String> = (0..40).map(|i| format!("x-{i}")).collect();
        want.sort();
        assert_eq!(texts, want, "crash at {point}: every event exactly once");
        world.verify(first);
        let closed = world.snapshot(first);

        // More hours pass; the closed one stays as it was.
        world.publish("y", 0..5, false).await;
        world.advance(HOUR * 2).await;
        world.wait_closed(first.next().next()).await;
        assert_eq!(world.snapshot(first), closed, "crash at {point}: a closed hour changed");
        assert!(etl.stop().success(), "{}", world.etl_log());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_events_of_a_closed_hour_go_skewed_into_the_open_hour_or_after_a_day_to_dead_letters() {
    let world = World::new().await;
    // Messages acked by every subscription are reclaimed early; one nobody
    // reads keeps them for the replays.
    world.client.create_subscription("keep", TOPIC, SubscriptionSettings::default()).await.expect("sub");
    let first = Hour::of(world.now().await);
    let etl = world.etl(&[]);
    world.publish("old", 0..10, false).await;
    world.wait_until_acked().await;
    world.advance(HOUR * 2).await;
    world.wait_closed(first).await;
    let closed = world.snapshot(first);
    let open = world.wait_until_due_hours_closed(first).await;

    // A replay: hour 0's events come again, after it closed.
    let replay_from = SystemTime::UNIX_EPOCH + Duration::from_micros(first.start_micros() as u64);
    world.client.seek("etl", replay_from).await.expect("seek");
    world.wait_until_acked().await;
    world.advance(HOUR).await;
    let manifest = world.wait_closed(open).await;
    assert_eq!(manifest.skewed, 10, "the replayed events are in the oldest open hour, flagged");
    let events = world.events(open).await;
    assert!(events.iter().all(|(text, skewed, _)| *skewed && text.starts_with("old-")), "{events:?}");
    assert_eq!(world.snapshot(first), closed, "the closed hour did not change");

    // A day later, a replay is too late for any open hour: dead letters.
    world
        .client
        .create_subscription("late-check", "clicks.etl-late", SubscriptionSettings::default())
        .await
        .expect("sub");
    world.advance(HOUR * 26).await;
    world.wait_until_due_hours_closed(open).await;
    world.client.seek("etl", replay_from).await.expect("seek");
    world.wait_until_acked().await;
    let late = world.client.pull("late-check", 100, Duration::from_secs(5)).await.expect("pull");
    assert_eq!(late.len(), 10, "every too-late event is dead-lettered");
    assert!(late.iter().all(|m| m.message.attributes.get("ferry-etl-topic").map(String::as_str) == Some(TOPIC)));
    assert!(etl.stop().success(), "{}", world.etl_log());
}

/// Two workers on one subscription: either gets any event, both close hours
/// (the create-only intent and manifest settle who was first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_sharing_a_topic_write_each_event_once() {
    let world = World::new().await;
    let first = Hour::of(world.now().await);
    let (one, two) = (world.etl(&[]), world.etl(&[]));
    for batch in 0..10 {
        world.publish(&format!("p{batch}"), 0..200, false).await;
    }
    world.wait_until_acked().await;
    world.advance(HOUR).await;
    world.publish("q", 0..300, true).await;
    world.wait_until_acked().await;
    world.advance(HOUR * 2).await;

    let mut seen = Vec::new();
    for hour in [first, first.next()] {
        world.wait_closed(hour).await;
        seen.extend(world.events(hour).await.into_iter().map(|(text, _, _)| text));
        world.verify(hour);
    }
    seen.sort();
    let mut want: Vec<String> = (0..10)
        .flat_map(|b| (0..200).map(move |i| format!("p{b}-{i}")))
        .chain((0..300).map(|i| format!("q-{i}")))
        .collect();
    want.sort();
    assert_eq!(seen.len(), want.len(), "every event once across both hours");
    assert_eq!(seen, want);
    assert!(one.stop().success() && two.stop().success(), "{}", world.etl_log());
}
