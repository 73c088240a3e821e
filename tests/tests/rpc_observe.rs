//! Every gRPC call a node serves is timed and counted under its method and
//! status code (`ferry_rpc_duration_seconds`, streams started and ended),
//! peer Raft calls included, and runs in an `rpc` span that its handler's
//! logs carry (`--log-format json`).

use std::time::Duration;

use ferry_client::{Client, SubscriptionSettings, TopicSettings};
use ferry_proto::v1 as api;
use ferry_proto::v1::publisher_client::PublisherClient;
use ferry_proto::v1::subscriber_client::SubscriberClient;
use ferry_tests::{eventually, free_addr, http_get, Ferryd, RawStream, TempDir};

async fn scrape(metrics: &str) -> String {
    let response = http_get(metrics, "/metrics").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response.split_once("\r\n\r\n").map_or(String::new(), |(_, body)| body.to_owned())
}

/// The value of the sample `line` (name and labels, exactly), if present.
fn sample(scrape: &str, line: &str) -> Option<f64> {
    let found = scrape.lines().find_map(|l| l.strip_prefix(line).and_then(|rest| rest.strip_prefix(' ')));
    found.map(|value| value.parse().expect("a number"))
}

fn publish(topic: &str) -> api::PublishRequest {
    let message = api::Message { data: b"x".to_vec().into(), ..Default::default() };
    api::PublishRequest { topic: topic.to_owned(), messages: vec![message], ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_timed_by_method_and_status_code_and_streams_counted_as_they_end() {
    let dir = TempDir::new().expect("temp dir");
    let metrics = free_addr();
    let node = Ferryd::start_with(dir.path(), &["--metrics-listen", &metrics]);
    let client = Client::connect(node.addr()).await.expect("connect");
    client.create_topic("clicks", TopicSettings::default()).await.expect("topic");
    client.create_subscription("etl", "clicks", SubscriptionSettings::default()).await.expect("subscription");

    let mut publisher = PublisherClient::connect(format!("http://{}", node.addr())).await.expect("connect");
    for _ in 0..3 {
        publisher.publish(publish("clicks")).await.expect("publish");
    }
    let bad = publisher.publish(publish("bad name!")).await.expect_err("a bad topic name");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    let missing = publisher.publish(publish("nowhere")).await.expect_err("no such topic");
    assert_eq!(missing.code(), tonic::Code::NotFound);

    let text = scrape(&metrics).await;
    assert!(text.contains("# TYPE ferry_rpc_duration_seconds histogram\n"), "{text}");
    let publish = "service=\"ferry.v1.Publisher\",method=\"Publish\"";
    let count = |code: &str| sample(&text, &format!("ferry_rpc_duration_seconds_count{{{publish},code=\"{code}\"}}"));
    assert_eq!(count("OK"), Some(3.0), "{text}");
    assert_eq!(count("INVALID_ARGUMENT"), Some(1.0), "{text}");
    assert_eq!(count("NOT_FOUND"), Some(1.0), "{text}");
    let ok = format!("{publish},code=\"OK\"");
    let inf = sample(&text, &format!("ferry_rpc_duration_seconds_bucket{{{ok},le=\"+Inf\"}}"));
    assert_eq!(inf, Some(3.0), "every call is in the +Inf bucket: {text}");
    let in_10s = sample(&text, &format!("ferry_rpc_duration_seconds_bucket{{{ok},le=\"10\"}}"));
    assert_eq!(in_10s, Some(3.0), "a local publish takes less than 10 s: {text}");
    let sum = sample(&text, &format!("ferry_rpc_duration_seconds_sum{{{ok}}}")).expect("a sum");
    assert!(sum > 0.0 && sum < 30.0, "{sum} s for 3 publishes");

    // Streams: one refused before it starts, one that delivers and is then
    // dropped by its client. Each start is counted, and each end under its code.
    let mut subscriber = SubscriberClient::connect(format!("http://{}", node.addr())).await.expect("connect");
    let first =
        |subscription: &str| api::StreamingPullRequest { subscription: subscription.to_owned(), ..Default::default() };
    let refused = subscriber.streaming_pull(tokio_stream::iter([first("nobody")])).await;
    let refused = match refused {
        Err(status) => status.code(),
        Ok(response) => response.into_inner().message().await.expect_err("no such subscription").code(),
    };
    assert_eq!(refused, tonic::Code::NotFound);
    let mut pull = RawStream::open(node.addr(), first("etl")).await;
    let delivered = pull.next().await;
    assert!(!delivered.messages.is_empty(), "{delivered:?}");
    drop(pull);

    let stream = "service=\"ferry.v1.Subscriber\",method=\"StreamingPull\"";
    let text = eventually(Duration::from_secs(10), "both streams ended", || async {
        let text = scrape(&metrics).await;
        let ended: f64 = text
            .lines()
            .filter(|l| l.starts_with(&format!("ferry_rpc_streams_ended_total{{{stream},")))
            .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
            .sum();
        (ended == 2.0).then_some(text)
    })
    .await;
    assert_eq!(sample(&text, &format!("ferry_rpc_streams_started_total{{{stream}}}")), Some(2.0), "{text}");
    let not_found = format!("ferry_rpc_streams_ended_total{{{stream},code=\"NOT_FOUND\"}}");
    assert_eq!(sample(&text, &not_found), Some(1.0), "{text}");
    assert!(!text.contains("ferry_rpc_duration_seconds_count{service=\"ferry.v1.Subscriber\",method=\"StreamingPull\""));
}

/// A node joining a cluster calls AddNode on the leader: the leader's log of
/// that call carries the call's `rpc` span (method and peer) around the
/// handler's own; and the Raft calls the joined node then takes from the
/// leader are counted under the peer service's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_logs_carry_the_rpc_span_and_peer_calls_are_counted_under_their_own_names() {
    let dir = TempDir::new().expect("temp dir");
    let mut leader = Ferryd::start_with(&dir.path().join("node1"), &["--log-format", "json"]);
    let metrics = free_addr();
    let joiner = Ferryd::start_with(
        &dir.path().join("node2"),
        &["--node-id", "2", "--join", leader.addr(), "--metrics-listen", &metrics],
    );
    let client = Client::connect(leader.addr()).await.expect("connect");
    eventually(Duration::from_secs(30), "node 2 is a voter", || async {
        let status = client.cluster_status().await.ok()?;
        status.members.iter().any(|m| m.node_id == 2 && m.voter).then_some(())
    })
    .await;

    let raft = "service=\"ferry.internal.v1.Raft\",method=\"AppendEntries\",code=\"OK\"";
    eventually(Duration::from_secs(10), "the joined node counts the leader's appends", || async {
        let text = scrape(&metrics).await;
        sample(&text, &format!("ferry_rpc_duration_seconds_count{{{raft}}}")).filter(|n| *n > 0.0)
    })
    .await;

    leader.stop();
    let log = leader.log_text();
    let promoted = log
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|l| l["fields"]["message"] == "learner caught up; promoting to voter")
        .unwrap_or_else(|| panic!("no promotion in the leader's log:\n{log}"));
    let spans = promoted["spans"].as_array().unwrap_or_else(|| panic!("no span list: {promoted}"));
    let rpc = spans.iter().find(|s| s["name"] == "rpc").unwrap_or_else(|| panic!("no rpc span: {promoted}"));
    assert_eq!(rpc["method"], "/ferry.v1.Cluster/AddNode", "{promoted}");
    let peer = rpc["peer"].as_str().unwrap_or_else(|| panic!("no peer: {promoted}"));
    assert!(peer.parse::<std::net::SocketAddr>().is_ok_and(|p| p.ip().is_loopback()), "{peer}");
    assert_eq!(promoted["span"]["name"], "add_node", "the handler's own span is the current one: {promoted}");
    drop(joiner);
}
