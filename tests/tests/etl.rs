//! `ferry-etl` end to end: a real `ferryd` on a manual clock (so hours pass
//! in a moment), the real `ferry-etl` binary writing to a local directory
//! (or a real S3 server), killed and restarted. What is checked is what downstream jobs rely on:
//! every closed hour holds each of its events exactly once, closes exactly
//! once, and never changes after.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use ferry_client::{Client, Message, SubscriptionSettings, TopicSettings};
use ferry_etl::closer::read_manifest;
use ferry_etl::format::read_part;
use ferry_etl::hour::Hour;
use ferry_etl::manifest::Manifest;
use ferry_etl::naming::in_hour;
use ferry_etl::store::Output;
use ferry_tests::s3::S3Server;
use ferry_tests::{advance_clock, binary, eventually, free_addr, http_get, Ferryd, TempDir};

const TOPIC: &str = "clicks";
const HOUR: Duration = Duration::from_secs(3600);
/// The `--grace` every ETL here runs with (`1m`).
const GRACE: Duration = Duration::from_secs(60);

struct World {
    dir: TempDir,
    server: Ferryd,
    client: Client,
    output: Output,
    /// The output as `ferry-etl` is told it: URL, and environment.
    output_url: String,
    output_env: Vec<(String, String)>,
}

impl World {
    /// A world whose ETL writes to a local directory.
    async fn new() -> Self {
        let dir = TempDir::new().expect("temp dir");
        let output_url = url(&dir.path().join("out"));
        Self::with_output(dir, output_url, Vec::new()).await
    }

    /// A world whose ETL writes to a bucket of a real S3 server.
    async fn on_s3() -> Self {
        let dir = TempDir::new().expect("temp dir");
        let s3 = S3Server::start(&dir.path().join("s3"), "hours").await;
        Self::with_output(dir, "s3://hours/etl".to_owned(), s3.env()).await
    }

    async fn with_output(dir: TempDir, output_url: String, output_env: Vec<(String, String)>) -> Self {
        let server = Ferryd::start_with(&dir.path().join("node"), &["--unsafe-manual-clock"]);
        let client = Client::connect(server.addr()).await.expect("connect");
        let settings = TopicSettings { partitions: 2, ..TopicSettings::default() };
        client.create_topic(TOPIC, settings).await.expect("topic");
        client.create_subscription("etl", TOPIC, SubscriptionSettings::default()).await.expect("subscription");
        let options: Vec<(String, String)> =
            output_env.iter().map(|(key, value)| (key.to_lowercase(), value.clone())).collect();
        let options: Vec<(&str, &str)> = options.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
        let output = Output::open(&output_url, &options).expect("output");
        Self { dir, server, client, output, output_url, output_env }
    }

    /// Starts `ferry-etl run` (with `env`, e.g. a crash point).
    fn etl(&self, env: &[(&str, &str)]) -> Etl {
        self.etl_with(env, &[])
    }

    /// Starts `ferry-etl run` with `env` and more arguments.
    fn etl_with(&self, env: &[(&str, &str)], args: &[&str]) -> Etl {
        let log = self.dir.path().join("etl.log");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("etl log");
        let child = Command::new(binary("ferry-etl"))
            .args(["--server", self.server.addr(), "run", "--topic", TOPIC, "--subscription", "etl"])
            .args(["--output", &self.output_url])
            .args(["--file-age", "100ms", "--grace", "1m", "--quiet", "0s", "--close-check", "100ms"])
            .args(args)
            .envs(self.output_env.iter().map(|(key, value)| (key, value)))
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
        self.eventually_logged(Duration::from_secs(30), "the ETL acks everything", || async {
            (self.unacked().await == 0).then_some(())
        })
        .await;
    }

    async fn manifest(&self, hour: Hour) -> Option<Manifest> {
        read_manifest(&self.output, TOPIC, hour).await.expect("a readable manifest")
    }

    async fn wait_closed(&self, hour: Hour) -> Manifest {
        self.eventually_logged(Duration::from_secs(60), &format!("hour {hour} closes"), || self.manifest(hour)).await
    }

    /// [`eventually`], failing with the subscription's backlog and the ETL's
    /// log as they are at the deadline (not as they were when the wait began).
    async fn eventually_logged<T, F, Fut>(&self, within: Duration, what: &str, check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        match tokio::time::timeout(within, eventually(within * 2, what, check)).await {
            Ok(value) => value,
            Err(_) => {
                let backlog = self.client.get_subscription("etl").await.map(|s| s.backlog);
                panic!("{what}: not within {within:?}; backlog {backlog:?}; ETL log:\n{}", self.etl_log())
            }
        }
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
            for event in read_part(&file.name, &bytes).expect("a valid part") {
                assert_eq!(event.topic, TOPIC);
                if !event.skewed {
                    assert_eq!(Hour::of_micros(event.publish_time_micros), hour, "an event in another hour's bucket");
                }
                events.push((String::from_utf8_lossy(&event.payload).into_owned(), event.skewed, event.event_id));
            }
        }
        events
    }

    /// The payload texts of a closed hour, sorted.
    async fn texts(&self, hour: Hour) -> Vec<String> {
        let mut texts: Vec<String> = self.events(hour).await.into_iter().map(|(text, _, _)| text).collect();
        texts.sort();
        texts
    }

    /// `ferry-etl verify` says the hour matches its manifest.
    fn verify(&self, hour: Hour) -> String {
        let output = Command::new(binary("ferry-etl"))
            .args(["verify", &hour.to_string(), "--topic", TOPIC, "--output", &self.output_url])
            .envs(self.output_env.iter().map(|(key, value)| (key, value)))
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
            if path.is_file() && !in_flight_put(&path) {
                files.insert(path.clone(), std::fs::read(&path).expect("read"));
            }
        }
        files
    }
}

/// object_store's local puts write `name#N` beside `name`, link it into
/// place and then unlink it; its listings skip such files, and so does a
/// snapshot (one taken between the link and the unlink would show it).
fn in_flight_put(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    name.split_once('#').is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
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

/// `<prefix>-<i>` for each i, sorted: what `World::publish` sent.
fn texts(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    let mut texts: Vec<String> = range.map(|i| format!("{prefix}-{i}")).collect();
    texts.sort();
    texts
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
    // Each hour is acked before the clock jumps past it: a jump of an hour
    // expires every lease still open, and the redelivered copies would count
    // as duplicates too.
    world.publish("a", 0..50, true).await;
    world.publish("a", 0..10, true).await;
    world.wait_until_acked().await;
    world.advance(HOUR).await;
    world.publish("b", 0..30, false).await;
    world.wait_until_acked().await;
    world.advance(HOUR).await;
    world.publish("c", 0..20, false).await;
    world.wait_until_acked().await;
    // Two idle hours and the grace: hours 0..=4 close, 3 and 4 empty. The
    // grace is added, not assumed within the minutes past the hour the clock
    // started at: started in an hour's first minute, hour 4 stayed open.
    world.advance(HOUR * 3 + GRACE).await;

    let expected = [("a", 50, 10), ("b", 30, 0), ("c", 20, 0), ("", 0, 0), ("", 0, 0)];
    let mut hour = first;
    for (prefix, count, duplicates) in expected {
        let manifest = world.wait_closed(hour).await;
        assert_eq!(world.texts(hour).await, texts(prefix, 0..count), "hour {hour}: each event exactly once");
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
        assert_eq!(world.texts(first).await, texts("x", 0..40), "crash at {point}: every event exactly once");
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
/// (the create-only intent and manifest settle who was first). No memory
/// for the close, so its sorts go through scratch files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_sharing_a_topic_write_each_event_once() {
    let world = World::new().await;
    let first = Hour::of(world.now().await);
    let scratch = world.dir.path().join("scratch");
    let args = ["--close-memory-mib", "0", "--scratch-dir", scratch.to_str().expect("UTF-8")];
    let (one, two) = (world.etl_with(&[], &args), world.etl_with(&[], &args));
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
    assert!(world.etl_log().contains("sorting on disk"), "{}", world.etl_log());
    // A worker may still be in a close (of a later hour, or a second close
    // of one the other finished): the scratch is checked once both stopped.
    assert!(one.stop().success() && two.stop().success(), "{}", world.etl_log());
    let left: Vec<_> = std::fs::read_dir(&scratch).expect("scratch dir").collect();
    assert!(left.is_empty(), "the close's scratch files are gone: {left:?}");
}

/// The same hours, with duplicates, through the binary into a bucket of a
/// real S3 server (conditional puts, listings and deletes over HTTP).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3_hours_close_once_each_holding_their_events_exactly_once() {
    let world = World::on_s3().await;
    let first = Hour::of(world.now().await);
    let etl = world.etl(&[]);
    world.publish("s", 0..300, true).await;
    world.publish("s", 0..50, true).await;
    world.wait_until_acked().await;
    world.advance(HOUR).await;
    world.publish("t", 0..100, false).await;
    world.wait_until_acked().await;
    world.advance(HOUR * 2).await;

    for (hour, prefix, count, duplicates) in [(first, "s", 300, 50), (first.next(), "t", 100, 0)] {
        let manifest = world.wait_closed(hour).await;
        assert_eq!(world.texts(hour).await, texts(prefix, 0..count), "hour {hour}: each event exactly once");
        assert_eq!(manifest.duplicates_dropped, duplicates, "hour {hour}");
        assert!(world.verify(hour).contains("ok"));
        let staged = world.output.list(&in_hour(TOPIC, hour, "_staging")).await.expect("list");
        assert!(staged.is_empty(), "a closed hour's staging files are deleted: {staged:?}");
    }
    assert!(etl.stop().success(), "{}", world.etl_log());
}

/// `--format jsonl --codec deflate` writes gzip JSON Lines parts, and
/// `--metrics-listen` serves what the worker did for Prometheus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_parts_and_metrics_over_http() {
    let world = World::new().await;
    let first = Hour::of(world.now().await);
    let metrics_addr = free_addr();
    let args = ["--format", "jsonl", "--codec", "deflate", "--metrics-listen", &metrics_addr];
    let etl = world.etl_with(&[], &args);
    world.publish("j", 0..120, true).await;
    world.publish("j", 0..20, true).await;
    world.wait_until_acked().await;
    world.advance(HOUR * 2).await;

    let manifest = world.wait_closed(first).await;
    assert!(manifest.files.iter().all(|f| f.name.ends_with(".jsonl.gz")), "{manifest:?}");
    assert_eq!((manifest.records, manifest.duplicates_dropped), (120, 20));
    assert_eq!(world.texts(first).await, texts("j", 0..120));
    assert!(world.verify(first).contains("ok"));

    let scrape = http_get(&metrics_addr, "/metrics").await;
    assert!(scrape.starts_with("HTTP/1.1 200"), "{scrape}");
    for line in [
        "ferry_etl_records_staged_total{topic=\"clicks\"} 140",
        "ferry_etl_records_closed_total{topic=\"clicks\"} 120",
        "ferry_etl_duplicates_dropped_total{topic=\"clicks\"} 20",
        "# TYPE ferry_etl_watermark_lag_seconds gauge",
    ] {
        assert!(scrape.contains(line), "no {line:?} in:\n{scrape}");
    }
    assert!(http_get(&metrics_addr, "/other").await.starts_with("HTTP/1.1 404"));
    assert!(etl.stop().success(), "{}", world.etl_log());
}

/// The store itself on S3: create-only puts keep the first bytes, listings
/// are relative to the URL's prefix, deletes delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3_a_name_is_written_once_listed_under_the_prefix_and_deleted() {
    use bytes::Bytes;
    use ferry_etl::store::Created;

    let world = World::on_s3().await;
    let output = &world.output;
    assert_eq!(output.create("t/h1/_staging/a", Bytes::from_static(b"first")).await.expect("put"), Created::New);
    assert_eq!(
        output.create("t/h1/_staging/a", Bytes::from_static(b"second")).await.expect("put"),
        Created::AlreadyThere,
        "S3 conditional puts (If-None-Match: *) keep the first"
    );
    assert_eq!(output.get("t/h1/_staging/a").await.expect("get").as_deref(), Some(&b"first"[..]));
    output.create("t/h1/_SUCCESS", Bytes::from_static(b"{}")).await.expect("put");

    let names: Vec<String> = output.list("t/h1").await.expect("list").into_iter().map(|l| l.name).collect();
    assert_eq!(names, ["_SUCCESS", "_staging/a"]);
    assert!(world.dir.path().join("s3/hours/etl/t/h1/_SUCCESS").is_file(), "under the URL's prefix in the bucket");

    output.delete("t/h1/_staging/a").await.expect("delete");
    assert_eq!(output.get("t/h1/_staging/a").await.expect("get"), None);
}
