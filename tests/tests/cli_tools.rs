//! The producer and consumer tools of the CLI, as an operator runs them:
//! `ferry publish` from a file with attributes and compression, `ferry
//! consume`, and `ferry tail` surviving a kill, rotation and truncation.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ferry_client::{Client, SubscriptionSettings, TopicSettings};
use ferry_tests::{binary, eventually, ferry_ok, Ferryd, TempDir};

struct Fixture {
    dir: TempDir,
    _server: Ferryd,
    client: Client,
    addr: String,
}

async fn fixture(topic: &str) -> Fixture {
    let dir = TempDir::new().expect("temp dir");
    let server = Ferryd::start(&dir.path().join("node"));
    let addr = server.addr().to_owned();
    let client = Client::connect(&addr).await.expect("connect");
    client.create_topic(topic, TopicSettings::default()).await.expect("create topic");
    Fixture { dir, _server: server, client, addr }
}

/// Every message of partition 0, as text, in order.
async fn stored_lines(client: &Client, topic: &str) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let (page, end) = client.read_log(topic, 0, lines.len() as u64, 10_000).await.expect("read log");
        lines.extend(page.into_iter().map(|r| String::from_utf8_lossy(&r.message.data).into_owned()));
        if lines.len() as u64 >= end {
            return lines;
        }
    }
}

async fn stored_count(client: &Client, topic: &str) -> u64 {
    client.get_topic(topic).await.expect("get topic").partitions[0].end_offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_from_a_file_with_attributes_then_consume_as_json_lines() {
    let f = fixture("events").await;
    f.client.create_subscription("reader", "events", SubscriptionSettings::default()).await.expect("create sub");
    let file = f.dir.path().join("events.txt");
    let lines: Vec<String> = (0..500).map(|i| format!("{{\"event\":\"play\",\"n\":{i}}}")).collect();
    std::fs::write(&file, lines.join("\n") + "\n").expect("write events");
    let file_arg = file.to_str().expect("utf-8 path");
    let args = ["publish", "events", "--file", file_arg, "--attr", "source=cli", "--attr", "env=test"];
    assert_eq!(ferry_ok(&f.addr, &args, b"").trim(), "500");
    // The same again, compressed on the wire.
    let args = ["publish", "events", "--file", file_arg, "--compression", "zstd", "--attr", "source=zstd"];
    assert_eq!(ferry_ok(&f.addr, &args, b"").trim(), "500");

    let out = ferry_ok(&f.addr, &["consume", "reader", "--max", "1000"], b"");
    let printed: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(printed.len(), 1000);
    let data: Vec<&str> = printed.iter().map(|m| m["data"].as_str().expect("data")).collect();
    assert_eq!(data[..500], lines.iter().map(String::as_str).collect::<Vec<_>>()[..]);
    assert_eq!(data[500..], data[..500]);
    assert_eq!(printed[0]["attributes"], serde_json::json!({"source": "cli", "env": "test"}));
    assert_eq!(printed[999]["attributes"], serde_json::json!({"source": "zstd"}));

    // Everything printed was acked: nothing is left to deliver.
    let left = f.client.pull("reader", 10, Duration::from_millis(500)).await.expect("pull");
    assert!(left.is_empty(), "consume acks what it printed, {} left", left.len());
    let out = ferry_ok(&f.addr, &["consume", "reader", "--idle-exit", "500ms"], b"");
    assert!(out.is_empty());
}

fn start_tail(addr: &str, files: &[&Path], checkpoint: &Path, extra: &[&str]) -> Child {
    let mut command = Command::new(binary("ferry"));
    command.arg("--server").arg(addr).arg("tail").args(files).arg("--topic").arg("logs");
    command.arg("--checkpoint").arg(checkpoint).args(extra);
    command.stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().expect("spawn ferry tail")
}

fn kill9(child: &mut Child) {
    // SIGKILL: no chance to flush or checkpoint.
    child.kill().expect("kill ferry tail");
    child.wait().expect("reap ferry tail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tailer_killed_mid_file_resumes_from_its_checkpoint_without_losing_a_line() {
    let f = fixture("logs").await;
    let log = f.dir.path().join("app.log");
    let checkpoint = f.dir.path().join("tail.json");
    let total = 200_000;
    let lines: Vec<String> = (0..total).map(|i| format!("line {i:07}")).collect();
    std::fs::write(&log, lines.join("\n") + "\n").expect("write log");

    let mut tail = start_tail(&f.addr, &[&log], &checkpoint, &[]);
    eventually(Duration::from_secs(60), "the tailer publishes a first part", || async {
        (stored_count(&f.client, "logs").await > 20_000).then_some(())
    })
    .await;
    kill9(&mut tail);
    let at_kill = stored_count(&f.client, "logs").await;
    assert!(at_kill < total as u64, "the kill must land mid-file ({at_kill} of {total} stored)");

    let mut tail = start_tail(&f.addr, &[&log], &checkpoint, &["--exit-when-idle", "1s"]);
    let status = tail.wait().expect("ferry tail exits when idle");
    assert!(status.success(), "{status}");

    let stored = stored_lines(&f.client, "logs").await;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for line in &stored {
        *counts.entry(line.as_str()).or_default() += 1;
    }
    let missing: Vec<&String> = lines.iter().filter(|l| !counts.contains_key(l.as_str())).collect();
    assert!(missing.is_empty(), "{} lines lost, the first {:?}", missing.len(), missing.first());
    let duplicates = stored.len() - total;
    // Only lines not yet acknowledged (or acknowledged after the last
    // checkpoint) at the kill can be sent twice.
    assert!(duplicates <= 100_000, "{duplicates} duplicates");
    eprintln!("tail: {at_kill} stored at the kill, {duplicates} lines sent twice after the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tailer_follows_rotation_and_truncation() {
    let f = fixture("logs").await;
    let log = f.dir.path().join("app.log");
    let checkpoint = f.dir.path().join("tail.json");
    let append = |path: &Path, lines: &[String]| {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("open log");
        for line in lines {
            writeln!(file, "{line}").expect("append");
        }
    };
    let batch = |prefix: &str, n: usize| (0..n).map(|i| format!("{prefix}-{i}")).collect::<Vec<_>>();

    let mut tail = start_tail(&f.addr, &[&log], &checkpoint, &["--poll", "50ms"]);
    // The file does not exist yet: the tailer waits for it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    append(&log, &batch("first", 1000));
    let wait_for = |n: u64| {
        let client = f.client.clone();
        async move {
            eventually(Duration::from_secs(30), &format!("{n} lines published"), || async {
                (stored_count(&client, "logs").await >= n).then_some(())
            })
            .await
        }
    };
    wait_for(1000).await;

    // Rotation: the writer still appends to the renamed file for a moment,
    // and leaves its last line unterminated.
    let rotated = f.dir.path().join("app.log.1");
    std::fs::rename(&log, &rotated).expect("rotate");
    append(&rotated, &batch("late", 10));
    std::fs::OpenOptions::new().append(true).open(&rotated).expect("open").write_all(b"unterminated").expect("write");
    append(&log, &batch("second", 500));
    wait_for(1511).await;

    // Truncation: the file is emptied and written afresh.
    std::fs::write(&log, "").expect("truncate");
    tokio::time::sleep(Duration::from_millis(300)).await;
    append(&log, &batch("third", 100));
    wait_for(1611).await;
    kill9(&mut tail);

    let stored = stored_lines(&f.client, "logs").await;
    let mut expected = batch("first", 1000);
    expected.extend(batch("late", 10));
    expected.push("unterminated".into());
    expected.extend(batch("second", 500));
    expected.extend(batch("third", 100));
    assert_eq!(stored, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_prints_the_figures_scripts_compare() {
    let f = fixture("unused").await;
    let runs: [&[&str]; 4] = [
        &["bench", "publish", "--topic", "b", "--size", "128", "--count", "2000", "--json"],
        &["bench", "publish", "--topic", "b", "--count", "2000", "--publisher", "--compression", "lz4", "--json"],
        &["bench", "consume", "--topic", "c", "--count", "2000", "--concurrency", "2", "--json"],
        &["bench", "end-to-end", "--topic", "e", "--count", "2000", "--rate", "4000", "--json"],
    ];
    for args in runs {
        let out = ferry_ok(&f.addr, args, b"");
        let figures: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
        for key in ["msgs_per_sec", "mb_per_sec", "p50_ms", "p99_ms", "p999_ms"] {
            let value = figures[key].as_f64().unwrap_or_else(|| panic!("{args:?}: {key} missing in {out}"));
            assert!(value > 0.0, "{args:?}: {key} = {value}");
        }
        assert_eq!(figures["messages"], 2000, "{args:?}");
    }
    // The benchmark created its topics.
    assert!(f.client.get_topic("b").await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_over_several_topics_spreads_messages_over_all_of_them() {
    let f = fixture("unused").await;
    // Two publishers over three topics: each topic gets a third, batch by batch.
    let publish = ["bench", "publish", "--topic", "p", "--topics", "3", "--count", "3000", "--batch", "100"];
    let rest = ["--concurrency", "2", "--json"];
    ferry_ok(&f.addr, &[&publish[..], &rest].concat(), b"");
    ferry_ok(&f.addr, &[&publish[..], &["--publisher"], &rest].concat(), b"");
    for i in 0..3 {
        let topic = f.client.get_topic(&format!("p-{i}")).await.expect("the bench created it");
        assert_eq!(topic.partitions[0].end_offset, 2000, "p-{i} holds a third of both runs");
    }
    // Two consumers for three topics would leave one undrained: every topic
    // gets a consumer, and the run ends with all 3,000 received.
    let args = ["bench", "consume", "--topic", "c", "--topics", "3", "--count", "3000", "--batch", "100"];
    let out = ferry_ok(&f.addr, &[&args[..], &rest].concat(), b"");
    let figures: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(figures["messages"], 3000, "{out}");
}
