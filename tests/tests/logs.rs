//! `ferryd --log-format json`: every log line is one JSON object a log
//! collector can index, with its level, message and fields.

use ferry_client::{Client, TopicSettings};
use ferry_tests::{Ferryd, TempDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_a_line_with_level_message_and_fields() {
    let dir = TempDir::new().expect("temp dir");
    let mut node = Ferryd::start_with(&dir.path().join("node"), &["--log-format", "json"]);
    let client = Client::connect(node.addr()).await.expect("connect");
    client.create_topic("clicks", TopicSettings::default()).await.expect("topic");
    node.stop();

    let log = node.log_text();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?} is not JSON: {e}")))
        .collect();
    assert!(lines.iter().all(|l| l["level"].is_string() && l["timestamp"].is_string()), "{log}");
    let start = lines.iter().find(|l| l["fields"]["message"] == "ferryd starting").expect("a start line");
    assert_eq!(start["fields"]["version"], env!("CARGO_PKG_VERSION"), "{start}");
    assert!(start["fields"]["commit"].is_string(), "{start}");
    assert!(lines.iter().any(|l| l["fields"]["message"] == "shutting down"), "{log}");
}
