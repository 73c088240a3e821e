//! Pub/Sub wire compatibility: the official Python client
//! (`google-cloud-pubsub`, pinned in `tests/pubsub/requirements.txt`,
//! installed by `scripts/ensure-build-deps` into a virtualenv) runs
//! unchanged against a real `ferryd` through `PUBSUB_EMULATOR_HOST`.
//! What it publishes is then read back through Ferry's own API.
//!
//! Publisher, the Subscriber's unary calls and its streaming subscriber.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use ferry_client::Client;
use ferry_tests::{Ferryd, TempDir};

/// The virtualenv's python, installed by `scripts/ensure-build-deps`.
fn python() -> PathBuf {
    let venv = std::env::var_os("FERRY_PUBSUB_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/ferry/pubsub-venv"));
    let python = venv.join("bin/python");
    assert!(python.is_file(), "{} is missing: run scripts/ensure-build-deps (make check does)", python.display());
    python
}

/// Runs `tests/pubsub/<name>` with the client pointed at `node`, failing
/// the test unless the script ends with "ok".
fn run_script(node: &Ferryd, name: &str) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pubsub").join(name);
    let run = Command::new(python())
        .arg(script)
        .env("PUBSUB_EMULATOR_HOST", node.addr())
        .env("FERRY_PROJECT", "compat")
        .output()
        .expect("run python");
    let said = String::from_utf8_lossy(&run.stdout);
    println!("{said}");
    assert!(run.status.success(), "the Python client failed:\n{said}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(said.trim_end().ends_with("ok"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_publisher_client_works_unchanged_and_ferry_stores_what_it_sent() {
    let dir = TempDir::new().expect("temp dir");
    let node = Ferryd::start(dir.path());
    run_script(&node, "publisher.py");

    // Everything it published is stored once in the Ferry topic
    // `compat.orders`, with its attributes and keys, each key in order.
    let ferry = Client::connect(node.addr()).await.expect("connect");
    let topic = ferry.get_topic("compat.orders").await.expect("the Pub/Sub topic is a Ferry topic");
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut plain = Vec::new();
    for partition in 0..topic.partitions.len() as u32 {
        let (records, _) = ferry.read_log("compat.orders", partition, 0, 10_000).await.expect("read the log");
        for record in records {
            let m = record.message;
            let data = String::from_utf8_lossy(&m.data).into_owned();
            if m.ordering_key.is_empty() {
                assert_eq!(m.attributes.get("origin").map(String::as_str), Some("python"), "{data}");
                assert_eq!(m.attributes.get("n"), Some(&data[1..].to_owned()));
                plain.push(data);
            } else {
                by_key.entry(m.ordering_key.clone()).or_default().push(data);
            }
        }
    }
    plain.sort();
    let mut expected: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
    expected.sort();
    assert_eq!(plain, expected, "every plain message once");
    for key in ["k1", "k2"] {
        let expected: Vec<String> = (0..20).map(|i| format!("{key}-{i}")).collect();
        assert_eq!(by_key.get(key), Some(&expected), "key {key}'s messages once, in order");
    }
}

#[test]
fn the_python_subscriber_client_pulls_acks_nacks_seeks_and_dead_letters() {
    let dir = TempDir::new().expect("temp dir");
    let node = Ferryd::start(dir.path());
    run_script(&node, "subscriber.py");
}

#[test]
fn the_python_streaming_subscriber_gets_everything_once_in_key_order_within_flow_control() {
    let dir = TempDir::new().expect("temp dir");
    let node = Ferryd::start(dir.path());
    run_script(&node, "streaming.py");
}
