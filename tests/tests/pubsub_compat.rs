//! Pub/Sub wire compatibility: the official Python client
//! (`google-cloud-pubsub`, pinned in `tests/pubsub/requirements.txt`,
//! installed by `scripts/ensure-build-deps` into a virtualenv) runs
//! unchanged against a real `ferryd` through `PUBSUB_EMULATOR_HOST`.
//! What it publishes is then read back through Ferry's own API.
//!
//! Publisher, the Subscriber's unary calls and its streaming subscriber,
//! against one node and against a follower of a 3-node cluster (Pub/Sub
//! clients never follow Ferry's leader hints, so the follower forwards).
//! And, with tonic's Pub/Sub client, a frame Ferry refuses mid-stream.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use ferry_client::{Client, ClientOptions};
use std::time::{Duration, Instant};

use ferry_proto::pubsub as ps;
use ferry_proto::pubsub::publisher_client::PublisherClient;
use ferry_tests::{token_hash, Cluster, Ferryd, TempDir};

/// The virtualenv's python, installed by `scripts/ensure-build-deps`.
fn python() -> PathBuf {
    let venv = std::env::var_os("FERRY_PUBSUB_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/ferry/pubsub-venv"));
    let python = venv.join("bin/python");
    assert!(python.is_file(), "{} is missing: run scripts/ensure-build-deps (make check does)", python.display());
    python
}

/// How long one script may run: each takes a few seconds, and a client
/// retrying a call the server never answers would otherwise run forever.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `tests/pubsub/<name>` with the client pointed at `addr`, failing
/// the test unless the script ends with "ok" within `SCRIPT_TIMEOUT`.
fn run_script(addr: &str, name: &str) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pubsub").join(name);
    let mut child = Command::new(python())
        .arg(script)
        .env("PUBSUB_EMULATOR_HOST", addr)
        .env("FERRY_PROJECT", "compat")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    let started = Instant::now();
    while child.try_wait().expect("wait for python").is_none() {
        if started.elapsed() > SCRIPT_TIMEOUT {
            child.kill().expect("kill python");
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let run = child.wait_with_output().expect("python's output");
    let said = String::from_utf8_lossy(&run.stdout);
    println!("{said}");
    assert!(run.status.success(), "the Python client failed:\n{said}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(said.trim_end().ends_with("ok"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_publisher_client_works_unchanged_and_ferry_stores_what_it_sent() {
    let dir = TempDir::new().expect("temp dir");
    let node = Ferryd::start(dir.path());
    run_script(node.addr(), "publisher.py");

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
    run_script(node.addr(), "subscriber.py");
}

#[test]
fn the_python_streaming_subscriber_gets_everything_once_in_key_order_within_flow_control() {
    let dir = TempDir::new().expect("temp dir");
    let node = Ferryd::start(dir.path());
    run_script(node.addr(), "streaming.py");
}

/// A node of `cluster` that does not lead group 0.
async fn a_follower(cluster: &Cluster) -> u64 {
    let leader = cluster.leader(Duration::from_secs(20)).await;
    (1..=3).find(|id| *id != leader).expect("three nodes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_works_through_a_follower_of_a_three_node_cluster() {
    // Without data groups every topic is group 0's: admin calls, pulls,
    // acks, seeks and the streaming subscriber are all forwarded.
    let cluster = Cluster::start(3, &["--data-groups", "0"]);
    let follower = a_follower(&cluster).await;
    run_script(cluster.addr(follower), "subscriber.py");
    run_script(cluster.addr(follower), "streaming.py");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_through_a_follower_reaches_partitions_in_data_groups() {
    // With data groups, admin calls are forwarded to group 0's leader and
    // publishes and streams take Ferry's own routes to each group's leader.
    let cluster = Cluster::start_with_groups(3, 2).await;
    let follower = a_follower(&cluster).await;
    run_script(cluster.addr(follower), "publisher.py");
    run_script(cluster.addr(follower), "streaming.py");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_a_follower_forwards_is_judged_by_the_callers_own_token() {
    // Pub/Sub clients behind a proxy that adds a token: the call a follower
    // makes again on the leader must carry that token, or the leader (which
    // asks every caller for one) refuses it.
    const OPS: &str = "ops-0123456789abcdef";
    const READER: &str = "reader-0123456789abcdef";
    let dir = TempDir::new().expect("temp dir");
    let auth = dir.path().join("auth.toml");
    let grants = format!(
        "[[token]]\nname = \"ops\"\nsha256 = \"{}\"\nadmin = [\"proj.*\"]\n\n\
         [[token]]\nname = \"reader\"\nsha256 = \"{}\"\nsubscribe = [\"proj.*\"]\n",
        token_hash(OPS),
        token_hash(READER)
    );
    std::fs::write(&auth, grants).expect("write the auth file");
    let peer = dir.path().join("peer-token");
    std::fs::write(&peer, "peer-0123456789abcdef0123").expect("write the peer token");
    let path = |p: &std::path::Path| p.to_str().expect("utf-8 path").to_owned();
    let cluster = Cluster::start(3, &["--auth-file", &path(&auth), "--peer-token-file", &path(&peer)]);
    let options = ClientOptions { token: Some(OPS.into()), ..ClientOptions::default() };
    let ops = Client::connect_with_options(&cluster.addrs(), options).await.expect("connect");
    let leader = ferry_tests::eventually(Duration::from_secs(20), "a leader", || async {
        ops.cluster_status().await.ok()?.leader_id
    })
    .await;
    let follower = (1..=3).find(|id| *id != leader).expect("three nodes");
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", cluster.addr(follower)))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut publisher = PublisherClient::new(channel);
    let create = |token: Option<&str>| {
        let mut request =
            tonic::Request::new(ps::Topic { name: "projects/proj/topics/orders".into(), ..Default::default() });
        if let Some(token) = token {
            request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ascii"));
        }
        request
    };
    let denied = publisher.create_topic(create(Some(READER))).await.expect_err("reader may not create topics");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().contains("reader"), "{denied:?}");
    let anonymous = publisher.create_topic(create(None)).await.expect_err("no token");
    assert_eq!(anonymous.code(), tonic::Code::Unauthenticated, "{anonymous:?}");
    // (UNAVAILABLE while the new cluster sets its layout, as Pub/Sub retries.)
    let created = ferry_tests::eventually(Duration::from_secs(20), "the topic created", || {
        let mut publisher = publisher.clone();
        async move {
            match publisher.create_topic(create(Some(OPS))).await {
                Err(status) if status.code() == tonic::Code::Unavailable => None,
                answer => Some(answer.expect("forwarded with ops's token")),
            }
        }
    })
    .await;
    assert_eq!(created.get_ref().name, "projects/proj/topics/orders");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_pull_frame_ferry_refuses_ends_the_stream_with_its_error() {
    let dir = TempDir::new().expect("temp dir");
    let node = Ferryd::start(dir.path());
    a_refused_frame_ends_the_stream(node.addr()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_frame_ends_the_stream_of_a_subscription_in_data_groups() {
    // The stream fans in one sub-stream per group; the refusal still ends it.
    let cluster = Cluster::start_with_groups(1, 2).await;
    a_refused_frame_ends_the_stream(cluster.addr(1)).await;
}

/// Opens a Pub/Sub StreamingPull on the node at `addr` and sends a frame
/// Ferry refuses: the stream ends with INVALID_ARGUMENT naming the field.
async fn a_refused_frame_ends_the_stream(addr: &str) {
    use ferry_proto::pubsub::subscriber_client::SubscriberClient;

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let topic = "projects/proj/topics/orders";
    let subscription = "projects/proj/subscriptions/etl";
    // (UNAVAILABLE while the node sets its layout, as Pub/Sub retries.)
    ferry_tests::eventually(Duration::from_secs(20), "the topic created", || {
        let mut publisher = PublisherClient::new(channel.clone());
        async move {
            match publisher.create_topic(ps::Topic { name: topic.into(), ..Default::default() }).await {
                Err(status) if status.code() == tonic::Code::Unavailable => None,
                answer => Some(answer.expect("topic")),
            }
        }
    })
    .await;
    let mut subscriber = SubscriberClient::new(channel);
    let settings = ps::Subscription { name: subscription.into(), topic: topic.into(), ..Default::default() };
    subscriber.create_subscription(settings).await.expect("subscription");

    let (frames, outgoing) = tokio::sync::mpsc::channel(4);
    let first = ps::StreamingPullRequest {
        subscription: subscription.into(),
        stream_ack_deadline_seconds: 10,
        ..Default::default()
    };
    frames.send(first).await.expect("first frame");
    let mut responses = subscriber
        .streaming_pull(tokio_stream::wrappers::ReceiverStream::new(outgoing))
        .await
        .expect("stream opened")
        .into_inner();
    // Two deadlines for one ack id: they go in pairs.
    let unpaired = ps::StreamingPullRequest {
        modify_deadline_seconds: vec![10, 20],
        modify_deadline_ack_ids: vec!["an-ack-id".into()],
        ..Default::default()
    };
    frames.send(unpaired).await.expect("second frame");
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match responses.message().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the stream ends");
    let status = ended.expect_err("the stream ends with the refusal, not OK");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("modify_deadline_seconds"), "{status:?}");
    // The client's frames stay open meanwhile: the server ended the stream.
    drop(frames);
}
